import test from 'node:test';
import assert from 'node:assert/strict';
import { readFileSync } from 'node:fs';
import { formModel, groupOperations, initialValues, toParams, validate, defaultItem, layerRefs, fieldModel, randomSeed } from '../js/schema.js';

// GET /api/operations' body: the server's registry when tests/browser/test_client_units.py runs these tests
// (OPENDREAM_OPERATIONS_JSON), else a stored copy of the built-in operations.
const catalogue = JSON.parse(readFileSync(process.env.OPENDREAM_OPERATIONS_JSON || new URL('./fixtures/operations.json', import.meta.url)));
const op = (name) => catalogue.operations.find((o) => o.name === name);
const field = (model, key) => model.fields.find((f) => f.key === key);

test('txt2img: prompts are text areas, bounded numbers sliders, enums selects', () => {
  const model = formModel(op('txt2img'));
  assert.equal(model.usesSeed, true);
  assert.equal(field(model, 'prompt').kind, 'textarea');
  assert.equal(field(model, 'negative_prompt').label, 'Negative prompt');
  const width = field(model, 'width');
  assert.deepEqual([width.kind, width.slider, width.min, width.max, width.step, width.integer], ['number', true, 64, 2048, 8, true]);
  const guidance = field(model, 'guidance');
  assert.deepEqual([guidance.slider, guidance.integer, guidance.step], [true, false, 1]);
  const scheduler = field(model, 'scheduler');
  assert.equal(scheduler.kind, 'enum');
  assert.ok(scheduler.options.some((o) => o.value === 'euler_a'));
  const values = initialValues(model);
  assert.equal(values.width, 512);
  assert.equal(values.scheduler, 'dpm++');
  assert.deepEqual(validate(model, values), []);
  assert.deepEqual(validate(model, { ...values, width: 100 }), [{ path: 'width', message: 'A multiple of 8' }]);
  assert.deepEqual(validate(model, { ...values, steps: 0 }), [{ path: 'steps', message: 'At least 1' }]);
});

test('inpaint: image and mask pickers, filled from the selection and the newest mask painted on it', () => {
  const model = formModel(op('inpaint'));
  assert.deepEqual([field(model, 'source').kind, field(model, 'source').input], ['layer', 'image']);
  assert.deepEqual([field(model, 'mask').kind, field(model, 'mask').input], ['layer', 'mask']);
  const strength = field(model, 'strength');
  assert.equal(strength.exclusiveMin, true);
  const layers = [
    { id: 'A', operation: 'txt2img', parents: [] },
    { id: 'M1', operation: 'mask', parents: ['A'], params: { layer: 'A' } },
    { id: 'B', operation: 'txt2img', parents: [] },
    { id: 'M2', operation: 'mask', parents: ['A'], params: { layer: 'A' } },
  ];
  const values = initialValues(model, { selected: layers[0], layers });
  assert.equal(values.source, 'A');
  assert.equal(values.mask, 'M2');
  // selecting a mask picks it, and the layer it was painted on as the source
  const fromMask = initialValues(model, { selected: layers[1], layers });
  assert.deepEqual([fromMask.source, fromMask.mask], ['A', 'M1']);
  assert.deepEqual(validate(model, { ...values, mask: null }), [{ path: 'mask', message: 'Pick a layer' }]);
  assert.deepEqual(layerRefs(model, values).map((r) => r.id), ['A', 'M2']);
  assert.deepEqual(validate(model, { ...values, strength: 0 }), [{ path: 'strength', message: 'More than 0' }]);
});

