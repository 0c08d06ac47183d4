// One receive-only peer connection to the SFU for one subscription.
//
// The SFU is ice-lite and only answers: we offer recvonly video, it answers with H.264
// Constrained Baseline. It needs none of our candidates to connect (our checks reach it and it
// learns our address from them), but we trickle them anyway as the protocol says.

// How long `disconnected` may last before we give up on the connection. Chromium goes
// `disconnected` after ~5 s without consent responses and often recovers by itself.
const DISCONNECT_GRACE_MS = 4000;
// How long a new connection may take to reach `connected` before we try again.
const CONNECT_TIMEOUT_MS = 20000;

export class Player {
  /**
   * @param {object} opts
   * @param {HTMLVideoElement} opts.video where the remote track plays
   * @param {RTCIceServer[]} [opts.iceServers] empty by default: the SFU has a reachable address
   * @param {boolean} [opts.relayOnly] use TURN relay candidates only
   * @param {(c: RTCIceCandidate) => void} opts.onLocalCandidate
   * @param {() => void} opts.onStateChange called on any PC or ICE state change
   * @param {(reason: string) => void} opts.onDead the connection is beyond saving; resubscribe
   * @param {() => void} [opts.play] starts the video (the page's TapToPlay, which offers a
   *   button when the browser wants a gesture first)
   */
  constructor({ video, iceServers = [], relayOnly = false, onLocalCandidate, onStateChange, onDead, play }) {
    this.video = video;
    this.play = play || (() => video.play().catch(() => {}));
    this.onDead = onDead;
    this.closed = false;
    this.pendingCandidates = [];
    this.remoteSet = false;
    this.timers = { disconnect: null, connect: null };

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

  // Turn PC state changes into "give up" decisions.
  watch() {
    const state = this.pc.connectionState;
    if (state === 'connected') {
      this.disarm('connect');
      this.disarm('disconnect');
    } else if (state === 'disconnected') {
      this.arm('disconnect', DISCONNECT_GRACE_MS, 'disconnected for too long');
    } else if (state === 'failed') {
      this.die('connection failed');
    }
  }

  arm(name, ms, reason) {
    if (this.timers[name]) return;
    this.timers[name] = setTimeout(() => {
      this.timers[name] = null;
      this.die(reason);
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
    this.disarm('connect');
    this.disarm('disconnect');
    this.pc.onicecandidate = null;
    this.pc.ontrack = null;
    this.pc.onconnectionstatechange = null;
    this.pc.oniceconnectionstatechange = null;
    this.pc.close();
  }
}
