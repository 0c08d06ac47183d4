// The video's own buttons, for phones and WebViews: "Tap to play" when the browser refuses to
// start the video by itself, and full screen.

/**
 * Every play() of the page goes through `play()` here. Autoplay of a muted, inline video is
 * allowed almost everywhere, but not everywhere: iOS in Low Power Mode and WebViews built
 * with "media playback requires user action" refuse it with NotAllowedError. Then only a
 * user gesture can start the video, so we show a big button and call play() from its click.
 */
export class TapToPlay {
  /**
   * @param {HTMLButtonElement} button covers the video; hidden until needed
   * @param {HTMLVideoElement} video
   * @param {object} opts
   * @param {(text: string, level?: string) => void} opts.log the activity log
   * @param {() => void} opts.onChange shown or hidden
   */
  constructor(button, video, { log = () => {}, onChange = () => {} } = {}) {
    this.button = button;
    this.video = video;
    this.log = log;
    this.onChange = onChange;
    this.shown = false;
    button.hidden = true;
    button.addEventListener('click', () => this.tapped());
    // Playing by other means (a gesture elsewhere on the page let a later play() through):
    // the button has nothing left to do. A `playing` that a pause has already overtaken
    // does not count.
    video.addEventListener('playing', () => {
      if (!video.paused) this.hide();
    });
  }

  /** Start the video; a refusal for want of a gesture shows the button. */
  play() {
    let p;
    try {
      p = this.video.play();
    } catch (e) {
      // Old WebViews throw instead of returning a promise.
      this.refused(e);
      return;
    }
    // Other refusals (AbortError: the source was replaced meanwhile) need no tap.
    if (p && typeof p.catch === 'function') p.catch((e) => this.refused(e));
  }

  refused(e) {
    if (!e || e.name !== 'NotAllowedError' || this.shown) return;
    this.shown = true;
    this.button.hidden = false;
    this.log(`the browser would not start the video by itself (${e.name}); showing "Tap to play"`, 'warn');
    this.onChange();
  }

  tapped() {
    // Called straight from the click, while the gesture still counts: no await before play().
    let p;
    try {
      p = this.video.play();
    } catch (e) {
      p = Promise.reject(e);
    }
    Promise.resolve(p).then(
      () => {
        // Logged here, not on hide(): `playing` may come first and hide the button already.
        this.log('playing after a tap');
        this.hide();
      },
      (e) => {
        this.log(`play after a tap failed: ${e.name}: ${e.message}`, 'warn');
        // Still refused: keep the button for another try.
        if (e.name !== 'NotAllowedError') this.hide();
      },
    );
  }

  hide() {
    if (!this.shown) return;
    this.shown = false;
    this.button.hidden = true;
    this.onChange();
  }
}

/**
 * Full screen for the video's container (so our buttons stay on top), with the prefixed API
 * of older Safari, and iPhone's video-only full screen where that is all there is. Hidden when
 * the browser has none of these (some WebViews).
 */
export class FullscreenButton {
  /**
   * @param {HTMLButtonElement} button
   * @param {HTMLElement} container what goes full screen
   * @param {HTMLVideoElement} video iPhone's fallback: only a <video> can go full screen there
   */
  constructor(button, container, video, { log = () => {} } = {}) {
    this.button = button;
    this.container = container;
    this.video = video;
    this.log = log;
    const d = document;
    this.canContainer = !!(
      (d.fullscreenEnabled && container.requestFullscreen) ||
      (d.webkitFullscreenEnabled && container.webkitRequestFullscreen)
    );
    this.canVideo = typeof video.webkitEnterFullscreen === 'function';
    button.hidden = !this.canContainer && !this.canVideo;
    button.addEventListener('click', () => this.toggle());
    for (const ev of ['fullscreenchange', 'webkitfullscreenchange']) {
      d.addEventListener(ev, () => this.render());
    }
    this.render();
  }

  get active() {
    return !!(document.fullscreenElement || document.webkitFullscreenElement);
  }

  /** Also iPhone's own player, which this button cannot leave (it has a "done" button). */
  get shown() {
    return this.active || !!this.video.webkitDisplayingFullscreen;
  }

  toggle() {
    const d = document;
    const c = this.container;
    const fail = (e) => this.log(`full screen refused: ${e && e.message ? e.message : e}`, 'warn');
    // No await before the request: it needs the click's gesture.
    try {
      if (this.active) {
        const exit = d.exitFullscreen ? d.exitFullscreen() : d.webkitExitFullscreen();
        if (exit && exit.catch) exit.catch(fail);
      } else if (this.canContainer) {
        const req = c.requestFullscreen ? c.requestFullscreen() : c.webkitRequestFullscreen();
        if (req && req.catch) req.catch(fail);
      } else if (this.canVideo) {
        // The system player takes over and has its own "done" button to come back.
        this.video.webkitEnterFullscreen();
      }
    } catch (e) {
      fail(e);
    }
  }

  render() {
    const on = this.active;
    this.button.setAttribute('aria-label', on ? 'Exit full screen' : 'Full screen');
    this.button.title = on ? 'Exit full screen' : 'Full screen';
    this.button.dataset.active = String(on);
  }
}
