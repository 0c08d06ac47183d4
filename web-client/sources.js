// The camera's sources: when its publisher was given several (`status.sources`, the one
// running is `status.source_name`), a viewer with control switches among them by name with
// `select_source`. Hidden when there is only one.

export class SourcePicker {
  /** onSelect(name): switch to that source. */
  constructor(container, { onSelect = () => {} } = {}) {
    this.el = container;
    this.el.classList.add('row', 'sources');
    const label = document.createElement('label');
    label.textContent = 'Source';
    this.select = document.createElement('select');
    this.select.setAttribute('aria-label', 'Source');
    this.select.dataset.action = 'select-source';
    label.append(this.select);
    this.el.replaceChildren(label);
    this.select.addEventListener('change', () => {
      if (this.select.value && this.select.value !== this.current) onSelect(this.select.value);
    });
    this.current = null;
    this.setStatus(null);
  }

  setStatus(status) {
    const names = (status && status.sources) || [];
    this.current = (status && status.source_name) || null;
    if ([...this.select.options].map((o) => o.value).join('\n') !== names.join('\n')) {
      this.select.replaceChildren(...names.map((n) => new Option(n, n)));
    }
    if (this.current) this.select.value = this.current;
    this.el.hidden = names.length < 2;
  }

  setEnabled(enabled) {
    this.select.disabled = !enabled;
  }
}
