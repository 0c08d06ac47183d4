// The Sightline viewer: camera list, live view, connection state, stats and activity log.
//
// Flow (see protocol/src/wire/): WS open → list → cameras → subscribe → subscribed →
// offer → answer, candidates both ways. A later subscribe replaces the earlier peer
// connection. A peer connection that stops working gets an ICE restart first (on the same
// socket, or, when the socket was lost too, resumed from a new one with the key from the
// last `answer`); when that fails, or there is nothing to restart, we subscribe again.
//
// Two paths to the same <video>: WebRTC (player.js) where the browser has RTCPeerConnection,
// else the MSE fallback (mse.js: fragmented MP4 over a WebSocket of its own). WebRTC that has
// decoded no frame FALLBACK_MS after subscribing (UDP blocked, a WebView without codecs)
// gives way to MSE for the rest of the page's life. `?mode=mse` forces MSE, `?mode=webrtc`
// forbids the fallback. The signaling socket stays for the camera list either way.
//
// `?mode=p2p` asks for each camera directly (P2P, straight from its publisher; the server
// relays offer and candidates). When the server says the camera is full (`subscribed` with
// path `server`), the camera ends the direct connection (`direct_failed`), or ICE has not
// connected within DIRECT_TIMEOUT_MS, we subscribe again through the server, without a click.

import { Client, MediaPath, ServerType, Signaling, SourceState, defaultUrl, describeSource } from './signaling.js';
import { Player } from './player.js';
import { StatsPoller, emptyStats } from './stats.js';
import { ControlRoom } from './controlroom.js';
import { LatencyProbe, emptyLatency } from './latency.js';
import { MsePlayer, mseSupported, mseUrl } from './mse.js';
import { FullscreenButton, TapToPlay } from './screen.js';

// STUN/TURN servers the server hands out in `hello` (with TURN credentials of this session,
// refreshed by `ice_servers` before they expire). None by default: the SFU advertises an
// address viewers can reach.
let iceServers = [];
const LOG_LIMIT = 200;
const RESUBSCRIBE_DELAY_MS = 1000;
// The server pushes no viewer-count changes; ask for the list now and then.
const LIST_REFRESH_MS = 10000;
// WebRTC that has decoded no frame this long after subscribing gives way to MSE.
const FALLBACK_MS = 8000;
const MODE = new URLSearchParams(location.search).get('mode'); // 'mse' | 'webrtc' | 'p2p' | null
const WANT_DIRECT = MODE === 'p2p';
// A direct connection that has not connected this long after `subscribed` gives way to the SFU.
const DIRECT_TIMEOUT_MS = 5000;
// ?relay=1: media only through the TURN relay the server names, never a direct path (to
// keep this browser's addresses from the server, or to try the relay).
const RELAY_ONLY = new URLSearchParams(location.search).get('relay') === '1';
const HAS_WEBRTC = typeof window.RTCPeerConnection === 'function';
// The SFU sends H.264, or VP8 to a browser without it (Debian's Firefox ESR has no H.264 for
// WebRTC). A browser that says it receives neither gets nothing but black over WebRTC.
const WEBRTC_CODECS = receivableCodecs();
const WEBRTC_PLAYABLE = HAS_WEBRTC && (WEBRTC_CODECS === null || WEBRTC_CODECS.has('video/h264') || WEBRTC_CODECS.has('video/vp8'));
const NO_CODEC = 'this browser can decode neither H.264 nor VP8, the video formats the server sends';

/** Lower-case video mime types this browser receives over WebRTC; null if it does not say. */
function receivableCodecs() {
  try {
    const caps = window.RTCRtpReceiver && RTCRtpReceiver.getCapabilities && RTCRtpReceiver.getCapabilities('video');
    return caps ? new Set(caps.codecs.map((c) => c.mimeType.toLowerCase())) : null;
  } catch {
    return null;
  }
}

const $ = (id) => document.getElementById(id);
const ui = {
  video: $('video'),
  overlay: $('overlay'),
  motionBox: $('motion-box'),
  screen: document.querySelector('.screen'),
  tapToPlay: $('tap-to-play'),
  fullscreen: $('fullscreen'),
  wsState: $('ws-state'),
  pcState: $('pc-state'),
  ctlState: $('ctl-state'),
  cameraName: $('camera-name'),
  cameraState: $('camera-state'),
  sourceState: $('source-state'),
  cameras: $('cameras'),
  stats: $('stats'),
  log: $('log'),
};