test('composite: a list of objects with nested layer pickers, starting from the visible layers', () => {
  const model = formModel(op('composite'));
  const layersField = field(model, 'layers');
  assert.equal(layersField.kind, 'list');
  assert.equal(layersField.minItems, 1);
  assert.equal(layersField.item.fields.find((f) => f.key === 'layer').kind, 'layer');
  assert.equal(layersField.item.fields.find((f) => f.key === 'blend_mode').kind, 'enum');
  const width = field(model, 'width');
  assert.deepEqual([width.kind, width.nullable, width.default], ['number', true, null]);
  const values = initialValues(model, { layers: [{ id: 'A', operation: 'txt2img', visible: true }, { id: 'H', operation: 'txt2img', visible: false }, { id: 'M', operation: 'mask', visible: true }] });
  assert.deepEqual(values.layers.map((l) => l.layer), ['A']);
  assert.deepEqual(defaultItem(layersField), { layer: null, opacity: 1, visible: true, blend_mode: 'normal', x: 0, y: 0 });
  assert.deepEqual(layerRefs(model, values), [{ path: 'layers.0.layer', id: 'A', input: 'image' }]);
  assert.deepEqual(validate(model, { ...values, layers: [] }), [{ path: 'layers', message: 'Add at least 1' }]);
  assert.deepEqual(validate(model, { layers: [{ ...defaultItem(layersField) }] }).map((p) => p.path), ['layers.0.layer']);
  assert.deepEqual(toParams(model, values), { layers: [{ layer: 'A', opacity: 1, visible: true, blend_mode: 'normal', x: 0, y: 0 }], width: null, height: null });
});

test('mask: a layer input, strokes (tuples: raw JSON) and an optional upload', () => {
  const model = formModel(op('mask'));
  assert.equal(field(model, 'layer').kind, 'layer');
  assert.equal(field(model, 'strokes').kind, 'json');
  const blob = field(model, 'blob');
  assert.deepEqual([blob.kind, blob.nullable], ['blob', true]);
  assert.equal(validate(model, { layer: 'A', strokes: [], blob: null }).length, 0);
});

test('upload and blank: a required upload, a colour widget', () => {
  const upload = formModel(op('upload'));
  assert.equal(field(upload, 'blob').kind, 'blob');
  assert.deepEqual(validate(upload, { blob: null }), [{ path: 'blob', message: 'Upload an image' }]);
  const blank = formModel(op('blank'));
  assert.equal(field(blank, 'colour').kind, 'colour');
});

test('editing keeps a layer\'s params as they are', () => {
  const model = formModel(op('img2img'));
  const existing = { source: 'A', prompt: 'boats', strength: 0.4 };
  const values = initialValues(model, { existing, selected: { id: 'Z', operation: 'txt2img' } });
  assert.equal(values.source, 'A');
  assert.equal(values.prompt, 'boats');
  assert.equal(values.strength, 0.4);
});

test('the operation menu: categories in order, internal ones hidden, unavailable ones kept with their reason', () => {
  const groups = groupOperations(catalogue.operations, catalogue.unavailable);
  assert.deepEqual(groups.map((g) => g.category), ['generate', 'edit', 'mask', 'input']);
  const all = groups.flatMap((g) => g.operations);
  assert.ok(!all.some((o) => o.name === 'layer_output'));
  const segment = all.find((o) => o.name === 'segment');
  assert.match(segment.unavailable, /SAM/);
  const orphan = groupOperations([], [{ name: 'broken.py', error: 'SyntaxError' }]);
  assert.deepEqual(orphan.map((g) => g.category), ['unavailable']);
});

test('schema corner cases: $ref, consts, unbounded numbers, explicit titles', () => {
  const root = { $defs: { Thing: { type: 'object', properties: { n: { type: 'number' } } } } };
  assert.equal(fieldModel('thing', { $ref: '#/$defs/Thing' }, root).kind, 'object');
  const free = fieldModel('n', { type: 'number' }, root);
  assert.deepEqual([free.slider, free.step], [false, 'any']);
  assert.equal(fieldModel('mode', { const: 'x' }, root).kind, 'const');
  assert.equal(fieldModel('radius_px', { type: 'number', title: 'Brush radius' }, root).label, 'Brush radius');
  assert.equal(fieldModel('radius_px', { type: 'number', title: 'Radius Px' }, root).label, 'Radius px');
  const seed = randomSeed(() => 0.5);
  assert.equal(seed, 2 ** 31);
});
