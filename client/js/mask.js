// Brush strokes for the `mask` operation (engine/ops/mask.py): {points: [[x, y], ...], radius, erase}, in
// pixels of the layer painted on. A pixel is selected when its centre lies within `radius` of the stroke.

export const MAX_POINTS = 10000;
export const MAX_STROKES = 1000;

export function round1(value) {
  return Math.round(value * 10) / 10;
}

export function startStroke(x, y, radius, erase) {
  return { points: [[round1(x), round1(y)]], radius: Math.min(512, Math.max(0.5, radius)), erase: !!erase };
}

/** Add a point unless it is closer than a quarter of the radius to the last one (keeps strokes small). */
export function extendStroke(stroke, x, y) {
  const [lx, ly] = stroke.points[stroke.points.length - 1];
  const min = Math.max(0.5, stroke.radius / 4);
  if (Math.hypot(x - lx, y - ly) < min || stroke.points.length >= MAX_POINTS) return stroke;
  return { ...stroke, points: [...stroke.points, [round1(x), round1(y)]] };
}

/** Mask params: the strokes so far plus new ones, capped as the server caps them. */
export function maskParams(layerId, strokes, base = null) {
  const all = [...(base?.strokes || []), ...strokes].slice(-MAX_STROKES);
  const params = { layer: layerId, strokes: all };
  if (base && base.blob) params.blob = base.blob;
  return params;
}

/** Whether a stroke touches the w×h picture at all. */
export function touches(stroke, width, height) {
  const r = stroke.radius;
  return stroke.points.some(([x, y]) => x >= -r && y >= -r && x <= width - 1 + r && y <= height - 1 + r);
}
