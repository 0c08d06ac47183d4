// The MSE fallback: one camera over one WebSocket (`/api/cameras/{id}/mse`), fragmented MP4
// appended to a MediaSource that plays in the same <video> the WebRTC Player uses. For
// browsers without RTCPeerConnection (WebKitGTK, some WebViews) and networks that carry no
// UDP.
//
// Wire (server → page): TEXT {"type":"mse_init","codec","width","height"} then BINARY the
// init segment (ftyp+moov); then one BINARY moof+mdat per frame (H.264, 90 kHz, one sample).
// A new mse_init + init segment on a resolution change. TEXT camera-control messages
// (welcome, capabilities, state, response) exactly as on the WebRTC `control` data channel;
// TEXT {"type":"error","code","message"} before a refusal closes the socket (1008).
// Page → server: TEXT control commands, as on the data channel (not pause/resume).
//
// Live, not video-on-demand: we keep what is buffered ahead of the playhead small (jump to
// the live edge when behind, play a little faster when slightly behind), drop what has been
// played, and start over from the next keyframe when appends cannot keep up.

import { backoffDelay } from './signaling.js';

/** What we aim to have buffered ahead of the playhead, in seconds. */
const TARGET_AHEAD_S = 0.1;
/** Further behind than this: jump to the live edge. */
const JUMP_AHEAD_S = 0.5;
/** Behind by more than this (but less than a jump): catch up at CATCHUP_RATE. */
const CATCHUP_AHEAD_S = 0.15;
const CATCHUP_RATE = 1.08;
/** The playhead has not moved for this long with data ahead of it: a stall, jump over it. */
const STALL_MS = 1000;
/**
 * A paused video (the browser refused to play: "Tap to play") stays on the picture it shows:
 * every jump would decode and show another, a slideshow that costs battery. Only this far
 * behind does it jump, so that what is buffered stays bounded (trim frees what lies behind).
 */
const PAUSED_MAX_AHEAD_S = 30;
/**
 * Remove played video once this much of it is buffered (memory stays bounded). Only up to
 * the keyframe that starts what plays now: removing part of a group of pictures removes the
 * frames that depend on it too (the MSE coded frame removal algorithm), up to the next
 * keyframe, which would cut a hole under the playhead. So the buffer holds about one group of
 * pictures (the publisher's keyframe interval) plus this.
 */
const TRIM_EVERY_S = 4;
/** Appends queued beyond this (a hidden tab, a slow device): drop them, wait for a keyframe. */
const MAX_QUEUED = 90;
const TICK_MS = 200;
const STATS_MS = 1000;
/** Refusals after which retrying with the same token cannot help. */
const FINAL_ERRORS = ['unauthorized', 'forbidden'];
/** Control message types the server relays from the camera's control channel. */
const CONTROL_TYPES = ['welcome', 'capabilities', 'state', 'response'];

/** The MediaSource constructor this browser has: MediaSource, else ManagedMediaSource (iOS). */
export function mediaSourceClass(w = globalThis) {
  return w.MediaSource || w.ManagedMediaSource || null;
}

/** Can this browser play the MSE fallback at all (some H.264 in MP4)? */
export function mseSupported(w = globalThis) {
  const MS = mediaSourceClass(w);
  return !!MS && typeof MS.isTypeSupported === 'function' && MS.isTypeSupported('video/mp4; codecs="avc1.42e01f"');
}

/** ws(s)://host/api/cameras/{id}/mse, with the page's ?token= passed on. */
export function mseUrl(cameraId, loc = window.location) {
  const scheme = loc.protocol === 'https:' ? 'wss:' : 'ws:';
  const token = new URLSearchParams(loc.search).get('token');
  const query = token ? `?token=${encodeURIComponent(token)}` : '';
  return `${scheme}//${loc.host}/api/cameras/${encodeURIComponent(cameraId)}/mse${query}`;
}

// ---- a little MP4 reading: enough to know a fragment's decode time and keyframe flag --------

