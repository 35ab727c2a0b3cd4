// The share dialog (owners and admins): create a link that opens the canvas as an editor or a viewer, copy it,
// list the active links and revoke them. Also the names of the roles, which the top bar shows too.

import { h, icon, toast, modal, fill } from './dom.js';
import { relativeTime } from '../history.js';

export const ROLE_LABEL = { viewer: 'Viewer', editor: 'Editor', owner: 'Owner', admin: 'Admin' };

/** Open the dialog for the canvas `canvasId`, named `name`, through `api`. */
export function openShareDialog({ api, canvasId, name }) {
  modal({
    title: `Share “${name || 'canvas'}”`,
    testid: 'share-dialog',
    wide: true,
    build: () => {
      const role = h('select.input.select', { 'aria-label': 'Role', dataset: { testid: 'share-role' } }, h('option', { value: 'editor' }, 'can edit'), h('option', { value: 'viewer' }, 'can view'));
      const result = h('div.share-result');
      const list = h('ul.share-list', { dataset: { testid: 'share-list' } });
      const refresh = async () => {
        try {
          const { shares } = await api.shares(canvasId);
          const active = shares.filter((s) => !s.revoked && s.role !== 'owner'); // the owner's own token is not a link to hand out
          fill(list, 
            ...active.map((s) =>
              h(
                'li.share-item',
                { dataset: { shareId: s.id } },
                h(`span.badge.role-${s.role}`, null, ROLE_LABEL[s.role] || s.role),
                h('span.share-label', null, s.label || s.role),
                h('small.muted', null, s.created_at ? relativeTime(s.created_at) : ''),
                h('button.btn.btn-small.btn-ghost', { type: 'button', dataset: { testid: 'revoke' }, onclick: async () => { try { await api.revokeShare(canvasId, s.id); toast('Link revoked: it no longer opens the canvas', { kind: 'success' }); refresh(); } catch (error) { toast(error.message, { kind: 'error' }); } } }, 'Revoke'),
              ),
            ),
          );
          if (!active.length) list.append(h('li.muted.share-none', null, 'No links yet.'));
        } catch (error) {
          fill(list, h('li.error-text', null, error.message));
        }
      };
      const create = async () => {
        try {
          const share = await api.createShare(canvasId, role.value);
          const url = new URL(share.path, location.href).href;
          const input = h('input.input.input-mono', { type: 'text', readOnly: true, value: url, dataset: { testid: 'share-url' } });
          fill(result, 
            h('div.share-link', null, icon('link'), input, h('button.btn.btn-small', { type: 'button', onclick: async () => { input.select(); try { await navigator.clipboard.writeText(url); toast('Link copied', { kind: 'success' }); } catch { document.execCommand('copy'); } } }, icon('copy'), 'Copy')),
            h('small.muted', null, `Anyone with this link ${share.role === 'viewer' ? 'can view' : 'can edit'} this canvas, until you revoke it.`),
          );
          input.select();
          refresh();
        } catch (error) {
          toast(error.message, { kind: 'error' });
        }
      };
      refresh();
      return h(
        'div.modal-body',
        null,
        h('div.share-create', null, h('span', null, 'Anyone with the link'), role, h('button.btn.btn-primary', { type: 'button', onclick: create, dataset: { testid: 'share-create' } }, icon('link'), 'Create link')),
        result,
        h('h3.modal-sub', null, 'Active links'),
        list,
      );
    },
  });
}
