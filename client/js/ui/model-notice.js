// The placeholder-model notice: when the server's model is a built-in stand-in (builtin:tiny), its pictures
// are noise, and nothing else would tell a new user so. Shown over the stage until dismissed (per browser),
// linking to the help page generated from docs/models.md.

import { h, icon } from './dom.js';

const DISMISSED = 'opendream.placeholder-notice.dismissed';

export class ModelNotice {
  constructor(editor) {
    this.editor = editor;
    this.el = h('div.model-notice.floating', { dataset: { testid: 'placeholder-notice' }, role: 'note', hidden: true });
  }

  /** Ask the server which model it uses (GET /api/models); a failure leaves the notice hidden. */
  async load() {
    let library;
    try {
      library = await this.editor.api.models();
    } catch {
      return;
    }
    if (!library?.placeholder || localStorage.getItem(DISMISSED) === library.default) return;
    const close = h('button.icon-btn', { type: 'button', title: 'Dismiss', 'aria-label': 'Dismiss' }, icon('x', { size: 14 }));
    close.addEventListener('click', () => {
      localStorage.setItem(DISMISSED, library.default);
      this.el.hidden = true;
    });
    this.el.append(
      icon('alert', { size: 14 }),
      h('span', null, `Placeholder model (${library.default}): pictures are noise. `, h('a', { href: 'help/models.html', target: '_blank', rel: 'noopener' }, 'How to add a real model')),
      close,
    );
    this.el.hidden = false;
  }
}
