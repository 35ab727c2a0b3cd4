// Naming a version ("before the sky"): a checkpoint, shown as a labelled mark on the timeline. An event like
// any edit, so everyone sees it at once and Undo takes it back.

import { h, modal } from './dom.js';

/** Open the dialog for `version`; on save, sends `name_version` through `editor.command`. */
export function openCheckpointDialog(editor, version, current = '') {
  modal({
    title: `Name version ${version}`,
    testid: 'name-version',
    build: (close) => {
      const input = h('input.input', { type: 'text', value: current, maxLength: 80, autofocus: true, placeholder: 'e.g. before the sky', dataset: { testid: 'checkpoint-label' } });
      return h(
        'form',
        {
          onsubmit: (e) => {
            e.preventDefault();
            editor.command({ type: 'name_version', version, label: input.value.trim() });
            close(true);
          },
        },
        h('div.modal-body', null, h('label.field-label', null, 'Shown on the timeline for everyone; empty removes the name'), input),
        h('footer.modal-foot', null,
          h('button.btn', { type: 'button', onclick: () => close(false) }, 'Cancel'),
          h('button.btn.btn-primary', { type: 'submit', dataset: { testid: 'save-checkpoint' } }, 'Save'),
        ),
      );
    },
  });
}
