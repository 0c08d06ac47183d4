// The control room's camera side: the control channel client, this viewer's play/pause, the
// camera's start/stop/keyframe/restart buttons, presets and the settings panel, wired
// together. It builds its own DOM inside one container and tells the page through
// callbacks: log(text, level) for the activity log, onChange() to re-render.
//
// Who may do what is the server's decision (welcome.may_control); a view-only viewer gets
// the panel disabled with a note, and may still pause and resume its own video.

import { ControlClient } from './control.js';
import { ErrorLine } from './errorline.js';
import { SettingsPanel, formatValue, labelFor } from './controlpanel.js';
import { PresetsBar, presetLabel } from './presets.js';
import { ScheduleBar } from './schedule.js';
import { SourcePicker } from './sources.js';

// Live settings are sent once the control has been still this long, so a run of quick
// changes becomes one command (the SFU rate-limits every viewer).
const LIVE_DEBOUNCE_MS = 250;
// After the welcome, the SFU replays the camera's capabilities and state at once; ask only
// if they have not come by then (the publisher may have no control channel yet).
const ASK_AFTER_WELCOME_MS = 400;

// Answers to these only fill the panel; they are not worth a log line.
const READ_ONLY = ['get_status', 'get_capabilities'];

const ACTIONS = [
  { command: 'start_stream', text: 'Start stream', done: 'stream started' },
  { command: 'stop_stream', text: 'Stop stream', done: 'stream stopped' },
  { command: 'request_keyframe', text: 'Keyframe', done: 'keyframe requested' },
  { command: 'restart_camera', text: 'Restart camera', done: 'camera restarting' },
];

function el(tag, className, text) {
  const e = document.createElement(tag);
  if (className) e.className = className;
  if (text != null) e.textContent = text;
  return e;
}


export class ControlRoom {
  constructor(root, { log = () => {}, onChange = () => {}, onTeardown = () => {}, onMotion = () => {} } = {}) {
    this.root = root;
    this.log = log;
    this.onChange = onChange;
    this.onTeardown = onTeardown;
    this.disconnected = false; // the page's Disconnect: the button then offers Connect
    this.paused = false;
    this.pauseAllowed = true; // false on the MSE socket: pause/resume are data-channel-only
    this.cameraOnline = true;
    this.unavailable = null; // why control is unavailable (the SFU said so)
    this.live = {}; // live edits waiting for the debounce
    this.liveTimer = null;
    this.staged = {}; // keyframe/restart edits waiting for "Apply"
    this.askTimer = null;
    this.prevStatus = null;
    this.build();
    this.client = new ControlClient({
      onChannel: (s) => this.onChannel(s),
      onWelcome: (w) => this.onWelcome(w),
      onCapabilities: (c) => this.onCapabilities(c),
      onState: (m) => this.onState(m),
      onResponse: (r, req) => this.onResponse(r, req),
      onMotion,
      onProblem: (text) => this.log(`unreadable control message: ${text}`, 'error'),
    });
    this.render();
  }

  // ---- DOM ----------------------------------------------------------------------------------

