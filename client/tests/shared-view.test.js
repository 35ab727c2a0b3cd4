// Follow mode's arithmetic: what one screen looks at, shown centred on a screen of another size.
import test from 'node:test';
import assert from 'node:assert/strict';
import { sharedView, viewShowing, sameView } from '../js/ui/shared-view.js';
import { toWorld } from '../js/view.js';

test('a follower sees the same canvas point at the centre, at the same zoom, whatever their screen', () => {
  const ada = { scale: 2.5, x: -340, y: -120 };
  const shared = sharedView(ada, 1200, 800);
  assert.deepEqual(shared, { x: 376, y: 208, zoom: 2.5 });
  const grace = viewShowing(shared, 700, 500);
  assert.equal(grace.scale, 2.5);
  const centre = toWorld(grace, 350, 250);
  assert.ok(Math.abs(centre.x - 376) < 1e-9 && Math.abs(centre.y - 208) < 1e-9);
  assert.ok(sameView(viewShowing(shared, 1200, 800), ada)); // the same screen: the same view
});

test('a viewport that is not numbers shows nothing; a zoom out of range is held to the view limits', () => {
  assert.equal(viewShowing({ x: 1, y: 2 }, 800, 600), null);
  assert.equal(viewShowing(undefined, 800, 600), null);
  assert.equal(viewShowing({ x: 1, y: 2, zoom: NaN }, 800, 600), null);
  assert.equal(viewShowing({ x: 0, y: 0, zoom: 1000 }, 800, 600).scale, 64);
  assert.ok(!sameView({ scale: 1, x: 0, y: 0 }, { scale: 1, x: 1, y: 0 }));
});
