// Operation forms drawn from the form model (js/schema.js): sliders for bounded numbers, selects for enums,
// text areas for prompts (with their length and approximate tokens: js/prompt.js), thumbnail pickers for layer inputs (also nested in lists), uploads for blobs (those
// two in form-pickers.js), a seed with a dice button for operations that use one, and the render's estimate.

import { h, icon, iconButton, fill, paintRange } from './dom.js';
import { defaultItem, validate, toParams, randomSeed } from '../schema.js';
import { layerPicker, blobInput } from './form-pickers.js';
import { estimateRender, describeEstimate, sourceKey, RESIZE_LABELS } from '../limits.js';
import { promptMeter } from '../prompt.js';

function formatNumber(value, field) {
  if (value === null || value === undefined || Number.isNaN(value)) return '';
  if (field.integer) return String(Math.round(value));
  return String(Math.round(value * 1000) / 1000);
}

export class OperationForm {
  /**
   * `context`: {layers(): layers bottom first, excluded: Set of ids a picker must not offer, uploadBlob(file),
   *   operation: this form's operation entry (GET /api/operations), limits: that body's `limits` or null}.
   *   `onChange(values)` after every edit.
   */
  constructor({ model, values, seed = null, context, onChange = () => {}, readOnly = false }) {
    this.model = model;
    this.values = JSON.parse(JSON.stringify(values));
    this.seed = seed;
    this.context = context;
    this.onChange = onChange;
    this.readOnly = readOnly;
    this.refreshers = [];
    this.errorSlots = new Map();
    this.el = h('div.op-form', { dataset: { operation: model.operation } });
    this.build();
  }

  build() {
    this.refreshers = [];
    this.updaters = new Map(); // top-level key -> show a value set from outside (setValues)
    this.errorSlots = new Map();
    fill(this.el, );
    for (const field of this.model.fields) {
      const row = this.fieldEl(field, this.values, field.key);
      if (row) this.el.append(row);
    }
    if (this.model.usesSeed) this.el.append(this.seedEl());
    this.estimateEl = h('div.render-estimate', { dataset: { testid: 'render-estimate' }, 'aria-live': 'polite' });
    this.estimateKey = null;
    this.el.append(this.estimateEl);
    this.drawEstimate();
    if (this.readOnly) for (const control of this.el.querySelectorAll('input, textarea, select, button')) control.disabled = true;
  }

  changed() {
    this.clearErrors();
    this.drawEstimate();
    this.onChange(this.values);
  }

  /** The size and steps the render will have, and a warning when it is over one of the server's limits. */
  drawEstimate() {
    const operation = this.context.operation;
    let sourceSize = null;
    const key = sourceKey(operation);
    if (key) {
      const layer = this.context.layers().find((l) => l.id === this.values[key]);
      if (layer?.output) sourceSize = { width: layer.output.width, height: layer.output.height };
      else if (Number.isFinite(layer?.params?.width) && Number.isFinite(layer?.params?.height)) sourceSize = { width: layer.params.width, height: layer.params.height };
    }
    const described = describeEstimate(estimateRender(operation, this.params(), { sourceSize, limits: this.context.limits }));
    const drawKey = JSON.stringify(described);
    if (drawKey === this.estimateKey) return;
    this.estimateKey = drawKey;
    this.estimateEl.hidden = !described;
    if (!described) return fill(this.estimateEl, );
    this.estimateEl.classList.toggle('over-limit', described.warnings.length > 0);
    fill(this.estimateEl,
      h('div.estimate-size', null, icon('image', { size: 14 }), h('span', { dataset: { testid: 'render-size' } }, described.text)),
      ...described.warnings.map((w) => h('div.estimate-warning', { dataset: { testid: 'limit-warning' }, role: 'alert' }, icon('alert', { size: 14 }), h('span', null, w))),
    );
  }

  /** The layers changed: redraw the pickers (not the whole form, which may be mid-edit). */
  refresh(context = this.context) {
    this.context = context;
    const layers = context.layers().map((l) => [l.id, l.name, l.output?.sha256, l.operation]);
    const key = JSON.stringify([layers, [...(context.excluded || [])]]);
    if (key === this.refreshKey) return;
    this.drawEstimate();
    this.refreshKey = key;
    for (const refresh of this.refreshers) refresh();
  }

  params() {
    return toParams(this.model, this.values);
  }

  /** Set top-level values from outside the form (a region dragged on the stage, the frame's size): the
   * fields show them, the layer pickers redraw, and it counts as an edit. */
  setValues(patch) {
    for (const [key, value] of Object.entries(patch)) {
      this.values[key] = value;
      this.updaters.get(key)?.(value);
    }
    for (const refresh of this.refreshers) refresh();
    this.changed();
  }

