#!/usr/bin/env python3
"""Generates the published CQL artefacts from cql/*.cql, so they cannot drift:

  cql/elm/<Name>-<version>.elm.json   ELM JSON from the CQL-to-ELM translator (npm
                                      @cqframework/cql, installed by
                                      tests/tools/setup-cql-oracle.sh)
  cql/Library-<Name>.json             FHIR Library: CQL and ELM as base64 attachments
  tests/cql/libraries/elm/<Name>-<version>.elm.json
                                      ELM of test-only libraries (operator coverage)
  fhir-profiles/plandefinitions/PlanDefinition-<id>.json
                                      one PlanDefinition per use case (USE_CASES), each
                                      action citing its Library canonical and the
                                      Boolean expression that decides it

Canonical base: http://ddcc-mediator.org/fhir (the project's own, as for its maps);
our libraries are not the IG's (http://smart.who.int/ddcc/Library/...), which share
two names but differ in content.

FHIRHelpers-4.0.1.cql is our restatement of the FHIRHelpers conversions the rules use,
for the translator and the reference engine; it is translated but not published (the
Libraries depend on the standard http://hl7.org/fhir/Library/FHIRHelpers|4.0.1, whose
conversions crates/cql implements natively).

usage: tools/gen-cql-libraries.py [--check]
  --check  regenerate in memory and fail if any file differs. Without the translator
           installed the ELM is taken as committed (a note says so), unless
           DDCC_REQUIRE_ORACLES is set, which makes a missing translator a failure.
"""
import base64
import json
import os
import re
import subprocess
import sys
import tempfile
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
CQL = ROOT / "cql"
ELM = CQL / "elm"
PLANS = ROOT / "fhir-profiles" / "plandefinitions"
# Test-only libraries (not published): translated the same way, for the oracle test.
TEST_LIBS = ROOT / "tests" / "cql" / "libraries"
TOOLS = ROOT / "tests" / ".tools" / "cql-oracle"
TRANSLATE = ROOT / "tests" / "tools" / "cql" / "translate.mjs"
BASE = "http://ddcc-mediator.org/fhir"
FHIRHELPERS = "http://hl7.org/fhir/Library/FHIRHelpers|4.0.1"
NOT_PUBLISHED = {"FHIRHelpers"}

# id -> (title, purpose, [(library name, expression)])
USE_CASES = {
    "travel-full-series": (
        "Travel: full vaccination series",
        "Border and travel checks: the holder completed a COVID-19 vaccination series "
        "(dose n of n, a booster counting as complete).",
        [("DDCCPass", "Completed Immunization")],
    ),
    "venue-any-dose": (
        "Venue entry: any dose recorded",
        "Venues and events: at least one dated, administered dose of a COVID-19 vaccine "
        "the WHO lists.",
        [("AnyDosePass", "Completed Immunization")],
    ),
    "product-series": (
        "Product-specific series",
        "Jurisdictions that accept a series by product: Jcovden after one dose, "
        "Comirnaty after two.",
        [("ProductSeriesPass", "Completed Immunization")],
    ),
}


def dump(resource) -> str:
    return json.dumps(resource, indent=2, ensure_ascii=False) + "\n"


def b64(text: str) -> str:
    return base64.b64encode(text.encode("utf-8")).decode("ascii")


def sources(directory=CQL):
    """(name, version, path) of every <Name>-<version>.cql in `directory`."""
    out = []
    for p in sorted(directory.glob("*.cql")):
        m = re.fullmatch(r"(.+)-(\d+\.\d+\.\d+)\.cql", p.name)
        if not m:
            sys.exit(f"{p}: expected <Name>-<version>.cql")
        out.append((m.group(1), m.group(2), p))
    return out


def translate(path: Path) -> str:
    with tempfile.TemporaryDirectory() as tmp:
        out = Path(tmp) / "out.elm.json"
        r = subprocess.run(
            ["node", str(TRANSLATE), str(TOOLS), str(CQL), str(path), str(out)],
            capture_output=True, text=True)
        if r.returncode != 0:
            sys.exit(f"translating {path.name} failed:\n{r.stderr}")
        return out.read_text(encoding="utf-8")


