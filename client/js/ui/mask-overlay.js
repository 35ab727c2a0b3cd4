// The mask being painted, drawn over the canvas: the strokes so far (and the mask layer being edited) kept on
// an offscreen canvas the size of the target layer, the stroke in progress drawn fresh each frame, and a
// dashed outline around the area a mask covers.

import { MASK_TINT } from './image-cache.js';

export class MaskOverlay {
  constructor(cache) {
    this.cache = cache;
    this.canvas = null;
  }

  /** Forget what is drawn (a new mask, or a stroke taken back): the next draw starts over. */
  reset() {
    this.canvas = null;
  }

  /**
   * Draw `mask` ({target, editing, strokes, current}) on `ctx` (in world coordinates); `fallback` is the
   * artboard's size, for a target without a picture; `scale` the view's, for the outline.
   */
  draw(ctx, mask, fallback, scale) {
    const { target, editing } = mask;
    const w = target.output?.width || fallback.width;
    const hgt = target.output?.height || fallback.height;
    if (!this.canvas || this.canvas.width !== w || this.canvas.height !== hgt) {
      this.canvas = document.createElement('canvas');
      this.canvas.width = w;
      this.canvas.height = hgt;
      this.drawn = 0;
      this.base = false;
    }
    const o = this.canvas.getContext('2d');
    if (editing && editing.output && !this.base) {
      const tinted = this.cache.tinted(editing.output.sha256);
      if (tinted) {
        o.clearRect(0, 0, w, hgt);
        o.drawImage(tinted, 0, 0, w, hgt);
        this.base = true;
        this.drawn = 0;
      }
    }
    const strokes = mask.current ? [...mask.strokes, mask.current] : mask.strokes;
    // strokes already on the overlay stay; the stroke being painted is redrawn each frame
    for (let i = this.drawn; i < strokes.length; i++) paintStroke(o, strokes[i]);
    this.drawn = mask.current ? strokes.length - 1 : strokes.length;
    if (mask.current) {
      // draw the live stroke on a scratch copy so it can still grow
      const scratch = document.createElement('canvas');
      scratch.width = w;
      scratch.height = hgt;
      const s = scratch.getContext('2d');
      s.drawImage(this.canvas, 0, 0);
      paintStroke(s, mask.current);
      ctx.globalAlpha = 0.6;
      ctx.drawImage(scratch, 0, 0);
    } else {
      ctx.globalAlpha = 0.6;
      ctx.drawImage(this.canvas, 0, 0);
    }
    ctx.globalAlpha = 1;
    ctx.strokeStyle = 'rgba(255,64,129,0.9)';
    ctx.lineWidth = 1.5 / scale;
    ctx.setLineDash([6 / scale, 4 / scale]);
    ctx.strokeRect(0, 0, w, hgt);
    ctx.setLineDash([]);
  }
}

function paintStroke(ctx, stroke) {
  ctx.save();
  ctx.globalCompositeOperation = stroke.erase ? 'destination-out' : 'source-over';
  ctx.fillStyle = ctx.strokeStyle = `rgb(${MASK_TINT.join(',')})`;
  ctx.lineWidth = stroke.radius * 2;
  ctx.lineCap = 'round';
  ctx.lineJoin = 'round';
  const [first, ...rest] = stroke.points;
  if (!rest.length) {
    ctx.beginPath();
    ctx.arc(first[0], first[1], stroke.radius, 0, Math.PI * 2);
    ctx.fill();
  } else {
    ctx.beginPath();
    ctx.moveTo(first[0], first[1]);
    for (const [x, y] of rest) ctx.lineTo(x, y);
    ctx.stroke();
  }
  ctx.restore();
}
