// The size and the cost of a render, as the server decides them before it starts (GET /api/operations'
// `limits`): the "resize to fit" rule for the operations that render a source picture with the model, the
// work estimate (output pixels × denoising steps) and which of the server's limits a render would go over.
// DOM-free, a mirror of the server's rule (engine/ops/img2img.py `effective_steps`).

/** The operations that read a source picture and render it with the model (they take `resize`). */
export const RESIZE_OPERATIONS = new Set(['img2img', 'inpaint', 'instruct_pix2pix', 'controlnet_canny']);
export const RESIZE_LABELS = { fit: 'Resize to fit the working size', none: 'Keep the source’s size' };

/**
 * The size a render from a w × h source has: with `resize` "fit" and more pixels than `workingPixels`, scaled
 * down (aspect kept) to the working size; otherwise the source's own size.
 */
export function effectiveSize(width, height, resize = 'fit', workingPixels = Infinity) {
  if (resize === 'fit' && Number.isFinite(workingPixels) && workingPixels > 0 && width * height > workingPixels) {
    const s = Math.sqrt(workingPixels / (width * height));
    return { width: Math.max(8, Math.floor(width * s)), height: Math.max(8, Math.floor(height * s)), resized: true };
  }
  return { width, height, resized: false };
}

/** The steps an img2img-like pipeline is asked for: diffusers runs floor(steps × strength) and refuses zero. */
export function effectiveSteps(steps, strength) {
  return Math.floor(steps * strength) < 1 ? Math.max(steps, Math.ceil(1 / strength)) : steps;
}

/** The denoising steps a render really runs (all of them without a strength). */
export function denoisingSteps(steps, strength = null) {
  if (!Number.isFinite(steps) || steps < 1) return 0;
  if (strength === null || strength === undefined || !Number.isFinite(strength) || strength <= 0) return Math.floor(steps);
  return Math.max(1, Math.floor(effectiveSteps(steps, strength) * Math.min(1, strength)));
}

/** The key of the picture an operation renders from (its first image input), or null. */
export function sourceKey(operation) {
  for (const [key, kind] of Object.entries(operation?.inputs || {})) if (kind === 'image') return key;
  return null;
}

/** Whether `operation` renders a source picture with the model (and so is resized to fit). */
export function isResizable(operation) {
  if (!operation) return false;
  if (operation.params_schema?.properties?.resize) return true;
  return RESIZE_OPERATIONS.has(operation.name) && !!sourceKey(operation);
}

/**
 * What a render of `operation` with `params` would be: {kind: "generate" | "source", width, height, steps,
 * pixels, work, resized, source: {width, height} | null, over: [{limit, value, max}]}, or null for an operation
 * whose cost this client does not estimate. `sourceSize` is the size of the source picture (null when unknown);
 * `limits` GET /api/operations' `limits` (or null from a server without them: no resizing, no limits).
 */
export function estimateRender(operation, params, { sourceSize = null, limits = null } = {}) {
  if (!operation || !operation.needs_model || !params) return null;
  const strength = operation.params_schema?.properties?.strength ? params.strength : null;
  const steps = denoisingSteps(params.steps, strength);
  if (!steps) return null;
  let estimate;
  if (isResizable(operation)) {
    if (!sourceSize || !(sourceSize.width > 0) || !(sourceSize.height > 0)) return { kind: 'source', unknown: true, steps, over: [] };
    const resize = params.resize ?? operation.params_schema?.properties?.resize?.default ?? 'fit';
    const size = effectiveSize(sourceSize.width, sourceSize.height, resize, limits?.working_pixels ?? Infinity);
    estimate = { kind: 'source', resize, ...size, source: { width: sourceSize.width, height: sourceSize.height } };
  } else if (Number.isFinite(params.width) && Number.isFinite(params.height)) {
    estimate = { kind: 'generate', width: params.width, height: params.height, resized: false, source: null };
  } else return null;
  estimate.steps = steps;
  estimate.requestedSteps = Math.floor(params.steps);
  estimate.pixels = estimate.width * estimate.height;
  estimate.work = estimate.pixels * steps;
  estimate.over = [];
  if (limits?.max_pixels && estimate.pixels > limits.max_pixels) estimate.over.push({ limit: 'max_pixels', value: estimate.pixels, max: limits.max_pixels });
  if (limits?.max_work && estimate.work > limits.max_work) estimate.over.push({ limit: 'max_work', value: estimate.work, max: limits.max_work });
  estimate.overWorking = !!(limits?.working_pixels && estimate.pixels > limits.working_pixels);
  return estimate;
}

export function megapixels(pixels) {
  const mp = pixels / 1e6;
  return `${mp >= 10 ? mp.toFixed(0) : mp >= 1 ? mp.toFixed(1) : mp.toFixed(2)} MP`;
}

function workText(work) {
  return `${megapixels(work).replace(' MP', '')} MP·steps`;
}

/** The estimate as the form shows it: {text, warnings: [sentence naming the limit]}. */
export function describeEstimate(estimate) {
  if (!estimate) return null;
  if (estimate.unknown) return { text: `The size is known once the source has a picture · ${estimate.steps} steps`, warnings: [] };
  const size = `${estimate.width}×${estimate.height}`;
  const plural = estimate.requestedSteps === 1 && estimate.steps === 1 ? 'step' : 'steps';
  const steps = estimate.requestedSteps && estimate.requestedSteps !== estimate.steps ? `${estimate.steps} of ${estimate.requestedSteps} ${plural}` : `${estimate.steps} ${plural}`;
  let text;
  if (estimate.kind === 'generate') text = `${size} · ${steps}`;
  else if (estimate.resized) text = `Renders at ${size} · ${steps} — source ${estimate.source.width}×${estimate.source.height} resized to fit`;
  else if (estimate.overWorking) text = `Renders at ${size} · ${steps} — the source’s full size, larger than the model’s working size`;
  else text = `Renders at ${size} · ${steps} — the source’s size`;
  const warnings = estimate.over.map(({ limit, value, max }) =>
    limit === 'max_pixels'
      ? `Too large: ${megapixels(value)} is over this server’s limit of ${megapixels(max)} (max_pixels). The server will refuse it — make it smaller${estimate.kind === 'source' ? ' or resize it to fit' : ''}.`
      : `Too much work: ${megapixels(estimate.pixels)} × ${estimate.steps} steps = ${workText(value)}, over this server’s limit of ${workText(max)} (max_work). The server will refuse it — use fewer steps or a smaller size.`,
  );
  return { text, warnings };
}