  build() {
    const r = this.root;
    r.classList.add('control');
    const h = el('h2', null, 'Control');
    this.note = el('p', 'control-note');
    this.note.dataset.role = 'note';

    const viewer = el('div', 'row actions');
    this.pauseButton = el('button', 'play-pause', 'Pause');
    this.pauseButton.type = 'button';
    this.pauseButton.dataset.action = 'pause';
    this.pauseButton.title = 'Stop or restart the video to this viewer only';
    this.teardownButton = el('button', 'teardown', 'Disconnect');
    this.teardownButton.type = 'button';
    this.teardownButton.dataset.action = 'teardown';
    this.teardownButton.title = 'Close this viewer\'s connection to the server, or open it again';
    this.teardownButton.addEventListener('click', () => this.onTeardown());
    this.streamLine = el('span', 'stream-line');
    viewer.append(this.pauseButton, this.teardownButton, this.streamLine);

    const camera = el('div', 'row actions');
    this.actionButtons = ACTIONS.map((a) => {
      const b = el('button', null, a.text);
      b.type = 'button';
      b.dataset.action = a.command;
      b.addEventListener('click', () => this.action(a));
      return b;
    });
    camera.append(...this.actionButtons);
    this.actionsError = new ErrorLine('actions-error');

    this.presetsEl = el('div');
    this.presets = new PresetsBar(this.presetsEl, {
      onApply: (name) => this.applyPreset(name),
      onSave: (name) => this.presetCommand('save_preset', { name }),
      onDelete: (name) => this.presetCommand('delete_preset', { name }),
      onRename: (name, newName) => this.presetCommand('rename_preset', { name, new_name: newName }),
    });

    this.sourcesEl = el('div');
    this.sources = new SourcePicker(this.sourcesEl, {
      onSelect: (name) => this.selectSource(name),
    });
    this.scheduleEl = el('div');
    this.schedule = new ScheduleBar(this.scheduleEl, {
      onSet: (entries) => this.setSchedule(entries),
      labelOf: presetLabel,
    });

    this.settingsEl = el('div', 'settings');
    this.panel = new SettingsPanel(this.settingsEl, {
      onEdit: (name, value, apply) => this.edit(name, value, apply),
    });

    this.applyBar = el('div', 'row apply-bar');
    this.applyButton = el('button', 'primary', 'Apply');
    this.applyButton.type = 'button';
    this.applyButton.id = 'control-apply';
    this.discardButton = el('button', null, 'Discard');
    this.discardButton.type = 'button';
    this.applyBar.append(this.applyButton, this.discardButton);
    this.applyButton.addEventListener('click', () => this.applyStaged());
    this.discardButton.addEventListener('click', () => this.discardStaged());

    this.generalError = new ErrorLine('error');
    this.pauseButton.addEventListener('click', () => this.togglePause());
    r.replaceChildren(h, this.note, viewer, camera, this.actionsError.el, this.sourcesEl,
      this.presetsEl, this.settingsEl, this.applyBar, this.scheduleEl, this.generalError.el);
  }

  render() {
    const c = this.client;
    const open = c.channel === 'open';
    const control = open && c.mayControl && this.cameraOnline;
    this.root.dataset.channel = c.channel;
    this.root.dataset.mayControl = String(c.mayControl);
    this.note.textContent = this.noteText();
    this.pauseButton.disabled = !open || !this.pauseAllowed;
    this.pauseButton.hidden = !this.pauseAllowed;
    this.pauseButton.textContent = this.paused ? 'Play' : 'Pause';
    this.pauseButton.setAttribute('aria-pressed', String(this.paused));
    this.teardownButton.textContent = this.disconnected ? 'Connect' : 'Disconnect';
    this.teardownButton.setAttribute('aria-pressed', String(this.disconnected));
    for (const b of this.actionButtons) b.disabled = !control || !!this.unavailable;
    // Presets come with the camera's state; before it there is nothing to pick.
    this.presetsEl.hidden = !c.status;
    this.presets.setEnabled(control && !this.unavailable && !!c.status);
    this.scheduleEl.hidden = !c.status;
    this.schedule.setEnabled(control && !this.unavailable && !!c.status);
    this.sources.setEnabled(control && !this.unavailable);
    this.panel.setEnabled(control);
    const staged = Object.keys(this.staged).length;
    this.applyBar.hidden = staged === 0;
    this.applyButton.textContent = staged === 1 ? 'Apply 1 change' : `Apply ${staged} changes`;
    this.applyButton.disabled = !control;
    const s = c.status;
    this.streamLine.textContent = s
      ? `${s.streaming ? 'Streaming' : 'Stream stopped'}${s.preset ? ` · ${presetLabel(s.preset)}` : ''}`
      : '';
  }

