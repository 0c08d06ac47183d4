#!/usr/bin/python3
"""A real RTSP server for Sightline's tests and benchmarks: GStreamer's rtsp-server serving
H.264 from x264enc, or with --codec jpeg JPEG over RTP (RFC 2435, jpegenc + rtpjpegpay). The
pictures carry the publisher's frame barcode (frame number, capture
time, camera tag; see publisher/src/barcode.rs), so a headless viewer at the far end checks
which frame it decoded and how long after its capture.

    rtsp-server.py [--port 0] [--path /cam ...] [--codec h264|jpeg]
                   [--profile constrained-baseline|main|high]
                   [--bframes N] [--user U --password P] [--tag N] [--yuv Y,U,V] [--busy]
                   [--stall-after N]

Prints `LISTENING <port>` once it accepts connections, then `CLIENT` for every RTSP
connection, so a test can wait for it and count reconnect attempts. Unknown paths get 404;
with --user/--password, requests without those credentials get 401. --stall-after N stops the
pictures after N frames while the session stays up and RTCP goes on (an encoder that hangs).

Needs Debian's python3-gi, gir1.2-gst-rtsp-server-1.0, gstreamer1.0-plugins-{base,good,ugly}.
"""

import argparse
import os
import signal
import sys
import time

import gi

gi.require_version("Gst", "1.0")
gi.require_version("GstRtspServer", "1.0")
from gi.repository import GLib, Gst, GstRtspServer  # noqa: E402

PROFILES = ("constrained-baseline", "baseline", "main", "high")
BLOCK = 16
LUMA_ZERO, LUMA_ONE = 16, 235
# Video range (Y 16..235, Cb/Cr 16..240) to JPEG's full range, as byte translation tables.
LUMA_TO_FULL = bytes(min(255, max(0, round((v - 16) * 255 / 219))) for v in range(256))
CHROMA_TO_FULL = bytes(min(255, max(0, round((v - 128) * 255 / 224 + 128))) for v in range(256))


def crc16(data):
    """CRC-16/CCITT-FALSE with the output inverted, as barcode.rs computes it."""
    crc = 0xFFFF
    for b in data:
        crc ^= b << 8
        for _ in range(8):
            crc = ((crc << 1) ^ 0x1021) if crc & 0x8000 else (crc << 1)
            crc &= 0xFFFF
    return crc ^ 0xA5A5


def stamp_bytes(frame, capture_us, tag):
    payload = frame.to_bytes(4, "big") + capture_us.to_bytes(8, "big") + tag.to_bytes(2, "big")
    return payload + crc16(payload).to_bytes(2, "big")


