import test from 'node:test';
import assert from 'node:assert/strict';
import { Backoff, isFatalClose } from '../js/backoff.js';
import { CommandQueue, CommandError, newCommandId } from '../js/commands.js';
import { LiveConnection, socketUrl } from '../js/live.js';
import { throttle, debounce } from '../js/throttle.js';

test('backoff doubles up to the cap, with bounded jitter, and resets', () => {
  const b = new Backoff({ base: 500, factor: 2, max: 4000, jitter: 0, random: () => 0.5 });
  assert.deepEqual([b.next(), b.next(), b.next(), b.next(), b.next()], [500, 1000, 2000, 4000, 4000]);
  b.reset();
  assert.equal(b.next(), 500);
  const low = new Backoff({ base: 1000, jitter: 0.25, random: () => 0 });
  const high = new Backoff({ base: 1000, jitter: 0.25, random: () => 0.999999 });
  assert.equal(low.next(), 750);
  assert.equal(high.next(), 1250);
  assert.ok(isFatalClose(4401) && isFatalClose(4404) && !isFatalClose(1006) && !isFatalClose(4008));
});

test('command ids sort by the time they were made and stay unique within a millisecond', () => {
  const ids = [1_700_000_000_000, 1_700_000_000_001, 1_700_000_000_999, 1_800_000_000_000].map((t) => newCommandId('cmd-', t));
  assert.deepEqual([...ids].sort(), ids);
  assert.ok(ids.every((id) => /^cmd-[0-9a-f]{24}$/.test(id)));
  const same = new Set(Array.from({ length: 1000 }, () => newCommandId('cmd-', 1_700_000_000_000)));
  assert.equal(same.size, 1000);
  assert.equal(new CommandQueue({}).makeId().length, 'cmd-'.length + 24);
});

test('commands wait for a socket, are resent with the same id, and settle once', async () => {
  const sent = [];
  let open = false;
  let n = 0;
  const queue = new CommandQueue({ send: (m) => (open ? (sent.push(m), true) : false), makeId: () => `c${++n}` });
  const first = queue.submit({ type: 'undo' });
  const second = queue.submit({ type: 'rename_canvas', name: 'x' }, { expectedVersion: 4 });
  assert.equal(sent.length, 0);
  assert.equal(queue.size, 2);
  open = true;
  assert.equal(queue.resend(), 2);
  assert.deepEqual(sent.map((m) => m.command_id), ['c1', 'c2']);
  assert.equal(sent[1].expected_version, 4);
  // connection drops before the acks: both go again, same ids
  queue.resend();
  assert.deepEqual(sent.map((m) => m.command_id), ['c1', 'c2', 'c1', 'c2']);
  assert.ok(queue.settle({ type: 'ack', command_id: 'c1', seqs: [5], version: 5, duplicate: false }));
  assert.ok(!queue.settle({ type: 'ack', command_id: 'c1', seqs: [5], version: 5, duplicate: true }));
  assert.ok(queue.settle({ type: 'reject', command_id: 'c2', code: 'version_conflict', message: 'moved on' }));
  assert.deepEqual(await first.promise, { type: 'ack', command_id: 'c1', seqs: [5], version: 5, duplicate: false });
  await assert.rejects(second.promise, (e) => e instanceof CommandError && e.code === 'version_conflict');
  assert.equal(queue.size, 0);
  const third = queue.submit({ type: 'redo' });
  queue.failAll('gone');
  await assert.rejects(third.promise, (e) => e.code === 'disconnected');
});

class FakeTimers {
  constructor() {
    this.now = 0;
    this.tasks = [];
    this.id = 0;
  }
  setTimeout(fn, ms) {
    this.tasks.push({ id: ++this.id, at: this.now + ms, fn });
    return this.id;
  }
  clearTimeout(id) {
    this.tasks = this.tasks.filter((t) => t.id !== id);
  }
  setInterval(fn, ms) {
    const id = ++this.id;
    const tick = () => {
      fn();
      this.tasks.push({ id, at: this.now + ms, fn: tick });
    };
    this.tasks.push({ id, at: this.now + ms, fn: tick });
    return id;
  }
  clearInterval(id) {
    this.clearTimeout(id);
  }
  advance(ms) {
    const end = this.now + ms;
    for (;;) {
      this.tasks.sort((a, b) => a.at - b.at);
      const next = this.tasks[0];
      if (!next || next.at > end) break;
      this.tasks.shift();
      this.now = next.at;
      next.fn();
    }
    this.now = end;
  }
}

function fakeSocketClass() {
  const sockets = [];
  class FakeSocket {
    constructor(url) {
      this.url = url;
      this.readyState = 0;
      this.sent = [];
      sockets.push(this);
    }
    send(text) {
      this.sent.push(JSON.parse(text));
    }
    close() {
      this.readyState = 3;
    }
    open() {
      this.readyState = 1;
      this.onopen?.();
    }
    message(obj) {
      this.onmessage?.({ data: JSON.stringify(obj) });
    }
    drop(code = 1006, reason = '') {
      this.readyState = 3;
      this.onclose?.({ code, reason });
    }
  }
  return { FakeSocket, sockets };
}

