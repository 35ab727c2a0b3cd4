// The left panel, where the generation forms are wired: "New layer" (pick an operation, fill its form, Generate:
// an add_layer) and "Layer" (how the selected layer was made; change its settings and Apply: a change_params),
// kept in step with the state without disturbing what is being typed. The generation frame, outpainting and
// the stage picks of a crop or a magic wand: form-frame.js.

import { h, icon, toast, fill } from './dom.js';
import { OperationForm } from './form.js';
import { OperationPicker, categoryIcon } from './operation-picker.js';
import { newId } from '../commands.js';
import { stack } from '../state.js';
import { allowedInputs } from '../dag.js';
import { formModel, initialValues } from '../schema.js';
import { isCancelled } from '../renders.js';
import { REJECT_TEXT } from './layer-actions.js';
import { FormFrame, newFormModel } from './form-frame.js';

export class LeftPanel {
  constructor(editor) {
    this.editor = editor;
    this.tab = 'new';
    this.newOp = editor.opsByName.has('txt2img') ? 'txt2img' : editor.groups[0]?.operations[0]?.name;
    this.newValues = new Map(); // operation -> values the user typed, kept when switching
    this.newSeeds = new Map();
    this.form = null;
    this.frameUi = new FormFrame(this);
    this.tabNew = h('button.tab', { type: 'button', role: 'tab', dataset: { testid: 'tab-new' }, onclick: () => this.setTab('new') }, icon('plus'), 'New layer');
    this.tabLayer = h('button.tab', { type: 'button', role: 'tab', dataset: { testid: 'tab-layer' }, onclick: () => this.setTab('layer') }, icon('edit'), 'Layer');
    this.body = h('div.panel-body');
    this.foot = h('footer.panel-foot');
    this.el = h('aside.sidebar.sidebar-left', { dataset: { testid: 'left-panel' } }, h('div.tabs', { role: 'tablist' }, this.tabNew, this.tabLayer), this.body, this.foot);
  }

  setTab(tab) {
    this.tab = tab;
    this.build();
  }

  formContext(excludeFor = null) {
    const editor = this.editor;
    const state = editor.displayState;
    return {
      layers: () => stack(editor.displayState),
      excluded: excludeFor ? new Set(state.order.filter((id) => !allowedInputs(state, excludeFor).includes(id))) : new Set(),
      uploadBlob: (file) => editor.api.uploadBlob(file),
      // the form's operation (the layer's, or the one picked for a new layer) and the server's limits
      operation: editor.opsByName.get(excludeFor ? state.layers[excludeFor]?.operation : this.newOp) || null,
      limits: editor.limits,
    };
  }

  /** Rebuild the left panel (tab switch, operation change, selection change). */
  build() {
    this.tabNew.classList.toggle('active', this.tab === 'new');
    this.tabLayer.classList.toggle('active', this.tab === 'layer');
    this.form = null;
    this.propsKey = null;
    if (this.tab === 'new') this.buildNew();
    else this.buildProps();
    this.frameUi.afterBuild();
  }

  buildNew() {
    const editor = this.editor;
    const op = editor.opsByName.get(this.newOp);
    const picker = new OperationPicker({
      groups: editor.groups,
      value: this.newOp,
      onPick: (name) => {
        this.saveNewValues();
        this.newOp = name;
        this.build();
      },
    });
    const body = [h('div.section', null, h('div.section-title', null, 'Operation'), picker.el)];
    fill(this.foot, );
    if (!op) {
      fill(this.body, ...body);
      return;
    }
    const model = newFormModel(formModel(op));
    const selected = editor.selected ? editor.displayState.layers[editor.selected] : null;
    const values = this.newValues.get(op.name) || initialValues(model, { selected, layers: stack(editor.displayState), maskOps: editor.maskOps });
    this.form = new OperationForm({
      model,
      values,
      seed: this.newSeeds.get(op.name) ?? null,
      context: this.formContext(),
      readOnly: editor.readOnly,
      onChange: () => this.saveNewValues(),
    });
    const hint = op.name === 'mask' ? h('div.hint', null, icon('brush', { size: 14 }), h('span', null, 'Tip: pick the brush (B) and paint on the canvas to make a mask.')) : this.frameUi.pickHint();
    body.push(this.frameUi.element());
    body.push(h('div.section', null, h('div.section-title', null, 'Settings', h('button.link-btn', { type: 'button', onclick: () => this.resetNew(), dataset: { testid: 'reset-form' } }, 'Reset')), hint, this.form.el));
    fill(this.body, ...body);
    this.generateBtn = h(
      'button.btn.btn-primary.btn-block.btn-large',
      { type: 'button', dataset: { testid: 'generate' }, disabled: editor.readOnly, onclick: () => this.addLayer() },
      icon(op.category === 'generate' ? 'sparkles' : 'plus'),
      op.category === 'generate' ? 'Generate' : `Add ${op.title.toLowerCase()} layer`,
    );
    // what the render will be (size, steps, limits) stays in sight next to the button that starts it
    fill(this.foot, editor.readOnly ? null : this.form.estimateEl, this.generateBtn, editor.readOnly ? h('div.foot-note', null, icon('lock', { size: 12 }), editor.scrub ? 'Go back to live to edit.' : 'View only') : h('div.foot-note', null, 'Adds a layer on top. ', h('kbd', null, 'Ctrl'), '+', h('kbd', null, 'Enter')));
  }

