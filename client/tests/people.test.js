// People with names everywhere: the session learns who the canvas's people are (the welcome's `people`, the
// `people` news, presence), and the history's words and colours name them — offline people too, the same
// browser under another link (an HTTP call, the admin's link that created the canvas), and this page itself.
import test from 'node:test';
import assert from 'node:assert/strict';
import { CanvasSession } from '../js/session.js';
import { actorLabel } from '../js/history.js';
import { colourFor } from '../js/ui/timeline.js';
import { cleanName, browserPart, lookupPerson, saveIdentity } from '../js/identity.js';

const state = { canvas_id: 'c1', version: 1, name: 'n', order: [], layers: [], history: {} };
const ADA = 'tabc123.u-ada';
const BO = 'tdef456.u-bo';

function session() {
  const s = new CanvasSession({ canvasId: 'c1', fetchState: async () => state, fetchEvents: async () => ({ events: [] }) });
  s.loadTimeline = async () => {};
  return s;
}

test('the welcome names people who are offline; news and presence add and rename', () => {
  const s = session();
  const seen = [];
  s.subscribe((what) => seen.push(what));
  s.handle({ type: 'welcome', version: 1, you: { user: BO, conn: 'me', role: 'editor' }, state, presence: [],
    people: [{ user: ADA, name: 'Ada', colour: '#e4572e', last_seen: 1 }, { user: BO, name: 'Bo', colour: '#17bebb', last_seen: 2 }] });
  assert.equal(s.directory.get(ADA).name, 'Ada'); // not connected, still named
  s.handle({ type: 'people', people: [{ user: 'tabc123.u-cy', name: 'Cy', colour: '#ffc914', last_seen: 3 }] });
  assert.ok(seen.includes('people'));
  s.handle({ type: 'presence', user: ADA, conn: 'p1', name: 'Ada L', colour: '#7c5cff', cursor: null, selected_layer: null });
  assert.deepEqual(s.directory.get(ADA), { user: ADA, name: 'Ada L', colour: '#7c5cff' });
  s.handle({ type: 'people', people: [{ user: 'x', name: '', colour: '#000000' }, { user: 'y', name: 'Y', colour: 'red;background:url(x)' }, 7, null] });
  assert.equal(s.directory.has('x'), false); // no name, nothing to show
  assert.equal(s.directory.get('y').colour, null); // a colour that is not #rrggbb is not taken
  const everyone = s.everyone({ user: BO, name: 'Bo', colour: '#ff6392' });
  assert.equal(everyone[0].colour, '#ff6392'); // this page first: its own chosen colour wins
});

test('names, not ids, for everyone: offline people, the same browser under another link, and me', () => {
  const names = new Map([[ADA, 'Ada'], [BO, 'Bo']]);
  assert.equal(actorLabel(ADA, { me: BO, names }), 'Ada');
  assert.equal(actorLabel('t999999.u-ada', { me: BO, names }), 'Ada'); // Ada's HTTP call with the admin's link
  assert.equal(actorLabel(BO, { me: BO, names }), 'You');
  assert.equal(actorLabel('t777777.u-bo', { me: BO, names }), 'You'); // my canvas, created with the admin's link
  assert.equal(actorLabel('t777777', { me: BO, names }), 'Someone'); // a link used with no user id (a script)
  assert.equal(actorLabel('tabc123.u-zed', { me: BO, names }), 'u-zed');
  const spoof = new Map([...names, ['t31337.u-bo', 'Mallory']]); // another link claiming my browser id
  assert.equal(actorLabel('t31337.u-bo', { me: BO, names: spoof }), 'Mallory'); // never "You"
});

test('a colour: mine for my entries, the known one for others, the same browser under another link', () => {
  const people = [{ user: BO, colour: '#ff6392' }, { user: ADA, colour: '#e4572e' }, { user: 'tq.u-no', colour: null }];
  assert.equal(colourFor(BO, people), '#ff6392');
  assert.equal(colourFor('t777777.u-bo', people), '#ff6392');
  assert.equal(colourFor(ADA, people), '#e4572e');
  assert.match(colourFor('tq.u-no', people), /^#[0-9a-f]{6}$/); // known without a colour: one from the id
  assert.equal(colourFor('tq.u-no', people), colourFor('tq.u-no', []));
});

test('a name is cleaned as the server cleans it; a browser part is what follows the token', () => {
  assert.equal(cleanName('  Ada \t Lovelace\n'), 'Ada Lovelace');
  assert.equal(cleanName('\u202eevil\u202c'), 'evil');
  assert.equal(cleanName('Ada\u0000\u001b[31mRed'), 'Ada [31mRed');
  assert.equal(cleanName('x'.repeat(100)).length, 64);
  assert.equal(browserPart('tabc.u-1'), 'u-1');
  assert.equal(browserPart('tabc'), null);
  assert.equal(browserPart('creator'), null);
  assert.equal(lookupPerson(new Map([['ta.u-1', 'A']]), 'tb.u-1'), 'A');
  assert.equal(lookupPerson(new Map([['ta.u-1', 'A'], ['tb.u-1', 'B']]), 'tb.u-1'), 'B'); // its own entry first
  const store = new Map();
  const storage = { getItem: (k) => store.get(k) ?? null, setItem: (k, v) => store.set(k, v) };
  assert.deepEqual(saveIdentity(storage, { id: 'u-1', name: ' \u0007 ', colour: '#ABCDEF' }), { id: 'u-1', name: 'Anonymous', colour: '#abcdef' });
});
