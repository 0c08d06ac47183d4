// The camera's schedule: presets applied at times of day, in the publisher's local time
// (the state's `status.schedule`, a list of {at: "HH:MM", preset}). The page edits a copy
// and sends the whole list with `set_schedule`; the camera answers with the new state.

import { ErrorLine } from './errorline.js';

/** The most entries a schedule holds (protocol control/schedule.rs `MAX_SCHEDULE_ENTRIES`). */
export const MAX_SCHEDULE_ENTRIES = 24;

/** `entries` with {at, preset} put in, replacing an entry at the same time, sorted by time. */
export function withEntry(entries, at, preset) {
  return [...entries.filter((e) => e.at !== at), { at, preset }].sort((a, b) => a.at.localeCompare(b.at));
}

export class ScheduleBar {
  /** onSet(entries): send this schedule; labelOf(preset): how to show a preset's name. */
  constructor(container, { onSet = () => {}, labelOf = (p) => p } = {}) {
    this.el = container;
    this.el.classList.add('schedule');
    this.onSet = onSet;
    this.labelOf = labelOf;
    const title = document.createElement('h3');
    title.textContent = "Schedule (the camera's local time)";
    this.list = document.createElement('ul');
    this.list.className = 'schedule-list';
    const add = document.createElement('form');
    add.className = 'row';
    this.time = document.createElement('input');
    this.time.type = 'time';
    this.time.required = true;
    this.time.setAttribute('aria-label', 'Time');
    this.preset = document.createElement('select');
    this.preset.setAttribute('aria-label', 'Preset at that time');
    this.add = document.createElement('button');
    this.add.type = 'submit';
    this.add.textContent = 'Add';
    this.add.dataset.action = 'add-schedule-entry';
    add.append(this.time, this.preset, this.add);
    this.error = new ErrorLine();
    this.el.replaceChildren(title, this.list, add, this.error.el);
    add.addEventListener('submit', (ev) => {
      ev.preventDefault();
      const at = this.time.value.slice(0, 5); // some browsers add seconds
      if (!/^\d\d:\d\d$/.test(at) || !this.preset.value) {
        this.showError('schedule: pick a time and a preset');
        return;
      }
      const next = withEntry(this.entries, at, this.preset.value);
      if (next.length > MAX_SCHEDULE_ENTRIES) {
        this.showError(`schedule: at most ${MAX_SCHEDULE_ENTRIES} entries`);
        return;
      }
      this.clearError();
      this.onSet(next);
    });
    this.entries = [];
    this.presets = [];
    this.setEnabled(false);
  }

  setStatus(status) {
    this.entries = (status && status.schedule) || [];
    const presets = (status && status.presets) || [];
    if (presets.join('\n') !== this.presets.join('\n')) {
      const keep = this.preset.value;
      this.preset.replaceChildren(...presets.map((p) => new Option(this.labelOf(p), p)));
      if (presets.includes(keep)) this.preset.value = keep;
      this.presets = presets;
    }
    this.list.replaceChildren(...this.entries.map((e) => {
      const li = document.createElement('li');
      li.dataset.at = e.at;
      const text = document.createElement('span');
      text.textContent = `${e.at} → ${this.labelOf(e.preset)}`;
      const remove = document.createElement('button');
      remove.type = 'button';
      remove.textContent = 'Remove';
      remove.dataset.action = 'remove-schedule-entry';
      remove.disabled = !this.enabled;
      remove.addEventListener('click', () => this.onSet(this.entries.filter((x) => x.at !== e.at)));
      li.append(text, remove);
      return li;
    }));
    if (!this.entries.length) {
      const li = document.createElement('li');
      li.className = 'empty';
      li.textContent = 'No scheduled changes.';
      this.list.append(li);
    }
  }

  setEnabled(enabled) {
    this.enabled = enabled;
    for (const c of [this.time, this.preset, this.add]) c.disabled = !enabled;
    for (const b of this.list.querySelectorAll('button')) b.disabled = !enabled;
  }

  showError(message) {
    this.error.show(message);
  }

  clearError() {
    this.error.clear();
  }
}