function boxes(view, start, end) {
  const out = [];
  let p = start;
  while (p + 8 <= end) {
    let size = view.getUint32(p);
    const type = String.fromCharCode(view.getUint8(p + 4), view.getUint8(p + 5), view.getUint8(p + 6), view.getUint8(p + 7));
    let header = 8;
    if (size === 1 && p + 16 <= end) {
      size = Number(view.getBigUint64(p + 8));
      header = 16;
    } else if (size === 0) {
      size = end - p;
    }
    if (size < header || p + size > end) break;
    out.push({ type, start: p + header, end: p + size });
    p += size;
  }
  return out;
}

/** The media timescale of an init segment's first track (moov/trak/mdia/mdhd), or null. */
export function readTimescale(buffer) {
  try {
    const view = new DataView(buffer);
    const find = (start, end, type) => boxes(view, start, end).find((b) => b.type === type);
    const moov = find(0, view.byteLength, 'moov');
    const trak = moov && find(moov.start, moov.end, 'trak');
    const mdia = trak && find(trak.start, trak.end, 'mdia');
    const mdhd = mdia && find(mdia.start, mdia.end, 'mdhd');
    if (!mdhd) return null;
    const version = view.getUint8(mdhd.start);
    // version, flags, then creation and modification times (4 or 8 bytes each).
    return view.getUint32(mdhd.start + 4 + (version === 1 ? 16 : 8)) || null;
  } catch {
    return null;
  }
}

/**
 * A moof+mdat fragment's `{decodeTime, keyframe}` (decodeTime in timescale units, keyframe
 * true/false/null when not said), or null when it is not one. Never throws.
 */
export function readFragment(buffer) {
  try {
    const view = new DataView(buffer);
    const top = boxes(view, 0, view.byteLength);
    const moof = top.find((b) => b.type === 'moof');
    if (!moof) return null;
    const traf = boxes(view, moof.start, moof.end).find((b) => b.type === 'traf');
    if (!traf) return null;
    let decodeTime = null;
    let defaultFlags = null;
    let keyframe = null;
    for (const b of boxes(view, traf.start, traf.end)) {
      const version = view.getUint8(b.start);
      const flags = view.getUint32(b.start) & 0xffffff;
      if (b.type === 'tfdt') {
        decodeTime = version === 1 ? Number(view.getBigUint64(b.start + 4)) : view.getUint32(b.start + 4);
      } else if (b.type === 'tfhd') {
        let p = b.start + 8; // version+flags, track_ID
        if (flags & 0x01) p += 8; // base_data_offset
        if (flags & 0x02) p += 4; // sample_description_index
        if (flags & 0x08) p += 4; // default_sample_duration
        if (flags & 0x10) p += 4; // default_sample_size
        if (flags & 0x20) defaultFlags = view.getUint32(p);
      } else if (b.type === 'trun') {
        let p = b.start + 8; // version+flags, sample_count
        if (flags & 0x01) p += 4; // data_offset
        let sampleFlags = null;
        if (flags & 0x04) sampleFlags = view.getUint32(p); // first_sample_flags
        else if (flags & 0x400) {
          // Per-sample flags: skip the first sample's duration and size to reach them.
          if (flags & 0x100) p += 4;
          if (flags & 0x200) p += 4;
          sampleFlags = view.getUint32(p);
        }
        const f = sampleFlags ?? defaultFlags;
        // sample_is_non_sync_sample (0x10000); sample_depends_on == 2 also marks a sync sample.
        if (f != null) keyframe = (f & 0x10000) === 0 || ((f >>> 24) & 0x3) === 2;
      }
    }
    // Flags not said: look at the H.264 itself (4-byte lengths) for an IDR slice.
    const mdat = keyframe == null && top.find((b) => b.type === 'mdat');
    if (mdat) {
      keyframe = false;
      for (let p = mdat.start; p + 5 <= mdat.end;) {
        const len = view.getUint32(p);
        if ((view.getUint8(p + 4) & 0x1f) === 5) keyframe = true;
        p += 4 + len;
      }
    }
    return { decodeTime, keyframe };
  } catch {
    return null;
  }
}

