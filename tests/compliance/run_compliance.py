#!/usr/bin/env python3
"""Runs the DDCC compliance framework's feature files against a running service.

The framework's own step code (cucumber-js + PactumJS) is not in shared/; this
harness executes the steps of its `.feature` files exactly as written, with the
semantics of those steps:

- "json body like" is PactumJS `jsonLike`: every property of the expected value
  must be present in the actual one with a like value; extra properties are
  allowed; every expected array element must match a distinct actual element,
  in any order.
- "validate against the profile P" POSTs the response body to the validator
  (`$validate?profile=P`) and requires HTTP 200 and no issue of severity
  `fatal` or `error`.
- The base URL of a request comes from the feature's tag: @GenerationService,
  @RepositoryService or @RegistryService.

Unlike cucumber, an unavailable validator (HTTP 404/405 from it) does not make the
rest of the scenario skip silently: with --allow-missing-validator the step is
reported as skipped and the remaining steps still run; without it, it fails.

Prints one line per scenario and finally `N passed, N failed`.
Exit status: 0 when every scenario passed, 1 otherwise.
"""

import argparse
import json
import os
import re
import sys
import urllib.error
import urllib.request

try:
    import jsonschema  # type: ignore
except ImportError:  # reported when a schema step runs
    jsonschema = None


class StepFailed(Exception):
    pass


class StepSkipped(Exception):
    pass


# ---------------------------------------------------------------- jsonLike

def json_like(actual, expected, path="$"):
    """Returns None when `actual` is like `expected`, else a message saying where not."""
    if isinstance(expected, dict):
        if not isinstance(actual, dict):
            return f"{path}: expected an object, got {type_name(actual)}"
        for key, exp_val in expected.items():
            if key not in actual:
                return f"{path}.{key}: missing"
            msg = json_like(actual[key], exp_val, f"{path}.{key}")
            if msg:
                return msg
        return None
    if isinstance(expected, list):
        if not isinstance(actual, list):
            return f"{path}: expected an array, got {type_name(actual)}"
        if len(expected) > len(actual):
            return f"{path}: expected at least {len(expected)} elements, got {len(actual)}"
        if match_unordered(actual, expected, 0, set(), path):
            return None
        # Name the first expected element that matches nothing, to make the report useful.
        for i, exp_el in enumerate(expected):
            if all(json_like(a, exp_el) for a in actual):
                best = min((json_like(a, exp_el, f"{path}[*]") for a in actual), key=len)
                return f"{path}[{i}]: no element like it (closest: {best})"
        return f"{path}: elements match only when reused"
    if actual != expected or (type(actual) is bool) != (type(expected) is bool):
        return f"{path}: expected {json.dumps(expected)}, got {json.dumps(actual)}"
    return None


def match_unordered(actual, expected, i, used, path):
    if i == len(expected):
        return True
    for j, a in enumerate(actual):
        if j in used or json_like(a, expected[i]) is not None:
            continue
        used.add(j)
        if match_unordered(actual, expected, i + 1, used, path):
            return True
        used.discard(j)
    return False


def type_name(v):
    return {dict: "an object", list: "an array", str: "a string", bool: "a boolean"}.get(
        type(v), "null" if v is None else "a number")


# ---------------------------------------------------------------- Gherkin

class Scenario:
    def __init__(self, feature, tags, name):
        self.feature = feature
        self.tags = tags
        self.name = name
        self.steps = []  # (keyword, text, docstring)


def parse_feature(path):
    feature_tags, pending_tags, scenarios = [], [], []
    feature_name = os.path.basename(path)
    current = None
    lines = open(path, encoding="utf-8").read().splitlines()
    i = 0
    while i < len(lines):
        line = lines[i].strip()
        i += 1
        if not line or line.startswith("#"):
            continue
        if line.startswith("@"):
            pending_tags += line.split()
            continue
        if line.startswith("Feature:"):
            feature_name = line[len("Feature:"):].strip()
            feature_tags, pending_tags = pending_tags, []
            continue
        if line.startswith("Scenario:"):
            current = Scenario(feature_name, feature_tags + pending_tags, line[len("Scenario:"):].strip())
            pending_tags = []
            scenarios.append(current)
            continue
        m = re.match(r"^(Given|When|Then|And|But)\s+(.*)$", line)
        if m and current is not None:
            doc = None
            if i < len(lines) and lines[i].strip() == '"""':
                j = i + 1
                body = []
                while j < len(lines) and lines[j].strip() != '"""':
                    body.append(lines[j])
                    j += 1
                doc = "\n".join(body)
                i = j + 1
            current.steps.append((m.group(1), m.group(2).strip(), doc))
            continue
        raise SystemExit(f"{path}: cannot read line {i}: {line}")
    return scenarios


