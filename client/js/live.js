// One canvas's WebSocket (docs/protocol.md): hello → welcome, events, acks, presence, render news;
// reconnects with exponential backoff and catch-up (`since` = the last seq folded), and sends unacknowledged
// commands again after each welcome. The WebSocket class and timers are injected: tests drive it with fakes.

import { Backoff, isFatalClose, FATAL_CLOSE_CODES } from './backoff.js';

const HEARTBEAT_MS = 20000;
const SILENCE_MS = 50000;

export class LiveConnection {
  constructor({
    url,
    hello,
    queue,
    onMessage = () => {},
    onStatus = () => {},
    WebSocketImpl = globalThis.WebSocket,
    backoff = new Backoff(),
    timers = globalThis,
    now = () => Date.now(),
  }) {
    Object.assign(this, { url, hello, queue, onMessage, onStatus, WebSocketImpl, backoff, timers, now });
    this.socket = null;
    this.status = 'idle';
    this.stopped = false;
    this.retryTimer = null;
    this.heartbeat = null;
    this.lastHeard = 0;
    this.attempt = 0;
    this.welcomed = false;
    this.fatal = null; // {code, reason, message} once the server has closed the door (a revoked link, …)
    queue.send = (message) => this.sendFrame(message, { needWelcome: true });
    // after a fatal close nothing will ever carry a command: one that slips into the queue fails at once
    // rather than waiting, unsent, for a reconnect that never comes
    queue.onChange((size) => {
      if (this.fatal && size) queue.failAll(this.fatal.message);
    });
  }

  /** Whether this connection can never be used again (the server refused it for good). */
  get ended() {
    return this.fatal !== null;
  }

  setStatus(status, detail = null) {
    this.status = status;
    this.onStatus(status, detail);
  }

  start() {
    this.stopped = false;
    this.fatal = null;
    this.connect();
  }

  connect() {
    this.clearRetry();
    this.attempt += 1;
    this.welcomed = false;
    this.setStatus(this.attempt === 1 ? 'connecting' : 'reconnecting');
    let socket;
    try {
      socket = new this.WebSocketImpl(this.url);
    } catch (error) {
      this.scheduleReconnect();
      return;
    }
    this.socket = socket;
    socket.onopen = () => {
      if (socket !== this.socket) return;
      this.lastHeard = this.now();
      socket.send(JSON.stringify({ type: 'hello', ...this.hello() }));
    };
    socket.onmessage = (event) => {
      if (socket !== this.socket) return;
      this.lastHeard = this.now();
      let message;
      try {
        message = JSON.parse(event.data);
      } catch {
        return;
      }
      this.receive(message);
    };
    socket.onclose = (event) => {
      if (socket !== this.socket) return;
      this.socket = null;
      this.stopHeartbeat();
      this.closed(event.code, event.reason);
    };
    socket.onerror = () => {};
  }

  receive(message) {
    if (message.type === 'welcome') {
      this.welcomed = true;
      this.backoff.reset();
      this.onMessage(message);
      this.setStatus('live', message);
      this.queue.resend();
      this.startHeartbeat();
      return;
    }
    if (message.type === 'ack' || message.type === 'reject') {
      if (this.queue.settle(message)) return;
    }
    this.onMessage(message);
  }

  closed(code, reason) {
    if (this.stopped) {
      this.setStatus('closed');
      return;
    }
    if (isFatalClose(code)) {
      const text = FATAL_CLOSE_CODES.get(code);
      this.fatal = { code, reason: reason || text, message: text };
      this.queue.failAll(text);
      this.setStatus('fatal', this.fatal);
      return;
    }
    this.scheduleReconnect(code, reason);
  }

  scheduleReconnect(code = null, reason = '') {
    const delay = code === 4008 ? 0 : this.backoff.next(); // fell behind: come back at once with since
    this.setStatus('reconnecting', { code, reason, delay });
    this.clearRetry();
    this.retryTimer = this.timers.setTimeout(() => {
      this.retryTimer = null;
      if (!this.stopped) this.connect();
    }, delay);
  }

  /** Try again now (the browser came back online, or the user clicked "Reconnect"). */
  reconnectNow() {
    if (this.stopped || this.socket || this.fatal) return; // a revoked link stays revoked
    this.connect();
  }

  clearRetry() {
    if (this.retryTimer !== null) this.timers.clearTimeout(this.retryTimer);
    this.retryTimer = null;
  }

  startHeartbeat() {
    this.stopHeartbeat();
    this.heartbeat = this.timers.setInterval(() => {
      if (!this.socket) return;
      if (this.now() - this.lastHeard > SILENCE_MS) {
        this.drop(); // a half-open connection: nothing heard for too long
        return;
      }
      this.sendFrame({ type: 'ping', t: this.now() });
    }, HEARTBEAT_MS);
  }

  stopHeartbeat() {
    if (this.heartbeat !== null) this.timers.clearInterval(this.heartbeat);
    this.heartbeat = null;
  }

  /** Close the socket as if the network had dropped it (it reconnects). */
  drop() {
    const socket = this.socket;
    if (!socket) return;
    this.socket = null;
    this.stopHeartbeat();
    try {
      socket.close();
    } catch {
      /* already closing */
    }
    this.closed(1006, 'dropped');
  }

  /** Put a frame on the socket; false when there is no open (and, for commands, welcomed) socket. */
  sendFrame(message, { needWelcome = false } = {}) {
    const socket = this.socket;
    if (!socket || socket.readyState !== 1 || (needWelcome && !this.welcomed)) return false;
    socket.send(JSON.stringify(message));
    return true;
  }

  stop() {
    this.stopped = true;
    this.clearRetry();
    this.stopHeartbeat();
    const socket = this.socket;
    this.socket = null;
    if (socket) {
      try {
        socket.close(1000, 'bye');
      } catch {
        /* ignore */
      }
    }
    this.setStatus('closed');
  }
}

export function socketUrl(location, canvasId) {
  const scheme = location.protocol === 'https:' ? 'wss' : 'ws';
  return `${scheme}://${location.host}/ws/canvases/${encodeURIComponent(canvasId)}`;
}
