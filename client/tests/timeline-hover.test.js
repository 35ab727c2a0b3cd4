// The timeline's hover card and its drag aim at the same version: the one a range slider puts its thumb at.
import test from 'node:test';
import assert from 'node:assert/strict';
import { versionAtX, xOfVersion, THUMB_WIDTH } from '../js/ui/timeline-hover.js';

const track = { left: 100, width: 314 }; // 300 px of travel for the thumb's centre

test('the version under a pointer is where the thumb centre would stand', () => {
  const head = 31; // 10 px per version
  assert.equal(versionAtX(track, 100 + THUMB_WIDTH / 2, head), 1);
  assert.equal(versionAtX(track, 100 + THUMB_WIDTH / 2 + 110, head), 12);
  assert.equal(versionAtX(track, 100 + THUMB_WIDTH / 2 + 114.9, head), 12); // under half a step: still v12
  assert.equal(versionAtX(track, 100 + THUMB_WIDTH / 2 + 115.1, head), 13);
  assert.equal(versionAtX(track, 0, head), 1); // beyond the ends: the ends
  assert.equal(versionAtX(track, 9999, head), head);
  assert.equal(versionAtX(track, 250, 1), 1); // one version: nothing to choose
});

test('a version and its position agree both ways', () => {
  for (const head of [2, 7, 31, 500]) {
    for (let version = 1; version <= head; version += Math.ceil(head / 9)) {
      const x = track.left + xOfVersion(track.width, version, head);
      assert.equal(versionAtX(track, x, head), version, `v${version} of ${head}`);
    }
  }
});