  /** The header's control indicator: `{state, text}`, state styled like the other badges. */
  badge() {
    const c = this.client;
    if (c.channel !== 'open') return { state: c.channel === 'connecting' ? 'connecting' : 'new', text: `control: ${c.channel === 'connecting' ? 'connecting' : '–'}` };
    if (!c.welcome) return { state: 'connecting', text: 'control: connecting' };
    if (!c.mayControl) return { state: 'view-only', text: 'control: view only' };
    if (this.unavailable && !c.capabilities) return { state: 'disconnected', text: 'control: no camera' };
    return { state: 'open', text: 'control: yes' };
  }

  noteText() {
    const c = this.client;
    if (c.channel === 'closed') return 'Control connects with the video.';
    if (c.channel === 'connecting' || !c.welcome) return 'Opening the control channel…';
    if (!c.mayControl) {
      const may = this.pauseAllowed ? 'watch, pause and resume' : 'watch';
      return `View only: you may ${may}, but not change the camera. ` +
        'Open this page with ?key=… to control it.';
    }
    if (!this.cameraOnline) return 'Camera offline.';
    if (this.unavailable && !c.capabilities) return `Control unavailable: ${this.unavailable}`;
    if (!c.capabilities) return 'Waiting for the camera to describe its settings…';
    return 'You may control this camera.';
  }

  // ---- peer connection life ---------------------------------------------------------------

  /** A new peer connection: open its control channel (before the offer is made). */
  attach(pc) {
    this.pauseAllowed = true;
    this.reset();
    this.client.attach(pc);
  }

  /**
   * A control channel that is not a peer connection's (the MSE socket, mse.js): the same
   * messages, but pause/resume are the SFU's per-peer commands and do not exist there.
   */
  attachChannel(channel, { pauseAllowed = false } = {}) {
    this.pauseAllowed = pauseAllowed;
    this.reset();
    this.client.attachChannel(channel);
  }

  detach() {
    this.client.detach();
    this.reset();
  }

  reset() {
    clearTimeout(this.liveTimer);
    clearTimeout(this.askTimer);
    this.live = {};
    this.staged = {};
    this.paused = false; // a new peer at the SFU is not paused
    this.unavailable = null;
    this.prevStatus = null;
    this.panel.setCapabilities(null);
    this.panel.setSettings(null);
    this.presets.setStatus(null);
    this.schedule.setStatus(null);
    this.sources.setStatus(null);
    this.actionsError.clear();
    this.generalError.clear();
    this.render();
  }

  setDisconnected(disconnected) {
    if (disconnected === this.disconnected) return;
    this.disconnected = disconnected;
    this.render();
  }

  setCameraOnline(online) {
    if (online === this.cameraOnline) return;
    this.cameraOnline = online;
    // The publisher that comes back announces its capabilities and state again.
    if (!online) {
      this.unavailable = null;
      this.client.forgetState();
    }
    this.render();
  }

  // ---- messages from the camera ----------------------------------------------------------

  onChannel(state) {
    if (state === 'open') this.log('control channel open');
    else if (state === 'closed' && this.wasOpen) this.log('control channel closed', 'warn');
    this.wasOpen = state === 'open';
    this.render();
    this.onChange();
  }

  onWelcome(w) {
    const rate = w.rate_limit.per_second != null
      ? ` (up to ${w.rate_limit.per_second} commands/s, bursts of ${w.rate_limit.burst})`
      : '';
    this.log(w.may_control
      ? `control: you are ${w.viewer} and may control ${w.camera}${rate}`
      : `control: you are ${w.viewer}, view only on ${w.camera}`);
    clearTimeout(this.askTimer);
    this.askTimer = setTimeout(() => this.askMissing(), ASK_AFTER_WELCOME_MS);
    this.render();
    this.onChange();
  }

  async askMissing() {
    const c = this.client;
    if (c.channel !== 'open') return;
    if (!c.capabilities) await c.request('get_capabilities');
    if (!c.settings && !this.unavailable) await c.request('get_status');
  }

