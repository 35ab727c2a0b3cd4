// The layer panel: the stack top first, with thumbnails, names (double-click to rename), visibility,
// opacity, render status and progress, cancel / retry, delete, and drag to reorder (or, on a focused row,
// Alt+ArrowUp / Alt+ArrowDown; ArrowUp / ArrowDown move the focus between rows).

import { h, icon, iconButton, fill, paintRange } from './dom.js';
import { blobUrl } from '../api.js';
import { initials } from '../identity.js';
import { layerStatus, renderFraction, isCancelled, cancelledText } from '../renders.js';

export class LayerPanel {
  /**
   * actions: select(id), toggleVisible(layer), setOpacity(layer, value, final), rename(layer, name),
   * move(layer, index), remove(layer), cancel(layer), retry(layer), download(layer), upload()
   */
  constructor(actions) {
    this.actions = actions;
    this.rows = new Map();
    this.list = h('div.layer-list', { role: 'listbox', 'aria-label': 'Layers', dataset: { testid: 'layer-list' } });
    this.empty = h('div.panel-empty', null, icon('layers', { size: 22 }), h('p', null, 'No layers yet'), h('small', null, 'Each operation adds a layer. Layers made from others stay linked to them.'));
    this.el = h('div.layer-panel', null, this.list, this.empty);
    this.readOnly = false;
    this.selected = null;
    this.bindDrag();
  }

  /** `previews`: layer id -> the latest look at its render in progress; `past`: a past version is shown. */
  /** `author(id)`: who added a layer, {name, colour}, or null (shown in its row). */
  update({ state, selected, renders, previews = new Map(), people, readOnly, operations, past = false, author = () => null }) {
    this.state = state;
    this.selected = selected;
    this.readOnly = readOnly;
    this.el.classList.toggle('read-only', readOnly);
    const ids = [...state.order].reverse(); // top of the stack first
    this.empty.hidden = ids.length > 0;
    const selectedBy = new Map();
    for (const person of people) {
      if (!person.selected_layer) continue;
      if (!selectedBy.has(person.selected_layer)) selectedBy.set(person.selected_layer, []);
      selectedBy.get(person.selected_layer).push(person);
    }
    for (const [id, row] of this.rows) {
      if (!state.layers[id]) {
        row.el.remove();
        this.rows.delete(id);
      }
    }
    let previous = null;
    for (const id of ids) {
      const layer = state.layers[id];
      let row = this.rows.get(id);
      if (!row) {
        row = new LayerRow(layer, this.actions);
        this.rows.set(id, row);
      }
      row.update(layer, {
        selected: id === selected,
        render: renders.get(id),
        preview: previews.get(id) || null,
        past,
        people: selectedBy.get(id) || [],
        author: author(id),
        readOnly,
        operation: operations.get(layer.operation),
        parents: layer.parents.map((p) => state.layers[p]?.name).filter(Boolean),
        order: state.order,
      });
      const expected = previous ? previous.nextSibling : this.list.firstChild;
      if (expected !== row.el) {
        const focused = row.el.contains(document.activeElement); // moving a node in the DOM drops its focus
        this.list.insertBefore(row.el, expected);
        if (focused && document.activeElement === document.body) row.el.focus();
      }
      previous = row.el;
    }
  }

