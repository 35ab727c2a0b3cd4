// Folds a canvas's events with the browser client's reducer (client/js/state.js), for
// test_client_units.py to compare with the server's own projection. Input on stdin:
// {"events": [...], "start": <a GET …/state body or null>, "versions": [v, ...]}; output: the state (in the
// server's JSON shape) at each requested version.
import { applyEvent, emptyState, fromServer, toServerJson } from '../../client/js/state.js';

let input = '';
for await (const chunk of process.stdin) input += chunk;
const { events, start, versions } = JSON.parse(input);
const wanted = new Set(versions);
let state = start ? fromServer(start) : emptyState(events[0]?.canvas_id ?? '');
const out = {};
if (wanted.has(state.version)) out[state.version] = toServerJson(state);
for (const event of events) {
  if (event.seq <= state.version) continue;
  const result = applyEvent(state, event);
  if (result.status !== 'applied') {
    console.error(`event ${event.seq} (${event.type}): ${result.status}`);
    process.exit(2);
  }
  state = result.state;
  if (wanted.has(state.version)) out[state.version] = toServerJson(state);
}
process.stdout.write(JSON.stringify(out));
