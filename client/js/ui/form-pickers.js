// The inputs of an operation form that take a picture: the layer picker (thumbnails of the layers a layer
// input may take) and the image upload box (for a blob input).

import { h, icon, toast, fill } from './dom.js';
import { blobUrl } from '../api.js';
import { uploadProblem, UPLOAD_TYPES } from '../limits.js';

const MASK_OPS = new Set(['mask', 'magic_wand', 'segment']);

/** Thumbnails of the layers a layer input may take (masks first for a mask input); redrawn on refresh. */
export function layerPicker(form, field, get, set) {
  const strip = h('div.layer-picker', { role: 'listbox', 'aria-label': field.label });
  const draw = () => {
    const excluded = form.context.excluded || new Set();
    let layers = form.context.layers().filter((l) => !excluded.has(l.id)).reverse(); // top of the stack first
    const isMask = (l) => MASK_OPS.has(l.operation);
    layers = field.input === 'mask' ? [...layers.filter(isMask), ...layers.filter((l) => !isMask(l))] : [...layers.filter((l) => !isMask(l)), ...layers.filter(isMask)];
    const current = get();
    const tiles = [];
    if (field.nullable) {
      tiles.push(h('button.pick-tile.pick-none', { type: 'button', role: 'option', 'aria-selected': String(!current), class: !current ? 'selected' : '', onclick: () => pick(null), title: 'None' }, h('span.pick-thumb', null, icon('x')), h('span.pick-name', null, 'None')));
    }
    for (const layer of layers) {
      const selected = layer.id === current;
      tiles.push(
        h(
          'button.pick-tile',
          { type: 'button', role: 'option', 'aria-selected': String(selected), class: selected ? 'selected' : '', dataset: { layerId: layer.id }, title: layer.name, onclick: () => pick(layer.id) },
          h('span.pick-thumb', null, layer.output ? h('img', { src: blobUrl(layer.output.sha256), alt: '', draggable: false }) : icon(isMask(layer) ? 'mask' : 'image')),
          h('span.pick-name', null, layer.name),
        ),
      );
    }
    if (current && !layers.some((l) => l.id === current)) {
      tiles.push(h('button.pick-tile.selected.missing', { type: 'button', title: `${current} (not on the canvas)` }, h('span.pick-thumb', null, icon('alert')), h('span.pick-name', null, 'Missing')));
    }
    if (!tiles.length) tiles.push(h('div.pick-empty', null, field.input === 'mask' ? 'No layers yet: paint a mask with the brush first.' : 'No layers yet: add one first.'));
    fill(strip, ...tiles);
    if (form.readOnly) for (const b of strip.querySelectorAll('button')) b.disabled = true;
  };
  const pick = (id) => {
    set(id);
    draw();
  };
  draw();
  form.refreshers.push(draw);
  return strip;
}

/** An image input: drop or choose a file, uploaded as a blob; its preview, Replace and (if optional) Remove. */
export function blobInput(form, field, get, set) {
  const box = h('div.dropzone', { tabindex: 0, role: 'button', 'aria-label': `${field.label}: choose an image` });
  const file = h('input', { type: 'file', accept: (form.context.limits?.upload?.media_types || UPLOAD_TYPES).join(','), style: { display: 'none' } });
  const draw = (busy = false) => {
    const sha = get();
    fill(box, 
      sha ? h('img.dropzone-preview', { src: blobUrl(sha), alt: '' }) : icon('upload', { size: 22 }),
      h('span.dropzone-text', null, busy ? 'Uploading…' : sha ? 'Replace image' : 'Drop an image or click to choose'),
      sha && field.nullable ? h('button.link-btn', { type: 'button', onclick: (e) => { e.stopPropagation(); set(null); draw(); } }, 'Remove') : null,
    );
  };
  const upload = async (f) => {
    if (!f) return;
    const problem = uploadProblem(f, form.context.limits); // before sending it, as the editor's uploads
    if (problem) {
      toast(problem, { kind: 'error', timeout: 9000 });
      return;
    }
    draw(true);
    try {
      const result = await form.context.uploadBlob(f);
      set(result.sha256);
    } catch (error) {
      toast(`Upload failed: ${error.message}`, { kind: 'error' });
    }
    draw();
  };
  file.addEventListener('change', () => {
    upload(file.files[0]);
    file.value = ''; // so that choosing the same file again (after a refusal) is a change too
  });
  box.addEventListener('click', () => !form.readOnly && file.click());
  box.addEventListener('keydown', (e) => (e.key === 'Enter' || e.key === ' ') && file.click());
  box.addEventListener('dragover', (e) => {
    e.preventDefault();
    e.stopPropagation();
    box.classList.add('over');
  });
  box.addEventListener('dragleave', () => box.classList.remove('over'));
  box.addEventListener('drop', (e) => {
    e.preventDefault();
    e.stopPropagation();
    box.classList.remove('over');
    upload(e.dataTransfer.files[0]);
  });
  draw();
  return h('div', null, box, file);
}
