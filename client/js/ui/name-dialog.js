// The "your name" dialog (from your own avatar): the name and colour others see next to your cursor and in
// the history, saved in this browser; the connection is dropped so that the next hello carries them, and the
// server stores them with this person's identity on the canvas and tells everyone (docs/protocol.md, people).

import { h, toast, modal, fill } from './dom.js';
import { saveIdentity, COLOURS } from '../identity.js';

/** Open the dialog; on save, `editor.identity` is the new identity. */
export function openNameDialog(editor) {
  modal({
    title: 'Your name',
    testid: 'rename-me',
    build: (close) => {
      const input = h('input.input', { type: 'text', value: editor.identity.name, maxLength: 64, autofocus: true });
      const colours = h('div.colour-row');
      let colour = editor.identity.colour;
      const drawColours = () =>
        fill(colours, 
          ...COLOURS.map((c) => h('button.colour-dot', { type: 'button', class: c === colour ? 'selected' : '', style: { background: c }, title: c, onclick: () => { colour = c; drawColours(); } })),
        );
      drawColours();
      return h(
        'form',
        {
          onsubmit: (e) => {
            e.preventDefault();
            editor.identity = saveIdentity(editor.storage, { ...editor.identity, name: input.value, colour });
            close(true);
            toast('Saved: everyone sees your new name, in the history too', { kind: 'success' });
            editor.live.drop();
            editor.schedule();
          },
        },
        h('div.modal-body', null, h('label.field-label', null, 'Shown to others next to your cursor and in the history'), input, h('label.field-label', null, 'Colour'), colours),
        h('footer.modal-foot', null, h('button.btn', { type: 'button', onclick: () => close(false) }, 'Cancel'), h('button.btn.btn-primary', { type: 'submit' }, 'Save')),
      );
    },
  });
}