  saveNewValues() {
    if (!this.form || this.tab !== 'new') return;
    this.newValues.set(this.newOp, this.form.values);
    this.newSeeds.set(this.newOp, this.form.seed);
  }

  resetNew() {
    this.newValues.delete(this.newOp);
    this.newSeeds.delete(this.newOp);
    this.build();
  }

  buildProps() {
    const editor = this.editor;
    const state = editor.displayState;
    const layer = editor.selected ? state.layers[editor.selected] : null;
    fill(this.foot, );
    if (!layer) {
      fill(this.body, h('div.panel-empty', null, icon('layers', { size: 22 }), h('p', null, 'No layer selected'), h('small', null, 'Pick a layer on the right to see and change how it was made.')));
      this.propsKey = 'none';
      return;
    }
    this.propsKey = this.layerKey(layer);
    this.propsLayer = layer;
    const op = editor.opsByName.get(layer.operation);
    const out = layer.output;
    const info = h(
      'div.layer-info',
      null,
      h('div.layer-info-head', null, h('span.op-icon', { dataset: { category: op?.category || '' } }, icon(categoryIcon(op?.category))), h('div', null, h('strong', { dataset: { testid: 'props-name' } }, layer.name), h('small', null, op?.title || layer.operation)), isCancelled(layer) ? h('span.status-chip.status-cancelled', null, 'cancelled') : h(`span.status-chip.status-${layer.status}`, null, layer.status)),
      h(
        'dl.facts',
        null,
        out ? [h('dt', null, 'Size'), h('dd', null, `${out.width} × ${out.height}`)] : null,
        out ? [h('dt', null, 'Render'), h('dd', null, out.cached ? 'from cache' : `${Math.round(out.duration_ms)} ms`)] : null,
        layer.parents.length ? [h('dt', null, 'Made from'), h('dd', null, layer.parents.map((p) => editor.layerName(p)).join(', '))] : null,
        layer.error ? [h('dt', null, isCancelled(layer) ? 'Cancelled' : 'Error'), h(isCancelled(layer) ? 'dd' : 'dd.error-text', null, layer.error)] : null,
      ),
    );
    const sections = [h('div.section', null, info)];
    if (!op) {
      sections.push(h('div.hint', null, `The operation “${layer.operation}” is not installed on this server.`));
      fill(this.body, ...sections);
      return;
    }
    const model = formModel(op);
    this.form = new OperationForm({
      model,
      values: initialValues(model, { existing: layer.params }),
      seed: layer.seed,
      context: this.formContext(layer.id),
      readOnly: editor.readOnly,
      onChange: () => this.updatePropsDirty(),
    });
    this.propsOriginal = JSON.stringify([this.form.params(), this.form.seed]);
    sections.push(h('div.section', null, h('div.section-title', null, 'Settings'), this.form.el));
    const actions = [];
    if (editor.maskOps.has(layer.operation) && editor.opsByName.has('inpaint')) {
      actions.push(h('button.btn.btn-block', { type: 'button', dataset: { testid: 'inpaint-with-mask' }, disabled: editor.readOnly, onclick: () => this.startOperation('inpaint') }, icon('sparkles'), 'Inpaint this area'));
    }
    if (layer.output && !editor.maskOps.has(layer.operation)) {
      actions.push(h('button.btn.btn-block', { type: 'button', dataset: { testid: 'paint-mask' }, disabled: editor.readOnly, onclick: () => editor.mask.setTool('brush') }, icon('brush'), 'Paint a mask on it'));
      if (editor.opsByName.has('img2img')) actions.push(h('button.btn.btn-block', { type: 'button', disabled: editor.readOnly, onclick: () => this.startOperation('img2img') }, icon('wand'), 'Vary with image to image'));
    }
    if (actions.length) sections.push(h('div.section.section-actions', null, ...actions));
    fill(this.body, ...sections);
    this.applyBtn = h('button.btn.btn-primary.btn-block.btn-large', { type: 'button', disabled: true, dataset: { testid: 'apply' }, onclick: () => this.applyChanges() }, icon('check'), 'Apply changes');
    this.revertBtn = h('button.btn', { type: 'button', disabled: true, onclick: () => this.build() }, 'Revert');
    fill(this.foot, 
      editor.readOnly ? null : this.form.estimateEl,
      editor.readOnly ? null : h('div.row.gap-8', null, this.revertBtn, this.applyBtn),
      h('div.foot-note', null, editor.readOnly ? [icon('lock', { size: 12 }), editor.scrub ? 'An old version: read-only.' : 'View only'] : 'Re-renders this layer and the layers made from it.'),
    );
  }

