// Issue #19's smaller items, DOM-free: upload refusals before sending, prompt length and tokens, cancelled
// renders, scheduler labels.
import test from 'node:test';
import assert from 'node:assert/strict';
import { formatBytes, overLimitText, uploadProblem, fileKind, acceptedText } from '../js/limits.js';
import { estimateTokens, promptMeter, TOKEN_WINDOW } from '../js/prompt.js';
import { cancelledText, layerStatus, pillStatus } from '../js/renders.js';
import { fieldModel, validateField } from '../js/schema.js';

const MiB = 1024 * 1024;
const LIMITS = { upload: { max_bytes: 50 * MiB, max_pixels: 4096 * 4096, max_side: 8192, media_types: ['image/png', 'image/jpeg', 'image/webp'] } };

test('sizes read as people read them, as the server words them', () => {
  assert.equal(formatBytes(900), '900 bytes');
  assert.equal(formatBytes(1), '1 byte');
  assert.equal(formatBytes(1536), '1.5 KB');
  assert.equal(formatBytes(20 * MiB), '20 MB');
  assert.equal(formatBytes(Math.floor(53.2 * MiB)), '53.2 MB');
  assert.equal(overLimitText(Math.floor(53.2 * MiB), 50 * MiB), '53.2 MB — the limit is 50 MB');
  // rounded, the two would read the same: to the byte
  assert.equal(overLimitText(20 * MiB + 5, 20 * MiB), '20,971,525 bytes — the limit is 20 MB (20,971,520 bytes)');
});

test('an oversized upload is refused before it is sent, with the limit the server states', () => {
  const big = { name: 'harbour.png', type: 'image/png', size: Math.floor(53.2 * MiB) };
  assert.equal(uploadProblem(big, LIMITS), 'Cannot add “harbour.png”: it is 53.2 MB — the limit is 50 MB.');
  assert.equal(uploadProblem({ ...big, size: 50 * MiB }, LIMITS), null); // at the limit is fine
  assert.equal(uploadProblem(big, null), null); // a server that states no limit: it judges the size itself
});

test('an unsupported file names its type and what is accepted', () => {
  assert.equal(uploadProblem({ name: 'notes.pdf', type: 'application/pdf', size: 10 }, LIMITS), 'Cannot add “notes.pdf”: PDF files are not accepted — only PNG, JPEG or WebP images.');
  assert.equal(uploadProblem({ name: 'cat.gif', type: 'image/gif', size: 10 }, LIMITS), 'Cannot add “cat.gif”: GIF images are not accepted — only PNG, JPEG or WebP images.');
  assert.equal(fileKind({ name: 'README', type: '' }), 'files of unknown type');
  // no MIME type from the browser: judged by the name
  assert.equal(uploadProblem({ name: 'photo.JPG', type: '', size: 10 }, LIMITS), null);
  assert.equal(uploadProblem({ name: 'photo.webp', type: 'image/webp', size: 10 }, { upload: { ...LIMITS.upload, media_types: ['image/png'] } }), 'Cannot add “photo.webp”: WebP images are not accepted — only PNG images.');
  assert.equal(acceptedText(['image/png', 'image/jpeg']), 'PNG or JPEG');
});

test('tokens are estimated as CLIP splits text: words, long words in pieces, digits and punctuation', () => {
  assert.equal(estimateTokens(''), 0);
  assert.equal(estimateTokens('a red boat'), 3);
  assert.equal(estimateTokens('photorealistic'), 2); // CLIP: photo + realistic
  assert.equal(estimateTokens('8k, 1.5'), 6); // 8 k , 1 . 5
  assert.equal(estimateTokens("it's ((blue)):"), 6); // it 's (( blue )):
  assert.equal(TOKEN_WINDOW, 75);
});

test('the prompt meter counts characters against the limit and says when it is over, cutting nothing', () => {
  const fine = promptMeter('a red boat at dawn', 2000);
  assert.equal(fine.counter, '18 / 2,000');
  assert.equal(fine.over, 0);
  assert.equal(fine.message, '');
  assert.equal(fine.tokenText, '≈ 5 / 75 tokens');
  assert.match(fine.tokenTitle, /^Approximate/);
  assert.equal(promptMeter('x'.repeat(1850), 2000).near, true);
  assert.equal(promptMeter('x'.repeat(2000), 2000).message, 'At the 2,000-character limit: a longer prompt cannot be rendered.');
  const pasted = promptMeter('word '.repeat(430), 2000); // 2,150 characters
  assert.equal(pasted.counter, '2,150 / 2,000');
  assert.equal(pasted.over, 150);
  assert.equal(pasted.message, '150 characters over the 2,000-character limit: shorten the prompt to render it (nothing was cut).');
  assert.equal(pasted.tokensOver, 430 - 75);
  assert.match(pasted.tokenTitle, /about 355 over/);
  assert.equal(promptMeter('🙂🙂', 2000).chars, 2); // code points, as the server counts
});

test('a prompt over its limit does not validate, with how many characters too many', () => {
  const field = { kind: 'textarea', maxLength: 2000 };
  assert.equal(validateField(field, 'x'.repeat(2000)), null);
  assert.equal(validateField(field, 'x'.repeat(2345)), 'At most 2,000 characters: 345 too many');
});

test('a cancelled render is "Cancelled", saying who when the server recorded it', () => {
  assert.equal(cancelledText({ status: 'failed', error: 'cancelled by u-ada' }), 'Cancelled by u-ada');
  assert.equal(cancelledText({ status: 'failed', error: 'render cancelled' }), 'Cancelled');
  assert.equal(cancelledText({ status: 'failed', error: 'CUDA out of memory' }), '');
  assert.equal(layerStatus({ status: 'failed', error: 'render cancelled' }).text, 'Cancelled');
  assert.equal(layerStatus({ status: 'failed', error: 'CUDA out of memory' }).text, 'Failed: CUDA out of memory');
});

test('scheduler ids show the labels the schema gives', () => {
  const schema = {
    type: 'string',
    enum: ['euler_a', 'dpm++_karras'],
    default: 'dpm++_karras',
    'x-opendream-labels': { euler_a: 'Euler Ancestral', 'dpm++_karras': 'DPM++ 2M Karras' },
  };
  const field = fieldModel('scheduler', schema, {});
  assert.deepEqual(field.options, [
    { value: 'euler_a', label: 'Euler Ancestral' },
    { value: 'dpm++_karras', label: 'DPM++ 2M Karras' },
  ]);
});

test('the pill says what holds renders back when all of them wait on a cancelled or failed input', () => {
  const layers = {
    A: { id: 'A', name: 'Sea', status: 'failed', error: 'render cancelled', parents: [] },
    B: { id: 'B', name: 'Night', status: 'pending', error: null, parents: ['A'] },
    C: { id: 'C', name: 'Moon', status: 'pending', error: null, parents: [] },
  };
  assert.deepEqual(pillStatus(layers, [layers.B], new Map(), 0), { title: '“Night” waits on “Sea”', detail: 'it was cancelled: render it again to go on', fraction: 0, stuck: true });
  const failed = { ...layers, A: { ...layers.A, error: 'CUDA out of memory' } };
  assert.equal(pillStatus(failed, [failed.B], new Map(), 0).detail, 'it failed: retry it to go on');
  // one that can still render: the usual pill
  assert.equal(pillStatus(layers, [layers.B, layers.C], new Map(), 0).title, '2 waiting to render');
});
