// Signaling client: one WebSocket to the server's `/ws`, JSON messages tagged by `type`.
//
// The protocol's source of truth is protocol/src/wire/; the constants below mirror it by hand,
// and protocol/tests/web_client.rs checks them against it.

/** Messages the client sends (wire/client.rs `ClientMessage`). */
export const Client = Object.freeze({
  list: () => ({ type: 'list' }),
  // Whether this viewer may control the camera comes from the page's ?token= (its role),
  // or from the server having no tokens at all; not from this message.
  // direct: ask for media straight from the camera's publisher (P2P); `subscribed` says
  // which path was granted.
  subscribe: (cameraId, direct = false) => ({
    type: 'subscribe',
    camera_id: cameraId,
    path: direct ? MediaPath.direct : MediaPath.server,
  }),
  offer: (sdp) => ({ type: 'offer', sdp }),
  // ICE restart on our media connection (same socket), or, with `resume` (the key from the
  // last `answer`), on a new socket after the old one was lost.
  iceRestart: (sdp, resume = null) => (resume ? { type: 'ice_restart', sdp, resume } : { type: 'ice_restart', sdp }),
  candidate: (c) => ({
    type: 'candidate',
    candidate: c.candidate,
    sdp_mid: c.sdpMid ?? null,
    sdp_mline_index: c.sdpMLineIndex ?? null,
  }),
});

/**
 * The close code of a socket dropped to reconnect on another path (wire/mod.rs
 * `RESUME_CLOSE_CODE`): the server keeps our media connection for us to resume.
 */
export const RESUME_CLOSE_CODE = 4000;

/** `type` values of the messages the server sends (wire/server.rs `ServerMessage`; not the publisher-only `registered`, `demand`). */
export const ServerType = Object.freeze({
  hello: 'hello',
  iceServers: 'ice_servers',
  cameras: 'cameras',
  subscribed: 'subscribed',
  answer: 'answer',
  candidate: 'candidate',
  cameraOnline: 'camera_online',
  cameraOffline: 'camera_offline',
  cameraRemoved: 'camera_removed',
  sourceState: 'source_state',
  directFailed: 'direct_failed',
  serverStopping: 'server_stopping',
  error: 'error',
});

/** Where a viewer's media comes from (wire/mod.rs `MediaPath`). */
export const MediaPath = Object.freeze({
  server: 'server',
  direct: 'direct',
});

/** A camera source's `state` values (wire/camera.rs `SourceState`). */
export const SourceState = Object.freeze({
  connecting: 'connecting',
  live: 'live',
  lost: 'lost',
  idle: 'idle',
});

/**
 * How a camera's source state reads on the page: `{ text, state }` with `state` one of the
 * SourceState values (for styling), or null when there is nothing to say (no report yet).
 * A live source's optional `detail` says how it runs ("Live · passthrough (Main 4.0, ...)").
 */
export function describeSource(status) {
  if (!status) return null;
  switch (status.state) {
    case SourceState.live:
      return { text: status.detail ? `Live · ${status.detail}` : 'Live', state: status.state };
    case SourceState.connecting:
      return { text: 'Connecting…', state: status.state };
    case SourceState.lost:
      return { text: `Signal lost: ${status.error || 'unknown error'}`, state: status.state };
    case SourceState.idle:
      // On-demand cameras rest until someone watches; a viewer's subscribe wakes them.
      return { text: 'Idle (starts on demand)', state: status.state };
    default:
      return null;
  }
}

/** The signaling URL on the page's own origin: ws(s)://host/ws. */
// The page's own `?token=` (a server with authentication gives each viewer one) goes on to
// the WebSocket URL: browsers cannot set an Authorization header on a WebSocket.
export function defaultUrl(loc = window.location) {
  const scheme = loc.protocol === 'https:' ? 'wss:' : 'ws:';
  const token = new URLSearchParams(loc.search).get('token');
  const query = token ? `?token=${encodeURIComponent(token)}` : '';
  return `${scheme}//${loc.host}/ws${query}`;
}

// Reconnect delays: quick first retry, doubling up to a cap, with jitter so that many
// viewers dropped at once by a server restart do not all come back in the same instant.
// A deploy brings the server back within seconds and every second waited on top is a second
// of black picture, so the first QUICK_ATTEMPTS retries (about 20 s) are at most
// QUICK_MAX_MS apart; only a server that stays away is asked less often.
const BACKOFF_FIRST_MS = 500;
const BACKOFF_MAX_MS = 8000;
const QUICK_ATTEMPTS = 20;
const QUICK_MAX_MS = 1000;

export function backoffDelay(attempt, random = Math.random) {
  const cap = attempt < QUICK_ATTEMPTS ? QUICK_MAX_MS : BACKOFF_MAX_MS;
  const base = Math.min(cap, BACKOFF_FIRST_MS * 2 ** attempt);
  return Math.round(base * (0.75 + 0.5 * random()));
}

/**
 * A WebSocket that reconnects by itself.
 * Callbacks: onState(state) with 'connecting' | 'open' | 'closed' (plus the retry delay),
 * onMessage(msg) with each parsed server message, onBadMessage(text, error).
 */
export class Signaling {
  constructor(url, { onState = () => {}, onMessage = () => {}, onBadMessage = () => {} } = {}) {
    this.url = url;
    this.onState = onState;
    this.onMessage = onMessage;
    this.onBadMessage = onBadMessage;
    this.ws = null;
    this.attempt = 0;
    this.timer = null;
    this.stopped = false;
  }

  get isOpen() {
    return this.ws !== null && this.ws.readyState === WebSocket.OPEN;
  }

  connect() {
    this.stopped = false;
    clearTimeout(this.timer);
    this.onState('connecting');
    let ws;
    try {
      ws = new WebSocket(this.url);
    } catch (e) {
      this.scheduleReconnect();
      return;
    }
    this.ws = ws;
    ws.onopen = () => this.onState('open');
    ws.onmessage = (ev) => {
      let msg;
      try {
        msg = JSON.parse(ev.data);
      } catch (e) {
        this.onBadMessage(String(ev.data), e);
        return;
      }
      // A hello proves the server really serves us: from here on a drop starts the
      // backoff over.
      if (msg && msg.type === ServerType.hello) this.attempt = 0;
      this.onMessage(msg);
    };
    // `error` is always followed by `close`; reconnect from one place only.
    ws.onclose = () => {
      if (this.ws !== ws) return;
      this.ws = null;
      if (!this.stopped) this.scheduleReconnect();
    };
  }

  scheduleReconnect() {
    const delay = backoffDelay(this.attempt++);
    this.onState('closed', delay);
    this.timer = setTimeout(() => this.connect(), delay);
  }

  /**
   * Drop the socket at once and connect afresh: the network under it changed, and a socket
   * on a dead path can take minutes to notice. Its close event is not waited for (on a dead
   * path that waits too).
   */
  reconnectNow() {
    if (this.stopped) return;
    const ws = this.ws;
    this.ws = null;
    if (ws) {
      ws.onclose = null;
      ws.onmessage = null;
      ws.close(RESUME_CLOSE_CODE, 'reconnecting');
    }
    clearTimeout(this.timer);
    this.attempt = 0;
    this.onState('closed', 0);
    this.connect();
  }

  /** Send a message; returns false (and drops it) when the socket is not open. */
  send(msg) {
    if (!this.isOpen) return false;
    this.ws.send(JSON.stringify(msg));
    return true;
  }

  /** Close for good (no reconnect). */
  close() {
    this.stopped = true;
    clearTimeout(this.timer);
    if (this.ws) this.ws.close();
    this.ws = null;
  }
}