  layerKey(layer) {
    return `${layer.id}:${JSON.stringify(layer.params)}:${layer.seed}`;
  }

  updatePropsDirty() {
    const dirty = this.form && JSON.stringify([this.form.params(), this.form.seed]) !== this.propsOriginal;
    this.propsDirty = dirty;
    if (this.applyBtn) this.applyBtn.disabled = !dirty || this.editor.readOnly;
    if (this.revertBtn) this.revertBtn.disabled = !dirty;
  }

  /** Keep the left panel in step with the state without disturbing what is being typed. */
  render() {
    const editor = this.editor;
    const readOnly = editor.readOnly;
    if (readOnly !== this.leftReadOnly) {
      this.leftReadOnly = readOnly;
      this.build();
      return;
    }
    if (this.tab === 'layer') {
      const layer = editor.selected ? editor.displayState.layers[editor.selected] : null;
      const key = layer ? this.layerKey(layer) : 'none';
      if (key !== this.propsKey && !this.propsDirty) {
        this.build();
        return;
      }
      if (layer && this.propsLayer && (layer.status !== this.propsLayer.status || layer.output?.sha256 !== this.propsLayer.output?.sha256)) {
        this.build();
        return;
      }
    }
    if (this.form) this.form.refresh(this.formContext(this.tab === 'layer' ? editor.selected : null));
    this.frameUi.render();
  }

  /** Open the new-layer form on `operation`, inputs filled from the selection. */
  startOperation(operation) {
    this.newOp = operation;
    this.newValues.delete(operation);
    this.tab = 'new';
    this.build();
  }

  async addLayer() {
    const editor = this.editor;
    if (editor.readOnly || !this.form) return;
    const problems = this.form.problems().filter((problem) => !this.frameUi.answers(problem));
    if (!this.form.showErrors(problems)) {
      toast(`Check the settings: ${problems[0].path.replace(/\./g, ' › ')} — ${problems[0].message}`, { kind: 'error' });
      return;
    }
    const layerId = newId('L').slice(0, 17);
    let command = { type: 'add_layer', layer_id: layerId, operation: this.newOp, params: this.form.params() };
    if (this.form.model.usesSeed && this.form.seed !== null && Number.isFinite(this.form.seed)) command.seed = this.form.seed;
    const commands = this.frameUi.commands(command); // into, or out of, the generation frame
    if (!commands) return;
    this.generateBtn.disabled = true;
    const gesture = commands.length > 1 ? newId('g-') : undefined; // a flatten and its reader: one undo
    const sent = commands.map((step) => this.commandWithFieldErrors(step, { gesture }));
    const ack = (await Promise.all(sent)).every(Boolean);
    this.generateBtn.disabled = editor.readOnly;
    if (ack) {
      editor.selected = layerId;
      editor.schedule();
    }
  }

  /** Send `command`; a refusal that names a field shows on that field of the form. */
  async commandWithFieldErrors(command, { gesture } = {}) {
    if (!this.editor.canEdit) return null;
    try {
      return await this.editor.queue.submit(command, { gesture }).promise;
    } catch (error) {
      if (error.field && this.form) this.form.showErrors([{ path: error.field, message: error.message }]);
      toast(REJECT_TEXT[error.code] || error.message, { kind: 'error' });
      return null;
    }
  }

  async applyChanges() {
    const layer = this.propsLayer;
    if (!layer || !this.form || this.editor.readOnly) return;
    const problems = this.form.problems();
    if (!this.form.showErrors(problems)) return;
    const command = { type: 'change_params', layer_id: layer.id, params: this.form.params() };
    if (this.form.model.usesSeed && this.form.seed !== null && Number.isFinite(this.form.seed)) command.seed = this.form.seed;
    this.applyBtn.disabled = true;
    const ack = await this.commandWithFieldErrors(command);
    if (ack) {
      this.propsDirty = false;
      toast('Re-rendering with the new settings', { kind: 'success', timeout: 2000 });
    } else this.updatePropsDirty();
  }
}
