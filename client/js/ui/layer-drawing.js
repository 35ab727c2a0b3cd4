// Drawing one layer on the stage: its picture (or its render's latest preview, or a mask's tint) where its
// placement puts it on the document, as engine/document.py flattens it for the composite.

import { applyPlacement } from '../placement.js';

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
