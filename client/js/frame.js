// The tools that act on the picture (issue #18), as arithmetic: the generation frame (a rectangle of the
// document, snapped to the model's multiple of 8, at least 64 × 64: drawn, moved, resized by a corner), what
// the frame needs outpainted, the outpaint command's params, and a crop region or a magic-wand point in a
// source picture's pixels from where the pointer is on the document (placement.js's toPicture).

import { placementOf, toPicture, IDENTITY } from './placement.js';

export const SNAP = 8;
export const MIN_SIDE = 64;

const snap = (value, step = SNAP) => Math.round(value / step) * step + 0; // never -0

/** The frame spanned by two document points (a drag's start and end), snapped to `SNAP`, at least
 * `MIN_SIDE` on each side (grown away from the start point). */
export function frameFromDrag(a, b, { step = SNAP, min = MIN_SIDE } = {}) {
  const side = (from, to) => {
    const start = snap(from, step);
    let end = snap(to, step);
    if (Math.abs(end - start) < min) end = start + (to < from ? -min : min);
    return [Math.min(start, end), Math.abs(end - start)];
  };
  const [x, width] = side(a.x, b.x);
  const [y, height] = side(a.y, b.y);
  return { x, y, width, height };
}

/** `frame` moved by (dx, dy) document pixels, its corner snapped. */
export function frameMovedBy(frame, dx, dy, step = SNAP) {
  return { ...frame, x: snap(frame.x + dx, step), y: snap(frame.y + dy, step) };
}

const OPPOSITE = { nw: ['right', 'bottom'], ne: ['left', 'bottom'], se: ['left', 'top'], sw: ['right', 'top'] };

/** `frame` with its `corner` ('nw', 'ne', 'se', 'sw') dragged to document point `p`: the opposite corner
 * stays, the dragged one snaps; never under `MIN_SIDE` (the dragged corner stops there). */
export function frameResized(frame, corner, p, { step = SNAP, min = MIN_SIDE } = {}) {
  const [hold, vhold] = OPPOSITE[corner];
  const right = frame.x + frame.width;
  const bottom = frame.y + frame.height;
  let x;
  let width;
  if (hold === 'left') {
    width = Math.max(min, snap(p.x - frame.x, step));
    x = frame.x;
  } else {
    width = Math.max(min, snap(right - p.x, step));
    x = right - width;
  }
  let y;
  let height;
  if (vhold === 'top') {
    height = Math.max(min, snap(p.y - frame.y, step));
    y = frame.y;
  } else {
    height = Math.max(min, snap(bottom - p.y, step));
    y = bottom - height;
  }
  return { x, y, width, height };
}

/** What a press at document point `p` takes of `frame`: a corner ('nw', 'ne', 'se', 'sw') within `grab`
 * document pixels, 'inside', or null. */
export function frameHit(frame, p, grab = 6) {
  if (!frame) return null;
  const xs = { w: frame.x, e: frame.x + frame.width };
  const ys = { n: frame.y, s: frame.y + frame.height };
  for (const corner of ['nw', 'ne', 'se', 'sw']) {
    if (Math.abs(p.x - xs[corner[1]]) <= grab && Math.abs(p.y - ys[corner[0]]) <= grab) return corner;
  }
  if (p.x >= frame.x && p.x <= xs.e && p.y >= frame.y && p.y <= ys.s) return 'inside';
  return null;
}

/** The share of `frame` (0..1) that no picture of `layers` (each with `output` {width, height} and a
 * placement) covers, sampled every `step` document pixels (at pixel centres). */
export function uncoveredShare(frame, layers, step = SNAP) {
  const pictures = layers.filter((l) => l.output);
  let total = 0;
  let empty = 0;
  for (let y = frame.y + step / 2; y < frame.y + frame.height; y += step) {
    for (let x = frame.x + step / 2; x < frame.x + frame.width; x += step) {
      total += 1;
      const covered = pictures.some((l) => {
        const { width: w, height: h } = l.output;
        const { u, v } = toPicture(placementOf(l), w, h, x, y);
        return u >= 0 && u < w && v >= 0 && v < h;
      });
      if (!covered) empty += 1;
    }
  }
  return total ? empty / total : 0;
}