  onCapabilities(caps) {
    this.unavailable = null;
    const names = Object.keys(caps);
    const unsupported = names.filter((n) => caps[n].type === 'unsupported').length;
    this.log(`camera offers ${names.length - unsupported} settings${unsupported ? ` (${unsupported} unsupported)` : ''}`);
    this.staged = {};
    this.panel.setCapabilities(caps);
    this.panel.setSettings(this.client.settings);
    this.render();
    this.onChange();
  }

  onState(m) {
    this.unavailable = null;
    this.panel.setSettings(m.settings);
    this.setStatus(m.status);
    const who = this.who(m.by);
    if (m.changed.length) {
      const what = m.changed.map((n) => `${labelFor(n)} → ${formatValue(n, m.settings[n])}`).join(', ');
      this.log(`${who} changed ${what}`);
    }
    const prev = this.prevStatus;
    if (prev && prev.streaming !== m.status.streaming) {
      this.log(`${who} ${m.status.streaming ? 'started' : 'stopped'} the stream`, m.status.streaming ? 'info' : 'warn');
    }
    if (prev && m.status.preset && prev.preset !== m.status.preset) {
      this.log(`${who} applied preset ${presetLabel(m.status.preset)}`);
    }
    if (prev && m.status.source_name && prev.source_name !== m.status.source_name) {
      this.log(`${who} switched to source ${m.status.source_name}`);
    }
    if (!prev) {
      this.log(`camera state: ${m.status.streaming ? 'streaming' : 'not streaming'}` +
        `${m.status.preset ? `, preset ${presetLabel(m.status.preset)}` : ''}`);
    }
    this.prevStatus = m.status;
    this.render();
    this.onChange();
  }

  who(by) {
    if (!by) return 'the camera';
    if (by === 'schedule') return 'the schedule';
    const me = this.client.welcome && this.client.welcome.viewer;
    return by === me ? `you (${by})` : `viewer ${by}`;
  }

  /** Every answer, for the log; the one that sent it shows errors next to its control. */
  onResponse(r, req) {
    // The client keeps broadcasts over replies; show what it keeps.
    if (r.settings || r.status) {
      this.panel.setSettings(this.client.settings);
      this.setStatus(this.client.status);
    }
    const command = req ? req.type : r.command || 'command';
    if (r.success) {
      if (!READ_ONLY.includes(command)) {
        this.log(`${command}: ${r.message || 'done'}`);
      }
    } else if (r.error.code === 'unavailable') {
      // Not an error of ours: the camera has no control channel (yet). Say it once.
      if (this.unavailable !== r.error.message) this.log(`control unavailable: ${r.error.message}`, 'warn');
      this.unavailable = r.error.message;
    } else if (r.error.code !== 'closed') {
      const field = r.error.field ? ` (${r.error.field})` : '';
      this.log(`${command} refused${field}: ${r.error.code}: ${r.error.message}`, 'error');
      if (!req) this.generalError.show(r.error.message);
    }
    this.render();
    this.onChange();
  }

  // ---- commands ------------------------------------------------------------------------------

  async togglePause() {
    if (!this.pauseAllowed) return;
    const command = this.paused ? 'resume' : 'pause';
    this.pauseButton.disabled = true;
    const r = await this.client.request(command);
    if (r.success) this.paused = command === 'pause';
    else this.actionsError.show(r.error.message);
    this.render();
    this.onChange();
  }

  async action(a) {
    this.actionsError.clear();
    const r = await this.client.request(a.command);
    if (!r.success) this.actionsError.show(r.error.message);
    this.render();
  }

  async applyPreset(name) {
    const r = await this.client.request('apply_preset', { name });
    if (!r.success) this.presets.showError(r.error.message);
    else this.panel.setSettings(this.client.settings);
  }

  /** The camera's status, to the parts of the page that show it. */
  setStatus(status) {
    this.presets.setStatus(status);
    this.schedule.setStatus(status);
    this.sources.setStatus(status);
  }

  async setSchedule(entries) {
    const r = await this.client.request('set_schedule', { schedule: entries });
    if (!r.success) this.schedule.showError(r.error.message);
  }

