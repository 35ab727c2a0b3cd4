// What a view looks at, as presence shares it (`viewport` {x, y, zoom}: the canvas point at the centre of the
// screen and the zoom), and the view that shows the same on a screen of another size (follow mode).

import { toWorld, clampScale } from '../view.js';

/** The shared form of `view` ({scale, x, y}) on a screen `width` × `height`. */
export function sharedView(view, width, height) {
  const centre = toWorld(view, width / 2, height / 2);
  return { x: Math.round(centre.x * 10) / 10, y: Math.round(centre.y * 10) / 10, zoom: Math.round(view.scale * 10000) / 10000 };
}

/** The view ({scale, x, y}) centring what `shared` looks at on a screen `width` × `height`, or null. */
export function viewShowing({ x, y, zoom } = {}, width, height) {
  if (![x, y, zoom, width, height].every(Number.isFinite)) return null;
  const scale = clampScale(zoom);
  return { scale, x: width / 2 - x * scale, y: height / 2 - y * scale };
}

/** Whether two views show the same, to the pixel. */
export function sameView(a, b) {
  return Math.abs(a.scale - b.scale) < 1e-4 && Math.abs(a.x - b.x) < 0.5 && Math.abs(a.y - b.y) < 0.5;
}
