#!/usr/bin/env python3
"""Generate crates/fml/src/model/r4.json: the FHIR R4 element table the FML engine uses.

Source: the R4 model shipped in the npm package `fhirpath` (HL7's FHIRPath.js),
directory `fhir-context/r4/` (path2Type, choiceTypePaths, path2Repeating,
pathsDefinedElsewhere, type2Parent), itself generated from the FHIR R4 (4.0.1)
StructureDefinitions. Obtain it without running any of its code:

    mkdir -p /tmp/fp && cd /tmp/fp && npm pack fhirpath@5.2.2 && tar xzf fhirpath-5.2.2.tgz
    python3 tools/gen-r4-model.py /tmp/fp/package/fhir-context/r4 > crates/fml/src/model/r4.json

Output (compact, sorted for stable diffs):
  {"source": ..., "parents": {Type: ParentType},
   "elements": {"Path.to.element": "type1,type2;flags"},   flags: r = repeats, c = choice [x]
   "elsewhere": {"Path": "ContentReferencePath"}}
"""
import json
import os
import sys


def main(src):
    def load(name):
        with open(os.path.join(src, name), encoding="utf-8") as f:
            return json.load(f)

    path2type = load("path2Type.json")
    choices = load("choiceTypePaths.json")
    repeating = set(load("path2Repeating.json"))
    elsewhere = load("pathsDefinedElsewhere.json")
    parents = load("type2Parent.json")

    def system_type(path):
        # FHIRPath.js records FHIR's implicit primitive types as System.String; FHIR
        # itself calls them id (Resource.id), uri (Extension.url) and string (Element.id).
        last = path.rsplit(".", 1)[-1]
        head = path.split(".", 1)[0]
        if last == "url" and head == "Extension":
            return "uri"
        if last == "id" and path.count(".") == 1 and head not in ("Element", "BackboneElement") and head[0].isupper():
            if parents.get(head) in ("DomainResource", "Resource") or head in ("Resource", "DomainResource"):
                return "id"
        return "string"

    elements = {}
    choice_concrete = set()
    for path, alts in choices.items():
        types = []
        for alt in alts:
            concrete = path + alt
            choice_concrete.add(concrete)
            t = path2type.get(concrete)
            code = t if isinstance(t, str) else (t or {}).get("code") if t else None
            if code is None:
                code = alt[0].lower() + alt[1:] if alt[0].isupper() and alt not in parents else alt
            if code.startswith("System."):
                code = system_type(path)
            types.append(code)
        flags = "c" + ("r" if path in repeating else "")
        elements[path] = ",".join(types) + ";" + flags
    for path, t in path2type.items():
        if path in choice_concrete or t is None:
            continue
        code = t if isinstance(t, str) else t.get("code")
        if code.startswith("System."):
            code = system_type(path)
        elements[path] = code + ";" + ("r" if path in repeating else "")
    out = {
        "source": "npm fhirpath 5.2.2 fhir-context/r4 (FHIR R4 4.0.1)",
        "parents": dict(sorted(parents.items())),
        "elements": dict(sorted(elements.items())),
        "elsewhere": dict(sorted(elsewhere.items())),
    }
    json.dump(out, sys.stdout, separators=(",", ":"), ensure_ascii=False)
    sys.stdout.write("\n")


if __name__ == "__main__":
    main(sys.argv[1])
