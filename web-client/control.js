// Camera-control client: JSON messages on the peer connection's `control` data channel.
//
// The protocol's source of truth is protocol/src/control.rs (and control/*.rs); this file
// mirrors it by hand, and protocol/tests/web_client.rs checks the constants below against it. Every message is one JSON object with "v":1 and a `type`:
//
//   we send    {"v":1,"type":"update_settings","request_id":"w3","settings":{"fps":15}}
//   we get     response     {request_id, success, message, settings?, status?, capabilities?,
//                            error?: {code, field?, message, retry_after_ms?}, timestamp}
//              welcome      {viewer, camera, may_control, rate_limit: {per_second, burst}}
//              capabilities {settings: {name: {type, min, max, step, choices, max_len, apply,
//                            reason}}}
//              state        {version, settings, status: {streaming, preset?, presets,
//                            source?}, by?, changed, timestamp}
//
// `version` grows with every change the publisher makes: a state older than the one we
// have (out of order, two controllers at once) is dropped, so every viewer converges on the
// newest. Broadcasts are the truth about settings; a response's settings only fill in
// before the first broadcast.
//
// The channel must exist before the offer is made, so the SFU's answer carries an
// m=application section: call attach(pc) right after creating the peer connection. On the
// MSE fallback the same messages travel on its WebSocket: attachChannel(socketChannel).

export const CONTROL_VERSION = 1;
export const CONTROL_LABEL = 'control';
/** Larger messages are refused by the SFU; we refuse to read them too. */
export const MAX_CONTROL_MESSAGE_BYTES = 16 * 1024;

/** Every command `type` (control/command_type.rs `CommandType::NAMES`). */
export const COMMANDS = Object.freeze([
  'update_settings',
  'start_stream',
  'stop_stream',
  'get_status',
  'restart_camera',
  'get_capabilities',
  'request_keyframe',
  'apply_preset',
  'save_preset',
  'delete_preset',
  'rename_preset',
  'set_schedule',
  'select_source',
  'pause',
  'resume',
]);

/**
 * Commands a view-only viewer may send (`CommandType::view_only_may_send`); the SFU refuses
 * the others with `forbidden`.
 */
export const VIEW_ONLY_COMMANDS = Object.freeze(['get_status', 'get_capabilities', 'pause', 'resume']);

/** Capability `type`s (control/capabilities.rs `Capability::TYPES`). */
export const CAPABILITY_TYPES = Object.freeze(['int', 'float', 'bool', 'enum', 'string', 'unsupported']);

/** Who carries out an image control (control/capabilities.rs `ControlPath::NAMES`). */
export const CONTROL_PATHS = Object.freeze(['hardware', 'software']);

/** Apply modes (control/capabilities.rs `ApplyMode::ALL`). */
export const APPLY_MODES = Object.freeze(['live', 'keyframe', 'restart']);

// How long a command may go unanswered before we give up on it (the publisher may be
// re-initialising its encoder; a camera restart takes a while).
const REPLY_TIMEOUT_MS = 15000;

const isObject = (v) => v !== null && typeof v === 'object' && !Array.isArray(v);
const isString = (v) => typeof v === 'string';
const isNumber = (v) => typeof v === 'number' && Number.isFinite(v);

function fail(error) {
  return { message: null, error };
}

/**
 * Parse one message from the control channel. Returns `{ message }` with a normalised
 * message, or `{ error }` saying what is wrong with it. Never throws.
 */
export function parseControlMessage(data) {
  if (!isString(data)) return fail('control messages are JSON text, not binary');
  if (data.length > MAX_CONTROL_MESSAGE_BYTES) {
    return fail(`control message is ${data.length} bytes; the limit is ${MAX_CONTROL_MESSAGE_BYTES}`);
  }
  let m;
  try {
    m = JSON.parse(data);
  } catch (e) {
    return fail(`control message is not valid JSON: ${e.message}`);
  }
  if (!isObject(m)) return fail('control message must be a JSON object');
  if (m.v !== CONTROL_VERSION) {
    return fail(`control message has version ${JSON.stringify(m.v)}; this page speaks v${CONTROL_VERSION}`);
  }
  if (!isString(m.type)) return fail('control message has no string `type`');
  switch (m.type) {
    case 'welcome':
      return parseWelcome(m);
    case 'response':
      return parseResponse(m);
    case 'state':
      return parseState(m);
    case 'capabilities':
      return parseCapabilities(m);
    case 'motion':
      return parseMotion(m);
    default:
      return fail(`unknown control message type \`${m.type}\``);
  }
}

