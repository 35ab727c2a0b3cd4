// From an operation's params JSON Schema (GET /api/operations) to a form model, and back to params.
// Pure: the DOM side (js/ui/form.js) draws what `formModel` describes.

export const INPUT_KEY = 'x-opendream-input';
export const WIDGET_KEY = 'x-opendream-widget';
export const LABELS_KEY = 'x-opendream-labels';
export const BLOB_KEY = 'x-opendream-blob';
export const CATEGORY_ORDER = ['generate', 'edit', 'mask', 'input'];
const HIDDEN_CATEGORIES = new Set(['internal']);

function resolve(schema, root) {
  let current = schema;
  for (let i = 0; current && current.$ref && i < 32; i++) {
    const path = current.$ref.replace(/^#\//, '').split('/');
    let target = root;
    for (const part of path) target = target?.[part];
    const { $ref, ...rest } = current;
    current = { ...(target || {}), ...rest };
  }
  return current || {};
}

/** `X | None` comes as anyOf [X, {type: null}] (markers on the outer schema): unwrap to X, nullable. */
function unwrapNullable(schema, root) {
  const options = schema.anyOf || schema.oneOf;
  if (!options) return { schema, nullable: false };
  const rest = options.filter((option) => option.type !== 'null');
  const nullable = rest.length < options.length;
  if (rest.length !== 1) return { schema, nullable };
  const { anyOf, oneOf, ...outer } = schema;
  return { schema: { ...resolve(rest[0], root), ...outer }, nullable };
}

export function humanize(name) {
  const text = String(name).replace(/_/g, ' ');
  return text.charAt(0).toUpperCase() + text.slice(1);
}

// pydantic's automatic title ("negative_prompt" -> "Negative Prompt"): shown in sentence case instead.
function pydanticTitle(key) {
  return String(key)
    .split('_')
    .map((word) => word.charAt(0).toUpperCase() + word.slice(1))
    .join(' ');
}

/** The form model of one schema node. */
export function fieldModel(key, rawSchema, root, required = false) {
  const { schema, nullable } = unwrapNullable(resolve(rawSchema, root), root);
  const base = {
    key,
    label: schema.title && schema.title !== pydanticTitle(key) ? schema.title : humanize(key),
    description: schema.description || '',
    required,
    nullable,
    default: schema.default,
    hasDefault: 'default' in schema,
  };
  if (schema[INPUT_KEY]) return { ...base, kind: 'layer', input: schema[INPUT_KEY] };
  if (schema[BLOB_KEY] || schema[WIDGET_KEY] === 'upload') return { ...base, kind: 'blob' };
  if (schema.enum) {
    // labels the server gives (a model's family and size); a nullable choice offers "Default" (the server's)
    const labels = schema[LABELS_KEY] || {};
    const options = schema.enum.map((value) => ({ value, label: labels[value] || String(value) }));
    return { ...base, kind: 'enum', options: nullable ? [{ value: null, label: 'Default' }, ...options] : options };
  }
  if (schema.const !== undefined) return { ...base, kind: 'const', default: schema.const, hasDefault: true };
  const type = Array.isArray(schema.type) ? schema.type.find((t) => t !== 'null') : schema.type;
  if (type === 'string') {
    if (schema[WIDGET_KEY] === 'textarea') return { ...base, kind: 'textarea', maxLength: schema.maxLength };
    if (schema[WIDGET_KEY] === 'colour' || schema[WIDGET_KEY] === 'color') return { ...base, kind: 'colour' };
    return { ...base, kind: 'text', maxLength: schema.maxLength, pattern: schema.pattern };
  }
  if (type === 'integer' || type === 'number') {
    const integer = type === 'integer';
    let min = schema.minimum;
    let max = schema.maximum;
    const step = schema.multipleOf || (integer ? 1 : undefined);
    if (min === undefined && schema.exclusiveMinimum !== undefined) min = schema.exclusiveMinimum;
    if (max === undefined && schema.exclusiveMaximum !== undefined) max = schema.exclusiveMaximum;
    const model = {
      ...base,
      kind: 'number',
      integer,
      min,
      max,
      exclusiveMin: schema.exclusiveMinimum !== undefined,
      exclusiveMax: schema.exclusiveMaximum !== undefined,
      multipleOf: schema.multipleOf,
    };
    const bounded = min !== undefined && max !== undefined;
    model.slider = bounded;
    model.step = step ?? (bounded ? niceStep(max - min) : 'any');
    return model;
  }
  if (type === 'boolean') return { ...base, kind: 'boolean' };
  if (type === 'array') {
    const items = resolve(schema.items || {}, root);
    const itemType = items.type;
    if (itemType === 'object' && items.properties && !hasTuples(items, root)) {
      return {
        ...base,
        kind: 'list',
        item: objectModel(items, root),
        minItems: schema.minItems ?? 0,
        maxItems: schema.maxItems ?? Infinity,
      };
    }
    return { ...base, kind: 'json' };
  }
  if (type === 'object' && schema.properties) return { ...base, kind: 'object', fields: objectModel(schema, root).fields };
  return { ...base, kind: 'json' };
}

function hasTuples(schema, root, depth = 0) {
  if (depth > 6 || !schema || typeof schema !== 'object') return false;
  if (schema.prefixItems) return true;
  const resolved = resolve(schema, root);
  if (resolved.prefixItems) return true;
  for (const value of Object.values(resolved.properties || {})) if (hasTuples(value, root, depth + 1)) return true;
  if (resolved.items && hasTuples(resolved.items, root, depth + 1)) return true;
  return false;
}

function niceStep(range) {
  if (range <= 1) return 0.01;
  if (range <= 10) return 0.1;
  return 1;
}

function objectModel(schema, root) {
  const required = new Set(schema.required || []);
  const fields = Object.entries(schema.properties || {}).map(([key, sub]) => fieldModel(key, sub, root, required.has(key)));
  return { kind: 'object', fields };
}

/** The form of an operation (an entry of GET /api/operations' `operations`). */
export function formModel(operation) {
  const schema = operation.params_schema || {};
  const model = objectModel(schema, schema);
  return { operation: operation.name, usesSeed: !!operation.uses_seed, fields: model.fields };
}

/** The value a fresh field starts with. */
export function defaultValue(field) {
  if (field.hasDefault) return clone(field.default);
  switch (field.kind) {
    case 'object':
      return Object.fromEntries(field.fields.map((f) => [f.key, defaultValue(f)]));
    case 'list':
      return [];
    case 'boolean':
      return false;
    case 'number':
      return field.nullable ? null : field.min ?? 0;
    case 'layer':
    case 'blob':
      return null;
    case 'json':
      return field.nullable ? null : [];
    case 'enum': // what the select shows first is what it holds
      return field.options.length ? clone(field.options[0].value) : null;
    default:
      return field.nullable ? null : '';
  }
}

export function defaultItem(listField) {
  return Object.fromEntries(listField.item.fields.map((f) => [f.key, defaultValue(f)]));
}

function clone(value) {
  return value === undefined ? undefined : JSON.parse(JSON.stringify(value));
}

/**
 * The starting params of a new layer: defaults, merged with `existing` (a layer's params, when editing), and
 * layer inputs filled from the context: `selected` (the picked layer) for the first image input, and for a
 * mask input the newest mask layer painted on that source.
 */
export function initialValues(model, { existing = null, selected = null, layers = [], maskOps = new Set(['mask']) } = {}) {
  const values = {};
  for (const field of model.fields) {
    values[field.key] = existing && field.key in existing ? clone(existing[field.key]) : defaultValue(field);
  }
  if (existing) return values;
  const imageField = model.fields.find((f) => f.kind === 'layer' && f.input === 'image');
  const source = selected && !maskOps.has(selected.operation) ? selected : null;
  if (imageField && !values[imageField.key]) {
    values[imageField.key] = source ? source.id : selected ? selected.params?.layer ?? selected.id : null;
  }
  const maskField = model.fields.find((f) => f.kind === 'layer' && f.input === 'mask');
  if (maskField && !values[maskField.key]) {
    const target = imageField ? values[imageField.key] : null;
    const masks = layers.filter((l) => maskOps.has(l.operation));
    const selectedMask = selected && maskOps.has(selected.operation) ? selected : null;
    const onSource = masks.filter((l) => (l.parents || []).includes(target));
    const pick = selectedMask || onSource[onSource.length - 1] || null;
    values[maskField.key] = pick ? pick.id : null;
  }
  const list = model.fields.find((f) => f.kind === 'list' && f.item.fields.some((g) => g.kind === 'layer'));
  if (list && Array.isArray(values[list.key]) && values[list.key].length === 0 && layers.length) {
    // composite-like: start with every visible layer, bottom first
    const layerKey = list.item.fields.find((g) => g.kind === 'layer').key;
    values[list.key] = layers.filter((l) => l.visible !== false && !maskOps.has(l.operation)).map((l) => ({ ...defaultItem(list), [layerKey]: l.id }));
  }
  return values;
}

/** A message for a bad value, or null. */
export function validateField(field, value) {
  const empty = value === null || value === undefined || value === '';
  if (empty) {
    if (field.nullable) return null;
    if (field.kind === 'layer') return field.required || !field.hasDefault ? 'Pick a layer' : null;
    if (field.kind === 'blob') return 'Upload an image';
    if (field.kind === 'number') return 'Enter a number';
    if (field.kind === 'text' && field.required) return 'Required';
    return null;
  }
  if (field.kind === 'number') {
    if (typeof value !== 'number' || Number.isNaN(value)) return 'Enter a number';
    if (field.integer && !Number.isInteger(value)) return 'Enter a whole number';
    if (field.min !== undefined && (field.exclusiveMin ? value <= field.min : value < field.min)) {
      return field.exclusiveMin ? `More than ${field.min}` : `At least ${field.min}`;
    }
    if (field.max !== undefined && (field.exclusiveMax ? value >= field.max : value > field.max)) {
      return field.exclusiveMax ? `Less than ${field.max}` : `At most ${field.max}`;
    }
    if (field.multipleOf && Math.abs(value / field.multipleOf - Math.round(value / field.multipleOf)) > 1e-9) {
      return `A multiple of ${field.multipleOf}`;
    }
  }
  if ((field.kind === 'text' || field.kind === 'textarea') && field.maxLength && [...value].length > field.maxLength) {
    // code points, as the server counts them (an emoji is one character there, two in value.length)
    const over = [...value].length - field.maxLength;
    return `At most ${field.maxLength.toLocaleString('en')} characters: ${over.toLocaleString('en')} too many`;
  }
  if (field.kind === 'text' && field.pattern && !new RegExp(field.pattern).test(value)) return 'Not in the expected format';
  if (field.kind === 'list') {
    if (value.length < field.minItems) return `Add at least ${field.minItems}`;
    if (value.length > field.maxItems) return `At most ${field.maxItems}`;
  }
  return null;
}

/** Every problem in `values`: [{path, message}] with dotted paths as the server names them. */
export function validate(model, values) {
  const problems = [];
  const walk = (fields, object, prefix) => {
    for (const field of fields) {
      const value = object?.[field.key];
      const path = prefix + field.key;
      const message = validateField(field, value);
      if (message) problems.push({ path, message });
      if (field.kind === 'list' && Array.isArray(value)) {
        value.forEach((item, index) => walk(field.item.fields, item, `${path}.${index}.`));
      } else if (field.kind === 'object' && value) {
        walk(field.fields, value, `${path}.`);
      }
    }
  };
  walk(model.fields, values, '');
  return problems;
}

/** Params to send: values as they are, minus optional blanks the server would refuse as ''. */
export function toParams(model, values) {
  const clean = (fields, object) => {
    const out = {};
    for (const field of fields) {
      let value = object?.[field.key];
      if (value === undefined) continue;
      if (value === '' && (field.nullable || field.kind === 'layer' || field.kind === 'blob')) value = null;
      if (value === null && !field.nullable && field.hasDefault) continue;
      if (field.kind === 'list' && Array.isArray(value)) value = value.map((item) => clean(field.item.fields, item));
      else if (field.kind === 'object' && value) value = clean(field.fields, value);
      out[field.key] = value;
    }
    return out;
  };
  return clean(model.fields, values);
}

/** Layer ids the params read, with their paths ("source", "layers.0.layer"). */
export function layerRefs(model, values) {
  const refs = [];
  const walk = (fields, object, prefix) => {
    for (const field of fields) {
      const value = object?.[field.key];
      if (field.kind === 'layer' && value) refs.push({ path: prefix + field.key, id: value, input: field.input });
      if (field.kind === 'list' && Array.isArray(value)) value.forEach((item, i) => walk(field.item.fields, item, `${prefix}${field.key}.${i}.`));
      if (field.kind === 'object' && value) walk(field.fields, value, `${prefix}${field.key}.`);
    }
  };
  walk(model.fields, values, '');
  return refs;
}

/**
 * The operation menu: categories in a sensible order, each with its operations; `internal` ones left out;
 * unavailable ones kept, marked with their reason (GET /api/operations' `unavailable`).
 */
export function groupOperations(operations, unavailable = []) {
  const reasons = new Map(unavailable.map((u) => [u.name, u.error]));
  const known = new Set(operations.map((o) => o.name));
  const groups = new Map();
  const add = (category, entry) => {
    if (!groups.has(category)) groups.set(category, []);
    groups.get(category).push(entry);
  };
  for (const op of operations) {
    if (HIDDEN_CATEGORIES.has(op.category)) continue;
    add(op.category || 'other', { ...op, unavailable: reasons.get(op.name) || null });
  }
  for (const [name, error] of reasons) {
    if (!known.has(name)) add('unavailable', { name, title: name, description: '', category: 'unavailable', unavailable: error });
  }
  const rank = (category) => {
    const index = CATEGORY_ORDER.indexOf(category);
    return index >= 0 ? index : category === 'unavailable' ? 99 : 50;
  };
  return [...groups.entries()]
    .sort((a, b) => rank(a[0]) - rank(b[0]) || a[0].localeCompare(b[0]))
    .map(([category, ops]) => ({ category, title: humanize(category), operations: ops }));
}

export function randomSeed(random = Math.random) {
  return Math.floor(random() * 2 ** 32);
}
