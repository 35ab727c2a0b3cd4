// The document frame's size and background ("Canvas size"): growing it makes room to outpaint; the layers
// keep their places. An event like any edit: everyone sees it, Undo takes it back.

import { h, modal } from './dom.js';

const SIDE = { min: 8, max: 8192 };
const MAX_PIXELS = 4096 * 4096; // as an uploaded picture (server/core/commands.py ResizeCanvas)

/** Open the dialog for the editor's canvas; on save, sends `resize_canvas`. */
export function openDocumentDialog(editor) {
  const frame = editor.session.state.document || {};
  const current = editor.viewport.lastContent;
  const width = frame.width || current.width || 512;
  const height = frame.height || current.height || 512;
  modal({
    title: 'Canvas size',
    testid: 'document-size',
    build: (close) => {
      const number = (value, testid) => h('input.input', { type: 'number', min: SIDE.min, max: SIDE.max, step: 1, value, required: true, dataset: { testid } });
      const w = number(width, 'document-width');
      const hgt = number(height, 'document-height');
      const transparent = h('input', { type: 'checkbox', checked: !frame.background, dataset: { testid: 'document-transparent' } });
      const colour = h('input', { type: 'color', value: frame.background || '#ffffff', dataset: { testid: 'document-background' } });
      const error = h('p.field-error', { hidden: true });
      return h(
        'form',
        {
          onsubmit: (e) => {
            e.preventDefault();
            const size = [Number(w.value), Number(hgt.value)];
            if (!size.every((side) => Number.isInteger(side) && side >= SIDE.min && side <= SIDE.max)) {
              error.textContent = `Width and height are whole numbers from ${SIDE.min} to ${SIDE.max} pixels.`;
              error.hidden = false;
              return;
            }
            if (size[0] * size[1] > MAX_PIXELS) {
              error.textContent = `${size[0]} × ${size[1]} is ${(size[0] * size[1]).toLocaleString('en')} pixels; at most ${MAX_PIXELS.toLocaleString('en')}.`;
              error.hidden = false;
              return;
            }
            editor.command({ type: 'resize_canvas', width: size[0], height: size[1], background: transparent.checked ? null : colour.value });
            close(true);
          },
        },
        h('div.modal-body', null,
          h('label.field-label', null, 'Width × height (pixels): layers keep their places; grow it to make room to outpaint'),
          h('div.row', null, w, h('span', null, ' × '), hgt),
          h('label.check-row', null, transparent, 'Transparent background'),
          h('label.check-row', null, colour, 'Background colour'),
          error,
        ),
        h('footer.modal-foot', null,
          h('button.btn', { type: 'button', onclick: () => close(false) }, 'Cancel'),
          h('button.btn.btn-primary', { type: 'submit', dataset: { testid: 'save-document' } }, 'Resize'),
        ),
      );
    },
  });
}
