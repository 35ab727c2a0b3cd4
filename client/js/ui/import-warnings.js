// What an import could not bring in as it was (an original Opendream layer we cannot run, imported as its
// picture): the import's answer lists them, the page then opens the new canvas, and its editor shows them.

import { h, modal } from './dom.js';

const KEY = (canvasId) => `opendream.import-warnings.${canvasId}`;

export function rememberImportWarnings(canvasId, warnings) {
  if (!Array.isArray(warnings) || !warnings.length) return;
  try {
    sessionStorage.setItem(KEY(canvasId), JSON.stringify(warnings.map(String)));
  } catch {
    // no session storage: the warnings were still in the import's answer
  }
}

export function takeImportWarnings(canvasId) {
  try {
    const raw = sessionStorage.getItem(KEY(canvasId));
    sessionStorage.removeItem(KEY(canvasId));
    const warnings = raw ? JSON.parse(raw) : [];
    return Array.isArray(warnings) ? warnings.map(String) : [];
  } catch {
    return [];
  }
}

export function showImportWarnings(warnings) {
  if (!warnings.length) return Promise.resolve();
  const count = warnings.length === 1 ? 'One layer' : `${warnings.length} layers`;
  return modal({
    title: 'Imported, with warnings',
    testid: 'import-warnings',
    wide: true,
    build: (close) =>
      h(
        'div',
        null,
        h(
          'div.modal-body',
          null,
          h('p', null, `${count} could not be brought in as it was made: each shows its stored picture and will not be re-rendered.`),
          h('ul.import-warnings', { dataset: { testid: 'import-warning-list' } }, ...warnings.map((warning) => h('li', null, warning))),
        ),
        h('footer.modal-foot', null, h('button.btn.btn-primary', { type: 'button', onclick: () => close(true), autofocus: true }, 'OK')),
      ),
  });
}
