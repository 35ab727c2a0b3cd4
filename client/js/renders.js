// What the render queue says, as the editor words it: a layer row's status, the pill over the canvas, the
// notice when the worker cannot schedule this canvas at all. DOM-free; `now` is Date.now() (for countdowns).

const STAGE_TEXT = { prepare: 'Preparing…', decode: 'Decoding…' };

/** A layer.failed that was a cancellation ("cancelled by …", "render cancelled"), not an error. */
export function isCancelled(layer) {
  if (!layer || layer.status !== 'failed') return false;
  const reason = String(layer.error || '').trim().toLowerCase();
  return reason.startsWith('cancelled') || reason === 'render cancelled';
}

/**
 * What a cancellation says when asked (a tooltip): "Cancelled by u-ada" for a queued render its user stopped,
 * "Cancelled" for a running one (the server records "render cancelled", without who). '' when not cancelled.
 */
export function cancelledText(layer) {
  if (!isCancelled(layer)) return '';
  const reason = String(layer.error || '').trim();
  const by = reason.match(/^cancelled\s+(by\s+.+)$/i);
  return by ? `Cancelled ${by[1]}` : 'Cancelled';
}

/** Seconds left of an estimate received at `receivedAt` (ms), never below zero; null when there is none. */
export function secondsLeft(seconds, receivedAt, now) {
  if (seconds === null || seconds === undefined || !Number.isFinite(seconds)) return null;
  const elapsed = Number.isFinite(receivedAt) && Number.isFinite(now) ? Math.max(0, (now - receivedAt) / 1000) : 0;
  return Math.max(0, seconds - elapsed);
}

export function formatDuration(seconds) {
  if (seconds === null || seconds === undefined || !Number.isFinite(seconds)) return '';
  if (seconds < 1) return 'under a second';
  if (seconds < 90) return `${Math.round(seconds)} s`;
  if (seconds < 5400) return `${Math.round(seconds / 60)} min`;
  return `${Math.round(seconds / 360) / 10} h`;
}

/**
 * A layer row's status: {text, kind}. kind: "" (rendered), "rendering", "waiting", "pending", "stale",
 * "failed", "cancelled", "missing" (a past version's layer that never had a picture). `past`: a past version
 * is shown (nothing renders there).
 */
export function layerStatus(layer, render = null, { past = false } = {}) {
  if (layer.status === 'failed') return isCancelled(layer) ? { text: 'Cancelled', kind: 'cancelled' } : { text: `Failed: ${layer.error || 'unknown error'}`, kind: 'failed' };
  if (past) {
    if (!layer.output) return { text: 'Not rendered at this version', kind: 'missing' };
    return { text: '', kind: '' };
  }
  if (render?.rendering) {
    const stage = render.stage || 'denoise';
    if (STAGE_TEXT[stage]) return { text: STAGE_TEXT[stage], kind: 'rendering' };
    return { text: render.total ? `Rendering ${render.step}/${render.total}` : 'Rendering…', kind: 'rendering' };
  }
  if (render && layer.status !== 'rendered') {
    if (render.waitReason) return { text: `Waiting: ${render.waitReason}`, kind: 'waiting' };
    if (render.position !== undefined && render.position !== null) return { text: render.position === 0 ? 'Next to render' : `Queued (#${render.position + 1})`, kind: 'waiting' };
  }
  if (layer.status === 'pending') return { text: 'Waiting to render', kind: 'pending' };
  if (layer.status === 'stale') return { text: 'Out of date', kind: 'stale' };
  return { text: '', kind: '' };
}

/** The fraction of a render done (for a progress bar): denoising steps, the decode nearly done. */
export function renderFraction(render) {
  if (!render?.rendering) return 0;
  if (render.stage === 'decode') return render.total ? Math.max(0.95, render.step / render.total) : 0.95;
  if (render.stage === 'prepare') return 0.02;
  return render.total ? render.step / render.total : 0.05;
}

/**
 * The pill over the canvas: null when nothing waits; else {title, detail, fraction, stuck?: true when all of it
 * waits on a failed or cancelled input}. `layers` the state's
 * layers, `busy` the layers pending or stale (stack order), `renders` the session's render map.
 */
export function pillStatus(layers, busy, renders, now = Date.now()) {
  if (!busy.length) return null;
  const running = [...renders.entries()].find(([id, r]) => r.rendering && layers[id]);
  if (running) {
    const [id, r] = running;
    const parts = [];
    if (r.stage === 'prepare') parts.push('preparing');
    else if (r.stage === 'decode') parts.push('decoding');
    else if (r.total) parts.push(`${r.step}/${r.total}`);
    const left = secondsLeft(r.etaS, r.receivedAt, now);
    if (left !== null) parts.push(left < 1 ? 'almost done' : `about ${formatDuration(left)} left`);
    if (busy.length > 1) parts.push(`${busy.length - 1} more`);
    return { title: `Rendering “${layers[id].name || ''}”`, detail: parts.join(' · '), fraction: renderFraction(r) };
  }
  // every one waits on an input that failed or was cancelled: nothing will happen until someone acts, so
  // no spinner, and the way on
  const held = busy.map((l) => heldBy(l, layers));
  if (held.every(Boolean)) {
    const input = held[0];
    const who = busy.length === 1 ? `“${busy[0].name || ''}” waits` : `${busy.length} layers wait`;
    const how = isCancelled(input) ? 'it was cancelled: render it again to go on' : 'it failed: retry it to go on';
    return { title: `${who} on “${input.name || ''}”`, detail: how, fraction: 0, stuck: true };
  }
  // nothing of this canvas renders: say why the first one waits
  const waiting = busy.map((l) => [l, renders.get(l.id)]).filter(([, r]) => r).sort((a, b) => (a[1].position ?? 0) - (b[1].position ?? 0));
  const title = `${busy.length} waiting to render`;
  const first = waiting[0]?.[1];
  if (first?.waitReason) return { title, detail: first.waitReason, fraction: 0 };
  const left = secondsLeft(first?.etaS, first?.receivedAt, now);
  return { title, detail: left !== null && left >= 1 ? `next done in about ${formatDuration(left)}` : '', fraction: 0 };
}

/** The input of `layer` that failed or was cancelled (so `layer` cannot render until it does), or null. */
function heldBy(layer, layers) {
  for (const id of layer.parents || []) if (layers[id]?.status === 'failed') return layers[id];
  return null;
}

/** The notice when the worker could not schedule this canvas ({reason, retryInS, receivedAt}). */
export function blockedText(blocked, now = Date.now()) {
  if (!blocked) return '';
  const left = secondsLeft(blocked.retryInS, blocked.receivedAt, now);
  const retry = left === null ? '' : left < 1 ? ' — retrying now…' : ` — retrying in ${Math.ceil(left)} s`;
  return `Rendering is paused for this canvas: ${blocked.reason || 'the render worker cannot schedule it'}${retry}`;
}