// ---- the control channel over the MSE socket ----------------------------------------------

/**
 * Looks like an RTCDataChannel to ControlClient (readyState, send, close, onopen/onclose/
 * onmessage), carried on the MSE WebSocket. Closing it only stops routing: the video goes on.
 */
export class SocketChannel {
  constructor(ws) {
    this.ws = ws;
    this.readyState = ws.readyState === WebSocket.OPEN ? 'open' : 'connecting';
    this.onopen = null;
    this.onclose = null;
    this.onmessage = null;
  }

  send(text) {
    if (this.readyState !== 'open') throw new Error('the MSE socket is not open');
    this.ws.send(text);
  }

  /** Called by the player: a control message from the server. */
  deliver(text) {
    if (this.readyState === 'open' && this.onmessage) this.onmessage({ data: text });
  }

  /** Called by the player when the socket closes. */
  closed() {
    if (this.readyState === 'closed') return;
    this.readyState = 'closed';
    if (this.onclose) this.onclose();
  }

  close() {
    this.readyState = 'closed';
  }
}

// ---- the player -----------------------------------------------------------------------------

export class MsePlayer {
  /**
   * @param {object} opts
   * @param {HTMLVideoElement} opts.video where the video plays (the page's one <video>)
   * @param {string} opts.url the MSE WebSocket URL (see mseUrl)
   * @param {(state: string) => void} [opts.onStateChange] 'connecting' | 'open' | 'closed' |
   *   'refused' | 'unsupported'
   * @param {(text: string, level?: string) => void} [opts.log] for the activity log
   * @param {(channel: SocketChannel) => void} [opts.onControlChannel] a new control channel
   *   (each socket connection has one; the server welcomes it)
   * @param {(error: {code: string, message: string}) => void} [opts.onRefused] a final refusal
   * @param {() => void} [opts.play] starts the video (the page's TapToPlay)
   */
  constructor({ video, url, onStateChange = () => {}, log = () => {}, onControlChannel = () => {}, onRefused = () => {}, play }) {
    this.video = video;
    // The page's TapToPlay offers a button when the browser wants a gesture first.
    this.play = play || (() => video.play().catch(() => {}));
    this.url = url;
    this.onStateChange = onStateChange;
    this.log = log;
    this.onControlChannel = onControlChannel;
    this.onRefused = onRefused;
    this.state = 'connecting';
    this.closedForGood = false;
    this.ws = null;
    this.channel = null;
    this.attempt = 0;
    this.retryTimer = null;

    // Media
    this.MS = mediaSourceClass();
    this.ms = null;
    this.objectUrl = null;
    this.sb = null;
    this.mime = null;
    this.codec = null;
    this.initInfo = null; // the last mse_init, waiting for or owning the init segment
    this.awaitingInit = false;
    this.haveInit = false;
    this.queue = []; // {kind: 'init'|'media'|'remove'|'changeType', ...}
    this.waitKeyframe = true; // until a keyframe after (re)start or a drop
    this.lastDecodeEnd = null; // seconds, for discontinuity detection
    this.keyframes = []; // buffered keyframes' times (seconds on the media timeline), in order
    this.offsetS = 0; // timestampOffset we chose
    this.timescale = 90000; // the server's; the init segment says for sure

    // Figures
    this.startedAt = performance.now();
    this.firstFrameAt = null;
    this.bytesReceived = 0;
    this.fragments = 0;
    this.dropped = 0; // fragments dropped here (queue overflow, quota)
    this.jumps = 0;
    this.quotaErrors = 0;
    this.figures = { fps: null, kbps: null };
    this.prevSample = null;
    this.lastTime = -1;
    this.lastMoveAt = performance.now();
    // getVideoPlaybackQuality() counts from 0 again after some operations (WebKitGTK after a
    // remove()): keep a total that only grows.
    this.framesBase = 0;
    this.framesLastRaw = 0;
    this.framesPresented = null; // counted where requestVideoFrameCallback exists

    this.onVideoEvent = () => this.tick();
    for (const ev of ['waiting', 'stalled', 'canplay']) this.video.addEventListener(ev, this.onVideoEvent);
    this.tickTimer = setInterval(() => this.tick(), TICK_MS);
    this.statsTimer = setInterval(() => this.sampleStats(), STATS_MS);
    this.watchFirstFrame();
    this.connect();
  }

