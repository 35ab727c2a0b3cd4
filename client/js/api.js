// HTTP: relative URLs only (the client works from whatever host serves it), Bearer tokens, and the
// server's error shape {"error": {"code", "message", "field"}} turned into ApiError.

export class ApiError extends Error {
  constructor(status, body) {
    const error = body?.error || {};
    super(error.message || `HTTP ${status}`);
    this.status = status;
    this.code = error.code || `http_${status}`;
    this.field = error.field ?? null;
  }
}

export class Api {
  constructor({ token = null, user = null, base = '' } = {}) {
    this.token = token;
    this.user = user;
    this.base = base;
  }

  /** The server's model library (GET /api/models): models, LoRAs, companions; `placeholder` for builtin:tiny. */
  models() {
    return this.request('GET', '/api/models');
  }

  headers(extra = {}) {
    const headers = { ...extra };
    if (this.token) headers.Authorization = `Bearer ${this.token}`;
    if (this.user) headers['X-Opendream-User'] = this.user;
    return headers;
  }

  async request(method, path, { json, body, contentType, raw = false, token } = {}) {
    const headers = this.headers();
    if (token) headers.Authorization = `Bearer ${token}`;
    let payload = body;
    if (json !== undefined) {
      payload = JSON.stringify(json);
      headers['Content-Type'] = 'application/json';
    } else if (contentType) {
      headers['Content-Type'] = contentType;
    }
    let response;
    try {
      response = await fetch(this.base + path, { method, headers, body: payload });
    } catch (error) {
      throw new ApiError(0, { error: { code: 'network', message: 'The server cannot be reached.' } });
    }
    if (!response.ok) {
      let parsed = null;
      try {
        parsed = await response.json();
      } catch {
        /* not JSON */
      }
      if (response.status === 404 && !parsed?.error?.code?.endsWith('not_found')) {
        parsed = parsed || { error: { code: 'not_found', message: `${method} ${path}: not found` } };
      }
      throw new ApiError(response.status, parsed);
    }
    if (raw) return response;
    if (response.status === 204) return null;
    return response.json();
  }

  get(path, options) {
    return this.request('GET', path, options);
  }

  post(path, json, options = {}) {
    return this.request('POST', path, { json, ...options });
  }

  // --- routes ---------------------------------------------------------------------------------------

  session() {
    return this.get('/api/session', { token: null });
  }

  operations() {
    return this.get('/api/operations');
  }

  canvases() {
    return this.get('/api/canvases');
  }

  canvas(id) {
    return this.get(`/api/canvases/${enc(id)}`);
  }

  createCanvas(name, commandId) {
    return this.post('/api/canvases', { name, command_id: commandId });
  }

  state(id, version = null) {
    return this.get(`/api/canvases/${enc(id)}/state${version ? `?version=${version}` : ''}`);
  }

  events(id, after = 0, limit = 10000) {
    return this.get(`/api/canvases/${enc(id)}/events?after=${after}&limit=${limit}`);
  }

  /** The image of every layer at a version, as recorded or cached: {images: {id: {sha256, source} |
   * {sha256: null, missing}}, missing: count}. Nothing is rendered for it. */
  images(id, version) {
    return this.get(`/api/canvases/${enc(id)}/images?version=${version}`);
  }

  /** Render what a past version is missing (editors only), then answer as `images`. */
  renderImages(id, version) {
    return this.post(`/api/canvases/${enc(id)}/images?version=${version}`, {});
  }

  /** The canvas's render queue: {canvas_id, queue: [items], blocked, stats}. */
  renders(id) {
    return this.get(`/api/canvases/${enc(id)}/renders`);
  }

  command(id, command, commandId) {
    return this.post(`/api/canvases/${enc(id)}/commands`, { command_id: commandId, command });
  }

  /** Upload an image; for `canvasId` (default: the open canvas) so that the canvas may show it at once. */
  uploadBlob(file, canvasId = blobScope?.canvasId) {
    const path = canvasId ? `/api/blobs?canvas=${enc(canvasId)}` : '/api/blobs';
    return this.request('POST', path, { body: file, contentType: file.type || 'application/octet-stream' });
  }

  shares(id) {
    return this.get(`/api/canvases/${enc(id)}/shares`);
  }

  createShare(id, role) {
    return this.post(`/api/canvases/${enc(id)}/shares`, { role });
  }

  revokeShare(id, shareId) {
    return this.request('DELETE', `/api/canvases/${enc(id)}/shares/${enc(shareId)}`);
  }

  // Time travel and workflows.
  fork(id, version) {
    return this.post(`/api/canvases/${enc(id)}/fork`, { version });
  }

  restore(id, version, commandId) {
    return this.post(`/api/canvases/${enc(id)}/restore`, { version, command_id: commandId });
  }

  workflow(id, version = null) {
    return this.get(`/api/canvases/${enc(id)}/workflow${version ? `?version=${version}` : ''}`);
  }

  importWorkflow(file) {
    const png = file.type === 'image/png' || /\.png$/i.test(file.name || '');
    return this.request('POST', '/api/workflows', { body: file, contentType: png ? 'image/png' : 'application/json' });
  }

  async download(path) {
    const response = await this.request('GET', path, { raw: true });
    return response.blob();
  }

  layerPngPath(id, layerId) {
    return `/api/canvases/${enc(id)}/layers/${enc(layerId)}/image.png`;
  }

  compositePngPath(id, version = null) {
    return `/api/canvases/${enc(id)}/composite.png${version ? `?version=${version}` : ''}`;
  }
}

// Images are served under the access of a canvas that names them: /api/canvases/{id}/blobs/{sha}. An <img>
// sends no Authorization header, so the token rides in the query (the server never logs query strings, and
// sends Referrer-Policy: no-referrer). The editor sets the open canvas as the scope.
let blobScope = null;

export function setBlobScope(canvasId, token) {
  blobScope = canvasId ? { canvasId, token } : null;
}

export function blobUrl(sha256, scope = blobScope) {
  if (!scope?.canvasId) return `/api/blobs/${sha256}`;
  const query = scope.token ? `?token=${enc(scope.token)}` : '';
  return `/api/canvases/${enc(scope.canvasId)}/blobs/${sha256}${query}`;
}

function enc(value) {
  return encodeURIComponent(value);
}