class Pictures:
    """I420 frames of one flat colour with the barcode strip on top (barcode.rs's layout:
    128 bits as 16x16 luma blocks, left to right, top to bottom, neutral chroma)."""

    def __init__(self, width, height, yuv, tag, busy, full_range=False):
        self.w, self.h, self.tag = width, height, tag
        # JPEG samples are full range (as cameras send them); jpegenc does not convert, so
        # the pictures are stretched here and a receiver maps them back.
        self.full_range = full_range
        self.per_row = width // BLOCK
        self.strip_rows = -(-128 // self.per_row)
        y, u, v = yuv
        cw, ch = width // 2, height // 2
        strip_c = self.strip_rows * BLOCK // 2
        luma = bytes([y]) * (width * height)
        cb = bytes([128]) * (cw * strip_c) + bytes([u]) * (cw * (ch - strip_c))
        cr = bytes([128]) * (cw * strip_c) + bytes([v]) * (cw * (ch - strip_c))
        self.template = luma + cb + cr
        # --busy: the luma below the strip cycles through random pictures, so x264 spends its
        # whole bitrate (camera-sized frames) instead of coding a still picture in a few bytes.
        strip = self.strip_rows * BLOCK * width
        self.busy_at = strip
        self.noise = [os.urandom(width * height - strip) for _ in range(8)] if busy else []

    def frame(self, index, capture_us):
        out = bytearray(self.template)
        if self.noise:
            out[self.busy_at:self.w * self.h] = self.noise[index % len(self.noise)]
        bits = stamp_bytes(index, capture_us, self.tag)
        w = self.w
        for block_row in range(self.strip_rows):
            line = bytearray([LUMA_ZERO]) * w
            for col in range(self.per_row):
                i = block_row * self.per_row + col
                if i < 128 and bits[i // 8] & (0x80 >> (i % 8)):
                    line[col * BLOCK:(col + 1) * BLOCK] = bytes([LUMA_ONE]) * BLOCK
            for row in range(block_row * BLOCK, (block_row + 1) * BLOCK):
                out[row * w:(row + 1) * w] = line
        if self.full_range:
            n = self.w * self.h
            out[:n] = out[:n].translate(LUMA_TO_FULL)
            out[n:] = out[n:].translate(CHROMA_TO_FULL)
        return bytes(out)


def encoder(args):
    """x264enc settings for the requested profile. B-frames need a lookahead, which
    zerolatency disables, so only the B-frame-free profiles get the low-latency tune."""
    common = f"speed-preset=superfast key-int-max={args.gop} bitrate={args.kbps}"
    if args.bframes > 0:
        return f"x264enc {common} bframes={args.bframes} b-adapt=false rc-lookahead={args.bframes + 2}"
    return f"x264enc tune=zerolatency {common} bframes=0"


def launch_line(args):
    caps = f"video/x-raw,format=I420,width={args.width},height={args.height},framerate={args.fps}/1"
    if args.codec == "jpeg":
        # Quality 90 keeps the barcode blocks clean; 26 is JPEG's static payload type.
        payload = "jpegenc quality=90 ! rtpjpegpay name=pay0 pt=26"
    else:
        payload = (
            f"{encoder(args)} ! video/x-h264,profile={args.profile} "
            f"! rtph264pay name=pay0 pt=96 config-interval=-1"
        )
    return f"( appsrc name=src is-live=true format=time do-timestamp=true caps={caps} ! {payload} )"


class Feeder:
    """Pushes one picture per frame period into a media's appsrc until the media goes.

    Pictures are pushed only while the appsrc is PLAYING. appsrc stamps each buffer with the
    pipeline's running time (do-timestamp), and before the pipeline first reaches PLAYING
    there is no base time: a buffer pushed then is stamped with the absolute clock time,
    hours ahead of the running time. The server's sinks sync to the clock, so they would
    hold that frame, and every frame behind it, for hours: the client gets its PLAY answered
    and RTCP, but no video. Whether the first push won that race depended on scheduling, so
    it happened on a loaded machine only. Periods while the media is not PLAYING (it pauses
    between DESCRIBE and PLAY) make no picture, as a camera drops frames; the frame numbers
    stay consecutive over the pictures sent.
    """

    def __init__(self, appsrc, pictures, fps, stall_after=None):
        self.appsrc, self.pictures, self.fps = appsrc, pictures, fps
        self.stall_after = stall_after
        # Pictures sent (the barcode's frame number) and frame periods elapsed.
        self.index, self.tick = 0, 0
        self.start, self.stopped = time.monotonic(), False
        GLib.idle_add(self.push)

    def push(self):
        if self.stopped or (self.stall_after is not None and self.index >= self.stall_after):
            return False
        _, state, _ = self.appsrc.get_state(0)
        if state == Gst.State.PLAYING:
            capture_us = time.time_ns() // 1000
            data = self.pictures.frame(self.index, capture_us)
            if self.appsrc.emit("push-buffer", Gst.Buffer.new_wrapped(data)) != Gst.FlowReturn.OK:
                self.stopped = True  # media stopping
                return False
            self.index += 1
        self.tick += 1
        due = self.start + self.tick / self.fps
        GLib.timeout_add(max(0, int((due - time.monotonic()) * 1000)), self.push)
        return False


def frequent_rtcp(media):
    """RTCP sender reports every ~0.5 s instead of ~5 s, so a client that takes any packet as
    a sign of life never times out on a stalled stream."""
    for i in range(media.n_streams()):
        media.get_stream(i).get_rtpsession().set_property("rtcp-min-interval", 500 * Gst.MSECOND)


def main():
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawTextHelpFormatter)
    p.add_argument("--address", default="127.0.0.1")
    p.add_argument("--port", type=int, default=0, help="0: any free port (printed)")
    p.add_argument("--path", action="append", help="mount point, repeatable (default /cam)")
    p.add_argument("--codec", choices=("h264", "jpeg"), default="h264")
    p.add_argument("--profile", choices=PROFILES, default="constrained-baseline")
    p.add_argument("--bframes", type=int, default=0)
    p.add_argument("--width", type=int, default=320)
    p.add_argument("--height", type=int, default=240)
    p.add_argument("--fps", type=int, default=30)
    p.add_argument("--gop", type=int, default=30, help="frames between IDRs")
    p.add_argument("--kbps", type=int, default=800)
    p.add_argument("--tag", type=int, default=0, help="camera tag in the barcode (0..65535)")
    p.add_argument("--yuv", default="81,90,240", help="background Y,U,V (default: red)")
    p.add_argument("--busy", action="store_true", help="random picture content below the barcode")
    p.add_argument("--stall-after", type=int, help="stop the pictures after N frames, session up")
    p.add_argument("--user")
    p.add_argument("--password")
    args = p.parse_args()
    if (args.user is None) != (args.password is None):
        p.error("give both --user and --password, or neither")
    if args.bframes > 0 and args.profile in ("constrained-baseline", "baseline"):
        p.error("Baseline has no B-frames; use --profile main or high")
    if args.width % BLOCK or args.height % 2 or args.width < 8 * BLOCK:
        p.error("--width must be a multiple of 16 (at least 128), --height even")
    yuv = tuple(int(c) for c in args.yuv.split(","))
    pictures = Pictures(args.width, args.height, yuv, args.tag, args.busy, args.codec == "jpeg")

    Gst.init(None)
    server = GstRtspServer.RTSPServer()
    server.set_address(args.address)
    server.set_service(str(args.port))

    factory = GstRtspServer.RTSPMediaFactory()
    factory.set_launch(launch_line(args))
    # One encoder for every client: reconnects find the stream already running.
    factory.set_shared(True)

    def on_media(_factory, media):
        appsrc = media.get_element().get_by_name("src")
        feeder = Feeder(appsrc, pictures, args.fps, args.stall_after)
        media.connect("unprepared", lambda _m: setattr(feeder, "stopped", True))
        if args.stall_after is not None:
            media.connect("prepared", frequent_rtcp)

    factory.connect("media-configure", on_media)

    if args.user is not None:
        auth = GstRtspServer.RTSPAuth()
        token = GstRtspServer.RTSPToken()
        token.set_string(GstRtspServer.RTSP_TOKEN_MEDIA_FACTORY_ROLE, "viewer")
        auth.add_basic(GstRtspServer.RTSPAuth.make_basic(args.user, args.password), token)
        server.set_auth(auth)
        permissions = GstRtspServer.RTSPPermissions()
        for perm in (GstRtspServer.RTSP_PERM_MEDIA_FACTORY_ACCESS, GstRtspServer.RTSP_PERM_MEDIA_FACTORY_CONSTRUCT):
            permissions.add_permission_for_role("viewer", perm, True)
        factory.set_permissions(permissions)

    mounts = server.get_mount_points()
    for path in args.path or ["/cam"]:
        mounts.add_factory(path if path.startswith("/") else "/" + path, factory)

    server.connect("client-connected", lambda _s, _c: print("CLIENT", flush=True))
    if server.attach(None) == 0:
        print(f"cannot listen on {args.address}:{args.port}", file=sys.stderr, flush=True)
        sys.exit(1)
    print(f"LISTENING {server.get_bound_port()}", flush=True)

    loop = GLib.MainLoop()
    for sig in (signal.SIGTERM, signal.SIGINT):
        GLib.unix_signal_add(GLib.PRIORITY_DEFAULT, sig, loop.quit)
    loop.run()


if __name__ == "__main__":
    main()
