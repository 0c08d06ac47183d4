// Live receive statistics from RTCPeerConnection.getStats(), sampled once a second.
//
// From the video inbound-rtp report: resolution, fps, kbps, packets received and lost,
// jitter, decode time per frame (totalDecodeTime / framesDecoded, over the last second when
// it can), freezes (freezeCount, totalFreezesDuration), and its codec. From the selected
// candidate pair:
// the round-trip time (currentRoundTripTime) and the route media takes (server, TURN relay
// or direct; UDP or TCP).

const INTERVAL_MS = 1000;

/** Stats as shown on the page; null fields are not known (yet). */
export function emptyStats() {
  return {
    width: null, height: null, fps: null, kbps: null, packetsLost: null, jitterMs: null,
    framesDecoded: null, packetsReceived: null, rttMs: null, decodeMs: null,
    freezeCount: null, freezeMs: null, route: null, codec: null,
  };
}

/**
 * Derive display figures from the video inbound-rtp report, using the previous sample for
 * rates. Pure so it can be reasoned about without a browser.
 */
export function summarize(inbound, prev) {
  const s = emptyStats();
  if (!inbound) return s;
  s.width = inbound.frameWidth ?? null;
  s.height = inbound.frameHeight ?? null;
  s.packetsLost = inbound.packetsLost ?? null;
  s.jitterMs = inbound.jitter != null ? Math.round(inbound.jitter * 1000) : null;
  s.framesDecoded = inbound.framesDecoded ?? null;
  s.packetsReceived = inbound.packetsReceived ?? null;
  s.freezeCount = inbound.freezeCount ?? null;
  s.freezeMs = inbound.totalFreezesDuration != null ? Math.round(inbound.totalFreezesDuration * 1000) : null;
  if (inbound.totalDecodeTime != null && inbound.framesDecoded > 0) {
    s.decodeMs = round1((inbound.totalDecodeTime / inbound.framesDecoded) * 1000);
  }
  if (prev && inbound.timestamp > prev.timestamp) {
    const secs = (inbound.timestamp - prev.timestamp) / 1000;
    s.kbps = Math.round(((inbound.bytesReceived - prev.bytesReceived) * 8) / 1000 / secs);
    if (inbound.framesDecoded != null && prev.framesDecoded != null) {
      s.fps = Math.round((inbound.framesDecoded - prev.framesDecoded) / secs);
      // Decode time of this second's frames: the lifetime mean hides a change.
      const frames = inbound.framesDecoded - prev.framesDecoded;
      if (frames > 0 && inbound.totalDecodeTime != null && prev.totalDecodeTime != null) {
        s.decodeMs = round1(((inbound.totalDecodeTime - prev.totalDecodeTime) / frames) * 1000);
      }
    }
  }
  if (inbound.framesPerSecond != null) s.fps = Math.round(inbound.framesPerSecond);
  return s;
}

function round1(x) {
  return Math.round(x * 10) / 10;
}

/** The candidate pair in use: the transport's selected pair, else a nominated pair that succeeded. */
function selectedPair(reports, byId) {
  let pair = null;
  for (const r of reports) {
    if (r.type === 'transport' && r.selectedCandidatePairId) pair = byId.get(r.selectedCandidatePairId) || pair;
  }
  return pair || reports.find((r) => r.type === 'candidate-pair' && r.nominated && r.state === 'succeeded');
}

/**
 * What the candidate pair in use says: rttMs (its round-trip time) and route, the way media
 * takes, {via, protocol, text}. via is 'relay' when either end is a TURN relay, else
 * 'direct' on a direct (P2P) connection to the camera, else 'server' (the SFU); protocol is
 * how this browser sends ('udp' or 'tcp'; to a relay, the relay protocol).
 */
export function pairFigures(reports, direct = false) {
  const byId = new Map(reports.map((r) => [r.id, r]));
  const pair = selectedPair(reports, byId);
  if (!pair) return { rttMs: null, route: null };
  const rttMs = pair.currentRoundTripTime == null ? null : round1(pair.currentRoundTripTime * 1000);
  const local = byId.get(pair.localCandidateId) || {};
  const remote = byId.get(pair.remoteCandidateId) || {};
  const relayed = local.candidateType === 'relay' || remote.candidateType === 'relay';
  const via = relayed ? 'relay' : direct ? 'direct' : 'server';
  const protocol = (local.candidateType === 'relay' && local.relayProtocol) || local.protocol || remote.protocol || null;
  const words = { relay: 'relayed by TURN', server: 'via the server', direct: 'direct from the camera' };
  const route = { via, protocol, text: `${words[via]}${protocol ? ` (${protocol.toUpperCase()})` : ''}` };
  return { rttMs, route };
}

/**
 * Polls one peer connection until stopped; calls onStats(summary) each second. `direct`: the
 * connection goes to the camera's publisher, not the SFU.
 */
export class StatsPoller {
  constructor(pc, onStats, direct = false) {
    this.pc = pc;
    this.direct = direct;
    this.onStats = onStats;
    this.prev = null;
    this.timer = setInterval(() => this.sample(), INTERVAL_MS);
  }

  async sample() {
    let report;
    try {
      report = await this.pc.getStats();
    } catch {
      return; // closed meanwhile
    }
    let inbound = null;
    const all = [];
    report.forEach((r) => {
      all.push(r);
      if (r.type === 'inbound-rtp' && (r.kind || r.mediaType) === 'video') inbound = r;
    });
    if (this.timer === null) return;
    const s = summarize(inbound, this.prev);
    // 'H264' or 'VP8': the SFU sends VP8 to browsers without H.264.
    const codec = inbound && all.find((r) => r.id === inbound.codecId);
    s.codec = codec && codec.mimeType ? codec.mimeType.replace(/^video\//i, '') : null;
    Object.assign(s, pairFigures(all, this.direct));
    this.onStats(s);
    this.prev = inbound;
  }

  stop() {
    clearInterval(this.timer);
    this.timer = null;
  }
}
