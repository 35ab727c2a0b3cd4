// Mask mode: the floating tool bar (pan, move, generation frame, brush, eraser, brush size), painting a mask
// on a layer (or editing a mask layer) in the viewport, and the mask bar that saves the strokes as a mask layer or discards them.

import { h, icon, iconButton, toast, fill, paintRange } from './dom.js';
import { openDocumentDialog } from './document-dialog.js';
import { newId } from '../commands.js';
import { stack } from '../state.js';
import { maskParams, touches } from '../mask.js';
import { FrameTool } from './frame-tool.js';

export class MaskMode {
  constructor(editor) {
    this.editor = editor;
    this.tool = 'pan';
    this.brushRadius = 16;
    this.masking = null; // {target, editing}
    this.frames = new FrameTool(editor); // the generation frame (F), local to this page until used
    this.frames.button.addEventListener('click', () => this.setTool('frame'));
    this.toolButtons = {
      pan: iconButton('hand', 'Move the view (V / H; hold Space)', () => this.setTool('pan'), { testid: 'tool-pan' }),
      move: iconButton('move', 'Move a layer (M): drag it, its corners scale, its knob turns (Shift snaps); arrows nudge, Shift+H / Shift+V flip', () => this.setTool('move'), { testid: 'tool-move' }),
      frame: this.frames.button,
      brush: iconButton('brush', 'Paint a mask (B)', () => this.setTool('brush'), { testid: 'tool-brush' }),
      eraser: iconButton('eraser', 'Erase from the mask (E)', () => this.setTool('eraser'), { testid: 'tool-eraser' }),
    };
    this.brushSize = h('input.slider.slider-small', {
      type: 'range',
      min: 1,
      max: 128,
      value: this.brushRadius,
      'aria-label': 'Brush size',
      dataset: { testid: 'brush-size' },
      oninput: (e) => this.setBrushRadius(Number(e.target.value)),
    });
    this.brushSizeValue = h('span.brush-size-value', null, `${this.brushRadius * 2}px`);
    this.brushGroup = h('div.tool-brush-size', null, h('span.tool-label', null, 'Size'), this.brushSize, this.brushSizeValue);
    this.toolbar = h('div.toolbar.floating', { dataset: { testid: 'toolbar' } }, this.toolButtons.pan, this.toolButtons.move, this.toolButtons.frame, this.toolButtons.brush, this.toolButtons.eraser, h('span.sep'), this.brushGroup);
    this.sizeButton = iconButton('fit', 'Canvas size and background', () => openDocumentDialog(this.editor), { testid: 'document-size-button' });
    this.toolbar.append(h('span.sep'), this.sizeButton);
    this.maskBar = h('div.mask-bar.floating', { dataset: { testid: 'mask-bar' } });
  }

  get viewport() {
    return this.editor.viewport;
  }

  setTool(tool) {
    if ((tool === 'brush' || tool === 'eraser' || tool === 'move') && this.editor.readOnly) return;
    this.frames.attach(this.viewport);
    this.tool = tool;
    this.viewport.setTool(tool);
    if ((tool === 'brush' || tool === 'eraser') && !this.masking) this.beginMask();
    this.editor.schedule();
  }

  setBrushRadius(radius) {
    this.brushRadius = Math.max(1, Math.min(128, Math.round(radius)));
    this.brushSize.value = String(this.brushRadius);
    paintRange(this.brushSize);
    this.brushSizeValue.textContent = `${this.brushRadius * 2}px`;
    this.viewport.setBrushRadius(this.brushRadius);
  }

  /** Decide what to paint on: the selected layer, or (a mask selected) continue that mask. */
  beginMask() {
    const editor = this.editor;
    if (editor.readOnly) return false;
    const state = editor.session.state;
    let layer = editor.selected ? state.layers[editor.selected] : null;
    if (!layer) {
      const top = stack(state).reverse().find((l) => l.output && !editor.maskOps.has(l.operation));
      if (top) layer = top;
    }
    if (!layer) {
      toast('Add or select a layer first, then paint a mask on it.', { kind: 'error' });
      this.setTool('pan');
      return false;
    }
    let target = layer;
    let editing = null;
    if (layer.operation === 'mask') {
      editing = layer;
      target = state.layers[layer.params.layer] || layer;
    } else if (!layer.output) {
      toast('That layer has no picture yet: wait for it to render.', { kind: 'error' });
      this.setTool('pan');
      return false;
    }
    this.masking = { target, editing };
    if (editor.selected !== layer.id) {
      editor.selected = layer.id;
      editor.panel.build();
    }
    this.viewport.beginMask(target, editing);
    editor.schedule();
    return true;
  }

  endMask() {
    this.masking = null;
    this.viewport.endMask();
    if (this.tool !== 'pan') {
      this.tool = 'pan';
      this.viewport.setTool('pan');
    }
    this.editor.schedule();
  }

  async saveMask() {
    const editor = this.editor;
    if (!this.masking) return;
    const { target, editing } = this.masking;
    const size = target.output || { width: Infinity, height: Infinity };
    const strokes = this.viewport.mask.strokes.filter((s) => touches(s, size.width, size.height));
    if (!strokes.length) {
      toast('Paint on the picture to make a mask.', { kind: 'error' });
      return;
    }
    let ack;
    let id;
    if (editing) {
      id = editing.id;
      ack = await editor.command({ type: 'change_params', layer_id: editing.id, params: maskParams(target.id, strokes, editing.params) });
    } else {
      id = newId('L').slice(0, 17);
      ack = await editor.command({ type: 'add_layer', layer_id: id, operation: 'mask', params: maskParams(target.id, strokes), name: `Mask on ${target.name}`.slice(0, 200) });
    }
    if (!ack) return;
    this.endMask();
    editor.select(id, { fromPanel: true });
    toast(editing ? 'Mask updated' : 'Mask saved as a layer', {
      kind: 'success',
      action: editor.opsByName.has('inpaint') ? { label: 'Inpaint it', run: () => editor.panel.startOperation('inpaint') } : null,
    });
  }

  /** The tool bar: the active tool, the painting tools off while read-only, the size while painting. */
  renderTools() {
    for (const button of Object.values(this.toolButtons)) button.classList.remove('active');
    this.toolButtons[this.tool]?.classList.add('active');
    this.toolButtons.brush.disabled = this.toolButtons.eraser.disabled = this.toolButtons.move.disabled = this.editor.readOnly;
    this.sizeButton.disabled = this.editor.readOnly;
    this.brushGroup.hidden = this.tool === 'pan' || this.tool === 'move' || this.tool === 'frame';
  }

  renderBar() {
    this.maskBar.hidden = !this.masking;
    if (!this.masking) return;
    const strokes = this.viewport.mask?.strokes.length || 0;
    const target = this.masking.target;
    fill(this.maskBar, 
      h('span.mask-swatch'),
      h('span.mask-text', null, this.masking.editing ? `Editing “${this.masking.editing.name}”` : `Mask on “${target.name}”`, h('small', null, ` · ${strokes} stroke${strokes === 1 ? '' : 's'}`)),
      iconButton('undo', 'Undo last stroke', () => this.viewport.undoStroke(), { testid: 'mask-undo-stroke', disabled: !strokes }),
      h('button.btn.btn-small', { type: 'button', onclick: () => this.endMask(), dataset: { testid: 'mask-discard' } }, 'Discard'),
      h('button.btn.btn-small.btn-primary', { type: 'button', disabled: !strokes, onclick: () => this.saveMask(), dataset: { testid: 'mask-save' } }, icon('check'), this.masking.editing ? 'Update mask' : 'Save mask'),
    );
  }
}