  async selectSource(name) {
    const r = await this.client.request('select_source', { name });
    // Refused: show the source that still runs.
    if (!r.success) {
      this.actionsError.show(r.error.message);
      this.sources.setStatus(this.client.status);
    }
  }

  /** save_preset, delete_preset or rename_preset; the new list comes with the camera's state. */
  async presetCommand(command, args) {
    const r = await this.client.request(command, args);
    if (!r.success) this.presets.showError(r.error.message);
    else this.presets.savedOk();
  }

  /** A control settled on a new value. */
  edit(name, value, apply) {
    this.generalError.clear();
    if (apply === 'live') {
      this.live[name] = value;
      clearTimeout(this.liveTimer);
      this.liveTimer = setTimeout(() => this.flushLive(), LIVE_DEBOUNCE_MS);
    } else {
      this.staged[name] = value;
      this.render();
    }
  }

  async flushLive() {
    const update = this.live;
    this.live = {};
    if (Object.keys(update).length) await this.sendUpdate(update, { keepOnFailure: false });
  }

  async applyStaged() {
    const update = { ...this.staged };
    if (!Object.keys(update).length) return;
    this.applyButton.disabled = true;
    const ok = await this.sendUpdate(update, { keepOnFailure: true });
    if (ok) {
      for (const n of Object.keys(update)) if (this.staged[n] === update[n]) delete this.staged[n];
    }
    this.render();
  }

  discardStaged() {
    const names = Object.keys(this.staged);
    this.staged = {};
    this.panel.settle(names);
    for (const n of names) this.panel.clearError(n);
    this.render();
  }

  /**
   * One all-or-nothing update. The error goes next to the field it names (else under the
   * panel). A refused live edit snaps back to the camera's value; a refused staged one
   * stays so it can be corrected.
   */
  async sendUpdate(update, { keepOnFailure }) {
    const names = Object.keys(update);
    this.panel.setBusy(names, true);
    const r = await this.client.request('update_settings', { settings: update });
    this.panel.setBusy(names, false);
    if (r.success) {
      this.panel.setSettings(this.client.settings);
      this.panel.settle(names);
      for (const n of names) this.panel.clearError(n);
      return true;
    }
    const field = r.error.field;
    // A field without a row of its own (`settings`) belongs to the one control that sent.
    const shown = this.panel.showError(field, r.error.message) ||
      (names.length === 1 && this.panel.showError(names[0], r.error.message));
    if (!shown) this.generalError.show(r.error.message);
    if (!keepOnFailure) this.panel.settle(names);
    return false;
  }

  // ---- status for window.sightline -----------------------------------------------------

  snapshot() {
    const c = this.client;
    const w = c.welcome;
    return {
      channel: c.channel,
      viewer: w ? w.viewer : null,
      camera: w ? w.camera : null,
      mayControl: w ? w.may_control : null,
      rateLimit: w ? { ...w.rate_limit } : null,
      welcome: w ? { ...w, rate_limit: { ...w.rate_limit } } : null,
      capabilities: c.capabilities ? Object.keys(c.capabilities) : [],
      capabilityTypes: c.capabilities
        ? Object.fromEntries(Object.entries(c.capabilities).map(([n, cap]) => [n, { ...cap }]))
        : {},
      settings: c.settings ? { ...c.settings } : null,
      status: c.status ? { ...c.status, presets: [...c.status.presets] } : null,
      lastState: c.lastState
        ? {
          version: c.lastState.version,
          by: c.lastState.by,
          changed: [...c.lastState.changed],
          timestamp: c.lastState.timestamp,
        }
        : null,
      lastResponse: c.lastResponse ? JSON.parse(JSON.stringify(c.lastResponse)) : null,
      paused: this.paused,
      pauseAllowed: this.pauseAllowed,
      pending: c.pendingCount,
      staged: Object.keys(this.staged),
      errors: this.panel.errors,
      unavailable: this.unavailable,
      note: this.note.textContent,
    };
  }
}