  // Drag to reorder: pointer based, on the row's grip (or anywhere on the row after a few pixels).
  bindDrag() {
    let drag = null;
    this.list.addEventListener('pointerdown', (event) => {
      const rowEl = event.target.closest('.layer-row');
      if (!rowEl || this.readOnly || event.button !== 0) return;
      if (event.target.closest('button, input, .layer-name-input')) return;
      drag = { id: rowEl.dataset.layerId, rowEl, startY: event.clientY, active: false, pointerId: event.pointerId };
    });
    window.addEventListener('pointermove', (event) => {
      if (!drag) return;
      const dy = event.clientY - drag.startY;
      if (!drag.active && Math.abs(dy) > 5) {
        drag.active = true;
        drag.rowEl.classList.add('dragging');
        this.list.classList.add('reordering');
        drag.marker = h('div.drop-marker');
        this.list.append(drag.marker);
      }
      if (!drag.active) return;
      drag.rowEl.style.transform = `translateY(${dy}px)`;
      const rows = [...this.list.querySelectorAll('.layer-row')].filter((r) => r !== drag.rowEl);
      let slot = rows.length;
      for (let i = 0; i < rows.length; i++) {
        const rect = rows[i].getBoundingClientRect();
        if (event.clientY < rect.top + rect.height / 2) {
          slot = i;
          break;
        }
      }
      drag.slot = slot;
      const listRect = this.list.getBoundingClientRect();
      const anchor = rows[slot] || rows[rows.length - 1];
      const y = anchor ? (rows[slot] ? anchor.getBoundingClientRect().top : anchor.getBoundingClientRect().bottom) : listRect.top;
      drag.marker.style.top = `${y - listRect.top + this.list.scrollTop - 1}px`;
    });
    const end = () => {
      if (!drag) return;
      const { active, rowEl, id, slot, marker } = drag;
      drag = null;
      if (!active) return;
      rowEl.classList.remove('dragging');
      rowEl.style.transform = '';
      marker?.remove();
      this.list.classList.remove('reordering');
      // suppress the click that follows the drag
      const swallow = (e) => {
        e.stopPropagation();
        e.preventDefault();
      };
      rowEl.addEventListener('click', swallow, { capture: true, once: true });
      setTimeout(() => rowEl.removeEventListener('click', swallow, { capture: true }), 0);
      if (slot === undefined) return;
      const count = this.state.order.length;
      // `slot` counts rows from the top, without the dragged one; the stack index counts from the bottom
      const index = count - 1 - slot;
      const layer = this.state.layers[id];
      if (layer && index !== this.state.order.indexOf(id)) this.actions.move(layer, index);
    };
    window.addEventListener('pointerup', end);
    window.addEventListener('pointercancel', end);
  }
}

class LayerRow {
  constructor(layer, actions) {
    this.actions = actions;
    this.layer = layer;
    this.thumbImg = h('img', { alt: '', draggable: false });
    this.thumbIcon = h('span.thumb-icon');
    this.thumbStatus = h('span.thumb-status');
    this.thumb = h('div.layer-thumb', null, this.thumbImg, this.thumbIcon, this.thumbStatus);
    this.name = h('span.layer-name', { title: 'Double-click to rename' });
    this.meta = h('span.layer-meta');
    this.statusLine = h('span.layer-state');
    this.progress = h('div.layer-progress', null, h('div.layer-progress-bar'));
    this.people = h('span.layer-people');
    this.eye = iconButton('eye', 'Hide', (e) => {
      e.stopPropagation();
      this.actions.toggleVisible(this.layer);
    }, { cls: 'layer-eye', testid: 'toggle-visible' });
    this.cancelBtn = iconButton('stop', 'Cancel render', (e) => {
      e.stopPropagation();
      this.actions.cancel(this.layer);
    }, { cls: 'layer-cancel', testid: 'cancel-render' });
    this.retryBtn = iconButton('retry', 'Render again', (e) => {
      e.stopPropagation();
      this.actions.retry(this.layer);
    }, { cls: 'layer-retry', testid: 'retry-render' });
    this.downloadBtn = iconButton('download', 'Download PNG', (e) => {
      e.stopPropagation();
      this.actions.download(this.layer);
    }, { cls: 'layer-hover', testid: 'download-layer' });
    this.deleteBtn = iconButton('trash', 'Delete layer', (e) => {
      e.stopPropagation();
      this.actions.remove(this.layer);
    }, { cls: 'layer-hover', testid: 'delete-layer' });
    this.opacity = h('input.slider.slider-small', {
      type: 'range',
      min: 0,
      max: 100,
      step: 1,
      'aria-label': 'Opacity',
      oninput: (e) => {
        this.opacityValue.textContent = `${e.target.value}%`;
        this.actions.setOpacity(this.layer, Number(e.target.value) / 100, false);
      },
      onchange: (e) => this.actions.setOpacity(this.layer, Number(e.target.value) / 100, true),
      onpointerdown: (e) => e.stopPropagation(),
    });
    this.opacityValue = h('span.opacity-value');
    this.detail = h('div.layer-detail', null, h('span.detail-label', null, 'Opacity'), this.opacity, this.opacityValue);
    this.el = h(
      'div.layer-row',
      { role: 'option', tabindex: 0, dataset: { layerId: layer.id, testid: 'layer-row' }, onclick: () => this.actions.select(this.layer.id) },
      h(
        'div.layer-main',
        null,
        h('span.layer-grip', { title: 'Drag to reorder' }, icon('grip', { size: 14 })),
        this.thumb,
        h('div.layer-text', null, this.name, this.meta, this.statusLine),
        this.people,
        h('div.layer-actions', null, this.cancelBtn, this.retryBtn, h('span.layer-hover-actions', null, this.downloadBtn, this.deleteBtn)),
        this.eye,
      ),
      this.progress,
      this.detail,
    );
    this.name.addEventListener('dblclick', (e) => {
      e.stopPropagation();
      this.startRename();
    });
    this.el.addEventListener('keydown', (e) => {
      if (e.target !== this.el) return;
      if (e.key === 'Enter' || e.key === ' ') {
        e.preventDefault();
        this.actions.select(this.layer.id);
      } else if (e.key === 'F2') this.startRename();
      else if ((e.key === 'ArrowUp' || e.key === 'ArrowDown') && e.altKey) {
        e.preventDefault();
        this.moveBy(e.key === 'ArrowUp' ? 1 : -1);
      } else if (e.key === 'ArrowUp' || e.key === 'ArrowDown') {
        e.preventDefault();
        (e.key === 'ArrowUp' ? this.el.previousElementSibling : this.el.nextElementSibling)?.closest('.layer-row')?.focus();
      }
    });
  }

