// Small builders for the unit tests.

let seqCounter = 0;

export function ev(seq, type, payload, { actor = 'u1', commandId = null } = {}) {
  seqCounter = seq;
  return { canvas_id: 'c1', seq, event_id: `e${seq}`, type, schema_version: 1, payload, actor, command_id: commandId ?? `cmd${seq}`, timestamp: 1700000000 + seq };
}

export function added(seq, id, { parents = [], operation = 'txt2img', params = {}, name = id, actor = 'u1', commandId } = {}) {
  return ev(seq, 'layer.added', { layer_id: id, operation, params, seed: 1, parents, name }, { actor, commandId });
}

export function rendered(seq, id, revision = 1, sha = 'a'.repeat(64)) {
  return ev(seq, 'layer.rendered', { layer_id: id, revision, output: sha, width: 64, height: 64, fingerprint: {}, duration_ms: 1, cache_key: 'k', cached: false, extra_outputs: [] }, { actor: 'engine', commandId: null });
}