const state = {
  ws: 'connecting',
  cameras: [], // CameraInfo[] in server order
  cameraId: new URLSearchParams(location.search).get('camera'), // the camera we want
  pending: null, // camera id of a subscribe not yet confirmed
  stats: emptyStats(),
  log: [], // {time, level, text}, newest last
  refused: null, // why the server refused our token (we stop reconnecting then)
  // Which path plays: 'webrtc' | 'mse' (null before the first camera). Once WebRTC has
  // fallen back to MSE, every later camera plays over MSE too.
  path: null,
  fellBack: false,
  direct: false, // this subscription's media comes straight from the publisher (P2P)
  noDirect: null, // camera id whose direct path failed: watched through the server from now on
  unplayable: null, // why this browser can play nothing the server sends (shown on the picture)
  disconnected: false, // the viewer pressed Disconnect: no server connection until Connect
};
let player = null; // WebRTC Player
let mse = null; // MsePlayer
let fallbackTimer = null;
let directTimer = null;
let poller = null;
let stallTimer = null; // watchMedia's
let retryTimer = null;
// The server's key for our media connection through the SFU (from `answer`): a new socket
// presents it to resume the connection after the old socket was lost.
let resumeKey = null;
let restartPending = false; // an ice_restart sent, not yet answered
let iceRestarts = 0; // ICE restarts tried on this page (for tests and the log)

// Both media paths start the video through `tap`: where the browser refuses to play without a
// gesture (iOS Low Power Mode, some WebViews) it shows a "Tap to play" button.
const tap = new TapToPlay(ui.tapToPlay, ui.video, { log, onChange: () => render() });
const fullscreen = new FullscreenButton(ui.fullscreen, ui.screen, ui.video, { log });

// Camera control on the peer connection's `control` data channel (controlroom.js). What
// this viewer may do comes from the `?token=` in the page URL (see defaultUrl).
let motion = null; // the last motion event; its box shows while it is a start
const room = new ControlRoom($('control'), {
  log,
  onChange: () => render(),
  onTeardown: () => (state.disconnected ? reconnect() : teardown()),
  onMotion: showMotion,
});
let probe = null; // glass-to-glass latency from the test pattern's barcode (latency.js)
let latency = emptyLatency();

const signaling = new Signaling(defaultUrl(), {
  onState: onWsState,
  onMessage: onMessage,
  onBadMessage: (text) => log(`unreadable server message: ${text.slice(0, 80)}`, 'error'),
});

// ---- signaling ----------------------------------------------------------------------------

function onWsState(ws, retryMs) {
  state.ws = ws;
  if (ws === 'open') {
    log('connected to server');
    signaling.send(Client.list());
  } else if (ws === 'closed') {
    // The server keeps a media connection through the SFU a while for us to resume from the
    // new socket (see `hello`); anything else starts over on reconnect. The MSE player has a
    // socket of its own and reconnects by itself.
    restartPending = false;
    if (player && resumeKey && !state.direct) {
      log('server connection lost; keeping the media connection to resume it', 'warn');
    } else if (player || state.pending) {
      log('media stopped: server connection lost', 'warn');
      stopPlayer();
    }
    state.pending = null;
    log(`server connection closed; retrying in ${(retryMs / 1000).toFixed(1)} s`, 'warn');
  }
  render();
}