function setup() {
  const { FakeSocket, sockets } = fakeSocketClass();
  const timers = new FakeTimers();
  const queue = new CommandQueue({ makeId: (() => { let n = 0; return () => `k${++n}`; })() });
  const received = [];
  const statuses = [];
  let since;
  const live = new LiveConnection({
    url: 'ws://h/ws/canvases/c1',
    hello: () => ({ token: 't', since, user: 'u', name: 'Ada', colour: '#123456' }),
    queue,
    onMessage: (m) => {
      received.push(m);
      if (m.type === 'welcome') since = m.version;
      if (m.type === 'event') since = m.seq;
    },
    onStatus: (s) => statuses.push(s),
    WebSocketImpl: FakeSocket,
    backoff: new Backoff({ base: 100, max: 1000, jitter: 0 }),
    timers,
    now: () => timers.now,
  });
  return { live, sockets, timers, queue, received, statuses };
}

test('hello, welcome, then reconnects with backoff and catch-up, resending unacknowledged commands', async () => {
  const { live, sockets, timers, queue, received, statuses } = setup();
  live.start();
  assert.equal(sockets.length, 1);
  sockets[0].open();
  assert.deepEqual(sockets[0].sent[0], { type: 'hello', token: 't', user: 'u', name: 'Ada', colour: '#123456' });
  // a command before the welcome waits
  const { promise } = queue.submit({ type: 'undo' });
  assert.equal(sockets[0].sent.length, 1);
  sockets[0].message({ type: 'welcome', version: 3, you: { role: 'editor', conn: 'x', user: 'u' }, state: {} });
  assert.equal(live.status, 'live');
  assert.deepEqual(sockets[0].sent[1], { type: 'command', command_id: 'k1', command: { type: 'undo' } });
  sockets[0].message({ type: 'event', seq: 4, event: { seq: 4 } });
  // the network drops before the ack
  sockets[0].drop();
  assert.equal(live.status, 'reconnecting');
  timers.advance(99);
  assert.equal(sockets.length, 1);
  timers.advance(1);
  assert.equal(sockets.length, 2);
  sockets[1].drop(); // fails again: the next wait is longer
  timers.advance(199);
  assert.equal(sockets.length, 2);
  timers.advance(1);
  assert.equal(sockets.length, 3);
  sockets[2].open();
  assert.equal(sockets[2].sent[0].since, 4);
  sockets[2].message({ type: 'welcome', version: 5, you: { role: 'editor' }, events: [{ seq: 5 }] });
  assert.deepEqual(sockets[2].sent[1], { type: 'command', command_id: 'k1', command: { type: 'undo' } });
  sockets[2].message({ type: 'ack', command_id: 'k1', seqs: [5], version: 5, duplicate: true });
  assert.equal((await promise).duplicate, true);
  assert.ok(!received.some((m) => m.type === 'ack'));
  assert.deepEqual(statuses.filter((s, i) => s !== statuses[i - 1]), ['connecting', 'live', 'reconnecting', 'live']);
  // backoff was reset by the welcome
  sockets[2].drop();
  timers.advance(100);
  assert.equal(sockets.length, 4);
  live.stop();
  assert.equal(live.status, 'closed');
});

test('a revoked token is fatal: no reconnect, pending commands fail', async () => {
  const { live, sockets, timers, queue } = setup();
  live.start();
  sockets[0].open();
  const { promise } = queue.submit({ type: 'redo' });
  sockets[0].drop(4401, 'unauthorized');
  assert.equal(live.status, 'fatal');
  timers.advance(60000);
  assert.equal(sockets.length, 1);
  await assert.rejects(promise);
});

test('a client cut off for falling behind (4008) comes back at once; silence is noticed', () => {
  const { live, sockets, timers } = setup();
  live.start();
  sockets[0].open();
  sockets[0].message({ type: 'welcome', version: 1, you: {}, state: {} });
  sockets[0].drop(4008, 'fell behind; reconnect with since=1');
  timers.advance(0);
  assert.equal(sockets.length, 2);
  sockets[1].open();
  sockets[1].message({ type: 'welcome', version: 1, you: {}, events: [] });
  timers.advance(20000);
  assert.equal(sockets[1].sent.at(-1).type, 'ping');
  timers.advance(40000); // nothing heard for 60 s: dropped and reconnecting
  assert.equal(live.status, 'reconnecting');
  timers.advance(100);
  assert.equal(sockets.length, 3);
});

test('socket URLs follow the page (ws/wss, any host)', () => {
  assert.equal(socketUrl({ protocol: 'http:', host: '10.0.0.2:9000' }, 'c1'), 'ws://10.0.0.2:9000/ws/canvases/c1');
  assert.equal(socketUrl({ protocol: 'https:', host: 'dream.example' }, 'c 1'), 'wss://dream.example/ws/canvases/c%201');
});

test('throttle: at most one call per interval, the latest arguments win', () => {
  const timers = new FakeTimers();
  const calls = [];
  const t = throttle((x) => calls.push([timers.now, x]), 50, { now: () => timers.now, schedule: (f, ms) => timers.setTimeout(f, ms), cancel: (id) => timers.clearTimeout(id) });
  t(1);
  t(2);
  t(3);
  timers.advance(10);
  t(4);
  timers.advance(100);
  t(5);
  assert.deepEqual(calls, [[0, 1], [50, 4], [110, 5]]);
  const d = [];
  const deb = debounce((x) => d.push(x), 30, { schedule: (f, ms) => timers.setTimeout(f, ms), cancel: (id) => timers.clearTimeout(id) });
  deb(1);
  timers.advance(20);
  deb(2);
  timers.advance(29);
  assert.deepEqual(d, []);
  timers.advance(1);
  assert.deepEqual(d, [2]);
});
