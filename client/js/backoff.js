// Reconnection delays: exponential with jitter, capped; reset once a connection has been welcomed.

export class Backoff {
  constructor({ base = 500, factor = 2, max = 15000, jitter = 0.25, random = Math.random } = {}) {
    Object.assign(this, { base, factor, max, jitter, random });
    this.attempts = 0;
  }

  /** The delay before the next attempt, in ms; each call counts one attempt. */
  next() {
    const raw = Math.min(this.max, this.base * this.factor ** this.attempts);
    this.attempts += 1;
    const spread = raw * this.jitter;
    return Math.max(0, Math.round(raw - spread + this.random() * 2 * spread));
  }

  reset() {
    this.attempts = 0;
  }
}

/** Close codes after which reconnecting cannot help (docs/protocol.md). */
export const FATAL_CLOSE_CODES = new Map([
  [4400, 'The server refused the connection (bad hello).'],
  [4401, 'This link is not valid any more: the token is unknown or was revoked.'],
  [4403, 'This token does not open this canvas.'],
  [4404, 'This canvas does not exist.'],
]);

export function isFatalClose(code) {
  return FATAL_CLOSE_CODES.has(code);
}