function onMessage(msg) {
  switch (msg.type) {
    case ServerType.hello:
      log(`session ${msg.session_id} (server ${msg.server_version})`);
      iceServers = msg.ice_servers || [];
      if (iceServers.length) log(`ICE servers: ${iceServers.flatMap((s) => s.urls).join(', ')}`);
      if (player && resumeKey && !state.direct) {
        player.useIceServers(iceServers);
        restartIce(player, 'new server connection', true);
      }
      break;
    case ServerType.iceServers:
      // Fresh TURN credentials: the next connection and any ICE restart use them.
      iceServers = msg.ice_servers || [];
      if (player && player.useIceServers) player.useIceServers(iceServers);
      break;
    case ServerType.cameras:
      state.cameras = msg.cameras;
      if (!player && !mse && !state.pending) autoSubscribe();
      break;
    case ServerType.subscribed:
      upsertCamera(msg.camera);
      if (msg.camera.id !== state.pending) break; // an older subscribe, already replaced
      state.pending = null;
      state.direct = msg.path === MediaPath.direct;
      log(`subscribed to ${msg.camera.name || msg.camera.id}${state.direct ? ' (direct, P2P)' : ''}`);
      if (msg.note) log(msg.note, 'warn');
      // Joining a camera whose source is down: say so now, not only at its next change.
      if (msg.camera.source_state && msg.camera.source_state.state !== SourceState.live) {
        logSourceState(msg.camera.name || msg.camera.id, msg.camera.source_state);
      }
      startPlayer();
      signaling.send(Client.list()); // fresh viewer counts
      break;
    case ServerType.answer:
      restartPending = false;
      if (msg.resume) resumeKey = msg.resume;
      if (player && !state.pending) {
        player.applyAnswer(msg.sdp).catch((e) => log(`bad answer: ${e.message}`, 'error'));
      }
      break;
    case ServerType.candidate:
      if (player && !state.pending) {
        player.addRemoteCandidate(msg).catch((e) => log(`bad server candidate: ${e.message}`, 'warn'));
      }
      break;
    case ServerType.cameraOnline:
      upsertCamera(msg.camera);
      log(`camera ${msg.camera.name || msg.camera.id} online`);
      // Nothing playing (yet): take this camera unless we wait for another one that is live.
      if (!player && !mse && !state.pending && !isOnline(state.cameraId, msg.camera.id)) {
        subscribe(msg.camera.id);
      }
      break;
    case ServerType.sourceState:
      onSourceState(msg);
      break;
    case ServerType.directFailed:
      if (state.direct && player) leaveDirect(`the camera ended the direct connection: ${msg.reason}`);
      break;
    case ServerType.cameraOffline: {
      const cam = state.cameras.find((c) => c.id === msg.camera_id);
      if (cam) {
        cam.state = 'offline';
        cam.source_state = null; // the server forgets it with the publisher
      }
      // Keep the peer connection: the video resumes by itself when the camera returns.
      log(`camera ${cam ? cam.name || cam.id : msg.camera_id} offline`, 'warn');
      break;
    }
    case ServerType.cameraRemoved: {
      const cam = state.cameras.find((c) => c.id === msg.camera_id);
      state.cameras = state.cameras.filter((c) => c.id !== msg.camera_id);
      log(`camera ${cam ? cam.name || cam.id : msg.camera_id} removed from the server`, 'warn');
      if (msg.camera_id === state.cameraId) {
        // Nothing will come back on this subscription: play another live camera, if any.
        clearTimeout(retryTimer);
        stopPlayer();
        state.pending = null;
        state.cameraId = null;
        const other = state.cameras.find((c) => c.state === 'online');
        if (other && !state.disconnected) subscribe(other.id);
      }
      break;
    }
    case ServerType.error:
      log(`server error ${msg.code}: ${msg.message}`, 'error');
      if (restartPending && player) {
        // Our ICE restart was refused (the connection is gone, the key expired): start over.
        restartPending = false;
        log('ICE restart refused; subscribing again', 'warn');
        subscribe(state.cameraId);
        break;
      }
      if (msg.code === 'unauthorized' || msg.code === 'rate_limited') {
        // Retrying with the same token cannot help (and repeated failures get this address
        // refused for a while): stop and say why.
        state.refused = msg.message;
        signaling.close();
        stopPlayer();
        state.ws = 'refused';
        break;
      }
      if (msg.code === 'unknown_camera' && state.pending) {
        state.pending = null;
        // Play another live camera instead, if any; else camera_online will pick one.
        const other = state.cameras.find((c) => c.state === 'online' && c.id !== state.cameraId);
        if (other) subscribe(other.id);
      }
      break;
    case ServerType.serverStopping:
      // The socket closes next; the page reconnects as after any lost connection.
      log('server is stopping (a restart?); reconnecting when it is back', 'warn');
      break;
    default:
      log(`unknown server message type ${msg.type}`, 'warn');
  }
  render();
}

// A camera's source connected, went live or was lost. The WebRTC connection is untouched:
// the video element keeps showing the last picture while the source is lost.
function onSourceState(msg) {
  const status = {
    state: msg.state,
    error: msg.error ?? null,
    source: msg.source,
    detail: msg.detail ?? null,
  };
  const cam = state.cameras.find((c) => c.id === msg.camera_id);
  const before = cam ? cam.source_state : null;
  if (cam) cam.source_state = status;
  if (msg.camera_id !== state.cameraId) return; // the list shows it; the log is for ours
  const name = cam ? cam.name || cam.id : msg.camera_id;
  // Still live, only how it runs changed (an RTSP camera chose passthrough or re-encoding).
  if (before && before.state === SourceState.live && status.state === SourceState.live) {
    if (status.detail && status.detail !== before.detail) log(`${name}: source ${status.detail}`);
    return;
  }
  logSourceState(name, status);
}

function logSourceState(name, status) {
  if (status.state === SourceState.lost) {
    const error = status.error || 'unknown error';
    // Sources usually name themselves in their errors; say where only when they do not.
    const where = error.includes(status.source) ? '' : ` (${status.source})`;
    log(`${name}: signal lost${where}: ${error}`, 'warn');
  } else if (status.state === SourceState.live) {
    const detail = status.detail ? `: ${status.detail}` : '';
    log(`${name}: source live (${status.source})${detail}`);
  } else if (status.state === SourceState.idle) {
    log(`${name}: source idle (capture stopped until someone watches or a controller starts it)`);
  } else {
    log(`${name}: connecting to source ${status.source}`);
  }
}

function isKnown(id) {
  return state.cameras.some((c) => c.id === id);
}

// Is `id` a live camera other than `except`?
function isOnline(id, except) {
  return id !== except && state.cameras.some((c) => c.id === id && c.state === 'online');
}

