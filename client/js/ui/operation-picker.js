// The operation menu of the new-layer form: a button showing the chosen operation, a popover listing them all
// by group (the unavailable ones greyed, with why); and the icon of each category of operation. By keyboard:
// Enter, Space or ArrowDown on the button opens it on the chosen one; arrows, Home and End move, Enter picks,
// Esc (or Tab) closes it and gives the focus back to the button.

import { h, icon, fill } from './dom.js';

/** The operation menu: a button showing the chosen operation; a popover listing all, grouped. */
export class OperationPicker {
  constructor({ groups, value, onPick }) {
    this.groups = groups;
    this.value = value;
    this.onPick = onPick;
    this.button = h('button.op-picker', { type: 'button', 'aria-haspopup': 'listbox', 'aria-expanded': 'false', dataset: { testid: 'op-picker' }, onclick: () => this.toggle(), onkeydown: (e) => this.buttonKey(e) });
    this.popover = null;
    this.el = h('div.op-picker-wrap', null, this.button);
    this.draw();
  }

  find(name) {
    for (const group of this.groups) for (const op of group.operations) if (op.name === name) return op;
    return null;
  }

  draw() {
    const op = this.find(this.value);
    fill(this.button, 
      h('span.op-icon', { dataset: { category: op?.category || '' } }, icon(categoryIcon(op?.category))),
      h('span.op-picker-text', null, h('strong', null, op?.title || 'Choose an operation'), h('small', null, op?.description || '')),
      icon('chevronDown'),
    );
  }

  set(value) {
    this.value = value;
    this.draw();
  }

  toggle() {
    if (this.popover) return this.close();
    this.popover = h(
      'div.op-menu',
      { role: 'listbox', dataset: { testid: 'op-menu' } },
      this.groups.map((group) =>
        h(
          'div.op-group',
          null,
          h('div.op-group-title', null, group.title),
          group.operations.map((op) =>
            h(
              'button.op-item',
              {
                type: 'button',
                role: 'option',
                disabled: !!op.unavailable,
                'aria-selected': String(op.name === this.value),
                class: op.name === this.value ? 'selected' : '',
                dataset: { op: op.name },
                title: op.unavailable ? `Unavailable: ${op.unavailable}` : op.description,
                onclick: () => {
                  this.close();
                  this.set(op.name);
                  this.button.focus();
                  this.onPick(op.name);
                  // the form may be built anew with its own menu: the focus goes to that one's button
                  if (!this.button.isConnected) document.querySelector('[data-testid=op-picker]')?.focus();
                },
              },
              h('span.op-icon', { dataset: { category: op.category } }, icon(categoryIcon(op.category))),
              h('span.op-item-text', null, h('strong', null, op.title), h('small', null, op.unavailable ? `Unavailable — ${op.unavailable}` : op.description)),
            ),
          ),
        ),
      ),
    );
    this.popover.addEventListener('keydown', (e) => this.menuKey(e));
    this.el.append(this.popover);
    this.button.setAttribute('aria-expanded', 'true');
    (this.items().find((item) => item.dataset.op === this.value) || this.items()[0])?.focus();
    setTimeout(() => document.addEventListener('mousedown', this.outside, true), 0);
  }

  /** The operations that can be picked, in the menu's order. */
  items() {
    return this.popover ? [...this.popover.querySelectorAll('.op-item:not([disabled])')] : [];
  }

  buttonKey(event) {
    if (event.key !== 'ArrowDown' && event.key !== 'ArrowUp') return;
    event.preventDefault();
    if (!this.popover) this.toggle();
  }

  menuKey(event) {
    const items = this.items();
    const at = items.indexOf(document.activeElement);
    const go = (index) => items[(index + items.length) % items.length]?.focus();
    if (event.key === 'ArrowDown') go(at + 1);
    else if (event.key === 'ArrowUp') go(at < 0 ? -1 : at - 1);
    else if (event.key === 'Home') go(0);
    else if (event.key === 'End') go(-1);
    else if (event.key === 'Escape' || event.key === 'Tab') {
      this.close();
      this.button.focus();
      if (event.key === 'Tab') return; // Tab goes on to the next field as usual
    } else return; // Enter and Space click the focused item (a button)
    event.preventDefault();
    event.stopPropagation(); // the editor's Esc (back to live, deselect) is not this one
  }

  outside = (event) => {
    if (this.popover && !this.el.contains(event.target)) this.close();
  };

  close() {
    document.removeEventListener('mousedown', this.outside, true);
    this.button.setAttribute('aria-expanded', 'false');
    this.popover?.remove();
    this.popover = null;
  }
}

export function categoryIcon(category) {
  return { generate: 'sparkles', edit: 'wand', mask: 'mask', input: 'image' }[category] || 'layers';
}
