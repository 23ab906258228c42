// Regenerates data/r4-model.tsv from FHIRPath.js's R4 model (itself generated from
// the FHIR R4 StructureDefinitions), so both engines share one element-type table.
// Usage: node crates/fhirpath/tools/gen-r4-model.js <path to node_modules/fhirpath> > crates/fhirpath/data/r4-model.tsv
const path = require('path');
const m = require(path.resolve(process.argv[2], 'fhir-context', 'r4'));
const lines = [];
for (const [t, p] of Object.entries(m.type2Parent)) lines.push(`T\t${t}\t${p}`);
for (const [k, t] of Object.entries(m.path2Type)) lines.push(`P\t${k}\t${t}`);
for (const [k, ts] of Object.entries(m.choiceTypePaths)) lines.push(`C\t${k}\t${ts.join(',')}`);
for (const [k, t] of Object.entries(m.pathsDefinedElsewhere)) lines.push(`E\t${k}\t${t}`);
process.stdout.write(lines.join('\n') + '\n');
