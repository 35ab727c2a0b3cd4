// The New-layer form and the tools on the picture (#18): a text-to-image generates into the generation frame
// (its size, placed at its corner; the form says so, with "Clear frame"), Outpaint fills the frame's empty room
// from the pictures around it, and a crop or a magic wand takes its region or point from the stage (a drag, a
// click: `viewport.picker`), the form's fields following live.

import { h, icon, toast, fill } from './dom.js';
import { newId } from '../commands.js';
import { stack } from '../state.js';
import { applyPlacement, placementOf } from '../placement.js';
import { FRAME_READERS, describeFrame, frameCommand, outpaintParams, throughFrame, uncoveredShare } from '../frame.js';

const PICKS = { crop: 'crop', magic_wand: 'wand' };
const FILLED_FROM_FRAME = new Set(['frame', 'layers']); // the outpaint form's params the frame gives

/** The form model for the New-layer form: outpaint's frame and layers come from the stage, not from fields. */
export function newFormModel(model) {
  if (model.operation !== 'outpaint') return model;
  return { ...model, fields: model.fields.filter((f) => !FILLED_FROM_FRAME.has(f.key)) };
}

export class FormFrame {
  constructor(panel) {
    this.panel = panel;
    this.note = h('div.frame-note', { dataset: { testid: 'frame-note' }, hidden: true });
    this.key = null;
    this.roomKey = null;
  }

  get editor() {
    return this.panel.editor;
  }

  get frame() {
    return this.editor.mask?.frames.frame || null;
  }

  /** The visible pictures (no masks), bottom first, as the stage shows them. */
  pictures() {
    const editor = this.editor;
    return stack(editor.displayState).filter((l) => l.visible !== false && l.output && !editor.maskOps.has(l.operation));
  }

  /** The note for the New-layer form (redrawn by render). */
  element() {
    this.key = null;
    this.render();
    return this.note;
  }

  /** After the panel is built: the stage picks for a crop or a magic wand form, nothing otherwise. */
  afterBuild() {
    const { panel, editor } = this;
    const viewport = editor.viewport;
    if (!viewport) return;
    // the New-layer form only: a changed crop keeps the place it was added at (change_params places nothing)
    const kind = panel.tab === 'new' && !editor.readOnly && panel.form ? PICKS[panel.newOp] : null;
    const form = panel.form;
    const sourceKey = form?.model.fields.find((f) => f.kind === 'layer')?.key || 'source';
    viewport.picker = kind
      ? {
          kind,
          source: () => form.values[sourceKey],
          excluded: () => form.context.excluded || new Set(), // a layer never picks itself or what it made
          shown: () => {
            const v = form.values;
            if (kind === 'crop') return { layer: v[sourceKey], region: [v.x, v.y, v.width, v.height].every(Number.isFinite) ? { x: v.x, y: v.y, width: v.width, height: v.height } : null };
            return { layer: v[sourceKey], point: Number.isFinite(v.x) && Number.isFinite(v.y) ? { x: v.x, y: v.y } : null };
          },
          onRegion: (id, region) => {
            form.setValues({ ...(form.values[sourceKey] === id ? {} : { [sourceKey]: id }), ...region });
            viewport.invalidate();
          },
          onPoint: (id, point) => {
            form.setValues({ ...(form.values[sourceKey] === id ? {} : { [sourceKey]: id }), ...point });
            viewport.invalidate();
          },
        }
      : null;
    viewport.el.dataset.picking = kind || '';
    viewport.invalidate();
  }

  /** A hint over a form that takes its place from the stage. */
  pickHint() {
    const kind = PICKS[this.panel.newOp];
    if (!kind || this.editor.readOnly) return null;
    const text = kind === 'crop' ? 'Drag a rectangle on the picture to crop it (hold Space to pan).' : 'Click the picture on the colour to select; the tolerance sets how alike.';
    return h('div.hint', { dataset: { testid: 'pick-hint' } }, icon(kind === 'crop' ? 'fit' : 'wand', { size: 14 }), h('span', null, text));
  }

  /** Whether the frame has room to outpaint: reaches off the pictures, or over their transparent pixels. */
  hasRoom(frame) {
    const pictures = this.pictures();
    const key = JSON.stringify([frame, pictures.map((l) => [l.id, l.output.sha256, placementOf(l), l.opacity])]);
    if (key === this.roomKey) return this.room;
    this.roomKey = key;
    this.room = uncoveredShare(frame, pictures) > 0 || this.transparentUnder(frame, pictures);
    return this.room;
  }

