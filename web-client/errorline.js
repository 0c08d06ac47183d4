// One line under a group of controls for what went wrong, hidden while nothing did. A
// screen reader announces it (role=alert); tests find it by its data-role.

export class ErrorLine {
  constructor(role) {
    this.el = document.createElement('p');
    this.el.className = 'field-error';
    if (role) this.el.dataset.role = role;
    this.el.hidden = true;
    this.el.setAttribute('role', 'alert');
  }

  /** Show `message`; an empty one hides the line. */
  show(message) {
    this.el.textContent = message || '';
    this.el.hidden = !message;
  }

  clear() {
    this.show('');
  }
}
