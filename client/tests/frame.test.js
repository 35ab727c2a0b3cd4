import test from 'node:test';
import assert from 'node:assert/strict';
import { cropRegion, describeFrame, frameCommand, frameFromDrag, frameHit, frameMovedBy, frameResized, outpaintParams, picturePixel, uncoveredShare } from '../js/frame.js';

test('a drawn frame snaps to multiples of 8 and is at least 64 × 64, whichever way it is dragged', () => {
  assert.deepEqual(frameFromDrag({ x: 130, y: 3 }, { x: 641, y: 258 }), { x: 128, y: 0, width: 512, height: 256 });
  assert.deepEqual(frameFromDrag({ x: 641, y: 258 }, { x: 130, y: 3 }), { x: 128, y: 0, width: 512, height: 256 });
  // a click (or a tiny drag) still makes the smallest frame, away from where it started
  assert.deepEqual(frameFromDrag({ x: 100, y: 100 }, { x: 101, y: 101 }), { x: 104, y: 104, width: 64, height: 64 });
  assert.deepEqual(frameFromDrag({ x: 100, y: 100 }, { x: 90, y: 90 }), { x: 40, y: 40, width: 64, height: 64 });
});

test('a frame moves by whole steps of 8 and resizes by a corner, the opposite corner staying', () => {
  const frame = { x: 128, y: 0, width: 512, height: 256 };
  assert.deepEqual(frameMovedBy(frame, 13, -3), { x: 144, y: 0, width: 512, height: 256 });
  assert.deepEqual(frameResized(frame, 'se', { x: 700, y: 301 }), { x: 128, y: 0, width: 576, height: 304 });
  assert.deepEqual(frameResized(frame, 'nw', { x: 100, y: -30 }), { x: 96, y: -32, width: 544, height: 288 });
  assert.deepEqual(frameResized(frame, 'ne', { x: 130, y: 250 }), { x: 128, y: 192, width: 64, height: 64 }, 'never under 64');
  assert.deepEqual(frameResized(frame, 'sw', { x: 0, y: 256 }), { x: 0, y: 0, width: 640, height: 256 });
});

test('a press takes a corner handle, the inside, or nothing', () => {
  const frame = { x: 0, y: 0, width: 100, height: 80 };
  assert.equal(frameHit(frame, { x: 2, y: -3 }), 'nw');
  assert.equal(frameHit(frame, { x: 104, y: 78 }), 'se');
  assert.equal(frameHit(frame, { x: 98, y: 1 }), 'ne');
  assert.equal(frameHit(frame, { x: 1, y: 82 }), 'sw');
  assert.equal(frameHit(frame, { x: 50, y: 40 }), 'inside');
  assert.equal(frameHit(frame, { x: 150, y: 40 }), null);
  assert.equal(frameHit(null, { x: 0, y: 0 }), null);
});

test('how much of the frame no picture covers (placed, scaled)', () => {
  const layers = [{ id: 'a', output: { width: 256, height: 128 }, placement: { x: 0, y: 0 } }];
  assert.equal(uncoveredShare({ x: 0, y: 0, width: 256, height: 128 }, layers), 0);
  assert.equal(uncoveredShare({ x: 128, y: 0, width: 256, height: 128 }, layers), 0.5);
  assert.equal(uncoveredShare({ x: 300, y: 0, width: 64, height: 64 }, layers), 1);
  const scaled = [{ id: 'b', output: { width: 64, height: 64 }, placement: { x: 256, y: 0, scale: 2 } }];
  assert.equal(uncoveredShare({ x: 128, y: 0, width: 256, height: 128 }, [...layers, ...scaled]), 0);
  assert.equal(uncoveredShare({ x: 0, y: 0, width: 64, height: 64 }, []), 1);
});

test('the outpaint params: the frame and every visible picture where it lies, bottom first, masks left out', () => {
  const layers = [
    { id: 'ground', operation: 'txt2img', visible: true, opacity: 1, output: { width: 256, height: 128 }, placement: { x: 0, y: 0, scale: 1, rotation: 0, flip_x: false, flip_y: false } },
    { id: 'mask', operation: 'mask', visible: true, opacity: 1, output: { width: 256, height: 128 } },
    { id: 'hidden', operation: 'txt2img', visible: false, opacity: 1, output: { width: 64, height: 64 } },
    { id: 'pending', operation: 'txt2img', visible: true, opacity: 1, output: null },
    { id: 'sun', operation: 'upload', visible: true, opacity: 0.5, output: { width: 64, height: 64 }, placement: { x: 200, y: 8, scale: 0.5, rotation: 90, flip_x: true, flip_y: false } },
  ];
  const params = outpaintParams({ x: 128, y: 0, width: 256, height: 128, extra: 1 }, layers, 'more field', { maskOps: new Set(['mask']) });
  assert.deepEqual(params, {
    frame: { x: 128, y: 0, width: 256, height: 128 },
    layers: [
      { layer: 'ground', x: 0, y: 0, scale: 1, rotation: 0, flip_x: false, flip_y: false, opacity: 1 },
      { layer: 'sun', x: 200, y: 8, scale: 0.5, rotation: 90, flip_x: true, flip_y: false, opacity: 0.5 },
    ],
    prompt: 'more field',
  });
});

