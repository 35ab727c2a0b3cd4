// The viewport's transform: screen = world * scale + offset. World units are image pixels (every layer's
// top-left corner sits at the world origin).

export const MIN_SCALE = 1 / 32;
export const MAX_SCALE = 64;

export function clampScale(scale) {
  return Math.min(MAX_SCALE, Math.max(MIN_SCALE, scale));
}

export function toWorld(view, sx, sy) {
  return { x: (sx - view.x) / view.scale, y: (sy - view.y) / view.scale };
}

export function toScreen(view, wx, wy) {
  return { x: wx * view.scale + view.x, y: wy * view.scale + view.y };
}

/** Zoom by `factor` keeping the world point under screen (sx, sy) in place. */
export function zoomAt(view, factor, sx, sy) {
  const scale = clampScale(view.scale * factor);
  const world = toWorld(view, sx, sy);
  return { scale, x: sx - world.x * scale, y: sy - world.y * scale };
}

export function pan(view, dx, dy) {
  return { ...view, x: view.x + dx, y: view.y + dy };
}

/** Centre a `width`×`height` picture in a viewport, as large as fits with `padding`, never above `maxScale`. */
export function fit(width, height, viewportWidth, viewportHeight, { padding = 48, maxScale = 8 } = {}) {
  if (!width || !height) return { scale: 1, x: viewportWidth / 2, y: viewportHeight / 2 };
  const scale = clampScale(
    Math.min(maxScale, (viewportWidth - 2 * padding) / width, (viewportHeight - 2 * padding) / height),
  );
  return { scale, x: (viewportWidth - width * scale) / 2, y: (viewportHeight - height * scale) / 2 };
}

/** The size of the picture: the largest extent of the layers that have an image. */
export function contentSize(layers) {
  let width = 0;
  let height = 0;
  for (const layer of layers) {
    if (!layer.output) continue;
    width = Math.max(width, layer.output.width);
    height = Math.max(height, layer.output.height);
  }
  return { width, height };
}

/** Zoom presets stepped through by the +/- buttons. */
const STEPS = [1 / 32, 1 / 16, 1 / 8, 1 / 4, 1 / 3, 1 / 2, 2 / 3, 1, 1.5, 2, 3, 4, 6, 8, 12, 16, 24, 32, 48, 64];

export function nextZoom(scale, direction) {
  if (direction > 0) return STEPS.find((s) => s > scale * 1.001) ?? MAX_SCALE;
  return [...STEPS].reverse().find((s) => s < scale / 1.001) ?? MIN_SCALE;
}
