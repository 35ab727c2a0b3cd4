// Who this browser is (a stable random user id, a name, a colour) and which token opens which canvas,
// kept in localStorage. `storage` is injected so the logic runs in tests without a browser.

const USER_KEY = 'opendream.user';
const TOKENS_KEY = 'opendream.tokens';
const NAMES_KEY = 'opendream.names';

export const COLOURS = ['#e4572e', '#17bebb', '#ffc914', '#76b041', '#7c5cff', '#ff6392', '#3a86ff', '#fb8500', '#2ec4b6', '#c77dff'];
const NAMES = ['Ada', 'Hokusai', 'Frida', 'Turner', 'Monet', 'Kahlo', 'Klimt', 'Hopper', 'Vermeer', 'Matisse', 'Okeeffe', 'Basquiat', 'Miro', 'Hilma', 'Escher', 'Rothko'];

function read(storage, key, fallback) {
  try {
    const raw = storage.getItem(key);
    return raw ? JSON.parse(raw) : fallback;
  } catch {
    return fallback;
  }
}

function write(storage, key, value) {
  try {
    storage.setItem(key, JSON.stringify(value));
  } catch {
    /* private mode or full: the session still works */
  }
}

function randomHex(random, length) {
  let out = '';
  for (let i = 0; i < length; i++) out += Math.floor(random() * 16).toString(16);
  return out;
}

export const USER_ID = /^[A-Za-z0-9_.@-]{1,64}$/;
export const COLOUR = /^#[0-9a-fA-F]{6}$/;

/** This browser's user, made once and kept. */
export function loadIdentity(storage, random = Math.random) {
  const saved = read(storage, USER_KEY, null);
  if (saved && USER_ID.test(saved.id || '') && COLOUR.test(saved.colour || '') && saved.name) return saved;
  const user = {
    id: `u-${randomHex(random, 10)}`,
    name: NAMES[Math.floor(random() * NAMES.length)],
    colour: COLOURS[Math.floor(random() * COLOURS.length)],
  };
  write(storage, USER_KEY, user);
  return user;
}

export function saveIdentity(storage, user) {
  const clean = { ...user, name: cleanName(user.name) || 'Anonymous', colour: COLOUR.test(user.colour || '') ? user.colour.toLowerCase() : user.colour };
  write(storage, USER_KEY, clean);
  return clean;
}

/** A name as the server stores it (server/people.py clean_name): control characters become spaces, format
 * characters (zero-width, right-to-left overrides) go, whitespace folds, at most 64 characters. */
export function cleanName(name) {
  const text = String(name ?? '').normalize('NFC').replace(/\p{Cc}/gu, ' ').replace(/[\p{Cf}\p{Co}\p{Cs}\p{Cn}\u2028\u2029]/gu, '');
  return [...text.split(/\s+/).filter(Boolean).join(' ')].slice(0, 64).join('').trim();
}

/** The browser's own part of a user id: the server names a user `t<token id>.<browser id>`, so one browser
 * using two links (the admin's to create a canvas, the owner's to edit it) is the same browser id twice. */
export function browserPart(user) {
  const match = /^t[0-9a-f]+\.(.+)$/.exec(String(user || ''));
  return match ? match[1] : null;
}

/** Look `user` up in `map` (user id -> value): its own entry, else one of the same browser under another link. */
export function lookupPerson(map, user) {
  if (!map || user == null) return undefined;
  const own = map.get(user);
  if (own !== undefined) return own;
  const part = browserPart(user);
  if (!part) return undefined;
  for (const [key, value] of map) if (browserPart(key) === part) return value;
  return undefined;
}

export function tokens(storage) {
  return read(storage, TOKENS_KEY, {});
}

/** Remember the token for a canvas (and its role, name and when, for the canvas list). */
export function saveToken(storage, canvasId, token, extra = {}) {
  const all = tokens(storage);
  all[canvasId] = { ...(all[canvasId] || {}), ...extra, token, saved: Date.now() };
  write(storage, TOKENS_KEY, all);
}

export function updateCanvasInfo(storage, canvasId, extra) {
  const all = tokens(storage);
  if (!all[canvasId]) return;
  all[canvasId] = { ...all[canvasId], ...extra };
  write(storage, TOKENS_KEY, all);
}

export function forgetToken(storage, canvasId) {
  const all = tokens(storage);
  delete all[canvasId];
  write(storage, TOKENS_KEY, all);
}

export function tokenFor(storage, canvasId, adminToken = null) {
  return tokens(storage)[canvasId]?.token || adminToken || null;
}

/** Names of people seen before, so the history can say "Ada" for a user who is not connected now. */
export function knownNames(storage) {
  return new Map(Object.entries(read(storage, NAMES_KEY, {})));
}

export function rememberName(storage, user, name) {
  const all = read(storage, NAMES_KEY, {});
  if (all[user] === name) return;
  all[user] = name;
  const entries = Object.entries(all).slice(-500);
  write(storage, NAMES_KEY, Object.fromEntries(entries));
}

export function initials(name) {
  const words = String(name || '?').trim().split(/\s+/);
  const letters = words.length > 1 ? words[0][0] + words[1][0] : words[0].slice(0, 2);
  return letters.toUpperCase();
}

/**
 * The page a URL asks for: `/?canvas=ID#token=T` (the form share links have: a fragment never reaches a server
 * or its logs; `?canvas=ID&token=T`, the older form, still works) or `#/c/ID`; else the canvas list.
 */
export function parseRoute(search, hash = '') {
  const params = new URLSearchParams(search);
  const canvas = params.get('canvas');
  if (canvas) return { page: 'editor', canvasId: canvas, token: fragmentToken(hash) || params.get('token'), version: toInt(params.get('v')) };
  const match = /^#\/c\/([A-Za-z0-9_-]+)/.exec(hash);
  if (match) return { page: 'editor', canvasId: match[1], token: fragmentToken(hash.slice(match[0].length)), version: null };
  return { page: 'home' };
}

function fragmentParams(hash) {
  return new URLSearchParams(String(hash || '').replace(/^#/, '').replace(/^[^?&=]*[?&]/, ''));
}

function fragmentToken(hash) {
  return fragmentParams(hash).get('token');
}

/** The address to show once a link's token is stored: the canvas's own, without `token` in query or fragment. */
export function cleanUrl(search, hash, canvasId) {
  const params = new URLSearchParams(search);
  params.delete('token');
  if (!params.has('canvas')) params.set('canvas', canvasId);
  const match = /^#\/c\/[A-Za-z0-9_-]+/.exec(hash || '');
  const rest = fragmentParams(match ? hash.slice(match[0].length) : hash);
  rest.delete('token');
  const more = rest.toString();
  const fragment = match ? match[0] + (more ? `&${more}` : '') : more ? `#${more}` : '';
  return `?${params}${fragment}`;
}

function toInt(value) {
  const n = Number.parseInt(value ?? '', 10);
  return Number.isFinite(n) ? n : null;
}

export function editorUrl(canvasId) {
  return `?canvas=${encodeURIComponent(canvasId)}`;
}
