// One receive-only peer connection to the SFU for one subscription.
//
// The SFU is ice-lite and only answers: we offer recvonly video, it answers with H.264
// Constrained Baseline. It needs none of our candidates to connect (our checks reach it and it
// learns our address from them), but we trickle them anyway as the protocol says.

// How long `disconnected` may last before the connection counts as stuck (onStuck: an ICE
// restart, or giving up). Chromium goes `disconnected` after ~5 s without consent responses
// and sometimes recovers by itself; a restart keeps keys and streams, so it need not wait long.
const DISCONNECT_GRACE_MS = 2000;
// How long a new connection may take to reach `connected` before we try again.
const CONNECT_TIMEOUT_MS = 20000;
// How long an ICE restart may take to reach `connected` before we subscribe afresh.
const RESTART_TIMEOUT_MS = 5000;

export class Player {
  /**
   * @param {object} opts
   * @param {HTMLVideoElement} opts.video where the remote track plays
   * @param {RTCIceServer[]} [opts.iceServers] empty by default: the SFU has a reachable address
   * @param {boolean} [opts.relayOnly] use TURN relay candidates only
   * @param {(c: RTCIceCandidate) => void} opts.onLocalCandidate
   * @param {() => void} opts.onStateChange called on any PC or ICE state change
   * @param {(reason: string) => void} opts.onDead the connection is beyond saving; resubscribe
   * @param {(reason: string) => void} [opts.onStuck] the connection stopped working (gone
   *   `disconnected` for a while, or `failed`): the caller may restart ICE
   *   ({@link Player#restartOffer}) or give up ({@link Player#die}). Without it we give up.
   * @param {() => void} [opts.play] starts the video (the page's TapToPlay, which offers a
   *   button when the browser wants a gesture first)
   */
  constructor({ video, iceServers = [], relayOnly = false, onLocalCandidate, onStateChange, onDead, onStuck, play }) {
    this.video = video;
    this.play = play || (() => video.play().catch(() => {}));
    this.onDead = onDead;
    this.onStuck = onStuck || ((reason) => this.die(reason));
    this.closed = false;
    this.pendingCandidates = [];
    this.remoteSet = false;
    this.restarting = false; // an ICE restart is under way
    this.timers = { disconnect: null, connect: null, restart: null };

    const pc = new RTCPeerConnection({ iceServers, iceTransportPolicy: relayOnly ? 'relay' : 'all' });
    this.pc = pc;
    pc.addTransceiver('video', { direction: 'recvonly' });
    pc.onicecandidate = (ev) => {
      // A null candidate (or an empty one) marks the end of gathering; the SFU needs no such
      // marker.
      if (ev.candidate && ev.candidate.candidate) onLocalCandidate(ev.candidate);
    };
    pc.ontrack = (ev) => this.attach(ev);
    pc.onconnectionstatechange = () => {
      this.watch();
      onStateChange();
    };
    pc.oniceconnectionstatechange = () => onStateChange();
  }

  /** New STUN/TURN servers (fresh credentials), for ICE restarts from now on. */
  useIceServers(iceServers) {
    try {
      this.pc.setConfiguration({ ...this.pc.getConfiguration(), iceServers });
    } catch (e) {
      // A closed connection, or a browser that refuses the change: the next one uses them.
    }
  }

  get connectionState() {
    return this.pc.connectionState;
  }

  get iceState() {
    return this.pc.iceConnectionState;
  }

  /** Create the offer and set it locally; returns the SDP to send. */
  async createOffer() {
    const offer = await this.pc.createOffer();
    await this.pc.setLocalDescription(offer);
    this.arm('connect', CONNECT_TIMEOUT_MS, 'did not connect in time');
    return this.pc.localDescription.sdp;
  }

  /**
   * An offer with new ICE credentials for this same connection (keys, streams and the
   * control channel stay); returns the SDP to send. If ICE is not back within
   * RESTART_TIMEOUT_MS, the connection is given up (onDead).
   */
  async restartOffer() {
    this.restarting = true;
    this.disarm('disconnect');
    const offer = await this.pc.createOffer({ iceRestart: true });
    await this.pc.setLocalDescription(offer);
    this.arm('restart', RESTART_TIMEOUT_MS, 'the ICE restart did not reconnect');
    return this.pc.localDescription.sdp;
  }

  async applyAnswer(sdp) {
    if (this.closed) return;
    await this.pc.setRemoteDescription({ type: 'answer', sdp });
    this.remoteSet = true;
    // Candidates that came before the answer could not be added yet.
    const queued = this.pendingCandidates;
    this.pendingCandidates = [];
    for (const c of queued) await this.addCandidate(c);
  }

  /** A server candidate from the wire: {candidate, sdp_mid, sdp_mline_index}. */
  async addRemoteCandidate(msg) {
    if (this.closed || !msg.candidate) return;
    const init = {
      candidate: msg.candidate.replace(/^a=/, ''),
      sdpMid: msg.sdp_mid ?? undefined,
      // The browser refuses a candidate with neither mid nor index; we have one m-line.
      sdpMLineIndex: msg.sdp_mline_index ?? (msg.sdp_mid == null ? 0 : undefined),
    };
    if (!this.remoteSet) {
      this.pendingCandidates.push(init);
      return;
    }
    await this.addCandidate(init);
  }

  /** Video packets received so far (null before any, or when the browser does not say). */
  async packetsReceived() {
    const receiver = this.pc.getReceivers().find((r) => r.track && r.track.kind === 'video');
    let packets = null;
    try {
      (await receiver.getStats()).forEach((r) => {
        if (r.type === 'inbound-rtp') packets = r.packetsReceived;
      });
    } catch {
      // No receiver yet, or closed meanwhile.
    }
    return packets;
  }

  async addCandidate(init) {
    await this.pc.addIceCandidate(init);
  }

  attach(ev) {
    // The answer may carry no msid, in which case the track comes with no stream.
    const stream = ev.streams && ev.streams[0] ? ev.streams[0] : new MediaStream([ev.track]);
    this.video.srcObject = stream;
    // Muted + playsinline lets this play without a user gesture in most browsers and
    // WebViews; where it does not, `play` offers "Tap to play".
    this.play();
  }

  // Turn PC state changes into "restart ICE" and "give up" decisions. While a restart is
  // under way its own timer decides.
  watch() {
    const state = this.pc.connectionState;
    if (state === 'connected') {
      this.restarting = false;
      for (const name of Object.keys(this.timers)) this.disarm(name);
    } else if (this.restarting) {
      // Checking again on the new credentials.
    } else if (state === 'disconnected') {
      this.arm('disconnect', DISCONNECT_GRACE_MS, 'disconnected for too long', (r) => this.onStuck(r));
    } else if (state === 'failed') {
      this.onStuck('connection failed');
    }
  }

  arm(name, ms, reason, then = (r) => this.die(r)) {
    if (this.timers[name]) return;
    this.timers[name] = setTimeout(() => {
      this.timers[name] = null;
      if (!this.closed) then(reason);
    }, ms);
  }

  disarm(name) {
    clearTimeout(this.timers[name]);
    this.timers[name] = null;
  }

  die(reason) {
    if (this.closed) return;
    this.close();
    this.onDead(reason);
  }

  close() {
    if (this.closed) return;
    this.closed = true;
    for (const name of Object.keys(this.timers)) this.disarm(name);
    this.pc.onicecandidate = null;
    this.pc.ontrack = null;
    this.pc.onconnectionstatechange = null;
    this.pc.oniceconnectionstatechange = null;
    this.pc.close();
  }
}
