// Presets: pick one of the camera's named presets (built-in low_bandwidth, balanced, hd and
// any saved ones, from the state's `status.presets`) and apply it, or save the current
// settings under a new name. Names follow protocol/src/ids.rs `validate_preset_name`: 1..=32
// letters, digits, '-', '_' or spaces, no space at either end (so we trim before checking).

export const MAX_PRESET_NAME_LEN = 32;

/** Null when `name` is a valid preset name, else why not. */
export function presetNameProblem(name) {
  const n = name.trim();
  if (!n) return 'give the preset a name';
  if (n.length > MAX_PRESET_NAME_LEN) return `at most ${MAX_PRESET_NAME_LEN} characters`;
  if (!/^[A-Za-z0-9_ -]+$/.test(n)) return "only letters, digits, '-', '_' and spaces";
  return null;
}

/** `low_bandwidth` → `low bandwidth`, `hd` → `HD`. */
export function presetLabel(name) {
  return name === 'hd' ? 'HD' : name.replace(/_/g, ' ');
}

export class PresetsBar {
  /** Callbacks: onApply(name), onSave(name). */
  constructor(container, { onApply = () => {}, onSave = () => {} } = {}) {
    this.el = container;
    this.el.classList.add('presets');
    const pick = document.createElement('div');
    pick.className = 'row';
    this.select = document.createElement('select');
    this.select.setAttribute('aria-label', 'Preset');
    this.apply = button('Apply preset', 'apply-preset');
    pick.append(this.select, this.apply);

    const save = document.createElement('form');
    save.className = 'row';
    this.name = document.createElement('input');
    this.name.type = 'text';
    this.name.placeholder = 'Save current as…';
    this.name.maxLength = MAX_PRESET_NAME_LEN;
    this.name.setAttribute('aria-label', 'New preset name');
    this.save = button('Save', 'save-preset');
    this.save.type = 'submit';
    save.append(this.name, this.save);

    this.error = document.createElement('p');
    this.error.className = 'field-error';
    this.error.hidden = true;
    this.error.setAttribute('role', 'alert');
    this.el.replaceChildren(pick, save, this.error);

    this.apply.addEventListener('click', () => {
      this.clearError();
      if (this.select.value) onApply(this.select.value);
    });
    save.addEventListener('submit', (ev) => {
      ev.preventDefault();
      const problem = presetNameProblem(this.name.value);
      if (problem) {
        this.showError(`name: ${problem}`);
        return;
      }
      this.clearError();
      onSave(this.name.value.trim());
    });
    this.presets = [];
    this.current = null;
    this.setEnabled(false);
  }

  setStatus(status) {
    const presets = status ? status.presets : [];
    const current = status ? status.preset : null;
    if (presets.join('\n') !== this.presets.join('\n')) {
      const keep = this.select.value;
      this.select.replaceChildren(...presets.map((p) => new Option(presetLabel(p), p)));
      if (presets.includes(keep)) this.select.value = keep;
      this.presets = presets;
    }
    if (current !== this.current && current && presets.includes(current)) this.select.value = current;
    this.current = current;
    this.setEnabled(this.enabled);
  }

  setEnabled(enabled) {
    this.enabled = enabled;
    this.select.disabled = !enabled || !this.presets.length;
    this.apply.disabled = this.select.disabled;
    this.name.disabled = !enabled;
    this.save.disabled = !enabled;
  }

  savedOk() {
    this.name.value = '';
  }

  showError(message) {
    this.error.textContent = message;
    this.error.hidden = false;
  }

  clearError() {
    this.error.hidden = true;
    this.error.textContent = '';
  }
}

function button(text, action) {
  const b = document.createElement('button');
  b.type = 'button';
  b.textContent = text;
  b.dataset.action = action;
  return b;
}
