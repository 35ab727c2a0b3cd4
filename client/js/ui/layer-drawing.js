// Drawing one layer on the stage: its picture (or its render's latest preview, or a mask's tint) where its
// placement puts it on the document, as engine/document.py flattens it for the composite.

import { KNOB_GAP, applyPlacement, corners, toDocument } from '../placement.js';

/** One layer's picture where its placement puts it (previews and masks with it), on the viewport's `ctx`
 * already in document coordinates. */
export function drawLayer(viewport, ctx, layer) {
  const preview = viewport.previewOf(layer.id);
  const size = layer.output || preview || { width: 0, height: 0 };
  applyPlacement(ctx, viewport.placementOf(layer), size.width, size.height);
  if (viewport.previews.has(layer.id)) {
    // rendering: its latest preview, scaled to the finished size (the older picture is out of date)
    if (preview) ctx.drawImage(preview.img, 0, 0, preview.width, preview.height);
    else if (layer.output && !viewport.maskOps.has(layer.operation)) {
      const entry = viewport.cache.get(layer.output.sha256);
      if (entry.loaded) ctx.drawImage(entry.img, 0, 0, layer.output.width, layer.output.height);
    }
  } else if (viewport.maskOps.has(layer.operation)) {
    const tinted = viewport.cache.tinted(layer.output.sha256);
    if (tinted) {
      ctx.globalAlpha = layer.opacity * 0.55;
      ctx.drawImage(tinted, 0, 0, layer.output.width, layer.output.height);
    }
  } else {
    const entry = viewport.cache.get(layer.output.sha256);
    if (entry.loaded) ctx.drawImage(entry.img, 0, 0, layer.output.width, layer.output.height);
  }
}

/** The mask being painted, over its target picture where that picture is placed (its strokes are in the
 * picture's own pixels: client/js/ui/viewport-input.js). */
export function drawMaskOverlay(viewport, ctx) {
  const target = viewport.mask.target;
  const size = target.output || viewport.lastContent;
  const placement = viewport.placementOf(target);
  ctx.save();
  applyPlacement(ctx, placement, size.width, size.height);
  viewport.maskOverlay.draw(ctx, viewport.mask, viewport.lastContent, viewport.view.scale * placement.scale);
  ctx.restore();
}

/** The selected picture's outline where it is placed (outside the frame too: that is where it lies) and,
 * with the move tool, its handles: four corners to scale, a knob to turn (client/js/ui/viewport-input.js). */
export function drawSelection(viewport, ctx) {
  const layer = viewport.selected && viewport.state.layers[viewport.selected];
  if (!layer?.output || viewport.mask) return;
  const v = viewport.view;
  const screen = handlePoints(viewport, layer);
  ctx.strokeStyle = '#8b6cff';
  ctx.lineWidth = 1.5;
  ctx.setLineDash([6, 4]);
  ctx.beginPath();
  screen.corners.forEach((p, i) => (i ? ctx.lineTo : ctx.moveTo).call(ctx, p.x, p.y));
  ctx.closePath();
  ctx.stroke();
  ctx.setLineDash([]);
  if (viewport.tool !== 'move' || !v) return;
  ctx.fillStyle = '#ffffff';
  for (const p of screen.corners) {
    ctx.fillRect(p.x - 4, p.y - 4, 8, 8);
    ctx.strokeRect(p.x - 4, p.y - 4, 8, 8);
  }
  ctx.beginPath();
  ctx.moveTo(screen.top.x, screen.top.y);
  ctx.lineTo(screen.knob.x, screen.knob.y);
  ctx.stroke();
  ctx.beginPath();
  ctx.arc(screen.knob.x, screen.knob.y, 5, 0, Math.PI * 2);
  ctx.fill();
  ctx.stroke();
}

/** Where the selected picture's handles are on the screen: its corners, its top edge's middle, the knob. */
export function handlePoints(viewport, layer) {
  const v = viewport.view;
  const { width: w, height: h } = layer.output;
  const placement = viewport.placementOf(layer);
  const toScreen = (p) => ({ x: v.x + p.x * v.scale, y: v.y + p.y * v.scale });
  const screenCorners = corners(placement, w, h).map(toScreen);
  const top = toScreen(toDocument(placement, w, h, w / 2, 0));
  const centre = toScreen(toDocument(placement, w, h, w / 2, h / 2));
  const length = Math.hypot(top.x - centre.x, top.y - centre.y) || 1;
  const knob = { x: top.x + ((top.x - centre.x) / length) * KNOB_GAP, y: top.y + ((top.y - centre.y) / length) * KNOB_GAP };
  return { corners: screenCorners, top, knob };
}

export const ONION = 0.3; // how much of the other layers shows while a mask is painted on one

/** The layers to draw, bottom first, with their alpha. While a mask is painted, its target is drawn on top
 * at its own opacity and the rest faintly (onion skin), so the mask is never painted blind over what covers
 * it; the mask being edited is left out (drawn as the live overlay). */
export function stackToDraw(viewport) {
  const layers = viewport.visibleLayers();
  const mask = viewport.mask;
  if (!mask) return layers.map((layer) => ({ layer, alpha: layer.opacity }));
  const others = layers.filter((l) => l.id !== mask.target?.id && l.id !== mask.editing?.id);
  const target = layers.find((l) => l.id === mask.target?.id);
  return [...others.map((layer) => ({ layer, alpha: layer.opacity * ONION })), ...(target ? [{ layer: target, alpha: target.opacity }] : [])];
}
