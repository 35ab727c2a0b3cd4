// A connection the server closed for good (a revoked link): nothing is queued or sent afterwards, and coming back
// online does not knock on the door again. A merely dropped connection still keeps what waits for it.
import test from 'node:test';
import assert from 'node:assert/strict';
import { CommandQueue } from '../js/commands.js';
import { LiveConnection } from '../js/live.js';

function connection() {
  const sockets = [];
  class FakeSocket {
    constructor(url) {
      this.url = url;
      this.sent = [];
      this.readyState = 0;
      sockets.push(this);
    }
    send(data) {
      this.sent.push(JSON.parse(data));
    }
    close() {
      this.readyState = 3;
    }
  }
  const timers = { setTimeout: () => 1, clearTimeout: () => {}, setInterval: () => 1, clearInterval: () => {} };
  const queue = new CommandQueue();
  const live = new LiveConnection({ url: 'ws://h/ws/canvases/c1', hello: () => ({ token: 't', user: 'u' }), queue, WebSocketImpl: FakeSocket, timers });
  live.start();
  const socket = sockets[0];
  socket.readyState = 1;
  socket.onopen();
  socket.onmessage({ data: JSON.stringify({ type: 'welcome', version: 1, you: { user: 'tX.u', conn: 'c', role: 'editor' }, events: [] }) });
  const close = (code, reason = '') => {
    socket.readyState = 3;
    socket.onclose({ code, reason });
  };
  return { live, queue, sockets, close };
}

test('after a revocation a command fails at once: never queued, never sent, no reconnect', async () => {
  const { live, queue, sockets, close } = connection();
  close(4401, 'this token was revoked');
  assert.equal(live.status, 'fatal');
  assert.ok(live.ended);
  const { promise } = queue.submit({ type: 'rename_canvas', name: 'too late' });
  assert.equal(queue.size, 0);
  await assert.rejects(promise, (error) => error.code === 'disconnected' && /revoked/.test(error.message));
  live.reconnectNow(); // the browser came back online
  assert.equal(sockets.length, 1);
  assert.deepEqual(sockets[0].sent.map((m) => m.type), ['hello']);
});

test('a dropped connection is not an ending: what is queued waits for the next welcome', () => {
  const { live, queue, close } = connection();
  close(1006);
  assert.equal(live.status, 'reconnecting');
  assert.ok(!live.ended);
  queue.submit({ type: 'rename_canvas', name: 'later' });
  assert.equal(queue.size, 1);
});