  problems() {
    return validate(this.model, this.values);
  }

  /** Show problems next to their fields (also the server's `field`, e.g. "params.width"). */
  showErrors(problems) {
    this.clearErrors();
    for (const { path, message } of problems) {
      const slot = this.errorSlots.get(path.replace(/^params\./, ''));
      if (slot) {
        slot.textContent = message;
        slot.closest('.field')?.classList.add('has-error');
      }
    }
    return problems.length === 0;
  }

  clearErrors() {
    for (const slot of this.errorSlots.values()) {
      if (slot.textContent) {
        slot.textContent = '';
        slot.closest('.field')?.classList.remove('has-error');
      }
    }
  }

  fieldEl(field, holder, path) {
    const set = (value) => {
      holder[field.key] = value;
      this.changed();
    };
    const get = () => holder[field.key];
    const error = h('div.field-error');
    this.errorSlots.set(path, error);
    const label = h('label.field-label', { title: field.description || null }, field.label);
    const wrap = (cls, ...content) => h(`div.field.field-${cls}`, { dataset: { field: path } }, ...content, error);
    switch (field.kind) {
      case 'const':
        return null;
      case 'textarea': {
        // no maxLength on the textarea: it would cut a long paste without a word; the meter says it is over
        const meter = h('div.prompt-meter', { dataset: { testid: 'prompt-meter' } });
        const notice = h('div.prompt-limit', { role: 'alert', dataset: { testid: 'prompt-limit' }, hidden: true });
        const input = h('textarea.input.textarea', {
          rows: field.key.includes('negative') ? 2 : 3,
          placeholder: field.description || '',
          value: get() ?? '',
          oninput: (e) => {
            set(e.target.value);
            this.drawPromptMeter(field, input, meter, notice);
          },
        });
        this.drawPromptMeter(field, input, meter, notice);
        return wrap('textarea', label, input, meter, notice);
      }
      case 'text': {
        const input = h('input.input', { type: 'text', value: get() ?? '', placeholder: field.description || '', oninput: (e) => set(e.target.value) });
        return wrap('text', label, input);
      }
      case 'colour': {
        const value = get() || '#ffffff';
        const text = h('input.input.input-mono', { type: 'text', value, oninput: (e) => { set(e.target.value); if (/^#[0-9a-f]{6}$/i.test(e.target.value)) swatch.value = e.target.value; } });
        const swatch = h('input.swatch', { type: 'color', value: value.slice(0, 7), oninput: (e) => { const alpha = (text.value || '').slice(7); text.value = e.target.value + alpha; set(text.value); } });
        return wrap('colour', label, h('div.row.gap-6', null, swatch, text));
      }
      case 'enum': {
        const select = h(
          'select.input.select',
          { onchange: (e) => set(field.options[e.target.selectedIndex].value) },
          field.options.map((o) => h('option', { value: String(o.value), selected: o.value === get() }, (field.key === 'resize' && RESIZE_LABELS[o.value]) || o.label)),
        );
        return wrap('enum', label, select);
      }
      case 'boolean': {
        const input = h('input', { type: 'checkbox', checked: !!get(), onchange: (e) => set(e.target.checked) });
        return wrap('boolean', h('label.switch-row', { title: field.description || null }, h('span.field-label', null, field.label), h('span.switch', null, input, h('span.switch-track'))));
      }
      case 'number':
        return wrap('number', ...this.numberEl(field, get, set, label, path));
      case 'layer':
        return wrap('layer', label, layerPicker(this, field, get, set));
      case 'blob':
        return wrap('blob', label, blobInput(this, field, get, set));
      case 'list':
        return wrap('list', this.listEl(field, get(), path, label));
      case 'object': {
        const value = get() || {};
        holder[field.key] = value;
        return wrap('object', label, h('div.field-group', null, field.fields.map((f) => this.fieldEl(f, value, `${path}.${f.key}`))));
      }
      default: {
        const current = get();
        const summary = Array.isArray(current) ? `${current.length} item${current.length === 1 ? '' : 's'}` : current === null || current === undefined ? 'empty' : 'a value';
        const input = h('textarea.input.textarea.input-mono', {
          rows: 4,
          value: JSON.stringify(current ?? null),
          onchange: (e) => {
            try {
              set(JSON.parse(e.target.value || 'null'));
            } catch {
              error.textContent = 'Not valid JSON';
            }
          },
        });
        return wrap('json', h('details.json-field', null, h('summary', null, label, h('span.muted', null, ` · ${summary} (JSON)`)), input));
      }
    }
  }

  /** Under a prompt: its characters against the field's limit, its approximate tokens against CLIP's window. */
  drawPromptMeter(field, input, meter, notice) {
    const shown = promptMeter(input.value, field.maxLength ?? null);
    // tokens only where a text encoder reads the prompt (an operation that runs the model)
    const tokens = this.context.operation?.needs_model === false ? null : shown;
    meter.classList.toggle('over', shown.over > 0);
    meter.classList.toggle('near', shown.near);
    input.setAttribute('aria-invalid', String(shown.over > 0));
    fill(meter,
      tokens ? h('span.token-count', { class: tokens.tokensOver ? 'past-window' : '', title: tokens.tokenTitle, dataset: { testid: 'token-count' } }, tokens.tokenText) : null,
      h('span.char-count', { title: field.maxLength ? `The server takes at most ${field.maxLength.toLocaleString('en')} characters here.` : null, dataset: { testid: 'char-count' } }, shown.counter),
    );
    notice.hidden = !shown.message;
    notice.classList.toggle('at-limit', !shown.over);
    notice.textContent = shown.message;
  }

  numberEl(field, get, set, label, path) {
    const value = get();
    const number = h('input.input.input-number', {
      type: 'number',
      step: field.step === 'any' ? 'any' : String(field.step),
      min: field.min ?? undefined,
      max: field.max ?? undefined,
      placeholder: field.nullable ? 'Auto' : '',
      value: formatNumber(value, field),
      'aria-label': field.label,
      oninput: (e) => {
        const raw = e.target.value;
        const parsed = raw === '' ? (field.nullable ? null : Number.NaN) : Number(raw);
        if (slider && Number.isFinite(parsed)) {
          slider.value = String(parsed);
          paintRange(slider);
        }
        set(parsed);
      },
    });
    let slider = null;
    if (field.slider && !field.nullable) {
      slider = h('input.slider', {
        type: 'range',
        min: String(field.exclusiveMin ? field.min + (field.integer ? 1 : field.step === 'any' ? 0.01 : field.step / 10) : field.min),
        max: String(field.max),
        step: String(field.step === 'any' ? 0.01 : field.integer ? field.step : Math.min(field.step, (field.max - field.min) / 100)),
        value: String(value ?? field.min),
        'aria-label': field.label,
        oninput: (e) => {
          const parsed = Number(e.target.value);
          number.value = formatNumber(parsed, field);
          set(field.integer ? Math.round(parsed) : parsed);
        },
      });
    }
    this.updaters.set(path, (v) => {
      number.value = formatNumber(v, field);
      if (slider && Number.isFinite(v)) {
        slider.value = String(v);
        paintRange(slider);
      }
    });
    return [h('div.field-head', null, label, number), slider];
  }

  listEl(field, items, path, label) {
    const list = h('div.list-items');
    const addButton = h('button.btn.btn-small.btn-ghost', { type: 'button', onclick: () => { items.push(defaultItem(field)); this.changed(); draw(); } }, icon('plus'), 'Add');
    const draw = () => {
      fill(list, 
        ...items.map((item, index) =>
          h(
            'div.list-item',
            null,
            h(
              'div.list-item-head',
              null,
              h('span', null, `${field.item.fields.some((f) => f.kind === 'layer') ? 'Layer' : 'Item'} ${index + 1}`),
              iconButton('x', 'Remove', () => {
                items.splice(index, 1);
                this.changed();
                draw();
              }),
            ),
            field.item.fields.map((f) => this.fieldEl(f, item, `${path}.${index}.${f.key}`)),
          ),
        ),
      );
      addButton.disabled = this.readOnly || items.length >= field.maxItems;
    };
    draw();
    return h('div', null, h('div.field-head', null, label, addButton), list);
  }

  seedEl() {
    const input = h('input.input.input-number.input-seed', {
      type: 'number',
      min: 0,
      step: 1,
      placeholder: 'Random',
      value: this.seed ?? '',
      'aria-label': 'Seed',
      oninput: (e) => {
        this.seed = e.target.value === '' ? null : Number(e.target.value);
        this.changed();
      },
    });
    const dice = iconButton('dice', 'New random seed', () => {
      this.seed = randomSeed();
      input.value = String(this.seed);
      this.changed();
    }, { testid: 'dice' });
    return h('div.field.field-seed', { dataset: { field: 'seed' } }, h('div.field-head', null, h('label.field-label', { title: 'The same seed and settings give the same picture.' }, 'Seed'), h('div.row.gap-4', null, input, dice)));
  }
}
