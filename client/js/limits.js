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

// --- uploads -------------------------------------------------------------------------------------------
// What an upload may be, as GET /api/operations' `limits.upload` states it ({max_bytes, max_pixels, max_side,
// media_types}): a file over it is refused here, before a byte is sent, rather than after a long upload.

/** What an image upload is when the server does not say (an older server): its accepted formats. */
export const UPLOAD_TYPES = ['image/png', 'image/jpeg', 'image/webp'];
const TYPE_NAMES = { 'image/png': 'PNG', 'image/jpeg': 'JPEG', 'image/webp': 'WebP' };

/**
 * A byte count as people read it: "53.2 MB", "20 MB", "900 bytes". Binary units (1 KB = 1024 bytes), as the
 * server sets its limits, named as people know them; the server words its refusals the same way
 * (server/sizes.py `readable_size`).
 */
export function formatBytes(size) {
  if (!Number.isFinite(size) || size < 0) return '';
  for (const [unit, scale] of [['GB', 1024 ** 3], ['MB', 1024 ** 2], ['KB', 1024]]) {
    if (size >= scale) return `${(size / scale).toFixed(1).replace(/\.0$/, '')} ${unit}`;
  }
  return size === 1 ? '1 byte' : `${size} bytes`;
}

/** "PNG, JPEG or WebP" for the accepted media types. */
export function acceptedText(types = UPLOAD_TYPES) {
  const names = types.map((t) => TYPE_NAMES[t] || t.replace(/^image\//, '').toUpperCase());
  return names.length > 1 ? `${names.slice(0, -1).join(', ')} or ${names[names.length - 1]}` : names[0] || '';
}

/** What kind of file it is, in the plural (no article to get wrong): "GIF images", "PDF files". */
export function fileKind(file) {
  const type = String(file?.type || '').toLowerCase();
  const extension = (String(file?.name || '').match(/\.([a-z0-9]{1,8})$/i)?.[1] || '').toUpperCase();
  const name = TYPE_NAMES[type] || extension || type.split('/')[1]?.toUpperCase() || '';
  if (!name) return 'files of unknown type';
  return `${name} ${type.startsWith('image/') ? 'images' : 'files'}`;
}

/**
 * Why the server would refuse `file` ({name, type, size}) as an image upload, as a sentence; null when it
 * looks fine. `limits` is GET /api/operations' `limits` (its `upload`); without it only the type is checked.
 * The type is judged by the browser's MIME type (by the name's extension when the browser gives none).
 */
export function uploadProblem(file, limits = null) {
  const upload = limits?.upload || null;
  const types = upload?.media_types?.length ? upload.media_types : UPLOAD_TYPES;
  const label = file?.name ? `Cannot add “${file.name}”` : 'Cannot add this file';
  if (!acceptsType(file, types)) return `${label}: ${fileKind(file)} are not accepted — only ${acceptedText(types)} images.`;
  const max = upload?.max_bytes;
  if (Number.isFinite(max) && file.size > max) return `${label}: it is ${overLimitText(file.size, max)}.`;
  return null;
}

/** "53.2 MB — the limit is 50 MB"; to the byte when rounding would make the two read the same. */
export function overLimitText(size, limit) {
  const [sizeText, limitText] = [formatBytes(size), formatBytes(limit)];
  if (sizeText !== limitText) return `${sizeText} — the limit is ${limitText}`;
  return `${size.toLocaleString('en')} bytes — the limit is ${limitText} (${limit.toLocaleString('en')} bytes)`;
}

const EXTENSION_TYPES = { png: 'image/png', jpg: 'image/jpeg', jpeg: 'image/jpeg', webp: 'image/webp' };

function acceptsType(file, types) {
  const type = String(file?.type || '').toLowerCase();
  if (type) return types.includes(type);
  const extension = String(file?.name || '').match(/\.([a-z0-9]+)$/i)?.[1]?.toLowerCase();
  return types.includes(EXTENSION_TYPES[extension]); // no type from the browser: go by the name
}