test('txt2img into the frame: its size in the params, its corner as the placement', () => {
  const command = { type: 'add_layer', operation: 'txt2img', params: { prompt: 'sea', width: 64, height: 64, steps: 2 } };
  assert.deepEqual(frameCommand(command, { x: 128, y: 0, width: 512, height: 256 }), {
    type: 'add_layer',
    operation: 'txt2img',
    params: { prompt: 'sea', width: 512, height: 256, steps: 2 },
    placement: { x: 128, y: 0 },
  });
  assert.equal(describeFrame({ x: 128, y: 0, width: 512, height: 256 }), '512 × 256 at 128, 0');
});

test('a dragged rectangle is a crop region in the source picture, clamped to it', () => {
  const at = { x: 100, y: 50, scale: 1 };
  assert.deepEqual(cropRegion(at, 192, 128, { x: 120.4, y: 60 }, { x: 180, y: 110.6 }), { x: 20, y: 10, width: 60, height: 51 });
  assert.deepEqual(cropRegion(at, 192, 128, { x: 180, y: 110 }, { x: 120, y: 60 }), { x: 20, y: 10, width: 60, height: 50 }, 'dragged up-left');
  assert.deepEqual(cropRegion(at, 192, 128, { x: 0, y: 0 }, { x: 150, y: 90 }), { x: 0, y: 0, width: 50, height: 40 }, 'clamped');
  assert.deepEqual(cropRegion(at, 192, 128, { x: 250, y: 150 }, { x: 999, y: 999 }), { x: 150, y: 100, width: 42, height: 28 });
  assert.equal(cropRegion(at, 192, 128, { x: 0, y: 0 }, { x: 90, y: 40 }), null, 'missed the picture');
  // a picture shown at twice its size: the region is in its own pixels
  assert.deepEqual(cropRegion({ x: 0, y: 0, scale: 2 }, 64, 64, { x: 20, y: 40 }, { x: 60, y: 100 }), { x: 10, y: 20, width: 20, height: 30 });
  // flipped left to right: the document's left is the picture's right
  assert.deepEqual(cropRegion({ flip_x: true }, 100, 50, { x: 0, y: 0 }, { x: 30, y: 10 }), { x: 70, y: 0, width: 30, height: 10 });
});

test('a click is a pixel of the source picture, or nothing off it', () => {
  assert.deepEqual(picturePixel({ x: 100, y: 50 }, 192, 128, { x: 130.7, y: 61.2 }), { x: 30, y: 11 });
  assert.deepEqual(picturePixel({ x: 0, y: 0, scale: 2 }, 64, 64, { x: 127.9, y: 3 }), { x: 63, y: 1 });
  assert.equal(picturePixel({ x: 100, y: 50 }, 192, 128, { x: 99, y: 60 }), null);
  assert.equal(picturePixel({ x: 0, y: 0 }, 10, 10, { x: 10, y: 5 }), null);
});

test('the New-layer form for outpaint leaves the frame and the pictures to the stage', async () => {
  const { newFormModel } = await import('../js/ui/form-frame.js');
  const model = { operation: 'outpaint', usesSeed: true, fields: [{ key: 'frame' }, { key: 'layers' }, { key: 'prompt' }, { key: 'steps' }] };
  assert.deepEqual(newFormModel(model).fields.map((f) => f.key), ['prompt', 'steps']);
  const txt2img = { operation: 'txt2img', fields: [{ key: 'prompt' }, { key: 'width' }] };
  assert.equal(newFormModel(txt2img), txt2img);
});

test('an img2img of the frame: a flatten layer of the pictures under it first, then the img2img over it', async () => {
  const { throughFrame, FRAME_READERS } = await import('../js/frame.js');
  const layers = [
    { id: 'sea', visible: true, opacity: 1, operation: 'txt2img', output: { width: 64, height: 64 } },
    { id: 'm', visible: true, opacity: 1, operation: 'mask', output: { width: 64, height: 64 } },
    { id: 'sun', visible: true, opacity: 0.5, operation: 'upload', output: { width: 8, height: 8 }, placement: { x: 40, y: 4 } },
  ];
  const command = { type: 'add_layer', layer_id: 'L2', operation: 'img2img', params: { prompt: 'dusk', source: 'sea' } };
  const [flatten, over] = throughFrame(command, { x: 32, y: 0, width: 64, height: 64 }, layers, 'F1', new Set(['mask']));
  assert.equal(flatten.operation, 'flatten');
  assert.deepEqual(flatten.params.frame, { x: 32, y: 0, width: 64, height: 64 });
  assert.deepEqual(flatten.params.layers.map((l) => [l.layer, l.x, l.opacity]), [['sea', 0, 1], ['sun', 40, 0.5]]);
  assert.deepEqual(over.params, { prompt: 'dusk', source: 'F1' });
  assert.equal(FRAME_READERS.controlnet, 'control');
});