// Disconnect (a teardown): close the media connection and the server connection, so the
// server lets go of this viewer at once (its viewer count, an on-demand camera's capture),
// and stay so until Connect.
function teardown() {
  clearTimeout(retryTimer);
  stopPlayer();
  state.pending = null;
  signaling.close();
  state.ws = 'disconnected';
  state.disconnected = true;
  log('disconnected: no video until you press Connect');
  render();
}

function reconnect() {
  state.disconnected = false;
  log('connecting again');
  signaling.connect(); // `open` lists the cameras, and the list resubscribes
}

function upsertCamera(camera) {
  const i = state.cameras.findIndex((c) => c.id === camera.id);
  if (i >= 0) state.cameras[i] = camera;
  else state.cameras.push(camera);
}

// Resume the camera we watched before a reconnect, else play the first online one.
function autoSubscribe() {
  if (state.cameraId && isKnown(state.cameraId)) {
    subscribe(state.cameraId);
    return;
  }
  const first = state.cameras.find((c) => c.state === 'online');
  if (first) subscribe(first.id);
}

function subscribe(cameraId) {
  clearTimeout(retryTimer);
  stopPlayer();
  state.cameraId = cameraId;
  motion = null; // another camera's motion, or one from before, is not this picture's
  if (choosePath() === 'mse') {
    // The MSE socket is the subscription; signaling only keeps the camera list.
    state.pending = null;
    startMse(cameraId);
    render();
    return;
  }
  const direct = WANT_DIRECT && state.noDirect !== cameraId;
  if (!signaling.send(Client.subscribe(cameraId, direct))) return; // resubscribed on reconnect
  state.pending = cameraId;
  render();
}

/** The path for the next camera: 'mse' or 'webrtc'. */
function choosePath() {
  if (MODE === 'mse') return 'mse';
  if (MODE === 'webrtc') return 'webrtc';
  if (!WEBRTC_PLAYABLE || state.fellBack) return 'mse';
  return 'webrtc';
}

// ---- media ----------------------------------------------------------------------------------

async function startPlayer() {
  if (!HAS_WEBRTC) {
    log('this browser has no WebRTC (RTCPeerConnection) and ?mode=webrtc forbids the MSE fallback', 'error');
    return;
  }
  if (!WEBRTC_PLAYABLE) {
    state.unplayable = NO_CODEC;
    log(`${NO_CODEC}; ?mode=webrtc forbids the MSE fallback`, 'error');
    render();
    return;
  }
  state.path = 'webrtc';
  armFallback();
  const p = new Player({
    video: ui.video,
    iceServers,
    relayOnly: RELAY_ONLY,
    onLocalCandidate: (c) => signaling.send(Client.candidate(c)),
    play: () => tap.play(),
    onStateChange: () => {
      if (p === player) onPcState(p);
    },
    onStuck: (reason) => {
      if (p !== player) return;
      if (state.direct || !resumeKey || !signaling.isOpen) p.die(reason);
      else restartIce(p, reason, false);
    },
    onDead: (reason) => {
      if (p !== player) return;
      if (state.direct) {
        leaveDirect(`direct connection lost (${reason})`);
        return;
      }
      log(`media connection lost (${reason}); resubscribing`, 'warn');
      stopPlayer();
      render();
      const id = state.cameraId;
      retryTimer = setTimeout(() => {
        if (!player && !state.pending && id === state.cameraId) subscribe(id);
      }, RESUBSCRIBE_DELAY_MS);
    },
  });
  player = p;
  // The control channel must exist before the offer, so the answer has an m=application.
  room.attach(p.pc);
  probe = new LatencyProbe(ui.video, (f) => {
    latency = f;
    renderStats();
  });
  mediaSeen = { packets: null, at: performance.now() };
  stallTimer = setInterval(() => watchMedia(p), STALL_CHECK_MS);
  poller = new StatsPoller(p.pc, (s) => {
    state.stats = s;
    renderStats();
  }, state.direct);
  if (state.direct) {
    directTimer = setTimeout(() => {
      directTimer = null;
      if (p === player && p.connectionState !== 'connected') {
        leaveDirect(`no direct connection within ${DIRECT_TIMEOUT_MS / 1000} s (ICE ${p.iceState})`);
      }
    }, DIRECT_TIMEOUT_MS);
  }
  try {
    const sdp = await p.createOffer();
    if (p === player) signaling.send(Client.offer(sdp));
  } catch (e) {
    log(`could not create offer: ${e.message}`, 'error');
  }
}

/**
 * Restart ICE on `p` (keys, streams and the control channel stay): on this socket, or with
 * `resume`, on a new socket after the old one was lost. The player gives up by itself when
 * ICE is not back in time (onDead then subscribes afresh), and a refusal subscribes afresh.
 */
