// Glass-to-glass latency from the test pattern's barcode: a few times a second, copy the
// barcode strip of the frame on screen to a canvas, read its capture time and compare it
// with this browser's wall clock. Only meaningful when the camera and the browser share a
// clock (same machine, as in tests and the demo); the page labels it so.

import { readStamp, stripHeight } from './barcode.js';

const INTERVAL_MS = 250;
// After this many frames without a barcode (a real camera), look only once a second.
const MISSES_BEFORE_SLOWING = 8;
const SLOW_INTERVAL_MS = 1000;
// The median of the last few readings: one late frame should not make the figure jump.
const WINDOW = 9;
// Raw readings kept for whoever wants percentiles (tests, window.sightline.latencyReadings).
const KEEP_READINGS = 2000;

export function emptyLatency() {
  return { latencyMs: null, barcodeFrame: null, barcodeTag: null, barcodeSeen: false, latencySamples: 0 };
}

function median(values) {
  const s = [...values].sort((a, b) => a - b);
  return s[Math.floor(s.length / 2)];
}

export class LatencyProbe {
  /** Calls onSample(figures) after every reading (see emptyLatency for the fields). */
  constructor(video, onSample = () => {}) {
    this.video = video;
    this.onSample = onSample;
    this.canvas = document.createElement('canvas');
    this.ctx = this.canvas.getContext('2d', { willReadFrequently: true });
    this.recent = [];
    this.readings = []; // every reading, ms, oldest first (at most KEEP_READINGS)
    this.misses = 0;
    this.last = 0;
    this.figures = emptyLatency();
    this.stopped = false;
    this.timer = null;
    this.frameCallback = null;
    this.schedule();
  }

  // Sample from requestVideoFrameCallback where there is one (the reading then belongs to
  // the frame just presented), else on a timer.
  schedule() {
    if (this.stopped) return;
    if (typeof this.video.requestVideoFrameCallback === 'function') {
      this.frameCallback = this.video.requestVideoFrameCallback(() => {
        this.frameCallback = null;
        const interval = this.misses >= MISSES_BEFORE_SLOWING ? SLOW_INTERVAL_MS : INTERVAL_MS;
        if (performance.now() - this.last >= interval) this.sample();
        this.schedule();
      });
    } else {
      const interval = this.misses >= MISSES_BEFORE_SLOWING ? SLOW_INTERVAL_MS : INTERVAL_MS;
      this.timer = setTimeout(() => {
        this.sample();
        this.schedule();
      }, interval);
    }
  }

  sample() {
    this.last = performance.now();
    const v = this.video;
    const width = v.videoWidth;
    const strip = stripHeight(width);
    if (!width || !strip || strip > v.videoHeight || !this.ctx) return;
    if (this.canvas.width !== width) this.canvas.width = width;
    if (this.canvas.height !== strip) this.canvas.height = strip;
    let stamp = null;
    try {
      this.ctx.drawImage(v, 0, 0, width, strip, 0, 0, width, strip);
      stamp = readStamp(this.ctx.getImageData(0, 0, width, strip).data, width, strip);
    } catch {
      return; // no frame to draw yet
    }
    const nowUs = Date.now() * 1000;
    if (!stamp) {
      this.misses++;
      if (this.misses === MISSES_BEFORE_SLOWING) {
        this.figures = { ...emptyLatency(), latencySamples: this.figures.latencySamples };
        this.onSample(this.figures);
      }
      return;
    }
    this.misses = 0;
    const ms = (nowUs - stamp.captureUs) / 1000;
    this.recent.push(ms);
    this.readings.push(Math.round(ms * 10) / 10);
    if (this.readings.length > KEEP_READINGS) this.readings.shift();
    if (this.recent.length > WINDOW) this.recent.shift();
    this.figures = {
      latencyMs: Math.round(median(this.recent)),
      barcodeFrame: stamp.frame,
      barcodeTag: stamp.tag,
      barcodeSeen: true,
      latencySamples: this.figures.latencySamples + 1,
    };
    this.onSample(this.figures);
  }

  stop() {
    this.stopped = true;
    clearTimeout(this.timer);
    if (this.frameCallback != null && typeof this.video.cancelVideoFrameCallback === 'function') {
      this.video.cancelVideoFrameCallback(this.frameCallback);
    }
  }
}
