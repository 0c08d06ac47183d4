// Live receive statistics from RTCPeerConnection.getStats(), sampled once a second.

const INTERVAL_MS = 1000;

/** Stats as shown on the page; null fields are not known (yet). */
export function emptyStats() {
  return { width: null, height: null, fps: null, kbps: null, packetsLost: null, jitterMs: null, framesDecoded: null };
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
  if (prev && inbound.timestamp > prev.timestamp) {
    const secs = (inbound.timestamp - prev.timestamp) / 1000;
    s.kbps = Math.round(((inbound.bytesReceived - prev.bytesReceived) * 8) / 1000 / secs);
    if (inbound.framesDecoded != null && prev.framesDecoded != null) {
      s.fps = Math.round((inbound.framesDecoded - prev.framesDecoded) / secs);
    }
  }
  if (inbound.framesPerSecond != null) s.fps = Math.round(inbound.framesPerSecond);
  return s;
}

/** Polls one peer connection until stopped; calls onStats(summary) each second. */
export class StatsPoller {
  constructor(pc, onStats) {
    this.pc = pc;
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
    report.forEach((r) => {
      if (r.type === 'inbound-rtp' && (r.kind || r.mediaType) === 'video') inbound = r;
    });
    if (this.timer === null) return;
    this.onStats(summarize(inbound, this.prev));
    this.prev = inbound;
  }

  stop() {
    clearInterval(this.timer);
    this.timer = null;
  }
}
