// The DOM side (js/ui/) split by concern: every module links (its imports name real exports), says in a header
// comment what it owns, stays under ~400 lines, and the modules import one another without a cycle.
import test from 'node:test';
import assert from 'node:assert/strict';
import { readdirSync, readFileSync } from 'node:fs';
import { dirname, join, resolve } from 'node:path';
import { fileURLToPath, pathToFileURL } from 'node:url';

const UI = join(dirname(fileURLToPath(import.meta.url)), '..', 'js', 'ui');
const MODULES = readdirSync(UI).filter((name) => name.endsWith('.js')).sort();
const MAX_LINES = 400;

test('every ui module links in Node (no missing export, no typo in a path)', async () => {
  for (const name of MODULES) await import(pathToFileURL(join(UI, name)).href);
});

test('every ui module opens with what it owns, and stays under ~400 lines', () => {
  for (const name of MODULES) {
    const text = readFileSync(join(UI, name), 'utf8');
    assert.match(text, /^\/\/ \S/, `${name}: a header comment saying what it owns`);
    const lines = text.split('\n').length - (text.endsWith('\n') ? 1 : 0);
    assert.ok(lines <= MAX_LINES, `${name} has ${lines} lines (at most ${MAX_LINES}): split it by concern`);
  }
});

test('the ui modules import one another without a cycle', () => {
  const imports = new Map();
  for (const name of MODULES) {
    const text = readFileSync(join(UI, name), 'utf8');
    const local = [...text.matchAll(/^(?:import|export)\s[^;]*?from\s+'\.\/([\w.-]+\.js)'/gms)].map((m) => m[1]);
    imports.set(name, local);
  }
  const done = new Set();
  const visit = (name, path) => {
    assert.ok(!path.includes(name), `an import cycle: ${[...path, name].join(' -> ')}`);
    if (done.has(name)) return;
    for (const next of imports.get(name) || []) {
      assert.ok(imports.has(next), `${name} imports ./${next}, which is not in js/ui/ (${resolve(UI, next)})`);
      visit(next, [...path, name]);
    }
    done.add(name);
  };
  for (const name of MODULES) visit(name, []);
});