/** The outpaint command's params: the frame, every picture layer of `layers` (bottom first, visible, masks
 * left out) where it is placed with its opacity, and the prompt (with any further params the form has). */
export function outpaintParams(frame, layers, prompt, { maskOps = new Set(), extra = {} } = {}) {
  return { ...extra, frame: frameParam(frame), layers: placedLayers(layers, maskOps), prompt };
}

/** The visible pictures (not masks) with the placements they have now, bottom first: what a frame reads. */
export function placedLayers(layers, maskOps = new Set()) {
  return layers
    .filter((l) => l.visible !== false && l.output && !maskOps.has(l.operation))
    .map((l) => {
      const p = placementOf(l);
      return { layer: l.id, x: p.x, y: p.y, scale: p.scale, rotation: p.rotation, flip_x: p.flip_x, flip_y: p.flip_y, opacity: l.opacity ?? 1 };
    });
}

function frameParam(frame) {
  return { x: frame.x, y: frame.y, width: frame.width, height: frame.height };
}

// Operations that read a picture, and the param that names it: over a frame they read the composite under it.
export const FRAME_READERS = { img2img: 'source', inpaint: 'source', instruct_pix2pix: 'source', controlnet_canny: 'control', controlnet: 'control' };

/** `command` (an img2img, inpaint…) reading the composite under `frame`: a flatten layer of the frame first,
 * then the command over it; both lie at the frame (the server places them). */
export function throughFrame(command, frame, layers, flattenId, maskOps = new Set()) {
  const key = FRAME_READERS[command.operation];
  const flatten = { type: 'add_layer', layer_id: flattenId, operation: 'flatten', name: `Frame ${frame.width} × ${frame.height}`, params: { frame: frameParam(frame), layers: placedLayers(layers, maskOps) } };
  return [flatten, { ...command, params: { ...command.params, [key]: flattenId } }];
}

/** The txt2img command for the frame: the form's params at the frame's size, placed at its corner. */
export function frameCommand(command, frame) {
  return { ...command, params: { ...command.params, width: frame.width, height: frame.height }, placement: { x: frame.x, y: frame.y } };
}

/** The crop region of a w × h picture placed by `placement` under the document rectangle spanned by `a` and
 * `b`: whole pixels, clamped to the picture, at least 1 × 1; null when the rectangle misses the picture. */
export function cropRegion(placement, w, h, a, b) {
  const p = { ...IDENTITY, ...placement };
  const points = [[a.x, a.y], [b.x, a.y], [b.x, b.y], [a.x, b.y]].map(([x, y]) => toPicture(p, w, h, x, y));
  const us = points.map((q) => q.u);
  const vs = points.map((q) => q.v);
  const left = Math.max(0, Math.round(Math.min(...us)));
  const top = Math.max(0, Math.round(Math.min(...vs)));
  const right = Math.min(w, Math.round(Math.max(...us)));
  const bottom = Math.min(h, Math.round(Math.max(...vs)));
  if (left >= w || top >= h || right <= 0 || bottom <= 0) return null;
  const x = Math.min(left, w - 1);
  const y = Math.min(top, h - 1);
  return { x, y, width: Math.max(1, right - x), height: Math.max(1, bottom - y) };
}

/** The picture pixel {x, y} of a w × h picture placed by `placement` under document point `d`, or null when
 * the point is off the picture. */
export function picturePixel(placement, w, h, d) {
  const { u, v } = toPicture({ ...IDENTITY, ...placement }, w, h, d.x, d.y);
  if (u < 0 || v < 0 || u >= w || v >= h) return null;
  return { x: Math.floor(u), y: Math.floor(v) };
}

/** The words for a frame: "512 × 256 at 128, 0". */
export function describeFrame(frame) {
  return `${frame.width} × ${frame.height} at ${frame.x}, ${frame.y}`;
}