  get connectionState() {
    return this.state;
  }

  setState(s) {
    if (this.state === s) return;
    this.state = s;
    this.onStateChange(s);
  }

  // ---- socket ----------------------------------------------------------------------------

  connect() {
    if (this.closedForGood) return;
    clearTimeout(this.retryTimer);
    this.setState('connecting');
    let ws;
    try {
      ws = new WebSocket(this.url);
    } catch (e) {
      this.log(`MSE: cannot open ${this.url.replace(/\?.*/, '')}: ${e.message}`, 'error');
      this.scheduleReconnect();
      return;
    }
    ws.binaryType = 'arraybuffer';
    this.ws = ws;
    ws.onopen = () => {
      if (this.ws !== ws) return;
      this.setState('open');
      this.channel = new SocketChannel(ws);
      this.onControlChannel(this.channel);
    };
    ws.onmessage = (ev) => {
      if (this.ws !== ws) return;
      if (typeof ev.data === 'string') this.onText(ev.data);
      else this.onBinary(ev.data);
    };
    ws.onclose = (ev) => {
      if (this.ws !== ws) return;
      this.ws = null;
      if (this.channel) this.channel.closed();
      this.channel = null;
      if (this.closedForGood) return;
      this.log(`MSE socket closed (${ev.code}${ev.reason ? ` ${ev.reason}` : ''})`, 'warn');
      this.scheduleReconnect();
    };
  }

  scheduleReconnect() {
    const delay = backoffDelay(this.attempt++);
    this.setState('closed');
    this.log(`MSE: reconnecting in ${(delay / 1000).toFixed(1)} s`, 'warn');
    this.retryTimer = setTimeout(() => this.connect(), delay);
  }

  onText(text) {
    let msg;
    try {
      msg = JSON.parse(text);
    } catch {
      this.log(`MSE: unreadable message: ${text.slice(0, 80)}`, 'error');
      return;
    }
    if (!msg || typeof msg.type !== 'string') return;
    if (msg.type === 'mse_init') {
      this.onInit(msg);
    } else if (msg.type === 'error') {
      this.log(`MSE refused: ${msg.code}: ${msg.message}`, 'error');
      if (FINAL_ERRORS.includes(msg.code)) {
        this.stop('refused');
        this.onRefused({ code: msg.code, message: msg.message });
      }
    } else if (CONTROL_TYPES.includes(msg.type)) {
      if (this.channel) this.channel.deliver(text);
    } else {
      this.log(`MSE: unknown message type ${msg.type}`, 'warn');
    }
  }

  onInit(msg) {
    const codec = typeof msg.codec === 'string' ? msg.codec : 'avc1.42e01f';
    const mime = `video/mp4; codecs="${codec}"`;
    if (!this.MS || !this.MS.isTypeSupported(mime)) {
      this.log(`MSE: this browser cannot play ${mime}`, 'error');
      this.stop('unsupported');
      return;
    }
    // The server proved it serves us: from here on a drop starts the backoff over.
    this.attempt = 0;
    const first = !this.initInfo;
    if (!first && (msg.width !== this.initInfo.width || msg.height !== this.initInfo.height)) {
      this.log(`MSE: resolution now ${msg.width}×${msg.height}`);
    } else if (first) {
      this.log(`MSE: ${msg.width}×${msg.height} ${codec}`);
    }
    this.initInfo = { codec, width: msg.width, height: msg.height };
    this.awaitingInit = true;
    if (!this.ms) {
      this.openMediaSource(mime);
    } else if (codec !== this.codec) {
      if (this.sb && typeof this.sb.changeType === 'function') {
        this.queue.push({ kind: 'changeType', mime });
      } else {
        this.openMediaSource(mime); // rebuild: no changeType here
      }
    }
    this.codec = codec;
    this.mime = mime;
  }

