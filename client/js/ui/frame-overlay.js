// Drawing the picture tools over the stage, in screen pixels: the generation frame (a labelled dashed
// rectangle with its size, corner handles while the frame tool is on) and what the New-layer form picks on
// its source picture (the crop region where it lies on the document, the magic wand's point).

import { toDocument, placementOf } from '../placement.js';

const FRAME_COLOUR = '#ffb224';
const PICK_COLOUR = '#3ddbd9';

/** Draw the overlays on `ctx` (its transform: device pixels, the view not applied). */
export function drawOverlays(viewport, ctx) {
  const v = viewport.view;
  const screen = (p) => ({ x: v.x + p.x * v.scale, y: v.y + p.y * v.scale });
  const shown = viewport.picker?.shown?.();
  const layer = shown && viewport.state?.layers[shown.layer];
  if (layer?.output && !viewport.mask) drawPick(ctx, viewport, layer, shown, screen);
  if (viewport.generationFrame) drawFrame(ctx, viewport.generationFrame, screen, viewport.tool === 'frame');
}

function drawFrame(ctx, frame, screen, handles) {
  const a = screen({ x: frame.x, y: frame.y });
  const b = screen({ x: frame.x + frame.width, y: frame.y + frame.height });
  ctx.save();
  ctx.lineWidth = 1.5;
  ctx.strokeStyle = 'rgba(0,0,0,0.55)';
  ctx.strokeRect(a.x, a.y, b.x - a.x, b.y - a.y);
  ctx.strokeStyle = FRAME_COLOUR;
  ctx.setLineDash([8, 5]);
  ctx.strokeRect(a.x, a.y, b.x - a.x, b.y - a.y);
  ctx.setLineDash([]);
  if (handles) {
    for (const [x, y] of [[a.x, a.y], [b.x, a.y], [b.x, b.y], [a.x, b.y]]) {
      ctx.fillStyle = '#fff';
      ctx.fillRect(x - 4, y - 4, 8, 8);
      ctx.strokeStyle = FRAME_COLOUR;
      ctx.strokeRect(x - 4, y - 4, 8, 8);
    }
  }
  label(ctx, `Frame ${frame.width} × ${frame.height}`, a.x, a.y, FRAME_COLOUR);
  ctx.restore();
}

function drawPick(ctx, viewport, layer, shown, screen) {
  const { width: w, height: h } = layer.output;
  const placement = viewport.placementOf?.(layer) || placementOf(layer);
  ctx.save();
  if (shown.region) {
    const r = shown.region;
    const quad = [[r.x, r.y], [r.x + r.width, r.y], [r.x + r.width, r.y + r.height], [r.x, r.y + r.height]].map(([u, q]) => screen(toDocument(placement, w, h, u, q)));
    ctx.beginPath();
    quad.forEach((p, i) => (i ? ctx.lineTo(p.x, p.y) : ctx.moveTo(p.x, p.y)));
    ctx.closePath();
    ctx.fillStyle = 'rgba(61,219,217,0.14)';
    ctx.fill();
    ctx.lineWidth = 3;
    ctx.strokeStyle = 'rgba(0,0,0,0.55)';
    ctx.stroke();
    ctx.lineWidth = 1.5;
    ctx.strokeStyle = PICK_COLOUR;
    ctx.stroke();
    const top = quad.reduce((best, p) => (p.y < best.y || (p.y === best.y && p.x < best.x) ? p : best));
    label(ctx, `Crop ${r.width} × ${r.height}`, top.x, top.y, PICK_COLOUR);
  }
  if (shown.point) {
    const c = screen(toDocument(placement, w, h, shown.point.x + 0.5, shown.point.y + 0.5));
    ctx.lineWidth = 2;
    ctx.strokeStyle = 'rgba(0,0,0,0.6)';
    ctx.beginPath();
    ctx.arc(c.x, c.y, 7, 0, Math.PI * 2);
    ctx.stroke();
    ctx.strokeStyle = PICK_COLOUR;
    ctx.lineWidth = 1.5;
    ctx.beginPath();
    ctx.arc(c.x, c.y, 6, 0, Math.PI * 2);
    ctx.moveTo(c.x - 11, c.y);
    ctx.lineTo(c.x - 3, c.y);
    ctx.moveTo(c.x + 3, c.y);
    ctx.lineTo(c.x + 11, c.y);
    ctx.moveTo(c.x, c.y - 11);
    ctx.lineTo(c.x, c.y - 3);
    ctx.moveTo(c.x, c.y + 3);
    ctx.lineTo(c.x, c.y + 11);
    ctx.stroke();
    label(ctx, `Wand at ${shown.point.x}, ${shown.point.y}`, c.x + 10, c.y - 8, PICK_COLOUR);
  }
  ctx.restore();
}

/** A small pill with `text` just above (x, y), inside the stage when (x, y) is near its top. */
function label(ctx, text, x, y, colour) {
  ctx.font = '600 11px system-ui, sans-serif';
  const width = ctx.measureText(text).width + 12;
  const top = y - 22 < 2 ? y + 4 : y - 22;
  ctx.fillStyle = 'rgba(20,21,25,0.85)';
  ctx.fillRect(x, top, width, 18);
  ctx.fillStyle = colour;
  ctx.fillRect(x, top, 3, 18);
  ctx.fillStyle = '#f4f4f6';
  ctx.textBaseline = 'middle';
  ctx.fillText(text, x + 8, top + 9.5);
}
