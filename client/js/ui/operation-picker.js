// The operation menu of the new-layer form: a button showing the chosen operation, a popover listing them all
// by group (the unavailable ones greyed, with why); and the icon of each category of operation.

import { h, icon, fill } from './dom.js';

/** The operation menu: a button showing the chosen operation; a popover listing all, grouped. */
export class OperationPicker {
  constructor({ groups, value, onPick }) {
    this.groups = groups;
    this.value = value;
    this.onPick = onPick;
    this.button = h('button.op-picker', { type: 'button', 'aria-haspopup': 'listbox', dataset: { testid: 'op-picker' }, onclick: () => this.toggle() });
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
                  this.onPick(op.name);
                },
              },
              h('span.op-icon', { dataset: { category: op.category } }, icon(categoryIcon(op.category))),
              h('span.op-item-text', null, h('strong', null, op.title), h('small', null, op.unavailable ? `Unavailable — ${op.unavailable}` : op.description)),
            ),
          ),
        ),
      ),
    );
    this.el.append(this.popover);
    setTimeout(() => document.addEventListener('mousedown', this.outside, true), 0);
  }

  outside = (event) => {
    if (this.popover && !this.el.contains(event.target)) this.close();
  };

  close() {
    document.removeEventListener('mousedown', this.outside, true);
    this.popover?.remove();
    this.popover = null;
  }
}

export function categoryIcon(category) {
  return { generate: 'sparkles', edit: 'wand', mask: 'mask', input: 'image' }[category] || 'layers';
}
