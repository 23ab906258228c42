#!/usr/bin/env python3
"""Write the FHIR R4 core ValueSet http://hl7.org/fhir/ValueSet/iso3166-1-3 (ISO 3166-1
alpha-3 country codes) as an enumerated ValueSet.

FHIR core defines it by a filter over the external code system urn:iso:std:iso:3166,
which HL7's Java tools (and so Matchbox) answer from a built-in copy of ISO 3166.
We have no terminology server, so the codes are enumerated from Debian's `iso-codes`
package (apt-get install iso-codes):

    python3 tools/gen-iso3166-valueset.py /usr/share/iso-codes/json/iso_3166-1.json \
        > crates/fml/tests/data/transform/terminology/ValueSet-iso3166-1-3.json
"""
import json
import sys


def main(path):
    with open(path, encoding="utf-8") as f:
        countries = json.load(f)["3166-1"]
    concepts = [{"code": c["alpha_3"], "display": c["name"]} for c in sorted(countries, key=lambda c: c["alpha_3"])]
    vs = {
        "resourceType": "ValueSet",
        "id": "iso3166-1-3",
        "url": "http://hl7.org/fhir/ValueSet/iso3166-1-3",
        "name": "Iso3166-1-3",
        "status": "active",
        "description": "ISO 3166-1 alpha-3 codes, enumerated from Debian iso-codes (FHIR R4 defines this value set by a filter on urn:iso:std:iso:3166).",
        "compose": {"include": [{"system": "urn:iso:std:iso:3166", "concept": concepts}]},
    }
    json.dump(vs, sys.stdout, indent=1, ensure_ascii=False)
    sys.stdout.write("\n")


if __name__ == "__main__":
    main(sys.argv[1])