  onBinary(data) {
    this.bytesReceived += data.byteLength;
    if (this.awaitingInit) {
      this.awaitingInit = false;
      this.haveInit = true;
      // After a new init segment the encoder starts with a keyframe: wait for it.
      this.waitKeyframe = true;
      this.timescale = readTimescale(data) || 90000;
      this.enqueue({ kind: 'init', data });
      return;
    }
    if (!this.haveInit) return; // a fragment before any init: nothing can decode it
    this.fragments++;
    const info = readFragment(data);
    if (this.waitKeyframe) {
      if (info && info.keyframe === false) {
        this.dropped++;
        return;
      }
      this.waitKeyframe = false;
    }
    if (this.queue.length >= MAX_QUEUED) {
      // Appends cannot keep up: what is queued is old anyway. Start over at a keyframe.
      this.log(`MSE: ${this.queue.length} fragments behind; dropping to the next keyframe`, 'warn');
      this.dropped += this.queue.filter((op) => op.kind === 'media').length + 1;
      this.queue = this.queue.filter((op) => op.kind !== 'media');
      this.waitKeyframe = true;
      return;
    }
    this.enqueue({ kind: 'media', data, info });
  }

  // ---- MediaSource --------------------------------------------------------------------------

  openMediaSource(mime) {
    this.closeMediaSource();
    const ms = new this.MS();
    this.ms = ms;
    this.sb = null;
    this.lastDecodeEnd = null;
    this.offsetS = 0;
    this.keyframes = [];
    const v = this.video;
    if (v.srcObject) v.srcObject = null;
    // ManagedMediaSource (iOS) plays only with remote playback off.
    if ('disableRemotePlayback' in v && !window.MediaSource) v.disableRemotePlayback = true;
    this.objectUrl = URL.createObjectURL(ms);
    v.src = this.objectUrl;
    ms.addEventListener('sourceopen', () => {
      if (this.ms !== ms || this.sb) return;
      try {
        this.sb = ms.addSourceBuffer(mime);
      } catch (e) {
        this.log(`MSE: addSourceBuffer(${mime}) failed: ${e.message}`, 'error');
        this.stop('unsupported');
        return;
      }
      this.sb.mode = 'segments';
      this.sb.addEventListener('updateend', () => this.pump());
      this.sb.addEventListener('error', () => this.log('MSE: SourceBuffer error', 'error'));
      this.pump();
    }, { once: true });
    this.play();
  }

  closeMediaSource() {
    if (this.objectUrl) URL.revokeObjectURL(this.objectUrl);
    this.objectUrl = null;
    this.ms = null;
    this.sb = null;
    this.queue = [];
  }

  enqueue(op) {
    this.queue.push(op);
    this.pump();
  }

  /** Run queued SourceBuffer operations, one at a time. */
  pump() {
    const sb = this.sb;
    if (!sb || sb.updating || !this.ms || this.ms.readyState !== 'open') return;
    while (this.queue.length) {
      const op = this.queue.shift();
      try {
        if (op.kind === 'changeType') {
          sb.changeType(op.mime);
          continue; // synchronous
        }
        if (op.kind === 'remove') {
          sb.remove(op.start, op.end);
          return;
        }
        if (op.kind === 'media') this.placeFragment(op.info);
        sb.appendBuffer(op.data);
        return; // updateend calls us again
      } catch (e) {
        if (e.name === 'QuotaExceededError') {
          this.onQuotaExceeded(op);
          return;
        }
        this.log(`MSE: ${op.kind} failed: ${e.name}: ${e.message}`, 'error');
        if (op.kind === 'init') {
          // Nothing decodes without it: start the media over on the next init.
          this.queue = [];
          return;
        }
        this.waitKeyframe = true;
        this.queue = this.queue.filter((o) => o.kind !== 'media');
        return;
      }
    }
  }