async function restartIce(p, why, resume) {
  iceRestarts += 1;
  log(`${why}: restarting ICE${resume ? ' on the new server connection' : ''}`, 'warn');
  try {
    const sdp = await p.restartOffer();
    if (p !== player) return;
    restartPending = signaling.send(Client.iceRestart(sdp, resume ? resumeKey : null));
  } catch (e) {
    p.die(`could not restart ICE: ${e.message}`);
  }
}

// A phone that moves to another network (Wi-Fi to cellular, a new NAT) keeps its peer
// connection "connected": the SFU answers its consent checks at the new address, but sends
// media to the old one, and the signaling socket's path is dead too. No video packets for
// STALL_MS while the camera is live means that: reconnect on a fresh socket at once, and
// resume the media connection from it with an ICE restart (the browser's checks from its new
// address, with the new credentials, nominate the new path), instead of waiting for timeouts.
// Checked often (the stats poller's once a second would add up to a second to the wait).
const STALL_MS = 2000;
const STALL_CHECK_MS = 250;
let mediaSeen = { packets: null, at: 0 };

async function watchMedia(p) {
  const packets = await p.packetsReceived();
  if (p !== player) return;
  const now = performance.now();
  if (packets !== mediaSeen.packets) {
    mediaSeen = { packets, at: now };
    return;
  }
  if (p.connectionState !== 'connected' || !cameraSends()) {
    mediaSeen.at = now;
  } else if (now - mediaSeen.at >= STALL_MS) {
    mediaSeen.at = now;
    networkChanged(`no video for ${STALL_MS / 1000} s while connected`);
  }
}

/** The camera we watch is online, its source live and this viewer not paused. */
function cameraSends() {
  const cam = state.cameras.find((c) => c.id === state.cameraId);
  const source = cam && cam.source_state ? cam.source_state.state : SourceState.live;
  return !!cam && cam.state === 'online' && source === SourceState.live && !room.paused;
}

function networkChanged(why) {
  log(`${why}: the network may have changed; reconnecting`, 'warn');
  signaling.reconnectNow();
}

// Phones say when they change networks (not every browser has navigator.connection).
window.addEventListener('online', () => networkChanged('back online'));
if (navigator.connection && navigator.connection.addEventListener) {
  navigator.connection.addEventListener('change', () => networkChanged('network changed'));
}

let lastPcState = null;
function onPcState(p) {
  const s = p.connectionState;
  if (s !== lastPcState) {
    lastPcState = s;
    if (s === 'connected' || s === 'failed' || s === 'disconnected') {
      log(`media ${s}`, s === 'connected' ? 'info' : 'warn');
    }
  }
  render();
}

/** Give up the direct path to this camera and watch it through the server. */
function leaveDirect(why) {
  log(`${why}; watching through the server`, 'warn');
  state.noDirect = state.cameraId;
  state.direct = false;
  subscribe(state.cameraId);
}

function stopPlayer() {
  clearTimeout(fallbackTimer);
  fallbackTimer = null;
  clearTimeout(directTimer);
  directTimer = null;
  clearInterval(stallTimer);
  stallTimer = null;
  room.detach();
  if (probe) probe.stop();
  probe = null;
  latency = emptyLatency();
  if (poller) poller.stop();
  if (player) player.close();
  if (mse) mse.close();
  poller = null;
  player = null;
  mse = null;
  resumeKey = null;
  restartPending = false;
  lastPcState = null;
  state.stats = emptyStats();
}

// ---- the MSE fallback ---------------------------------------------------------------------

/** Has the WebRTC path shown a decoded frame? */
function webrtcDecoded() {
  return (state.stats.framesDecoded ?? 0) > 0 || (!!ui.video.srcObject && ui.video.readyState >= 2);
}

/** Fall back to MSE if WebRTC decodes nothing within FALLBACK_MS (unless ?mode=webrtc). */
function armFallback() {
  clearTimeout(fallbackTimer);
  if (MODE === 'webrtc') return;
  fallbackTimer = setTimeout(() => {
    fallbackTimer = null;
    if (!player || webrtcDecoded()) return;
    const cam = currentCamera();
    const source = cam && describeSource(cam.source_state);
    // No video because the camera has none, or because the video waits for a tap: MSE
    // would not help. Look again later.
    if (!cam || cam.state !== 'online' || (source && source.state !== SourceState.live) || tap.shown) {
      armFallback();
      return;
    }
    if (!mseSupported()) {
      log(`no video over WebRTC after ${FALLBACK_MS / 1000} s, and this browser has no MSE to fall back to`, 'warn');
      return;
    }
    log(`no video over WebRTC after ${FALLBACK_MS / 1000} s (pc ${player.connectionState}); switching to MSE`, 'warn');
    state.fellBack = true;
    subscribe(state.cameraId);
  }, FALLBACK_MS);
}