# ---------------------------------------------------------------- HTTP

def http(method, url, body=None, timeout=60):
    data = None
    headers = {"Accept": "application/fhir+json"}
    if body is not None:
        data = json.dumps(body).encode("utf-8")
        headers["Content-Type"] = "application/fhir+json"
    req = urllib.request.Request(url, data=data, method=method, headers=headers)
    try:
        with urllib.request.urlopen(req, timeout=timeout) as resp:
            return resp.status, dict(resp.headers), resp.read()
    except urllib.error.HTTPError as e:
        return e.code, dict(e.headers), e.read()


def parse_json(raw, what):
    try:
        return json.loads(raw.decode("utf-8"))
    except (ValueError, UnicodeDecodeError) as e:
        raise StepFailed(f"{what} is not JSON ({e}): {raw[:200]!r}")


def header(headers, name):
    for k, v in headers.items():
        if k.lower() == name.lower():
            return v
    return None


# ---------------------------------------------------------------- steps

class Run:
    def __init__(self, scenario, args):
        self.s = scenario
        self.args = args
        self.method = self.url = None
        self.request_body = None
        self.status = self.headers = self.raw = None
        self.notes = []

    def base(self):
        tags = set(self.s.tags)
        if "@GenerationService" in tags:
            return self.args.generation
        if "@RepositoryService" in tags:
            return self.args.repository
        if "@RegistryService" in tags:
            return self.args.registry
        return self.args.generation

    def fixture(self, rel):
        path = os.path.normpath(os.path.join(self.args.framework, rel))
        with open(path, encoding="utf-8-sig") as f:
            return json.load(f)

    def response_json(self):
        return parse_json(self.raw, "the response body")

    def resolve(self, location):
        if re.match(r"^https?://", location):
            return location
        return self.base().rstrip("/") + "/" + location.lstrip("/")

    def step(self, text, doc):
        m = re.match(r"^I make a (\w+) request to (.*)$", text)
        if m:
            self.method, self.url = m.group(1).upper(), self.base().rstrip("/") + m.group(2)
            return
        m = re.match(r"^I set json body to the file at (.*)$", text)
        if m:
            self.request_body = self.fixture(m.group(1))
            return
        if text == "I receive a response":
            self.status, self.headers, self.raw = http(self.method, self.url, self.request_body)
            return
        m = re.match(r"^I expect response should have a status (\d+)$", text)
        if m:
            if self.status != int(m.group(1)):
                raise StepFailed(f"status {self.status}, expected {m.group(1)}: {self.raw[:300]!r}")
            return
        m = re.match(r"^I expect response should validate against the profile (.*)$", text)
        if m:
            return self.validate(m.group(1).strip())
        m = re.match(r"^I expect response should have a json body like the file at (.*)$", text)
        if m:
            msg = json_like(self.response_json(), self.fixture(m.group(1)))
            if msg:
                raise StepFailed("body not like the fixture: " + msg)
            return
        if text == "I expect response should have a json schema":
            if jsonschema is None:
                raise StepFailed("the Python package jsonschema is not installed")
            try:
                jsonschema.validate(self.response_json(), json.loads(doc or "{}"))
            except jsonschema.ValidationError as e:
                raise StepFailed(f"json schema: {e.message}")
            return
        if text == "I expect a response entry exists for each request entry in same order":
            got = [e.get("response", {}).get("location", "") for e in self.response_json().get("entry", [])]
            # As the framework does: everything before the last `/`. So a location must be
            # `Type/id`; `Type/id/_history/n` would not match (the original suite is strict).
            got_types = [loc[: loc.rfind("/")] for loc in got]
            want = [e.get("resource", {}).get("resourceType") for e in self.request_body.get("entry", [])]
            if got_types != want:
                raise StepFailed(f"response locations {got} do not follow request entries {want}")
            return
        m = re.match(r"^I expect the GET request sent to each response entry location should have a status (\d+)$", text)
        if m:
            for e in self.response_json().get("entry", []):
                loc = e.get("response", {}).get("location", "")
                st, _, raw = http("GET", self.resolve(loc))
                if st != int(m.group(1)):
                    raise StepFailed(f"GET {loc}: status {st}: {raw[:200]!r}")
            return
        m = re.match(r"^I expect response header (\S+) should have (.*)$", text)
        if m:
            v = header(self.headers, m.group(1))
            if v is None or m.group(2) not in v:
                raise StepFailed(f"header {m.group(1)} = {v!r} does not contain {m.group(2)!r}")
            return
        m = re.match(r"^I expect the results from the GET request sent to the response location header "
                     r"should have a json body like the file at (.*)$", text)
        if m:
            loc = header(self.headers, "location")
            if not loc:
                raise StepFailed("no Location header")
            st, _, raw = http("GET", self.resolve(loc))
            if st != 200:
                raise StepFailed(f"GET {loc}: status {st}")
            msg = json_like(parse_json(raw, "GET body"), self.fixture(m.group(1)))
            if msg:
                raise StepFailed("GET body not like the fixture: " + msg)
            return
        raise StepFailed(f"no step definition for: {text}")

    def validate(self, profile):
        url = self.args.validator + ("&" if "?" in self.args.validator else "?") + "profile=" + profile
        st, _, raw = http("POST", url, self.response_json())
        if st in (404, 405) and self.args.allow_missing_validator:
            raise StepSkipped(f"validator unavailable ({st})")
        if st != 200:
            raise StepFailed(f"validator answered {st}: {raw[:300]!r}")
        outcome = parse_json(raw, "the validator's OperationOutcome")
        bad = [i for i in outcome.get("issue", []) if i.get("severity") in ("fatal", "error")]
        if bad:
            msgs = "; ".join(f"{i.get('severity')}: {i.get('diagnostics') or i.get('details', {}).get('text')}"
                             f" @ {i.get('expression') or i.get('location')}" for i in bad[:5])
            raise StepFailed(f"{len(bad)} validation error(s) against {profile}: {msgs}")