  /**
   * Timestamps that jump (a restarted publisher, a new encoder) would leave a gap or land in
   * the past: keep the timeline continuous by moving timestampOffset.
   */
  placeFragment(info) {
    if (!info || info.decodeTime == null) return;
    const t = info.decodeTime / this.timescale;
    if (this.lastDecodeEnd != null) {
      const at = t + this.offsetS;
      if (at < this.lastDecodeEnd - 0.5 || at > this.lastDecodeEnd + 5) {
        this.offsetS = this.lastDecodeEnd + 1 / 30 - t;
        this.sb.timestampOffset = this.offsetS;
      }
    }
    this.lastDecodeEnd = t + this.offsetS;
    if (info.keyframe) this.keyframes.push(this.lastDecodeEnd);
  }

  onQuotaExceeded(op) {
    this.quotaErrors++;
    const t = this.video.currentTime;
    const b = this.sb.buffered;
    const k = [...this.keyframes].reverse().find((x) => x <= t);
    if (b.length && k != null && b.start(0) < k - 0.05) {
      // Free what has been played (whole groups of pictures), then try this append again.
      this.queue.unshift({ kind: 'remove', start: 0, end: k }, op);
      this.log('MSE: buffer full; removing played video', 'warn');
    } else if (op.kind === 'media' && b.length && b.start(0) < t - 0.5) {
      // No keyframe known to cut at: drop everything up to here and start again at the next.
      this.queue = this.queue.filter((o) => o.kind !== 'media');
      this.queue.unshift({ kind: 'remove', start: 0, end: b.end(b.length - 1) + 1 });
      this.keyframes = [];
      this.waitKeyframe = true;
      this.dropped++;
      this.log('MSE: buffer full; starting over at the next keyframe', 'warn');
    } else {
      // Full of video not yet played: drop, start over at the next keyframe.
      this.dropped++;
      this.queue = this.queue.filter((o) => o.kind !== 'media');
      this.waitKeyframe = true;
      this.log('MSE: buffer full; dropping to the next keyframe', 'warn');
    }
    this.pump();
  }

  // ---- staying live ---------------------------------------------------------------------------

  tick() {
    const v = this.video;
    const sb = this.sb;
    if (!sb || this.closedForGood) return;
    const b = v.buffered;
    if (!b.length) return;
    const end = b.end(b.length - 1);
    const start = b.start(b.length - 1);
    const t = v.currentTime;
    const ahead = end - t;
    const now = performance.now();
    if (t !== this.lastTime) {
      this.lastTime = t;
      this.lastMoveAt = now;
    }
    const stalled = !v.paused && now - this.lastMoveAt > STALL_MS && ahead > TARGET_AHEAD_S;
    const behind = ahead > (v.paused ? PAUSED_MAX_AHEAD_S : JUMP_AHEAD_S);
    if (t < start || behind || stalled) {
      v.currentTime = Math.max(start, end - TARGET_AHEAD_S);
      this.jumps++;
      this.lastMoveAt = now;
    } else {
      const rate = ahead > CATCHUP_AHEAD_S ? CATCHUP_RATE : 1;
      if (v.playbackRate !== rate) v.playbackRate = rate;
    }
    if (v.paused && v.readyState >= 2) this.play();
    this.trim(t);
  }

  /** Remove played video up to the keyframe that starts what plays now. */
  trim(t) {
    let k = null;
    while (this.keyframes.length && this.keyframes[0] <= t) k = this.keyframes.shift();
    if (k == null) return;
    this.keyframes.unshift(k); // still the start of what plays
    const b = this.video.buffered;
    if (!b.length || k - b.start(0) < TRIM_EVERY_S) return;
    if (this.queue.some((op) => op.kind === 'remove')) return;
    this.enqueue({ kind: 'remove', start: 0, end: k });
  }