function startMse(cameraId) {
  if (!mseSupported()) {
    state.unplayable = HAS_WEBRTC ? NO_CODEC : 'this browser can play neither WebRTC nor MSE (H.264 in MP4)';
    log(state.unplayable, 'error');
    state.path = null;
    render();
    return;
  }
  state.path = 'mse';
  const why = MODE === 'mse'
    ? ' (?mode=mse)'
    : state.fellBack
      ? ' (WebRTC fallback)'
      : HAS_WEBRTC ? ' (WebRTC here decodes neither H.264 nor VP8)' : ' (no WebRTC in this browser)';
  log(`playing ${cameraId} over MSE${why}`);
  const m = new MsePlayer({
    video: ui.video,
    url: mseUrl(cameraId),
    log,
    play: () => tap.play(),
    onStateChange: (s) => {
      if (m !== mse) return;
      if (s === 'open') log('MSE connected');
      render();
    },
    // Camera control rides on the MSE socket: the same messages as the data channel.
    onControlChannel: (channel) => {
      if (m === mse) room.attachChannel(channel, { pauseAllowed: false });
    },
    onRefused: (e) => {
      if (m !== mse) return;
      if (e.code === 'unauthorized') state.refused = e.message;
      render();
    },
  });
  mse = m;
  probe = new LatencyProbe(ui.video, (f) => {
    latency = f;
    renderStats();
  });
  poller = {
    timer: setInterval(() => {
      if (m !== mse) return;
      state.stats = { ...emptyStats(), ...m.stats() };
      renderStats();
    }, 1000),
    stop() {
      clearInterval(this.timer);
    },
  };
}

/** The media badge's state: the peer connection's, or the MSE socket's. */
function mediaState() {
  if (mse) return mse.connectionState === 'open' ? 'connected' : mse.connectionState;
  if (player) return player.connectionState;
  return state.pending ? 'subscribing' : 'idle';
}

// ---- rendering -------------------------------------------------------------------------------

function log(text, level = 'info') {
  const entry = { time: new Date(), level, text };
  state.log.push(entry);
  if (state.log.length > LOG_LIMIT) state.log.shift();
  const li = document.createElement('li');
  li.className = level;
  const t = document.createElement('time');
  t.textContent = entry.time.toLocaleTimeString([], { hour12: false });
  li.append(t, ' ', text);
  ui.log.prepend(li);
  while (ui.log.children.length > LOG_LIMIT) ui.log.lastChild.remove();
}

/**
 * A motion event from the publisher's detector: a line in the log, and while motion goes
 * on a box over the picture where it was seen (the region is in the sent picture's pixels;
 * the video is letterboxed into its element, object-fit: contain).
 */
function showMotion(m) {
  motion = m;
  const [x, y, w, h] = m.region;
  const where = `${w}×${h} at ${x},${y}`;
  log(m.phase === 'start'
    ? `motion started (${where}, score ${m.score.toFixed(2)})`
    : `motion ended (seen over ${where}, peak score ${m.score.toFixed(2)})`, 'info');
  placeMotionBox();
}

function placeMotionBox() {
  const box = ui.motionBox;
  const v = ui.video;
  const on = motion && motion.phase === 'start' && v.videoWidth > 0 && !!state.cameraId;
  box.hidden = !on;
  if (!on) return;
  const scale = Math.min(v.clientWidth / v.videoWidth, v.clientHeight / v.videoHeight);
  const left = v.offsetLeft + (v.clientWidth - v.videoWidth * scale) / 2;
  const top = v.offsetTop + (v.clientHeight - v.videoHeight * scale) / 2;
  const [x, y, w, h] = motion.region;
  Object.assign(box.style, {
    left: `${left + x * scale}px`,
    top: `${top + y * scale}px`,
    width: `${w * scale}px`,
    height: `${h * scale}px`,
  });
}

function currentCamera() {
  return state.cameras.find((c) => c.id === state.cameraId) || null;
}

function render() {
  ui.wsState.dataset.state = state.ws;
  ui.wsState.textContent = `server: ${state.ws}`;
  const pcs = mediaState();
  ui.pcState.dataset.state = pcs;
  ui.pcState.textContent = state.path === 'mse' ? `media (MSE): ${pcs}` : `media: ${pcs}`;

  const cam = currentCamera();
  ui.cameraName.textContent = cam ? cam.name || cam.id : state.cameraId || 'No camera';
  ui.cameraState.hidden = !cam;
  if (cam) {
    ui.cameraState.textContent = cam.state;
    ui.cameraState.dataset.state = cam.state;
  }
  const source = cam && cam.state === 'online' ? describeSource(cam.source_state) : null;
  ui.sourceState.hidden = !source;
  if (source) {
    ui.sourceState.textContent = source.text;
    ui.sourceState.dataset.state = source.state;
    ui.sourceState.title = cam.source_state.source;
  }
  room.setCameraOnline(!cam || cam.state === 'online');
  room.setDisconnected(state.disconnected);
  const ctl = room.badge();
  ui.ctlState.dataset.state = ctl.state;
  ui.ctlState.textContent = ctl.text;
  ui.overlay.textContent = overlayText(cam, pcs);
  // The tap-to-play button covers the video and says what to do; no text under it.
  ui.overlay.hidden = ui.overlay.textContent === '' || tap.shown;
  placeMotionBox();
  renderCameras();
  renderStats();
}

