// Presets: pick one of the camera's named presets (built-in low_bandwidth, balanced, hd and
// any saved ones, from the state's `status.presets`) and apply it, save the current settings
// under a new name, or delete or rename a saved one (the built-in ones stay as they are).
// Names follow protocol/src/ids.rs `validate_preset_name`: 1..=32 letters, digits, '-', '_'
// or spaces, no space at either end (so we trim before checking).

import { ErrorLine } from './errorline.js';

export const MAX_PRESET_NAME_LEN = 32;

/** The presets every camera has, which cannot be deleted or renamed (ids.rs `BUILT_IN_PRESETS`). */
export const BUILT_IN_PRESETS = Object.freeze(['low_bandwidth', 'balanced', 'hd']);

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
  /** Callbacks: onApply(name), onSave(name), onDelete(name), onRename(name, newName). */
  constructor(container, { onApply = () => {}, onSave = () => {}, onDelete = () => {}, onRename = () => {} } = {}) {
    this.el = container;
    this.el.classList.add('presets');
    const pick = document.createElement('div');
    pick.className = 'row';
    this.select = document.createElement('select');
    this.select.setAttribute('aria-label', 'Preset');
    this.apply = button('Apply preset', 'apply-preset');
    this.remove = button('Delete', 'delete-preset');
    this.remove.title = 'Delete the chosen saved preset';
    pick.append(this.select, this.apply, this.remove);

    const save = document.createElement('form');
    save.className = 'row';
    this.name = document.createElement('input');
    this.name.type = 'text';
    this.name.placeholder = 'Save current as…';
    this.name.maxLength = MAX_PRESET_NAME_LEN;
    this.name.setAttribute('aria-label', 'New preset name');
    this.save = button('Save', 'save-preset');
    this.save.type = 'submit';
    this.rename = button('Rename', 'rename-preset');
    this.rename.title = 'Give the chosen saved preset the name typed here';
    save.append(this.name, this.save, this.rename);

    this.error = new ErrorLine();
    this.el.replaceChildren(pick, save, this.error.el);

    this.apply.addEventListener('click', () => {
      this.clearError();
      if (this.select.value) onApply(this.select.value);
    });
    // The typed name, checked; null (with the reason shown) when it will not do.
    const typedName = () => {
      const problem = presetNameProblem(this.name.value);
      if (problem) {
        this.showError(`name: ${problem}`);
        return null;
      }
      this.clearError();
      return this.name.value.trim();
    };
    save.addEventListener('submit', (ev) => {
      ev.preventDefault();
      const name = typedName();
      if (name) onSave(name);
    });
    this.remove.addEventListener('click', () => {
      this.clearError();
      if (this.select.value) onDelete(this.select.value);
    });
    this.rename.addEventListener('click', () => {
      const name = typedName();
      if (name && this.select.value) onRename(this.select.value, name);
    });
    this.select.addEventListener('change', () => this.setEnabled(this.enabled));
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
    // Only saved presets can be deleted or renamed.
    const builtIn = BUILT_IN_PRESETS.includes(this.select.value);
    this.remove.disabled = this.select.disabled || builtIn;
    this.rename.disabled = this.select.disabled || builtIn;
    this.name.disabled = !enabled;
    this.save.disabled = !enabled;
  }

  savedOk() {
    this.name.value = '';
  }

  showError(message) {
    this.error.show(message);
  }

  clearError() {
    this.error.clear();
  }
}

function button(text, action) {
  const b = document.createElement('button');
  b.type = 'button';
  b.textContent = text;
  b.dataset.action = action;
  return b;
}