function parseWelcome(m) {
  if (!isString(m.viewer) || !isString(m.camera) || typeof m.may_control !== 'boolean') {
    return fail('bad `welcome`: needs viewer, camera (strings) and may_control (boolean)');
  }
  const rl = isObject(m.rate_limit) ? m.rate_limit : {};
  return {
    message: {
      type: 'welcome',
      viewer: m.viewer,
      camera: m.camera,
      may_control: m.may_control,
      rate_limit: {
        per_second: isNumber(rl.per_second) ? rl.per_second : null,
        burst: isNumber(rl.burst) ? rl.burst : null,
      },
    },
  };
}

function parseError(e) {
  if (!isObject(e) || !isString(e.code) || !isString(e.message)) return null;
  return {
    code: e.code,
    field: isString(e.field) ? e.field : null,
    message: e.message,
    retry_after_ms: isNumber(e.retry_after_ms) ? e.retry_after_ms : null,
  };
}

function parseResponse(m) {
  if (typeof m.success !== 'boolean') return fail('bad `response`: success must be a boolean');
  if (m.request_id != null && !isString(m.request_id)) {
    return fail('bad `response`: request_id must be a string');
  }
  let error = null;
  if (!m.success) {
    error = parseError(m.error);
    if (!error) return fail('bad `response`: a failure needs error {code, message}');
  }
  if (m.settings != null && !isObject(m.settings)) return fail('bad `response`: settings must be an object');
  if (m.status != null && !isObject(m.status)) return fail('bad `response`: status must be an object');
  let capabilities = null;
  if (m.capabilities != null) {
    const caps = parseCapabilities(m.capabilities);
    if (caps.error) return fail(`bad \`response\`: ${caps.error}`);
    capabilities = caps.message.settings;
  }
  return {
    message: {
      type: 'response',
      request_id: m.request_id ?? null,
      success: m.success,
      message: isString(m.message) ? m.message : '',
      settings: m.settings ?? null,
      status: m.status ? normaliseStatus(m.status) : null,
      capabilities,
      error,
      timestamp: isNumber(m.timestamp) ? m.timestamp : null,
    },
  };
}

function normaliseStatus(s) {
  return {
    streaming: s.streaming === true,
    preset: isString(s.preset) ? s.preset : null,
    presets: Array.isArray(s.presets) ? s.presets.filter(isString) : [],
    source: isString(s.source) ? s.source : null,
    sources: Array.isArray(s.sources) ? s.sources.filter(isString) : [],
    source_name: isString(s.source_name) ? s.source_name : null,
    schedule: Array.isArray(s.schedule)
      ? s.schedule.filter((e) => isObject(e) && isString(e.at) && isString(e.preset))
        .map((e) => ({ at: e.at, preset: e.preset }))
      : [],
  };
}

function parseState(m) {
  if (!isObject(m.settings) || !isObject(m.status)) {
    return fail('bad `state`: needs settings and status objects');
  }
  return {
    message: {
      type: 'state',
      version: isNumber(m.version) ? m.version : 0,
      settings: m.settings,
      status: normaliseStatus(m.status),
      by: isString(m.by) ? m.by : null,
      changed: Array.isArray(m.changed) ? m.changed.filter(isString) : [],
      timestamp: isNumber(m.timestamp) ? m.timestamp : null,
    },
  };
}

/** `{type:'motion', phase:'start'|'end', region:[x,y,w,h], score, ts}` from the publisher. */
function parseMotion(m) {
  if (m.phase !== 'start' && m.phase !== 'end') return fail('bad `motion`: phase must be start or end');
  const region = Array.isArray(m.region) && m.region.length === 4 && m.region.every((n) => isNumber(n) && n >= 0)
    ? m.region
    : null;
  if (!region) return fail('bad `motion`: region must be [x, y, width, height]');
  if (!isNumber(m.score) || m.score < 0 || m.score > 1) return fail('bad `motion`: score must be 0..1');
  return {
    message: { type: 'motion', phase: m.phase, region, score: m.score, ts: isNumber(m.ts) ? m.ts : null },
  };
}