def header_comment(cql: str) -> str:
    lines = []
    for line in cql.splitlines():
        if line.startswith("//"):
            lines.append(line[2:].strip())
        elif lines:
            break
    return " ".join(lines)


def library(name, version, cql, elm_text) -> dict:
    elm = json.loads(elm_text)["library"]
    related = [{"type": "depends-on", "resource": FHIRHELPERS}]
    for vs in (elm.get("valueSets") or {}).get("def", []):
        related.append({"type": "depends-on", "resource": vs["id"]})
    for cs in (elm.get("codeSystems") or {}).get("def", []):
        related.append({"type": "depends-on", "resource": cs["id"]})
    return {
        "resourceType": "Library",
        "id": name,
        "url": f"{BASE}/Library/{name}",
        "version": version,
        "name": name,
        "title": name,
        "status": "active",
        "experimental": False,
        "type": {"coding": [{
            "system": "http://terminology.hl7.org/CodeSystem/library-type",
            "code": "logic-library"}]},
        "description": header_comment(cql),
        "relatedArtifact": related,
        "content": [
            {"contentType": "text/cql", "data": b64(cql)},
            {"contentType": "application/elm+json", "data": b64(elm_text)},
        ],
    }


def plan(pid, title, purpose, rules, versions) -> dict:
    libs = []
    actions = []
    for lib_name, expression in rules:
        canonical = f"{BASE}/Library/{lib_name}|{versions[lib_name]}"
        libs.append(canonical)
        actions.append({
            "title": f"{lib_name}: {expression}",
            "condition": [{
                "kind": "applicability",
                "expression": {
                    "language": "text/cql-identifier",
                    "expression": expression,
                    "reference": canonical,
                },
            }],
        })
    return {
        "resourceType": "PlanDefinition",
        "id": pid,
        "url": f"{BASE}/PlanDefinition/{pid}",
        "version": "1.0.0",
        "name": "".join(w.capitalize() for w in pid.split("-")),
        "title": title,
        "type": {"coding": [{
            "system": "http://terminology.hl7.org/CodeSystem/plan-definition-type",
            "code": "eca-rule"}]},
        "status": "active",
        "experimental": False,
        "purpose": purpose,
        "library": libs,
        "action": actions,
    }


def main():
    check = "--check" in sys.argv
    have_translator = (TOOLS / "node_modules" / "@cqframework" / "cql" / "package.json").exists()
    if not have_translator:
        msg = "CQL-to-ELM translator not installed (run tests/tools/setup-cql-oracle.sh)"
        if os.environ.get("DDCC_REQUIRE_ORACLES"):
            sys.exit(f"gen-cql-libraries: {msg}")
        print(f"NOTE gen-cql-libraries: {msg}; ELM taken as committed")
    files = {}
    versions = {}
    for name, version, path in sources():
        cql = path.read_text(encoding="utf-8")
        elm_path = ELM / f"{name}-{version}.elm.json"
        if have_translator:
            elm_text = translate(path)
            files[elm_path] = elm_text
        else:
            elm_text = elm_path.read_text(encoding="utf-8")
        if name in NOT_PUBLISHED:
            continue
        versions[name] = version
        files[CQL / f"Library-{name}.json"] = dump(library(name, version, cql, elm_text))
    for name, version, path in sources(TEST_LIBS):
        elm_path = TEST_LIBS / "elm" / f"{name}-{version}.elm.json"
        if have_translator:
            files[elm_path] = translate(path)
    for pid, (title, purpose, rules) in USE_CASES.items():
        files[PLANS / f"PlanDefinition-{pid}.json"] = dump(plan(pid, title, purpose, rules, versions))
    stale = [p for p, text in files.items() if not p.exists() or p.read_text(encoding="utf-8") != text]
    if check:
        if stale:
            for p in stale:
                print(f"stale: {p.relative_to(ROOT)}")
            sys.exit("gen-cql-libraries --check: generated files are not current; run tools/gen-cql-libraries.py")
        print(f"gen-cql-libraries: {len(files)} files current")
        return
    for p in stale:
        p.parent.mkdir(parents=True, exist_ok=True)
        p.write_text(files[p], encoding="utf-8")
        print(f"wrote {p.relative_to(ROOT)}")


if __name__ == "__main__":
    main()
