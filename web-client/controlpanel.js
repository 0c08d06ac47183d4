// The settings panel, built from the camera's capabilities: a slider for an int or float
// range (with its step), a toggle for a bool, a select for choices, a text box for a string,
// and a disabled row with the reason for a setting the camera's source cannot honour.
//
// Each row says when a change takes effect ("applies live", "brief keyframe", "restarts
// camera"). Live settings are sent as soon as the control settles; the others are staged
// and go together with "Apply" (so width and height change in one all-or-nothing update).
// The panel only edits and shows; ControlRoom sends and routes the answers back here.

/** Display order: control/settings.rs `CameraSettings::NAMES`; unknown names go last. */
export const SETTING_ORDER = Object.freeze([
  'width', 'height', 'fps', 'bitrate', 'contrast', 'brightness', 'saturation', 'sharpness',
  'ai_enabled', 'ai_model', 'ai_confidence', 'camera_name', 'camera_index', 'encoding',
  'quality', 'auto_exposure', 'exposure_time',
]);

const LABELS = {
  width: 'Width',
  height: 'Height',
  fps: 'Frame rate',
  bitrate: 'Bitrate',
  contrast: 'Contrast',
  brightness: 'Brightness',
  saturation: 'Saturation',
  sharpness: 'Sharpness',
  ai_enabled: 'AI detection',
  ai_model: 'AI model',
  ai_confidence: 'AI confidence',
  camera_name: 'Camera name',
  camera_index: 'Camera index',
  encoding: 'Encoding',
  quality: 'Quality',
  auto_exposure: 'Auto exposure',
  exposure_time: 'Exposure time',
};

// Settings whose values are numbers on the wire even when offered as choices ("15", "30").
const NUMERIC = new Set([
  'width', 'height', 'fps', 'bitrate', 'contrast', 'brightness', 'saturation', 'sharpness',
  'ai_confidence', 'camera_index', 'quality', 'exposure_time',
]);
const BOOLEAN = new Set(['ai_enabled', 'auto_exposure']);

export const APPLY_HINTS = Object.freeze({
  live: 'applies live',
  keyframe: 'brief keyframe',
  restart: 'restarts camera',
});

export function labelFor(name) {
  return LABELS[name] || name.replace(/_/g, ' ');
}

/** A value as people read it: bitrates in kbit/s or Mbit/s, units where they help. */
export function formatValue(name, value) {
  if (value == null || value === '') return '–';
  if (typeof value === 'boolean') return value ? 'on' : 'off';
  if (name === 'bitrate' && typeof value === 'number') {
    return value >= 1e6 ? `${+(value / 1e6).toFixed(2)} Mbit/s` : `${Math.round(value / 1000)} kbit/s`;
  }
  if (name === 'fps') return `${value} fps`;
  if (name === 'width' || name === 'height') return `${value} px`;
  if (typeof value === 'number' && !Number.isInteger(value)) return String(+value.toFixed(3));
  return String(value);
}

/** Sort setting names for display. */
export function orderSettings(names) {
  const rank = (n) => {
    const i = SETTING_ORDER.indexOf(n);
    return i < 0 ? SETTING_ORDER.length : i;
  };
  return [...names].sort((a, b) => rank(a) - rank(b) || a.localeCompare(b));
}

/**
 * What control a capability gets: `{kind, ...}` with kind 'range' | 'toggle' | 'select' |
 * 'text' | 'disabled'. Pure, so the mapping is easy to check.
 */
export function controlFor(cap) {
  switch (cap.type) {
    case 'int':
      return { kind: 'range', min: cap.min, max: cap.max, step: cap.step || 1 };
    case 'float': {
      // No step from the camera: a hundred positions across the range.
      const step = cap.step || (cap.max - cap.min) / 100 || 0.01;
      return { kind: 'range', min: cap.min, max: cap.max, step };
    }
    case 'bool':
      return { kind: 'toggle' };
    case 'enum':
      return { kind: 'select', choices: cap.choices };
    case 'string':
      return { kind: 'text', maxLength: cap.max_len };
    default:
      return { kind: 'disabled', reason: cap.reason || 'not supported by this camera' };
  }
}

/** The value to send for what the control shows. */
export function wireValue(name, cap, raw) {
  switch (cap.type) {
    case 'int':
      return Math.round(Number(raw));
    case 'float':
      return Number(raw);
    case 'bool':
      return Boolean(raw);
    case 'enum':
      if (NUMERIC.has(name) && raw.trim() !== '' && Number.isFinite(Number(raw))) return Number(raw);
      if (BOOLEAN.has(name)) return raw === 'true';
      return raw;
    default:
      return String(raw);
  }
}

let uid = 0;

/** One row per setting. Callbacks: onEdit(name, value, apply) when a control settles. */
export class SettingsPanel {
  constructor(container, { onEdit = () => {} } = {}) {
    this.el = container;
    this.onEdit = onEdit;
    this.rows = new Map(); // name -> row
    this.caps = null;
    this.settings = {};
    this.enabled = false;
  }

  setCapabilities(caps) {
    this.caps = caps;
    this.rows.clear();
    const rows = orderSettings(Object.keys(caps || {})).map((name) => this.buildRow(name, caps[name]));
    this.el.replaceChildren(...rows.map((r) => r.el));
    this.setEnabled(this.enabled);
  }

