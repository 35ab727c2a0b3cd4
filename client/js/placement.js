// Where a layer's picture sits on the document (server/core/state.py Placement, engine/document.py): its
// top-left corner at (x, y), scaled about that corner, then rotated clockwise and flipped about its centre.
// The editor draws with the same transform the server flattens with, so the stage and the composite agree.

export const IDENTITY = Object.freeze({ x: 0, y: 0, scale: 1, rotation: 0, flip_x: false, flip_y: false });

export function placementOf(layer) {
  return { ...IDENTITY, ...(layer?.placement || {}) };
}

/** Set `ctx` (already in document coordinates) so that drawing the w x h picture at (0, 0) places it. */
export function applyPlacement(ctx, placement, w, h) {
  const p = { ...IDENTITY, ...placement };
  ctx.translate(p.x + (p.scale * w) / 2, p.y + (p.scale * h) / 2);
  ctx.rotate((p.rotation * Math.PI) / 180);
  ctx.scale(p.scale * (p.flip_x ? -1 : 1), p.scale * (p.flip_y ? -1 : 1));
  ctx.translate(-w / 2, -h / 2);
}

/** The document point of the picture's point (u, v). */
export function toDocument(placement, w, h, u, v) {
  const p = { ...IDENTITY, ...placement };
  const qx = p.scale * (p.flip_x ? -1 : 1) * (u - w / 2);
  const qy = p.scale * (p.flip_y ? -1 : 1) * (v - h / 2);
  const a = (p.rotation * Math.PI) / 180;
  return { x: p.x + (p.scale * w) / 2 + Math.cos(a) * qx - Math.sin(a) * qy, y: p.y + (p.scale * h) / 2 + Math.sin(a) * qx + Math.cos(a) * qy };
}

/** The picture's point under document point (x, y) (the inverse of `toDocument`). */
export function toPicture(placement, w, h, x, y) {
  const p = { ...IDENTITY, ...placement };
  const px = (x - p.x) / p.scale - w / 2;
  const py = (y - p.y) / p.scale - h / 2;
  const a = (p.rotation * Math.PI) / 180;
  const u = Math.cos(a) * px + Math.sin(a) * py;
  const v = -Math.sin(a) * px + Math.cos(a) * py;
  return { u: (p.flip_x ? -u : u) + w / 2, v: (p.flip_y ? -v : v) + h / 2 };
}

/** The four corners of a placed w x h picture, in document coordinates (for outlines and handles). */
export function corners(placement, w, h) {
  return [[0, 0], [w, 0], [w, h], [0, h]].map(([u, v]) => toDocument(placement, w, h, u, v));
}

/** The topmost of `layers` (bottom first, each with `output` {width, height}) whose picture covers (x, y). */
export function layerAt(layers, x, y) {
  for (let i = layers.length - 1; i >= 0; i--) {
    const layer = layers[i];
    if (!layer.output) continue;
    const { width: w, height: h } = layer.output;
    const { u, v } = toPicture(placementOf(layer), w, h, x, y);
    if (u >= 0 && u < w && v >= 0 && v < h) return layer;
  }
  return null;
}

/** `placement` moved by (dx, dy) document pixels, rounded to whole pixels (a plain move stays crisp). */
export function movedBy(placement, dx, dy) {
  const p = { ...IDENTITY, ...placement };
  return { ...p, x: Math.round(p.x + dx), y: Math.round(p.y + dy) };
}

export function samePlace(a, b) {
  return Object.keys(IDENTITY).every((key) => a[key] === b[key]);
}

// --- handles: scale from a corner, turn from a knob, both about the picture's centre --------------------------

export const KNOB_GAP = 28; // screen pixels between the top edge's middle and the turning knob

/** The document point of a placed picture's centre. */
export function centreOf(placement, w, h) {
  return toDocument(placement, w, h, w / 2, h / 2);
}

/** `placement` scaled about its centre so that the corner the drag started at follows the pointer. */
export function scaledTo(placement, w, h, start, pointer) {
  const p = { ...IDENTITY, ...placement };
  const c = centreOf(p, w, h);
  const before = Math.hypot(start.x - c.x, start.y - c.y);
  const after = Math.hypot(pointer.x - c.x, pointer.y - c.y);
  const scale = Math.min(64, Math.max(0.01, before > 0 ? (p.scale * after) / before : p.scale));
  return { ...p, scale, x: c.x - (scale * w) / 2, y: c.y - (scale * h) / 2 };
}

/** `placement` turned about its centre by the angle the pointer swept from `start`; `snap` in degrees. */
export function turnedTo(placement, w, h, start, pointer, snap = 0) {
  const p = { ...IDENTITY, ...placement };
  const c = centreOf(p, w, h);
  const swept = (Math.atan2(pointer.y - c.y, pointer.x - c.x) - Math.atan2(start.y - c.y, start.x - c.x)) * (180 / Math.PI);
  let rotation = (((p.rotation + swept) % 360) + 360) % 360;
  if (snap) rotation = (Math.round(rotation / snap) * snap) % 360;
  return { ...p, rotation };
}