function overlayText(cam, pcs) {
  if (state.refused) return `Not authorized: ${state.refused}. Open the page with a valid ?token=`;
  if (state.unplayable) return `No video: ${state.unplayable}`;
  if (state.disconnected) return 'Disconnected. Press Connect to watch again';
  if (state.ws !== 'open') return 'Connecting to server…';
  if (!state.cameraId) return state.cameras.length ? 'Pick a camera' : 'No camera online';
  if (cam && cam.state === 'offline') return 'Camera offline';
  if (room.paused) return 'Paused (no video is sent to this viewer)';
  // A camera without its source is the reason there is no video, whatever our own
  // connection does. With a picture on screen, the source badge tells of trouble and the
  // last picture stays visible.
  const source = cam && describeSource(cam.source_state);
  const sourceDown = source && source.state !== SourceState.live;
  if (pcs !== 'connected') return sourceDown ? `Camera: ${source.text}` : 'Connecting…';
  if (ui.video.readyState < 2) return sourceDown ? `Camera: ${source.text}` : 'Waiting for video…';
  return '';
}

function renderCameras() {
  const items = state.cameras.map((c) => {
    const li = document.createElement('li');
    const b = document.createElement('button');
    b.type = 'button';
    b.dataset.id = c.id;
    b.className = `camera ${c.state}${c.id === state.cameraId ? ' active' : ''}`;
    b.setAttribute('aria-pressed', String(c.id === state.cameraId));
    const name = document.createElement('span');
    name.className = 'name';
    name.textContent = c.name || c.id;
    const meta = document.createElement('span');
    meta.className = 'meta';
    meta.textContent = c.state === 'online'
      ? `${c.width}×${c.height} · ${c.fps} fps · ${c.viewers} watching`
      : `${c.width}×${c.height} · last seen ${seenAgo(c.last_seen)}`;
    if (c.last_seen) meta.title = `last seen ${new Date(c.last_seen).toLocaleString()}`;
    const tag = document.createElement('span');
    tag.className = 'tag';
    // An online camera whose source is lost or connecting says so instead of "online".
    const source = c.state === 'online' ? describeSource(c.source_state) : null;
    if (source && source.state !== SourceState.live) {
      tag.dataset.state = source.state;
      tag.textContent = source.state === SourceState.lost ? 'signal lost' : 'connecting';
      tag.title = source.text;
    } else {
      tag.dataset.state = c.state;
      tag.textContent = c.state;
    }
    b.append(name, meta, tag);
    li.append(b);
    return li;
  });
  if (!items.length) {
    const li = document.createElement('li');
    li.className = 'empty';
    li.textContent = 'No cameras yet';
    items.push(li);
  }
  ui.cameras.replaceChildren(...items);
}

/** `last_seen` (ms since the epoch) as "5 min ago". */
function seenAgo(ms) {
  if (!ms) return 'never';
  const s = Math.max(0, Math.round((Date.now() - ms) / 1000));
  if (s < 60) return 'just now';
  if (s < 3600) return `${Math.floor(s / 60)} min ago`;
  if (s < 86400) return `${Math.floor(s / 3600)} h ago`;
  return `${Math.floor(s / 86400)} d ago`;
}

function renderStats() {
  const s = state.stats;
  const show = (key, text) => {
    ui.stats.querySelector(`[data-stat="${key}"]`).textContent = text;
  };
  const dash = (v, unit = '') => (v == null ? '–' : `${v}${unit}`);
  show('resolution', s.width ? `${s.width}×${s.height}` : '–');
  show('fps', dash(s.fps));
  show('kbps', dash(s.kbps, ' kbps'));
  show('packetsLost', dash(s.packetsLost));
  show('jitter', dash(s.jitterMs, ' ms'));
  show('ice', player ? player.iceState : mse ? 'n/a (MSE)' : '–');
  show('path', state.path ? state.path : '–');
  show('buffer', dash(s.bufferedAheadMs, ' ms'));
  show('frames', dash(s.framesDecoded));
  show('bytes', s.bytesReceived == null ? '–' : formatBytes(s.bytesReceived));
  show('packets', s.packetsReceived == null ? '–' : `${s.packetsReceived} rx`);
  show('rtt', dash(s.rttMs, ' ms'));
  show('route', s.route ? s.route.text : '–');
  show('codec', s.codec || '–');
  show('decode', dash(s.decodeMs, ' ms'));
  show('freezes', s.freezeCount == null ? '–' : `${s.freezeCount} (${s.freezeMs} ms)`);
  show('latency', dash(latency.latencyMs, ' ms'));
}

