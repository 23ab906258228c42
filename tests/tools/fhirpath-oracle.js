#!/usr/bin/env node
// Evaluates the FHIRPath corpus with HL7's FHIRPath.js (R4 model) and writes the
// results as JSON: [{id, result: [...]} | {id, error: "..."}].
// Usage: node tests/tools/fhirpath-oracle.js <corpus.json> <examples dir> <out.json>
'use strict';
const fs = require('fs');
const path = require('path');

const root = path.resolve(__dirname, '..', '..');
const modDir = path.join(root, 'tests', '.tools', 'fhirpath-oracle', 'node_modules', 'fhirpath');
const fhirpath = require(modDir);
const r4 = require(path.join(modDir, 'fhir-context', 'r4'));

const [corpusPath, examplesDir, outPath] = process.argv.slice(2);
if (!corpusPath || !examplesDir || !outPath) {
  console.error('usage: fhirpath-oracle.js <corpus.json> <examples dir> <out.json>');
  process.exit(2);
}
const corpus = JSON.parse(fs.readFileSync(corpusPath, 'utf8'));
const cache = new Map();
function load(file) {
  if (!cache.has(file)) {
    cache.set(file, JSON.parse(fs.readFileSync(path.join(examplesDir, file), 'utf8')));
  }
  return cache.get(file);
}

// trace() writes to the console; keep stdout for our own messages only.
console.log = () => {};
console.warn = () => {};
const out = [];
for (const entry of corpus) {
  try {
    const resource = load(entry.resource);
    // FHIR defines %resource and %rootResource as the resource under evaluation
    const vars = Object.assign({ resource, rootResource: resource }, entry.vars || {});
    const result = fhirpath.evaluate(resource, entry.expression, vars, r4);
    out.push({ id: entry.id, result });
  } catch (err) {
    out.push({ id: entry.id, error: String(err && err.message || err).split('\n')[0] });
  }
}
// Long literals come back as BigInt, which JSON cannot carry.
const bigint = (_k, v) => (typeof v === 'bigint' ? Number(v) : v);
fs.writeFileSync(outPath, JSON.stringify(out, bigint, 1));
process.stderr.write(`fhirpath-oracle: ${out.length} expressions evaluated\n`);
