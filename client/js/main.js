// Opendream's browser client: the canvas list at `/`, the editor at `/?canvas=ID` (share links add `#token=`).

import { Api } from './api.js';
import { loadIdentity, parseRoute, saveToken, tokenFor, cleanUrl } from './identity.js';
import { renderHome } from './ui/home.js';
import { Editor } from './ui/editor.js';
import { h, icon, fill, paintRange } from './ui/dom.js';

async function adminToken(api) {
  // Only a browser on the server's own machine gets it (the server answers 403 to everyone else).
  try {
    const session = await api.session();
    return session.token || null;
  } catch {
    return null;
  }
}

async function main() {
  const root = document.getElementById('app');
  const storage = window.localStorage;
  const identity = loadIdentity(storage);
  const route = parseRoute(location.search, location.hash);
  const anonymous = new Api({ user: identity.id });
  if (route.page === 'home') {
    const admin = await adminToken(anonymous);
    await renderHome(root, { api: new Api({ token: admin, user: identity.id }), storage, identity, adminToken: admin });
    return;
  }
  if (route.token) {
    // a share link: keep its token for this canvas, and take it out of the address bar (and the history)
    saveToken(storage, route.canvasId, route.token);
    history.replaceState(null, '', cleanUrl(location.search, location.hash, route.canvasId));
  }
  let token = tokenFor(storage, route.canvasId);
  if (!token) token = await adminToken(anonymous);
  if (!token) {
    fill(root, 
      h('div.fatal-page', null, h('div.fatal-card', null, icon('lock', { size: 28 }), h('h3', null, 'You need a link to open this canvas'), h('p', null, 'Ask its owner for a share link.'), h('a.btn.btn-primary', { href: './' }, 'All canvases'))),
    );
    return;
  }
  const api = new Api({ token, user: identity.id });
  let catalogue;
  try {
    catalogue = await api.operations();
  } catch (error) {
    fill(root, h('div.fatal-page', null, h('div.fatal-card', null, icon('alert', { size: 28 }), h('h3', null, 'The server cannot be reached'), h('p', null, error.message))));
    return;
  }
  const editor = new Editor(root, { api, storage, identity, canvasId: route.canvasId, token, catalogue });
  editor.start();
}

document.addEventListener('input', (event) => {
  if (event.target instanceof HTMLInputElement && event.target.type === 'range') paintRange(event.target);
}, true);

main();