  buildRow(name, cap) {
    const spec = controlFor(cap);
    const id = `setting-${name}-${++uid}`;
    const el = document.createElement('div');
    el.className = 'setting';
    el.dataset.setting = name;
    el.dataset.kind = spec.kind;
    const head = document.createElement('div');
    head.className = 'setting-head';
    const label = document.createElement('label');
    label.htmlFor = id;
    label.textContent = labelFor(name);
    const value = document.createElement('output');
    value.className = 'setting-value';
    const hint = document.createElement('span');
    hint.className = 'hint';
    hint.dataset.apply = cap.apply || 'none';
    hint.textContent = spec.kind === 'disabled' ? 'unsupported' : APPLY_HINTS[cap.apply] || '';
    if (cap.path) {
      el.dataset.path = cap.path;
      hint.textContent += cap.path === 'hardware' ? ' · on the camera' : ' · in software';
    }
    head.append(label, value, hint);

    let input;
    switch (spec.kind) {
      case 'range':
        input = document.createElement('input');
        input.type = 'range';
        input.min = String(spec.min);
        input.max = String(spec.max);
        input.step = String(spec.step);
        break;
      case 'toggle':
        input = document.createElement('input');
        input.type = 'checkbox';
        input.setAttribute('role', 'switch');
        break;
      case 'select':
        input = document.createElement('select');
        for (const c of spec.choices) input.append(new Option(c, c));
        break;
      case 'text':
        input = document.createElement('input');
        input.type = 'text';
        input.maxLength = spec.maxLength;
        input.autocomplete = 'off';
        break;
      default:
        input = document.createElement('input');
        input.type = 'text';
        input.disabled = true;
        input.value = 'not available';
    }
    input.id = id;
    input.className = 'setting-input';
    const error = document.createElement('p');
    error.className = 'field-error';
    error.hidden = true;
    error.setAttribute('role', 'alert');
    el.append(head, input);
    if (spec.kind === 'disabled') {
      const why = document.createElement('p');
      why.className = 'reason';
      why.textContent = spec.reason;
      el.append(why);
    }
    el.append(error);

    const row = { name, cap, spec, el, input, value, error, dirty: false, active: false };
    this.rows.set(name, row);
    if (spec.kind === 'disabled') return row;

    const read = () => (spec.kind === 'toggle' ? input.checked : input.value);
    // Sliders show the value while dragging and send once released; the rest on change.
    input.addEventListener('input', () => {
      row.active = spec.kind === 'range';
      row.value.textContent = formatValue(name, wireValue(name, cap, read()));
    });
    input.addEventListener('change', () => {
      row.active = false;
      row.dirty = true;
      el.classList.add('dirty');
      this.clearError(name);
      this.onEdit(name, wireValue(name, cap, read()), cap.apply);
    });
    this.show(row, this.settings[name]);
    return row;
  }

  /** The camera's current settings: rows the user is not editing follow them. */
  setSettings(settings) {
    this.settings = { ...(settings || {}) };
    for (const row of this.rows.values()) {
      if (!row.dirty && !row.active) this.show(row, this.settings[row.name]);
    }
  }

  show(row, v) {
    if (row.spec.kind === 'disabled') {
      row.value.textContent = '';
      return;
    }
    row.value.textContent = formatValue(row.name, v);
    if (v == null) return;
    switch (row.spec.kind) {
      case 'toggle':
        row.input.checked = Boolean(v);
        break;
      case 'select': {
        const text = String(v);
        if (![...row.input.options].some((o) => o.value === text)) row.input.append(new Option(text, text));
        row.input.value = text;
        break;
      }
      default:
        row.input.value = String(v);
    }
  }

  /** Forget edits of `names` (sent and answered) and show the current values again. */
  settle(names) {
    for (const name of names) {
      const row = this.rows.get(name);
      if (!row) continue;
      row.dirty = false;
      row.el.classList.remove('dirty', 'busy');
      this.show(row, this.settings[name]);
    }
  }

  setBusy(names, busy) {
    for (const name of names) this.rows.get(name)?.el.classList.toggle('busy', busy);
  }

  setEnabled(enabled) {
    this.enabled = enabled;
    for (const row of this.rows.values()) {
      if (row.spec.kind !== 'disabled') row.input.disabled = !enabled;
    }
  }

  /** Show an error next to `field`'s control; false when no such row. */
  showError(field, message) {
    const row = field && this.rows.get(field);
    if (!row) return false;
    row.error.textContent = message;
    row.error.hidden = false;
    row.el.classList.add('has-error');
    return true;
  }

  clearError(name) {
    const row = this.rows.get(name);
    if (!row) return;
    row.error.hidden = true;
    row.error.textContent = '';
    row.el.classList.remove('has-error');
  }

  clearErrors() {
    for (const name of this.rows.keys()) this.clearError(name);
  }

  get names() {
    return [...this.rows.keys()];
  }

  /** Errors shown now, by field (for window.sightline). */
  get errors() {
    const out = {};
    for (const row of this.rows.values()) if (!row.error.hidden) out[row.name] = row.error.textContent;
    return out;
  }
}
