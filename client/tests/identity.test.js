import test from 'node:test';
import assert from 'node:assert/strict';
import { loadIdentity, saveIdentity, saveToken, tokenFor, tokens, forgetToken, parseRoute, cleanUrl, initials, rememberName, knownNames, USER_ID, COLOUR } from '../js/identity.js';

class MemoryStorage {
  constructor() {
    this.data = new Map();
  }
  getItem(key) {
    return this.data.has(key) ? this.data.get(key) : null;
  }
  setItem(key, value) {
    this.data.set(key, String(value));
  }
}

test('a user is made once and kept; ids and colours fit the protocol', () => {
  const storage = new MemoryStorage();
  const user = loadIdentity(storage);
  assert.match(user.id, USER_ID);
  assert.match(user.colour, COLOUR);
  assert.deepEqual(loadIdentity(storage), user);
  const renamed = saveIdentity(storage, { ...user, name: '  Grace  ' });
  assert.equal(renamed.name, 'Grace');
  assert.equal(loadIdentity(storage).name, 'Grace');
  storage.setItem('opendream.user', '{broken');
  assert.notEqual(loadIdentity(storage).id, user.id);
});

test('tokens per canvas, with the admin token as the fallback', () => {
  const storage = new MemoryStorage();
  assert.equal(tokenFor(storage, 'c1'), null);
  assert.equal(tokenFor(storage, 'c1', 'ADMIN'), 'ADMIN');
  saveToken(storage, 'c1', 'T1', { role: 'owner', name: 'Harbour' });
  assert.equal(tokenFor(storage, 'c1', 'ADMIN'), 'T1');
  assert.equal(tokens(storage).c1.name, 'Harbour');
  forgetToken(storage, 'c1');
  assert.equal(tokenFor(storage, 'c1'), null);
  rememberName(storage, 'u-1', 'Ada');
  assert.equal(knownNames(storage).get('u-1'), 'Ada');
});

test('routes: share links, hash links, the list', () => {
  assert.deepEqual(parseRoute('?canvas=c12&token=abc'), { page: 'editor', canvasId: 'c12', token: 'abc', version: null });
  assert.deepEqual(parseRoute('?canvas=c12&v=7'), { page: 'editor', canvasId: 'c12', token: null, version: 7 });
  assert.deepEqual(parseRoute('', '#/c/c9'), { page: 'editor', canvasId: 'c9', token: null, version: null });
  assert.deepEqual(parseRoute('', ''), { page: 'home' });
  // share links carry the token in the fragment (never sent to a server, never in its logs)
  assert.deepEqual(parseRoute('?canvas=c12', '#token=abc'), { page: 'editor', canvasId: 'c12', token: 'abc', version: null });
  assert.deepEqual(parseRoute('?canvas=c12&token=old', '#token=new'), { page: 'editor', canvasId: 'c12', token: 'new', version: null });
  assert.deepEqual(parseRoute('', '#/c/c9&token=abc'), { page: 'editor', canvasId: 'c9', token: 'abc', version: null });
  assert.equal(cleanUrl('?canvas=c12', '#token=abc', 'c12'), '?canvas=c12');
  assert.equal(cleanUrl('?canvas=c12&token=abc&v=3', '', 'c12'), '?canvas=c12&v=3');
  assert.equal(cleanUrl('?canvas=c12', '#token=abc&x=1', 'c12'), '?canvas=c12#x=1');
  assert.equal(cleanUrl('', '#/c/c9&token=abc', 'c9'), '?canvas=c9#/c/c9');
  assert.equal(initials('Ada Lovelace'), 'AL');
  assert.equal(initials('hokusai'), 'HO');
});