/**
 * `{type:'capabilities', settings:{name: capability}, paths?:{name: path}}`; a malformed
 * entry becomes unsupported. A control's path (who carries it out) goes onto its capability.
 */
function parseCapabilities(m) {
  if (!isObject(m.settings)) return fail('bad `capabilities`: settings must be an object');
  const paths = isObject(m.paths) ? m.paths : {};
  const settings = {};
  for (const [name, cap] of Object.entries(m.settings)) {
    settings[name] = normaliseCapability(cap);
    if (CONTROL_PATHS.includes(paths[name]) && settings[name].type !== 'unsupported') {
      settings[name].path = paths[name];
    }
  }
  return { message: { type: 'capabilities', settings } };
}

function unsupported(reason) {
  return { type: 'unsupported', reason, apply: null };
}

export function normaliseCapability(cap) {
  if (!isObject(cap) || !CAPABILITY_TYPES.includes(cap.type)) {
    return unsupported('the camera described this setting in a way this page does not know');
  }
  if (cap.type === 'unsupported') return unsupported(isString(cap.reason) ? cap.reason : null);
  const apply = APPLY_MODES.includes(cap.apply) ? cap.apply : null;
  switch (cap.type) {
    case 'int':
    case 'float': {
      if (!isNumber(cap.min) || !isNumber(cap.max) || cap.min > cap.max) {
        return unsupported(`bad range from the camera: ${JSON.stringify([cap.min, cap.max])}`);
      }
      const step = isNumber(cap.step) && cap.step > 0 ? cap.step : cap.type === 'int' ? 1 : null;
      return { type: cap.type, min: cap.min, max: cap.max, step, apply };
    }
    case 'bool':
      return { type: 'bool', apply };
    case 'enum': {
      const choices = Array.isArray(cap.choices) ? cap.choices.map(String) : [];
      if (!choices.length) return unsupported('the camera offered no choices');
      return { type: 'enum', choices, apply };
    }
    case 'string':
      return { type: 'string', max_len: isNumber(cap.max_len) ? cap.max_len : 256, apply };
    default:
      return unsupported(null);
  }
}

/** A response made up on this side (no channel, timeout, channel closed). */
export function localFailure(requestId, code, message) {
  return {
    type: 'response',
    request_id: requestId,
    success: false,
    message,
    settings: null,
    status: null,
    capabilities: null,
    error: { code, field: null, message, retry_after_ms: null },
    timestamp: Date.now(),
    local: true,
  };
}

/**
 * The control channel of one peer connection at a time. `attach(pc)` makes a new channel on
 * a new peer connection (after a reconnect); state learnt from the old one is forgotten,
 * since the SFU welcomes every new channel and replays the camera's capabilities and state.
 *
 * Callbacks: onChannel(state) with 'connecting' | 'open' | 'closed', onWelcome(msg),
 * onCapabilities(settings), onState(msg), onResponse(msg, request), onProblem(text).
 */
export class ControlClient {
  constructor({
    onChannel = () => {},
    onWelcome = () => {},
    onCapabilities = () => {},
    onState = () => {},
    onResponse = () => {},
    onMotion = () => {},
    onProblem = () => {},
  } = {}) {
    this.cb = { onChannel, onWelcome, onCapabilities, onState, onResponse, onMotion, onProblem };
    this.dc = null;
    this.channel = 'closed';
    this.nextId = 1;
    this.pending = new Map(); // request_id -> {type, fields, resolve, timer, sentAt}
    this.reset();
  }

  reset() {
    this.welcome = null;
    this.capabilities = null; // {name: capability}
    this.settings = null; // current settings, as the camera last said
    this.status = null;
    this.lastState = null;
    this.lastResponse = null;
  }

  /** The camera's publisher went away: the one that comes back may count versions anew. */
  forgetState() {
    this.lastState = null;
  }

  get mayControl() {
    return this.welcome ? this.welcome.may_control : false;
  }

  /** Open the control channel on `pc`. Call before pc.createOffer(). */
  attach(pc) {
    this.attachChannel(pc.createDataChannel(CONTROL_LABEL, { ordered: true }));
  }