  /** Any see-through pixel in the frame's composite (sampled at most 128 pixels a side); false until the
   * pictures have loaded (asked again then). */
  transparentUnder(frame, pictures) {
    const cache = this.editor.viewport?.cache;
    if (!cache || typeof document === 'undefined') return false;
    const k = Math.max(1, Math.max(frame.width, frame.height) / 128);
    const canvas = document.createElement('canvas');
    canvas.width = Math.max(1, Math.round(frame.width / k));
    canvas.height = Math.max(1, Math.round(frame.height / k));
    const ctx = canvas.getContext('2d', { willReadFrequently: true });
    for (const layer of pictures) {
      const entry = cache.get(layer.output.sha256);
      if (!entry.loaded) {
        this.roomKey = null;
        return false;
      }
      ctx.setTransform(1 / k, 0, 0, 1 / k, -frame.x / k, -frame.y / k);
      applyPlacement(ctx, placementOf(layer), layer.output.width, layer.output.height);
      ctx.drawImage(entry.img, 0, 0, layer.output.width, layer.output.height);
    }
    const data = ctx.getImageData(0, 0, canvas.width, canvas.height).data;
    for (let i = 3; i < data.length; i += 4) if (data[i] < 250) return true;
    return false;
  }

  /** Keep the note in step with the frame, the operation and the pictures; a txt2img form takes the frame's
   * size. */
  render() {
    const { panel, editor } = this;
    const frame = this.frame;
    const op = panel.newOp;
    const reads = !!frame && op in FRAME_READERS; // an img2img, inpaint… reads the composite under the frame
    const shown = panel.tab === 'new' && (((op === 'txt2img' || op === 'outpaint') && (frame || op === 'outpaint')) || reads);
    const canOutpaint = !!frame && op === 'txt2img' && editor.opsByName.has('outpaint') && this.hasRoom(frame);
    const key = JSON.stringify([shown, frame, op, canOutpaint, editor.readOnly]);
    if (key === this.key) return;
    this.key = key;
    this.note.hidden = !shown;
    if (frame && op === 'txt2img' && panel.form && (panel.form.values.width !== frame.width || panel.form.values.height !== frame.height)) {
      panel.form.setValues({ width: frame.width, height: frame.height });
    }
    if (!shown) return fill(this.note);
    const clear = h('button.link-btn', { type: 'button', dataset: { testid: 'clear-frame' }, onclick: () => editor.mask.frames.clear() }, 'Clear frame');
    if (!frame) {
      return fill(this.note, icon('alert', { size: 14 }), h('span', null, 'Draw a frame (F) over the room to fill: grow the canvas first (Canvas size) to extend the picture.'));
    }
    fill(
      this.note,
      h('div.frame-note-text', null,
        h('span.frame-swatch'),
        h('span', { dataset: { testid: 'frame-text' } }, reads ? `Reading the pictures under the frame ${describeFrame(frame)} (its ${FRAME_READERS[op]})` : `${op === 'outpaint' ? 'Outpainting' : 'Generating into'} the frame ${describeFrame(frame)}`),
        ' — ',
        clear,
      ),
      canOutpaint
        ? h('button.btn.btn-small.btn-block', { type: 'button', disabled: editor.readOnly, title: 'Fill the empty part of the frame from the pictures around it, with this prompt', dataset: { testid: 'outpaint' }, onclick: () => this.outpaint() }, icon('sparkles'), 'Outpaint the frame')
        : null,
    );
  }

  /** The New-layer form's commands as the frame changes them: txt2img at the frame, outpaint of the frame, an
   * img2img (inpaint, ControlNet, instruct-pix2pix) of the composite under it (a flatten layer, then it: one
   * gesture, one undo); null (with a word) when outpaint has no frame. */
  commands(command) {
    const frame = this.frame;
    if (frame && command.operation in FRAME_READERS) {
      return throughFrame(command, frame, this.pictures(), newId('L').slice(0, 17), this.editor.maskOps);
    }
    const adjusted = this.adjust(command);
    return adjusted ? [adjusted] : null;
  }

  /** Whether a problem of the form is one the frame answers (the picture an operation reads). */
  answers(problem) {
    return !!this.frame && FRAME_READERS[this.panel.newOp] === problem.path;
  }

  adjust(command) {
    const frame = this.frame;
    if (command.operation === 'txt2img' && frame) return frameCommand(command, frame);
    if (command.operation === 'outpaint') {
      if (!frame) {
        toast('Draw a frame (F) over the room to outpaint first.', { kind: 'error' });
        return null;
      }
      const { prompt = '', ...rest } = command.params;
      return { ...command, params: outpaintParams(frame, this.pictures(), prompt, { maskOps: this.editor.maskOps, extra: rest }) };
    }
    return command;
  }

  /** Outpaint from the text-to-image form: its prompt, the frame, the pictures around it. */
  async outpaint() {
    const { panel, editor } = this;
    const frame = this.frame;
    if (!frame || editor.readOnly) return;
    const layerId = newId('L').slice(0, 17);
    const prompt = panel.form?.values.prompt ?? '';
    const command = { type: 'add_layer', layer_id: layerId, operation: 'outpaint', params: outpaintParams(frame, this.pictures(), prompt, { maskOps: editor.maskOps }) };
    const ack = await panel.commandWithFieldErrors(command);
    if (ack) {
      editor.selected = layerId;
      editor.schedule();
    }
  }
}
