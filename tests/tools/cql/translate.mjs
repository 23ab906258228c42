#!/usr/bin/env node
// CQL -> ELM JSON with the cqframework translator (npm @cqframework/cql), FHIR 4.0.1
// model info from cql-exec-fhir, included libraries from the same directory
// (<Name>-<version>.cql). Translation errors are fatal.
// Usage: node translate.mjs <tools dir> <library dir> <in.cql> <out.elm.json>
import fs from "node:fs";
import path from "node:path";
import { pathToFileURL } from "node:url";

const [toolsDir, libDir, input, output] = process.argv.slice(2);
if (!output) {
  console.error("usage: translate.mjs <tools dir> <library dir> <in.cql> <out.elm.json>");
  process.exit(2);
}
const mod = (p) => import(pathToFileURL(path.join(toolsDir, "node_modules", p)).href);
const { SystemModelInfoProvider } = await mod("@cqframework/cql/cql.mjs");
const t2e = await mod("@cqframework/cql/cql-to-elm.mjs");
const modelInfo = fs.readFileSync(
  path.join(toolsDir, "node_modules/cql-exec-fhir/lib/modelInfos/fhir-modelinfo-4.0.1.xml"), "utf8");

// The translator logs its start-up on stdout; keep stdout clean.
console.log = () => {};
const models = new t2e.ModelManager();
models.modelInfoLoader.registerModelInfoProvider(new SystemModelInfoProvider());
models.modelInfoLoader.registerModelInfoProvider(t2e.createModelInfoProvider((id, system, version) =>
  id === "FHIR" && (version == null || version === "4.0.1") ? t2e.stringAsSource(modelInfo) : null));
const libraries = new t2e.LibraryManager(models);
libraries.librarySourceLoader.registerProvider(t2e.createLibrarySourceProvider((id, system, version) => {
  const f = path.join(libDir, `${id}-${version}.cql`);
  return fs.existsSync(f) ? t2e.stringAsSource(fs.readFileSync(f, "utf8")) : null;
}));
const translator = t2e.CqlTranslator.fromText(fs.readFileSync(input, "utf8"), libraries);
const errors = Array.from(translator.errors.asJsReadonlyArrayView());
if (errors.length > 0) {
  for (const e of errors) console.error(`${input}: ${e.message}`);
  process.exit(1);
}
fs.writeFileSync(output, JSON.stringify(JSON.parse(translator.toJson()), null, 2) + "\n");