def main():
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--framework", required=True, help="the compliance framework folder (holds features/)")
    ap.add_argument("--base", required=True, help="the service's FHIR base, e.g. http://127.0.0.1:4321/fhir")
    ap.add_argument("--generation", help="GENERATION_SERVICE_URL (default: --base)")
    ap.add_argument("--repository", help="REPOSITORY_SERVICE_URL (default: --base)")
    ap.add_argument("--registry", help="REGISTRY_SERVICE_URL (default: --base)")
    ap.add_argument("--validator", help="VALIDATOR_SERVICE_URL (default: <base>/$validate)")
    ap.add_argument("--allow-missing-validator", action="store_true")
    ap.add_argument("--tags", help="run only scenarios carrying one of these comma-separated tags")
    args = ap.parse_args()
    args.generation = args.generation or args.base
    args.repository = args.repository or args.base
    args.registry = args.registry or args.base
    args.validator = args.validator or args.base.rstrip("/") + "/$validate"

    features_dir = os.path.join(args.framework, "features")
    scenarios = []
    for name in sorted(os.listdir(features_dir)):
        if name.endswith(".feature"):
            scenarios += parse_feature(os.path.join(features_dir, name))
    if args.tags:
        wanted = set(args.tags.split(","))
        scenarios = [s for s in scenarios if wanted & set(s.tags)]

    passed = failed = 0
    for s in scenarios:
        run = Run(s, args)
        outcome, detail, skipped = "PASS", "", []
        for keyword, text, doc in s.steps:
            try:
                run.step(text, doc)
            except StepSkipped as e:
                skipped.append(f"{text} ({e})")
            except StepFailed as e:
                outcome, detail = "FAIL", f"{keyword} {text}\n      -> {e}"
                break
            except (OSError, urllib.error.URLError) as e:
                outcome, detail = "FAIL", f"{keyword} {text}\n      -> cannot reach the service: {e}"
                break
        print(f"{outcome} {s.feature} / {s.name}")
        if detail:
            print("    " + detail)
        for sk in skipped:
            print("    skipped: " + sk)
        if outcome == "PASS":
            passed += 1
        else:
            failed += 1
    print(f"{passed} passed, {failed} failed")
    return 0 if failed == 0 else 1


if __name__ == "__main__":
    sys.exit(main())
