// The client's fold knows exactly the server's event types (client/js/events.js is generated from the server).
import assert from 'node:assert/strict';
import { test } from 'node:test';

import FACTS from '../js/events.js';
import { KNOWN_EVENT_TYPES, UNDOABLE } from '../js/state.js';

test('the fold has a handler for every event type of the server, and for no other', () => {
  assert.deepEqual([...KNOWN_EVENT_TYPES].sort(), Object.keys(FACTS.events).sort());
});

test('undoable events are the ones the server says', () => {
  const undoable = Object.entries(FACTS.events).filter(([, facts]) => facts.undoable).map(([type]) => type);
  assert.deepEqual([...UNDOABLE].sort(), undoable.sort());
  assert.ok(UNDOABLE.has('layer.added') && !UNDOABLE.has('layer.rendered'));
});