function formatBytes(n) {
  if (n >= 1e6) return `${(n / 1e6).toFixed(1)} MB`;
  if (n >= 1e3) return `${Math.round(n / 1e3)} kB`;
  return `${n} B`;
}

ui.cameras.addEventListener('click', (ev) => {
  const b = ev.target.closest('button[data-id]');
  if (!b) return;
  const id = b.dataset.id;
  // Clicking the camera already playing does nothing; anything else (re)subscribes.
  if (id === state.cameraId && (player || mse || state.pending)) return;
  log(`switching to ${id}`);
  subscribe(id);
});

for (const ev of ['playing', 'loadeddata', 'waiting', 'emptied']) {
  ui.video.addEventListener(ev, () => render());
}

// Read-only status for tests and debugging. Tests should check real decoding
// (video.getVideoPlaybackQuality()), not just these flags.
//   stats: resolution (width, height), fps, kbps, packetsReceived, packetsLost, jitterMs,
//     framesDecoded, rttMs (selected candidate pair), route {via: 'server' | 'relay' | 'direct',
//     protocol: 'udp' | 'tcp', text} (from the selected pair), decodeMs (per frame, last second),
//     freezeCount, freezeMs; from the barcode (same-clock test pattern only): latencyMs
//     (median of the last readings), barcodeFrame, barcodeTag, barcodeSeen, latencySamples.
//   control (controlroom.js snapshot): channel 'closed' | 'connecting' | 'open'; viewer,
//     camera, mayControl, rateLimit {per_second, burst} and welcome (null before the
//     welcome); capabilities (setting names) and capabilityTypes {name: {type, min, max,
//     step, choices, apply, reason}}; settings and status {streaming, preset, presets,
//     source} as the camera last said; lastState {version, by, changed, timestamp}; lastResponse
//     (the last reply: request_id, command, success, message, error {code, field, message},
//     elapsed_ms); paused (this viewer's pause); pending (commands unanswered); staged
//     (edited settings awaiting Apply); errors {field: message shown}; unavailable (why
//     the SFU cannot reach the camera's control, or null); note (the panel's note).
//   path: which path plays, 'webrtc' | 'mse' (null before a camera); mode: the ?mode= asked
//     for; fellBack: WebRTC gave way to MSE; direct: this WebRTC connection goes straight to
//     the camera's publisher (?mode=p2p, granted). On MSE, stats also has bufferedAheadMs,
//     bytesReceived, fragments, fragmentsDropped, liveJumps, quotaErrors, playbackRate,
//     codec, firstFrameMs (from opening the MSE socket to the first frame shown).
//   disconnected: the viewer pressed Disconnect (media and server connection closed until
//     Connect).
//   iceRestarts: ICE restarts this page has tried (a stuck connection, or one resumed from a
//     new server connection).
//   latencyReadings: every raw barcode latency reading (ms) of this camera, oldest first.
//   tapToPlay: true while the "Tap to play" button shows (the browser refused play() with
//     NotAllowedError and wants a user gesture); false once a tap, or any gesture, let the
//     video play. fullscreen: the video's container (or, on iPhone, the video) is full screen.
window.sightline = Object.freeze({
  get motion() { return motion; },
  get path() { return state.path; },
  get mode() { return MODE; },
  get fellBack() { return state.fellBack; },
  get direct() { return state.direct; },
  get hasWebRTC() { return HAS_WEBRTC; },
  get webrtcCodecs() { return WEBRTC_CODECS ? [...WEBRTC_CODECS] : null; },
  get unplayable() { return state.unplayable; },
  get tapToPlay() { return tap.shown; },
  get fullscreen() { return fullscreen.shown; },
  get latencyReadings() { return probe ? [...probe.readings] : []; },
  get cameraId() { return state.cameraId; },
  get disconnected() { return state.disconnected; },
  get wsState() { return state.ws; },
  get pcState() { return player ? player.connectionState : null; },
  get mseState() { return mse ? mse.connectionState : null; },
  get iceState() { return player ? player.iceState : null; },
  get iceRestarts() { return iceRestarts; },
  get cameras() { return state.cameras.map((c) => ({ ...c })); },
  get stats() { return { ...state.stats, ...latency, path: state.path }; },
  get control() { return room.snapshot(); },
  get log() { return state.log.map((e) => `${e.time.toISOString()} ${e.level} ${e.text}`); },
});

render();
signaling.connect();
setInterval(() => signaling.send(Client.list()), LIST_REFRESH_MS);
