// The canvas list: canvases this browser can open (all of them with the local admin token), a new canvas,
// and importing a workflow.

import { h, icon, toast, promptDialog, pickFile, fill } from './dom.js';
import { Api, blobUrl } from '../api.js';
import { tokens, saveToken, editorUrl, initials, forgetToken } from '../identity.js';
import { relativeTime } from '../history.js';
import { newId } from '../commands.js';
import { rememberImportWarnings } from './import-warnings.js';

export async function renderHome(root, { api, storage, identity, adminToken }) {
  const grid = h('div.canvas-grid', { dataset: { testid: 'canvas-grid' } });
  const newButton = h('button.btn.btn-primary.btn-large', { type: 'button', dataset: { testid: 'new-canvas' }, onclick: () => createCanvas() }, icon('plus'), 'New canvas');
  const importButton = h('button.btn.btn-large', { type: 'button', dataset: { testid: 'import-workflow' }, onclick: () => importWorkflow() }, icon('upload'), 'Import workflow');
  fill(root, 
    h(
      'div.app.home-app',
      null,
      h(
        'header.topbar',
        null,
        h('a.brand', { href: './' }, h('span.brand-mark'), h('span.brand-name', null, 'Opendream')),
        h('div.spacer'),
        h('span.muted.topbar-note', null, adminToken ? 'Signed in on this machine' : 'Canvases shared with this browser'),
        h('span.avatar', { style: { background: identity.colour }, title: `You (${identity.name})` }, initials(identity.name)),
      ),
      h(
        'main.home',
        null,
        h(
          'section.home-hero',
          null,
          h('div', null, h('h1', null, 'Canvases'), h('p.muted', null, 'Paint with Stable Diffusion together. Every layer remembers how it was made; every change is in the history.')),
          h('div.row.gap-8', null, importButton, newButton),
        ),
        grid,
      ),
    ),
  );

  // Creating and importing need a token that may write (the server refuses anonymous creation unless it runs
  // with --open-creation): the admin's, else an owner's or editor's link this browser holds.
  function creator() {
    const writable = Object.values(tokens(storage)).find((info) => ['owner', 'editor', 'admin'].includes(info.role));
    return adminToken ? api : new Api({ token: writable?.token || null, user: identity.id });
  }

  async function createCanvas() {
    const name = await promptDialog({ title: 'New canvas', label: 'Name', value: 'Untitled canvas', confirm: 'Create', testid: 'new-canvas-dialog' });
    if (!name) return;
    try {
      const created = await creator().createCanvas(name, newId('create-'));
      if (created.owner_token) saveToken(storage, created.id, created.owner_token, { role: 'owner', name });
      location.href = editorUrl(created.id);
    } catch (error) {
      toast(`Could not create the canvas: ${error.message}`, { kind: 'error' });
    }
  }

  async function importWorkflow() {
    const file = await pickFile('.json,.png,application/json,image/png');
    if (!file) return;
    try {
      const created = await creator().importWorkflow(file);
      if (created.owner_token) saveToken(storage, created.id, created.owner_token, { role: 'owner' });
      rememberImportWarnings(created.id, created.warnings);
      location.href = editorUrl(created.id);
    } catch (error) {
      toast(`Import failed: ${error.message}`, { kind: 'error' });
    }
  }

  // Which canvases: every one with the admin token, plus those this browser holds a token for.
  const known = tokens(storage);
  const entries = new Map();
  if (adminToken) {
    try {
      const { canvases } = await api.canvases();
      for (const c of canvases) entries.set(c.id, { ...c, token: known[c.id]?.token || adminToken, role: known[c.id]?.role || 'admin' });
    } catch (error) {
      toast(error.message, { kind: 'error' });
    }
  }
  const lookups = Object.entries(known)
    .filter(([id]) => !entries.has(id))
    .map(async ([id, info]) => {
      try {
        const c = await new Api({ token: info.token }).canvas(id);
        entries.set(id, { ...c, token: info.token, role: info.role });
      } catch (error) {
        if (error.status === 401 || error.status === 404) forgetToken(storage, id);
      }
    });
  await Promise.all(lookups);
  const list = [...entries.values()].sort((a, b) => (b.updated_at || 0) - (a.updated_at || 0));
  if (!list.length) {
    grid.replaceWith(
      h(
        'div.home-empty',
        { dataset: { testid: 'home-empty' } },
        h('div.stage-empty-art', null, icon('sparkles', { size: 30 })),
        h('h2', null, 'No canvases yet'),
        h('p.muted', null, 'Start a canvas and invite others with a link, or open a shared link someone sent you.'),
        h('button.btn.btn-primary.btn-large', { type: 'button', onclick: () => createCanvas() }, icon('plus'), 'New canvas'),
      ),
    );
    return;
  }
  fill(grid, ...list.map((c) => card(c)));
  // previews: each canvas as it looks (its visible layers composited, as the editor and the PNG export show
  // it), not only its top layer
  for (const c of list.slice(0, 48)) {
    new Api({ token: c.token })
      .state(c.id)
      .then((state) => {
        const el = grid.querySelector(`[data-canvas-id="${CSS.escape(c.id)}"] .card-preview`);
        if (!el) return;
        el.querySelector('.card-count').textContent = `${state.layers.length} layer${state.layers.length === 1 ? '' : 's'}`;
        if (state.layers.some((l) => l.visible && l.output && l.operation !== 'mask')) el.prepend(preview(c, state));
      })
      .catch(() => {});
  }

  /** The canvas's composite; should it fail (an older server), the top layer's picture instead. */
  function preview(c, state) {
    const img = h('img', { src: compositeUrl(c), alt: '', dataset: { testid: 'card-composite' } });
    const top = [...state.layers].reverse().find((l) => l.visible && l.output && l.operation !== 'mask');
    img.addEventListener('error', () => {
      delete img.dataset.testid;
      if (top && !img.dataset.fallback) {
        img.dataset.fallback = '1';
        img.src = blobUrl(top.output.sha256, { canvasId: c.id, token: c.token });
      } else img.remove();
    });
    return img;
  }

  // an <img> sends no Authorization header: the token rides in the query, as for the canvas's blobs
  function compositeUrl(c) {
    return `${api.compositePngPath(c.id)}${c.token ? `?token=${encodeURIComponent(c.token)}` : ''}`;
  }

  function card(c) {
    return h(
      'a.canvas-card',
      { href: editorUrl(c.id), dataset: { canvasId: c.id, testid: 'canvas-card' } },
      h('div.card-preview', null, h('span.card-placeholder', null, icon('image', { size: 26 })), h('span.card-count')),
      h(
        'div.card-body',
        null,
        h('strong.card-title', null, c.name || 'Untitled'),
        h('small.muted', null, `v${c.version} · ${c.updated_at ? `edited ${relativeTime(c.updated_at)}` : ''}`),
        c.role && c.role !== 'admin' ? h(`span.badge.role-${c.role}`, null, c.role) : null,
      ),
    );
  }
}