  /**
   * Use `dc` as the control channel: an RTCDataChannel, or anything that looks like one
   * (readyState, send, close, onopen/onclose/onmessage), e.g. the MSE socket's
   * SocketChannel (mse.js).
   */
  attachChannel(dc) {
    this.detach();
    this.dc = dc;
    this.setChannel(dc.readyState === 'open' ? 'open' : 'connecting');
    dc.onopen = () => {
      if (this.dc === dc) this.setChannel('open');
    };
    dc.onclose = () => {
      if (this.dc !== dc) return;
      this.dc = null;
      this.failPending('closed', 'the control channel closed');
      this.setChannel('closed');
    };
    dc.onmessage = (ev) => {
      if (this.dc === dc) this.receive(ev.data);
    };
  }

  /** Forget the current channel (the peer connection is going away). */
  detach() {
    const dc = this.dc;
    this.dc = null;
    if (dc) {
      dc.onopen = dc.onclose = dc.onmessage = null;
      try {
        dc.close();
      } catch {
        // already closed with its peer connection
      }
    }
    this.failPending('closed', 'the connection to the camera was replaced');
    this.reset();
    this.setChannel('closed');
  }

  setChannel(state) {
    if (this.channel === state) return;
    this.channel = state;
    this.cb.onChannel(state);
  }

  /**
   * Send a command; resolves with its response (a failure made up here when there is no
   * open channel or no answer in time). Never rejects.
   */
  request(type, fields = {}) {
    const id = `w${this.nextId++}`;
    if (!COMMANDS.includes(type)) {
      return Promise.resolve(localFailure(id, 'unknown_command', `unknown command \`${type}\``));
    }
    if (!this.dc || this.dc.readyState !== 'open') {
      const r = localFailure(id, 'not_connected', 'no control channel to the camera (yet)');
      this.lastResponse = r;
      return Promise.resolve(r);
    }
    const text = JSON.stringify({ v: CONTROL_VERSION, type, request_id: id, ...fields });
    return new Promise((resolve) => {
      const timer = setTimeout(() => {
        this.settle(id, localFailure(id, 'timeout', `no answer to ${type} within ${REPLY_TIMEOUT_MS / 1000} s`));
      }, REPLY_TIMEOUT_MS);
      this.pending.set(id, { type, fields, resolve, timer, sentAt: performance.now() });
      try {
        this.dc.send(text);
      } catch (e) {
        this.settle(id, localFailure(id, 'not_connected', `could not send: ${e.message}`));
      }
    });
  }

  settle(id, response) {
    const p = this.pending.get(id);
    if (!p) return false;
    this.pending.delete(id);
    clearTimeout(p.timer);
    response.elapsed_ms = Math.round(performance.now() - p.sentAt);
    response.command = p.type;
    this.lastResponse = response;
    this.cb.onResponse(response, p);
    p.resolve(response);
    return true;
  }

  failPending(code, message) {
    for (const id of [...this.pending.keys()]) this.settle(id, localFailure(id, code, message));
  }

  receive(data) {
    const { message: m, error } = parseControlMessage(data);
    if (error) {
      this.cb.onProblem(error);
      return;
    }
    switch (m.type) {
      case 'welcome':
        this.welcome = m;
        this.cb.onWelcome(m);
        break;
      case 'capabilities':
        this.capabilities = m.settings;
        this.cb.onCapabilities(m.settings);
        break;
      case 'state':
        if (this.lastState && m.version < this.lastState.version) return; // stale
        this.settings = m.settings;
        this.status = m.status;
        this.lastState = m;
        this.cb.onState(m);
        break;
      case 'motion':
        this.cb.onMotion(m);
        break;
      case 'response':
        if (!this.lastState) {
          if (m.settings) this.settings = m.settings;
          if (m.status) this.status = m.status;
        }
        if (m.capabilities) {
          this.capabilities = m.capabilities;
          this.cb.onCapabilities(m.capabilities);
        }
        // A refusal of something too broken to carry a request id, or a late answer to a
        // request we gave up on: still worth showing.
        if (!m.request_id || !this.settle(m.request_id, m)) {
          this.lastResponse = m;
          this.cb.onResponse(m, null);
        }
        break;
      default:
        break;
    }
  }

  get pendingCount() {
    return this.pending.size;
  }
}