  /**
   * Note the first frame shown; where the browser calls back for every frame shown, count
   * them and read the decoded-frame counter each time (so a counter reset is never missed).
   */
  watchFirstFrame() {
    const v = this.video;
    const seen = () => {
      if (this.firstFrameAt == null && !this.closedForGood) this.firstFrameAt = performance.now();
    };
    if (typeof v.requestVideoFrameCallback === 'function') {
      this.framesPresented = 0;
      const each = () => {
        if (this.closedForGood) return;
        seen();
        this.framesPresented++;
        this.framesDecoded();
        this.frameCallback = v.requestVideoFrameCallback(each);
      };
      this.frameCallback = v.requestVideoFrameCallback(each);
    } else {
      this.onLoaded = seen;
      v.addEventListener('loadeddata', seen, { once: true });
    }
  }

  bufferedAheadMs() {
    const b = this.video.buffered;
    if (!this.sb || !b.length) return null;
    return Math.max(0, Math.round((b.end(b.length - 1) - this.video.currentTime) * 1000));
  }

  /** Frames decoded since this player started (a total that only grows). */
  framesDecoded() {
    const v = this.video;
    if (typeof v.getVideoPlaybackQuality !== 'function') return null;
    const raw = v.getVideoPlaybackQuality().totalVideoFrames;
    if (raw < this.framesLastRaw) this.framesBase += this.framesLastRaw;
    this.framesLastRaw = raw;
    return this.framesBase + raw;
  }

  sampleStats() {
    const now = performance.now();
    const frames = this.framesDecoded();
    const sample = { at: now, bytes: this.bytesReceived, frames };
    const prev = this.prevSample;
    if (prev) {
      const secs = (now - prev.at) / 1000;
      this.figures.kbps = Math.round(((sample.bytes - prev.bytes) * 8) / 1000 / secs);
      if (frames != null && prev.frames != null && frames >= prev.frames) {
        this.figures.fps = Math.round((frames - prev.frames) / secs);
      }
    }
    this.prevSample = sample;
  }

  /** Figures in the page's stats shape (stats.js emptyStats) plus MSE's own. */
  stats() {
    const v = this.video;
    const q = typeof v.getVideoPlaybackQuality === 'function' ? v.getVideoPlaybackQuality() : null;
    return {
      width: v.videoWidth || null,
      height: v.videoHeight || null,
      fps: this.figures.fps,
      kbps: this.figures.kbps,
      framesDecoded: this.framesDecoded(),
      framesPresented: this.framesPresented,
      framesDropped: q ? q.droppedVideoFrames : null,
      bufferedAheadMs: this.bufferedAheadMs(),
      bytesReceived: this.bytesReceived,
      fragments: this.fragments,
      fragmentsDropped: this.dropped,
      liveJumps: this.jumps,
      quotaErrors: this.quotaErrors,
      playbackRate: v.playbackRate,
      codec: this.codec,
      firstFrameMs: this.firstFrameAt == null ? null : Math.round(this.firstFrameAt - this.startedAt),
      firstFrameSinceLoadMs: this.firstFrameAt == null ? null : Math.round(this.firstFrameAt),
    };
  }

  // ---- the end ----------------------------------------------------------------------------------

  /** Stop for good and say why (`refused`, `unsupported`); the video keeps its last picture. */
  stop(state) {
    this.closedForGood = true;
    clearTimeout(this.retryTimer);
    const ws = this.ws;
    this.ws = null;
    if (ws) ws.close();
    if (this.channel) this.channel.closed();
    this.channel = null;
    this.setState(state);
  }

  close() {
    if (this.closedForGood && this.state === 'closed') return;
    this.stop('closed');
    clearInterval(this.tickTimer);
    clearInterval(this.statsTimer);
    const v = this.video;
    for (const ev of ['waiting', 'stalled', 'canplay']) v.removeEventListener(ev, this.onVideoEvent);
    if (this.frameCallback != null && typeof v.cancelVideoFrameCallback === 'function') {
      v.cancelVideoFrameCallback(this.frameCallback);
    }
    if (this.onLoaded) v.removeEventListener('loadeddata', this.onLoaded);
    const hadSource = !!this.objectUrl;
    this.closeMediaSource();
    if (hadSource) {
      v.removeAttribute('src');
      v.load();
    }
    v.playbackRate = 1;
  }
}
