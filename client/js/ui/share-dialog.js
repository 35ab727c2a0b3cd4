// The share dialog (owners and admins): create a link that opens the canvas as an editor or a viewer, copy it
// then or any time later from the list of active links, and revoke one (confirmed in place, the role named).
// Also the names of the roles, which the top bar shows too.

import { h, icon, toast, modal, fill } from './dom.js';
import { relativeTime } from '../history.js';

export const ROLE_LABEL = { viewer: 'Viewer', editor: 'Editor', owner: 'Owner', admin: 'Admin' };

const ROLE_CAN = { viewer: 'can view', editor: 'can edit' };

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
      const refresh = () => refreshList({ api, canvasId, list, result });
      const create = async () => {
        try {
          const share = await api.createShare(canvasId, role.value);
          showLink(result, share).select();
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

/** The full address of a share (the server answers a path: the page's own host, never a hard-coded one). */
function shareUrl(share) {
  return new URL(share.path, location.href).href;
}

/** Show `share`'s link in the box under the create row; the input, to select. */
function showLink(result, share) {
  const url = shareUrl(share);
  const input = h('input.input.input-mono', { type: 'text', readOnly: true, value: url, dataset: { testid: 'share-url', shareId: share.id } });
  fill(
    result,
    h('div.share-link', null, icon('link'), input, h('button.btn.btn-small', { type: 'button', dataset: { testid: 'share-url-copy' }, onclick: () => copyLink(url, input) }, icon('copy'), 'Copy')),
    h('small.muted', null, `Anyone with this link ${ROLE_CAN[share.role] || 'can open'} this canvas, until you revoke it.`),
  );
  return input;
}

/** Put `url` on the clipboard; where the browser refuses, the selected input is copied the old way. */
async function copyLink(url, input) {
  input?.select();
  try {
    await navigator.clipboard.writeText(url);
  } catch {
    if (!document.execCommand('copy')) {
      toast('Copy blocked by the browser: the link is selected, press Ctrl+C', { kind: 'error' });
      return false;
    }
  }
  toast('Link copied', { kind: 'success' });
  return true;
}

async function refreshList({ api, canvasId, list, result }) {
  try {
    const { shares } = await api.shares(canvasId);
    const active = shares.filter((s) => !s.revoked && s.role !== 'owner'); // the owner's own token is not a link to hand out
    const refresh = () => refreshList({ api, canvasId, list, result });
    fill(list, ...active.map((share) => shareItem({ api, canvasId, share, result, refresh })));
    if (!active.length) list.append(h('li.muted.share-none', null, 'No links yet.'));
  } catch (error) {
    fill(list, h('li.error-text', null, error.message));
  }
}

/** One active link: its role, when it was made, Copy (when the server can show it again) and Revoke. */
function shareItem({ api, canvasId, share, result, refresh }) {
  const roleName = (ROLE_LABEL[share.role] || share.role).toLowerCase();
  const item = h('li.share-item', { dataset: { shareId: share.id, role: share.role } });
  const copy = share.path
    ? h('button.btn.btn-small', { type: 'button', title: `Copy the ${roleName} link`, dataset: { testid: 'copy-link' }, onclick: () => copyLink(shareUrl(share), showLink(result, share)) }, icon('copy'), 'Copy link')
    : h('small.muted', { dataset: { testid: 'link-hidden' }, title: 'Made with another token (or by an older server): only a hash of it is kept, so it cannot be shown again. Revoke it and create a new link to share again.' }, 'Cannot be shown again');
  const revoke = h('button.btn.btn-small.btn-ghost', { type: 'button', dataset: { testid: 'revoke' }, onclick: () => askToRevoke() }, 'Revoke');
  const summary = () => [
    h(`span.badge.role-${share.role}`, null, ROLE_LABEL[share.role] || share.role),
    // a label that only repeats the role says nothing the badge does not
    h('span.share-label', null, share.label && share.label !== share.role ? share.label : ROLE_CAN[share.role] || share.role),
    h('small.muted', null, share.created_at ? relativeTime(share.created_at) : ''),
    copy,
    revoke,
  ];
  // a small confirm step in place: revoking cuts off everyone using the link at once, and cannot be undone
  const askToRevoke = () => {
    const confirm = h('button.btn.btn-small.btn-danger', { type: 'button', dataset: { testid: 'confirm-revoke' }, onclick: () => doRevoke(confirm) }, `Revoke ${roleName} link`);
    item.classList.add('confirming');
    fill(
      item,
      h(`span.badge.role-${share.role}`, null, ROLE_LABEL[share.role] || share.role),
      h('span.share-label', { dataset: { testid: 'revoke-question' } }, `Revoke this ${roleName} link? Everyone using it loses access at once.`),
      h('button.btn.btn-small', { type: 'button', dataset: { testid: 'cancel-revoke' }, onclick: () => { item.classList.remove('confirming'); fill(item, ...summary()); } }, 'Cancel'),
      confirm,
    );
    confirm.focus();
  };
  const doRevoke = async (button) => {
    button.disabled = true;
    try {
      await api.revokeShare(canvasId, share.id);
      if (result.querySelector(`[data-share-id="${share.id}"]`)) fill(result); // its link no longer opens anything
      toast(`The ${roleName} link is revoked: it no longer opens the canvas`, { kind: 'success' });
    } catch (error) {
      toast(error.message, { kind: 'error' });
    }
    refresh();
  };
  fill(item, ...summary());
  return item;
}
