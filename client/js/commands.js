// Commands on their way to the server. Each keeps its command_id until it is acknowledged or rejected, so
// after a dropped connection the same commands are sent again, and the server (idempotent by command_id)
// applies each exactly once.

export function newId(prefix = '') {
  const bytes = new Uint8Array(12);
  globalThis.crypto.getRandomValues(bytes);
  return prefix + Array.from(bytes, (b) => b.toString(16).padStart(2, '0')).join('');
}

/** A command id that sorts by time: 12 hex digits of milliseconds, then 12 random ones (the same length as
 * `newId`'s). The server keeps one idempotency record per command in an index on (canvas, command id); ids that
 * increase go to its end, where random ones dirtied a page of it per command of every commit (measured on
 * SQLite: ~1.7x the storage throughput). Uniqueness still rests on the random half. */
export function newCommandId(prefix = 'cmd-', now = Date.now()) {
  return prefix + Math.floor(now).toString(16).padStart(12, '0') + newId().slice(0, 12);
}

export class CommandError extends Error {
  constructor(reply) {
    super(reply.message || reply.code || 'command rejected');
    this.code = reply.code;
    this.field = reply.field ?? null;
  }
}

export class CommandQueue {
  /** `send(message)` puts a frame on the socket and returns false when there is none to put it on;
   * `gesture()` names the gesture a command submitted now is part of (client/js/gesture.js), or null. */
  constructor({ send = () => false, makeId = () => newCommandId(), gesture = () => null } = {}) {
    this.send = send;
    this.makeId = makeId;
    this.gesture = gesture;
    this.pending = new Map(); // command_id -> {message, resolve, reject, sent}
    this.listeners = new Set();
  }

  get size() {
    return this.pending.size;
  }

  onChange(listener) {
    this.listeners.add(listener);
    return () => this.listeners.delete(listener);
  }

  _changed() {
    for (const listener of this.listeners) listener(this.pending.size);
  }

  /** Queue `command` ({type, ...}); resolves with the ack, rejects with a CommandError. */
  submit(command, { expectedVersion, commandId, gesture: given } = {}) {
    const id = commandId || this.makeId();
    const message = { type: 'command', command_id: id, command };
    if (expectedVersion !== undefined && expectedVersion !== null) message.expected_version = expectedVersion;
    const gesture = command.type === 'undo' || command.type === 'redo' ? null : given ?? this.gesture();
    if (gesture) message.gesture = gesture; // kept when resent: a retried command stays in its gesture
    let resolve;
    let reject;
    const promise = new Promise((res, rej) => {
      resolve = res;
      reject = rej;
    });
    const entry = { message, resolve, reject, sent: 0 };
    this.pending.set(id, entry);
    if (this.send(message)) entry.sent += 1;
    this._changed();
    return { commandId: id, promise };
  }

  /** After (re)connecting: send every unacknowledged command again, oldest first, with its command_id. */
  resend() {
    let count = 0;
    for (const entry of this.pending.values()) {
      if (!this.send(entry.message)) break;
      entry.sent += 1;
      count += 1;
    }
    return count;
  }

  /** Handle an `ack` or `reject` frame; false when it is not one of ours. */
  settle(reply) {
    const entry = this.pending.get(reply.command_id);
    if (!entry) return false;
    this.pending.delete(reply.command_id);
    if (reply.type === 'ack') entry.resolve(reply);
    else entry.reject(new CommandError(reply));
    this._changed();
    return true;
  }

  /** Give up on everything still pending (a fatal close). */
  failAll(reason) {
    for (const [id, entry] of this.pending) entry.reject(new CommandError({ command_id: id, code: 'disconnected', message: reason }));
    this.pending.clear();
    this._changed();
  }
}
