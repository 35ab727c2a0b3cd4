import test from 'node:test';
import assert from 'node:assert/strict';
import { zoomAt, toWorld, toScreen, fit, contentSize, nextZoom, clampScale, MAX_SCALE } from '../js/view.js';
import { startStroke, extendStroke, maskParams, touches } from '../js/mask.js';

test('zooming keeps the point under the cursor in place', () => {
  const view = { scale: 1, x: 100, y: 50 };
  const zoomed = zoomAt(view, 2, 300, 250);
  const before = toWorld(view, 300, 250);
  const after = toWorld(zoomed, 300, 250);
  assert.deepEqual(before, after);
  assert.equal(zoomed.scale, 2);
  const p = toScreen(zoomed, before.x, before.y);
  assert.deepEqual(p, { x: 300, y: 250 });
  assert.equal(clampScale(1e9), MAX_SCALE);
});

test('fit centres the picture with padding and a zoom cap', () => {
  assert.deepEqual(fit(512, 512, 712, 612, { padding: 50 }), { scale: 1, x: 100, y: 50 });
  assert.equal(fit(64, 64, 1000, 800).scale, 8);
  assert.deepEqual(contentSize([{ output: { width: 64, height: 32 } }, { output: null }, { output: { width: 16, height: 128 } }]), { width: 64, height: 128 });
  assert.equal(nextZoom(1, +1), 1.5);
  assert.equal(nextZoom(1, -1), 2 / 3);
});

test('brush strokes: thinned points, bounded radius, appended to a mask\'s strokes', () => {
  let stroke = startStroke(10.04, 20.06, 8, false);
  assert.deepEqual(stroke, { points: [[10, 20.1]], radius: 8, erase: false });
  stroke = extendStroke(stroke, 11, 20); // closer than radius/4: skipped
  assert.equal(stroke.points.length, 1);
  stroke = extendStroke(stroke, 14, 20);
  assert.deepEqual(stroke.points.at(-1), [14, 20]);
  assert.equal(startStroke(0, 0, 9999, true).radius, 512);
  const base = { layer: 'A', strokes: [stroke], blob: null };
  assert.deepEqual(maskParams('A', [stroke], base).strokes.length, 2);
  assert.deepEqual(maskParams('A', [stroke]), { layer: 'A', strokes: [stroke] });
  assert.ok(touches(stroke, 64, 64));
  assert.ok(!touches(startStroke(-50, -50, 4, false), 64, 64));
});
