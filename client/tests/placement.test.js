import test from 'node:test';
import assert from 'node:assert/strict';
import { applyPlacement, corners, layerAt, movedBy, toDocument, toPicture } from '../js/placement.js';

const close = (a, b) => assert.ok(Math.abs(a - b) < 1e-9, `${a} != ${b}`);

test('the client places a picture as the server flattens it: corner, scale, quarter turn, flip', () => {
  // engine/document.py: a 4 x 2 picture at (0, 1) turned 90 degrees clockwise has its top-left corner at (3, 0)
  const turned = { x: 0, y: 1, scale: 1, rotation: 90, flip_x: false, flip_y: false };
  const c = toDocument(turned, 4, 2, 0, 0);
  close(c.x, 3);
  close(c.y, 0);
  const back = toPicture(turned, 4, 2, 2.5, 0.5);
  close(back.u, 0.5);
  close(back.v, 0.5);
  const scaled = corners({ x: 1, y: 2, scale: 2.5 }, 2, 3);
  assert.deepEqual(scaled.map((p) => [p.x, p.y]), [[1, 2], [6, 2], [6, 9.5], [1, 9.5]]);
  const flipped = toDocument({ flip_x: true }, 4, 2, 0, 0);
  close(flipped.x, 4);
});

test('the canvas transform maps the picture\u2019s corners where toDocument says', () => {
  // a tiny 2D matrix standing in for CanvasRenderingContext2D
  let m = [1, 0, 0, 1, 0, 0];
  const mul = (n) => {
    const [a, b, c, d, e, f] = m;
    m = [a * n[0] + c * n[1], b * n[0] + d * n[1], a * n[2] + c * n[3], b * n[2] + d * n[3], a * n[4] + c * n[5] + e, b * n[4] + d * n[5] + f];
  };
  const ctx = {
    translate: (x, y) => mul([1, 0, 0, 1, x, y]),
    rotate: (r) => mul([Math.cos(r), Math.sin(r), -Math.sin(r), Math.cos(r), 0, 0]),
    scale: (x, y) => mul([x, 0, 0, y, 0, 0]),
  };
  const placement = { x: 30, y: -5, scale: 1.5, rotation: 33, flip_x: true, flip_y: false };
  applyPlacement(ctx, placement, 40, 20);
  for (const [u, v] of [[0, 0], [40, 0], [40, 20], [7, 13]]) {
    const expected = toDocument(placement, 40, 20, u, v);
    close(m[0] * u + m[2] * v + m[4], expected.x);
    close(m[1] * u + m[3] * v + m[5], expected.y);
  }
});

test('a click picks the topmost placed picture under it; a move keeps whole pixels', () => {
  const layers = [
    { id: 'bottom', output: { width: 100, height: 100 } },
    { id: 'top', output: { width: 20, height: 20 }, placement: { x: 50, y: 50 } },
  ];
  assert.equal(layerAt(layers, 55, 55).id, 'top');
  assert.equal(layerAt(layers, 10, 10).id, 'bottom');
  assert.equal(layerAt(layers, 150, 10), null);
  assert.deepEqual(movedBy({ x: 50, y: 50 }, 10.4, -3.6), { x: 60, y: 46, scale: 1, rotation: 0, flip_x: false, flip_y: false });
});

test('a corner handle scales about the centre; the knob turns about it, Shift snapping to 15 degrees', async () => {
  const { scaledTo, turnedTo, centreOf } = await import('../js/placement.js');
  const start = { x: 10, y: 20, scale: 1 };
  // a 40 x 20 picture: centre (30, 30); its bottom-right corner (50, 40) dragged to (70, 50): twice as far
  const bigger = scaledTo(start, 40, 20, { x: 50, y: 40 }, { x: 70, y: 50 });
  close(bigger.scale, 2);
  const c = centreOf(bigger, 40, 20);
  close(c.x, 30);
  close(c.y, 30);
  // the knob above the centre dragged to its right: a quarter turn clockwise
  const turned = turnedTo(start, 40, 20, { x: 30, y: 0 }, { x: 60, y: 30 });
  close(turned.rotation, 90);
  const snapped = turnedTo(start, 40, 20, { x: 30, y: 0 }, { x: 60, y: 24 }, 15);
  close(snapped.rotation, 75);
  close(centreOf(turned, 40, 20).x, 30);
});