  /** One place up (+1: towards the top of the stack, as the list shows it) or down, by keyboard. */
  moveBy(step) {
    if (this.readOnly || !this.order) return;
    const index = this.order.indexOf(this.layer.id) + step;
    if (index < 0 || index >= this.order.length) return;
    this.actions.move(this.layer, index);
  }

  startRename() {
    if (this.readOnly) return;
    const input = h('input.input.layer-name-input', { type: 'text', value: this.layer.name, maxLength: 200, 'aria-label': 'Layer name' });
    let done = false;
    const finish = (save) => {
      if (done) return;
      done = true;
      const value = input.value.trim();
      input.replaceWith(this.name);
      if (save && value && value !== this.layer.name) {
        this.name.textContent = value;
        this.actions.rename(this.layer, value);
      }
    };
    input.addEventListener('keydown', (e) => {
      e.stopPropagation();
      if (e.key === 'Enter') finish(true);
      if (e.key === 'Escape') finish(false);
    });
    input.addEventListener('blur', () => finish(true));
    input.addEventListener('click', (e) => e.stopPropagation());
    this.name.replaceWith(input);
    input.focus();
    input.select();
  }

  update(layer, { selected, render, preview = null, past = false, people, author = null, readOnly, operation, parents, order = null }) {
    this.layer = layer;
    this.readOnly = readOnly;
    this.order = order;
    // what the keyboard does here, said where a screen reader and a hovering pointer find it
    this.el.title = readOnly ? `${layer.name}` : `${layer.name} — Enter selects, F2 renames, Alt+↑ / Alt+↓ moves it up or down`;
    this.el.setAttribute('aria-keyshortcuts', readOnly ? 'Enter F2' : 'Enter F2 Alt+ArrowUp Alt+ArrowDown');
    // presence and progress arrive many times a second: touch the DOM only when something shown changed
    const { receivedAt, ...shownRender } = render || {};
    const signature = JSON.stringify([layer, selected, render ? shownRender : null, preview?.n, past, people.map((p) => [p.conn, p.name, p.colour]), author, readOnly, operation?.title, parents]);
    if (signature === this.signature) return;
    this.signature = signature;
    const el = this.el;
    el.classList.toggle('selected', selected);
    el.setAttribute('aria-selected', String(selected));
    el.classList.toggle('hidden-layer', !layer.visible);
    const cancelled = isCancelled(layer);
    el.dataset.status = past && !layer.output && layer.status !== 'failed' ? 'missing' : render?.rendering && !past ? 'rendering' : cancelled ? 'cancelled' : layer.status;
    if (document.activeElement?.classList?.contains('layer-name-input') && el.contains(document.activeElement)) {
      /* renaming: leave the name alone */
    } else this.name.textContent = layer.name;
    const title = operation?.title || layer.operation;
    const { text: status, kind } = layerStatus(layer, past ? null : render, { past });
    fill(this.meta, 
      h('span.meta-op', null, title),
      parents.length ? h('span.meta-from', { title: `Made from ${parents.join(', ')}` }, ` ← ${parents.join(', ')}`) : null,
      // who added it, by name and in their colour (a dot), as the history says it
      author ? h('span.meta-by', { title: `Added by ${author.name}`, dataset: { testid: 'layer-author' } }, ' · ', h('span.dot', { style: { display: 'inline-block', width: '7px', height: '7px', marginRight: '3px', background: author.colour } }), author.name) : null,
    );
    // the status on a line of its own: why a layer waits can take a sentence
    this.statusLine.hidden = !status;
    fill(this.statusLine, status ? h(`span.meta-status.status-${kind || layer.status}`, { title: cancelled ? `${cancelledText(layer)} — not an error; “Render again” starts it anew` : status, dataset: { testid: 'layer-status' } }, status) : null);
    const showPreview = !!preview && !past;
    this.thumb.classList.toggle('previewing', showPreview);
    if (showPreview) {
      // the render in progress, as the latest preview shows it
      if (this.thumbImg.getAttribute('src') !== preview.image) this.thumbImg.src = preview.image;
      this.thumbImg.hidden = false;
      fill(this.thumbIcon, );
    } else if (layer.output) {
      const src = blobUrl(layer.output.sha256);
      if (this.thumbImg.getAttribute('src') !== src) this.thumbImg.src = src;
      this.thumbImg.hidden = false;
      fill(this.thumbIcon, );
    } else {
      this.thumbImg.hidden = true;
      this.thumbImg.removeAttribute('src');
      fill(this.thumbIcon, icon(operation?.category === 'mask' ? 'mask' : 'image', { size: 18 }));
    }
    // a past version renders nothing: no spinner there, only what it had
    const busy = !past && (!!render?.rendering || layer.status === 'pending' || layer.status === 'stale');
    this.thumb.classList.toggle('busy', busy);
    fill(this.thumbStatus, cancelled ? icon('stop', { size: 14 }) : layer.status === 'failed' ? icon('alert', { size: 16 }) : busy && !showPreview ? h('span.spinner') : '');
    const fraction = renderFraction(render);
    this.progress.hidden = !busy;
    this.progress.firstChild.style.width = `${Math.round(fraction * 100)}%`;
    this.progress.classList.toggle('indeterminate', busy && !render?.rendering);
    this.progress.dataset.stage = render?.rendering ? render.stage || 'denoise' : '';
    fill(this.eye, icon(layer.visible ? 'eye' : 'eyeOff'));
    this.eye.title = layer.visible ? 'Hide' : 'Show';
    this.eye.setAttribute('aria-label', this.eye.title);
    this.eye.setAttribute('aria-pressed', String(!layer.visible));
    this.cancelBtn.hidden = readOnly || !busy;
    this.retryBtn.hidden = readOnly || layer.status !== 'failed';
    this.deleteBtn.hidden = readOnly;
    this.eye.disabled = readOnly;
    this.downloadBtn.hidden = !layer.output;
    this.opacity.disabled = readOnly;
    if (document.activeElement !== this.opacity) {
      this.opacity.value = String(Math.round(layer.opacity * 100));
      paintRange(this.opacity);
    }
    this.opacityValue.textContent = `${Math.round(layer.opacity * 100)}%`;
    this.detail.hidden = !selected;
    fill(this.people, 
      ...people.slice(0, 3).map((p) => h('span.mini-avatar', { style: { background: p.colour }, title: `${p.name} has this layer selected` }, initials(p.name))),
    );
  }
}
