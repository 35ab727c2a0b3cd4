// The generation frame tool (F): a rectangle of the document drawn, moved and resized on the stage
// (viewport-input.js, drawn by frame-overlay.js), kept in this browser (it survives a reload, per canvas) until a
// txt2img or an outpaint uses it (the New-layer form says so: form-frame.js). Escape with the tool clears it.

import { iconButton } from './dom.js';

const FRAME_ICON = '<svg width="16" height="16" viewBox="0 0 24 24" fill="none" stroke="currentColor" stroke-width="1.8" stroke-linecap="round" stroke-linejoin="round"><path d="M3 7V3h4M17 3h4v4M21 17v4h-4M7 21H3v-4"/><path d="M8 12h8M12 8v8" stroke-dasharray="2 2"/></svg>';

export class FrameTool {
  constructor(editor) {
    this.editor = editor;
    this.frame = restore(editor); // {x, y, width, height} in document pixels
    this.button = iconButton('fit', 'Generation frame (F): drag a rectangle where the next picture goes; drag inside to move it, a corner to resize', null, { testid: 'tool-frame' });
    this.button.querySelector('.icon').innerHTML = FRAME_ICON;
    this.attached = null;
  }

  /** Hear the viewport's frame drags (the viewport is built after the tool bar). */
  attach(viewport) {
    if (this.attached === viewport) return;
    this.attached = viewport;
    viewport.generationFrame = this.frame;
    viewport.onFrameChange = (frame) => this.set(frame, { fromStage: true });
  }

  set(frame, { fromStage = false } = {}) {
    this.frame = frame ? { x: frame.x, y: frame.y, width: frame.width, height: frame.height } : null;
    keep(this.editor, this.frame);
    const viewport = this.editor.viewport;
    if (viewport && !fromStage) {
      viewport.generationFrame = this.frame;
      viewport.invalidate();
    }
    this.editor.schedule();
  }

  clear() {
    this.set(null);
  }
}

const KEY = (canvasId) => `opendream.frame.${canvasId}`;

/** This canvas's frame as this browser last left it (a reload keeps it), or null. */
function restore(editor) {
  try {
    const saved = JSON.parse(editor.storage?.getItem(KEY(editor.canvasId)) || 'null');
    const sides = saved && ['x', 'y', 'width', 'height'].every((key) => Number.isFinite(saved[key]));
    return sides && saved.width >= 64 && saved.height >= 64 ? saved : null;
  } catch {
    return null; // storage off or a damaged entry: no frame
  }
}

function keep(editor, frame) {
  try {
    if (frame) editor.storage?.setItem(KEY(editor.canvasId), JSON.stringify(frame));
    else editor.storage?.removeItem(KEY(editor.canvasId));
  } catch {
    /* storage full or off: the frame lives until the page closes */
  }
}
