#!/usr/bin/env python3
"""Demux a fragmented MP4 file with GStreamer's qtdemux, an independent, real demuxer, and
print what it found as one JSON object: the video caps it announced (codec, width, height,
in order of appearance) and every sample's decode and presentation time (ns), size and
whether it is a sync sample. An error from the demuxer goes to `error`.

Usage: fmp4-probe.py FILE
"""
import json
import sys

import gi

gi.require_version("Gst", "1.0")
from gi.repository import Gst  # noqa: E402


def probe(path):
    Gst.init(None)
    pipeline = Gst.parse_launch(
        f'filesrc location="{path}" ! qtdemux name=d '
        "d.video_0 ! appsink name=sink sync=false"
    )
    sink = pipeline.get_by_name("sink")
    pipeline.set_state(Gst.State.PLAYING)
    out = {"caps": [], "samples": [], "error": None}
    last_caps = None
    while True:
        sample = sink.emit("try-pull-sample", 5 * Gst.SECOND)
        if sample is None:
            break
        caps = sample.get_caps().get_structure(0)
        described = {
            "media": caps.get_name(),
            "width": caps.get_value("width"),
            "height": caps.get_value("height"),
        }
        if described != last_caps:
            out["caps"].append(described)
            last_caps = described
        buf = sample.get_buffer()
        out["samples"].append(
            {
                "dts": buf.dts if buf.dts != Gst.CLOCK_TIME_NONE else None,
                "pts": buf.pts if buf.pts != Gst.CLOCK_TIME_NONE else None,
                "size": buf.get_size(),
                "sync": not buf.has_flags(Gst.BufferFlags.DELTA_UNIT),
            }
        )
    bus = pipeline.get_bus()
    msg = bus.pop_filtered(Gst.MessageType.ERROR)
    if msg is not None:
        err, debug = msg.parse_error()
        out["error"] = f"{err.message} ({debug})"
    pipeline.set_state(Gst.State.NULL)
    return out


if __name__ == "__main__":
    print(json.dumps(probe(sys.argv[1])))
