#!/usr/bin/env node
// Runs ELM libraries with the reference engine (cql-execution + cql-exec-fhir, FHIR
// 4.0.1) over patient Bundles and writes every expression's result as JSON in the shape
// crates/cql's oracle test compares with (see `cqlToJson`).
// Usage: node oracle.cjs <job.json> <out.json>
//   job: {"tools": dir, "libraries": {Name: elm path}, "includes": {Name: elm path | null},
//         "valuesets": {url: [{"system", "code"}]}, "cases": {case name: bundle path}}
//   An include mapped to null is an empty stub library (the IG's FHIRHelpers include).
// Output: {case: {library: {expression: value}}}, or {case: {"error": message}}.
'use strict';
const fs = require('fs');
const path = require('path');

const [jobPath, outPath] = process.argv.slice(2);
if (!jobPath || !outPath) {
  console.error('usage: oracle.cjs <job.json> <out.json>');
  process.exit(2);
}
const job = JSON.parse(fs.readFileSync(jobPath, 'utf8'));
const req = (m) => require(path.join(job.tools, 'node_modules', m));
const cql = req('cql-execution');
const cqlfhir = req('cql-exec-fhir');

const readJson = (p) => JSON.parse(fs.readFileSync(p, 'utf8'));
const stub = (name, version) => ({
  library: {
    identifier: { id: name, version },
    schemaIdentifier: { id: 'urn:hl7-org:elm', version: 'r1' },
    usings: { def: [] },
    statements: { def: [] },
  },
});

function includesOf(elm) {
  const defs = (elm.library.includes && elm.library.includes.def) || [];
  return defs.map((d) => ({ name: d.path, version: d.version }));
}

// One canonical JSON form for CQL values, shared with the Rust side.
function cqlToJson(v) {
  if (v == null) return null;
  if (Array.isArray(v)) return v.map(cqlToJson);
  if (typeof v === 'boolean' || typeof v === 'string') return v;
  if (typeof v === 'number') return v;
  if (v instanceof cql.Code) {
    return { '@type': 'Code', code: v.code ?? null, system: v.system ?? null, version: v.version ?? null, display: v.display ?? null };
  }
  if (v instanceof cql.Concept) {
    return { '@type': 'Concept', codes: (v.codes || []).map(cqlToJson), display: v.display ?? null };
  }
  if (v.isDateTime || v.isDate) {
    return { '@type': v.isDate ? 'Date' : 'DateTime', value: v.toString() };
  }
  if (typeof v.getTypeInfo === 'function') {
    const ti = v.getTypeInfo();
    const type = ti ? String(ti.name).replace(/^FHIR\./, '') : 'unknown';
    const json = v._json;
    if (json && typeof json === 'object' && json.resourceType) {
      return { '@type': `FHIR.${json.resourceType}`, id: json.id ?? null };
    }
    return { '@type': `FHIR.${type}`, json: json ?? null };
  }
  if (v.isInterval) {
    return { '@type': 'Interval', low: cqlToJson(v.low), high: cqlToJson(v.high), lowClosed: v.lowClosed, highClosed: v.highClosed };
  }
  if (v.isQuantity) return { '@type': 'Quantity', value: v.value, unit: v.unit ?? null };
  if (typeof v === 'object') {
    const out = { '@type': 'Tuple' };
    for (const k of Object.keys(v).sort()) out[k] = cqlToJson(v[k]);
    return out;
  }
  return String(v);
}

async function main() {
  const libraries = {};
  for (const [name, p] of Object.entries(job.libraries)) libraries[name] = readJson(p);
  const codeService = new cql.CodeService(
    Object.fromEntries(Object.entries(job.valuesets || {}).map(([url, codes]) => [
      url,
      { '': codes.map((c) => new cql.Code(c.code, c.system, c.version)) },
    ])),
  );
  const out = {};
  // Loading the FHIR model info is the runner's main cost: once, reset per patient.
  const source = cqlfhir.PatientSource.FHIRv401();
  for (const [caseName, bundlePath] of Object.entries(job.cases)) {
    const bundle = readJson(bundlePath);
    out[caseName] = {};
    for (const [name, elm] of Object.entries(libraries)) {
      try {
        const deps = {};
        for (const inc of includesOf(elm)) {
          const p = (job.includes || {})[inc.name];
          deps[inc.name] = p ? readJson(p) : stub(inc.name, inc.version);
        }
        const library = new cql.Library(elm, new cql.Repository(deps));
        const executor = new cql.Executor(library, codeService);
        source.reset();
        source.loadBundles([bundle]);
        const results = await executor.exec(source);
        const ids = Object.keys(results.patientResults);
        const values = ids.length === 1 ? results.patientResults[ids[0]] : {};
        const row = {};
        for (const key of Object.keys(values).sort()) row[key] = cqlToJson(values[key]);
        out[caseName][name] = row;
      } catch (err) {
        out[caseName][name] = { error: String((err && err.message) || err).split('\n')[0] };
      }
    }
  }
  fs.writeFileSync(outPath, JSON.stringify(out, null, 1) + '\n');
}
main().catch((err) => {
  console.error(err);
  process.exit(1);
});
