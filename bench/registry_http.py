#!/usr/bin/env python3
"""Registry through HTTP: ITI-65 registrations per second (POST /fhir transaction
Bundles at a given concurrency) and ITI-67 / ITI-66 search latency (one client,
sequential, p50/p95) against a running `ddcc-mediator serve`. The store is normally
pre-filled with `cargo run --release -p ddcc-store --example prefill` (run id
`bench`); its samples file names existing patients and documents to search for.

usage: bench/registry_http.py --url http://127.0.0.1:4321 --samples prefill-samples.txt
                              [--registrations 2000] [--concurrency 8] [--searches 500]
                              [--label sqlite-1e5] [--pid <service pid>]
With --pid, each measure also reports the service's CPU time per request (from
/proc/<pid>/stat), which a shared, loaded machine distorts far less than latency.
Prints one JSON line per measure and a Markdown table at the end.
"""
import argparse
import base64
import http.client
import json
import os
import random
import statistics
import threading
import time
import urllib.parse
import uuid

RUN = "bench"
HOLDERS = 500_000
DOC_SYSTEM = "urn:ietf:rfc:3986"


def iti65_bundle(tag, n):
    """A self-contained Provide Document Bundle: SubmissionSet, DocumentReference,
    Binary, Patient, linked by urn:uuid fullUrls."""
    u = {k: f"urn:uuid:{uuid.uuid4()}" for k in ("ss", "dr", "bin", "pat")}
    doc = base64.b64encode(json.dumps({"resourceType": "Bundle", "type": "document",
                                       "id": f"{tag}-{n}"}).encode()).decode()
    return {
        "resourceType": "Bundle",
        "type": "transaction",
        "entry": [
            {"fullUrl": u["ss"], "request": {"method": "POST", "url": "List"}, "resource": {
                "resourceType": "List",
                "identifier": [{"system": DOC_SYSTEM, "value": f"urn:uuid:{uuid.uuid4()}"}],
                "status": "current", "mode": "working",
                "code": {"coding": [{"system": "https://profiles.ihe.net/ITI/MHD/CodeSystem/MHDlistTypes", "code": "submissionset"}]},
                "subject": {"reference": u["pat"]},
                "entry": [{"item": {"reference": u["dr"]}}]}},
            {"fullUrl": u["dr"], "request": {"method": "POST", "url": "DocumentReference"}, "resource": {
                "resourceType": "DocumentReference",
                "masterIdentifier": {"system": DOC_SYSTEM, "value": f"urn:uuid:{uuid.uuid4()}"},
                "status": "current",
                "type": {"coding": [{"system": "http://loinc.org", "code": "82593-5"}]},
                "category": [{"coding": [{"system": "http://loinc.org", "code": "11369-6"}]}],
                "subject": {"reference": u["pat"]},
                "date": "2021-03-01T10:00:00Z",
                "content": [{"attachment": {"contentType": "application/fhir+json", "url": u["bin"]}}]}},
            {"fullUrl": u["bin"], "request": {"method": "POST", "url": "Binary"}, "resource": {
                "resourceType": "Binary", "contentType": "application/fhir+json", "data": doc}},
            {"fullUrl": u["pat"], "request": {"method": "POST", "url": "Patient"}, "resource": {
                "resourceType": "Patient",
                "identifier": [{"system": "http://example.org/bench", "value": f"{tag}-{n}"}]}},
        ],
    }


def cpu_ms(pid):
    """User + system CPU time of `pid` in milliseconds, or None."""
    if not pid:
        return None
    with open(f"/proc/{pid}/stat") as f:
        fields = f.read().rsplit(")", 1)[1].split()
    return (int(fields[11]) + int(fields[12])) * 1000 / os.sysconf("SC_CLK_TCK")


def pct(sorted_ms, p):
    if not sorted_ms:
        return None
    return round(sorted_ms[min(len(sorted_ms) - 1, round((len(sorted_ms) - 1) * p))], 3)


def registrations(host, port, total, concurrency):
    tag = f"h{time.time_ns()}"
    lock = threading.Lock()
    state = {"next": 0, "lat": [], "errors": 0}

    def worker():
        conn = http.client.HTTPConnection(host, port, timeout=60)
        while True:
            with lock:
                n = state["next"]
                if n >= total:
                    break
                state["next"] += 1
            body = json.dumps(iti65_bundle(tag, n)).encode()
            t = time.perf_counter()
            conn.request("POST", "/fhir", body, {"Content-Type": "application/fhir+json"})
            r = conn.getresponse()
            r.read()
            dt = (time.perf_counter() - t) * 1000
            with lock:
                state["lat"].append(dt)
                if r.status != 200:
                    state["errors"] += 1

    t0 = time.perf_counter()
    threads = [threading.Thread(target=worker) for _ in range(concurrency)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    secs = time.perf_counter() - t0
    lat = sorted(state["lat"])
    return {"measure": "ITI-65", "concurrency": concurrency, "requests": total,
            "errors": state["errors"], "per_s": round(total / secs, 1),
            "p50_ms": pct(lat, 0.5), "p95_ms": pct(lat, 0.95)}


def searches(host, port, samples, count, rng, pid):
    shapes = {
        "ITI-67 patient": lambda i, p: {"patient": f"Patient/{p}"},
        "ITI-67 patient+status+type": lambda i, p: {
            "patient": f"Patient/{p}", "status": "current", "type": "http://loinc.org|82593-5"},
        "ITI-67 identifier": lambda i, p: {"identifier": f"{DOC_SYSTEM}|urn:uuid:{RUN}-{i:08}"},
        "ITI-67 patient+date+_sort+_count": lambda i, p: {
            "patient": f"Patient/{p}", "date": "ge2021-01-01", "_sort": "-date", "_count": "10"},
        "ITI-66 folder by HCID": lambda i, p: {
            "code": "folder", "identifier": f"HC-{RUN}-{i % HOLDERS}"},
    }
    conn = http.client.HTTPConnection(host, port, timeout=60)
    out = []
    for name, make in shapes.items():
        path = "/fhir/List" if name.startswith("ITI-66") else "/fhir/DocumentReference"
        lat, misses = [], 0
        before = cpu_ms(pid)
        for _ in range(count):
            i, p = rng.choice(samples)
            url = path + "?" + urllib.parse.urlencode(make(i, p))
            t = time.perf_counter()
            conn.request("GET", url)
            r = conn.getresponse()
            body = r.read()
            lat.append((time.perf_counter() - t) * 1000)
            if r.status != 200 or not json.loads(body).get("entry"):
                misses += 1
        lat.sort()
        row = {"measure": name, "requests": count, "misses": misses,
               "mean_ms": round(statistics.fmean(lat), 3),
               "p50_ms": pct(lat, 0.5), "p95_ms": pct(lat, 0.95)}
        if before is not None:
            row["service_cpu_ms_per_request"] = round((cpu_ms(pid) - before) / count, 2)
        out.append(row)
    return out


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--url", required=True)
    ap.add_argument("--samples", required=True)
    ap.add_argument("--registrations", type=int, default=2000)
    ap.add_argument("--concurrency", type=int, default=8)
    ap.add_argument("--searches", type=int, default=500)
    ap.add_argument("--label", default="")
    ap.add_argument("--pid", type=int, default=0)
    args = ap.parse_args()
    u = urllib.parse.urlparse(args.url)
    samples = []
    with open(args.samples) as f:
        for line in f:
            i, p = line.split()
            samples.append((int(i), p))
    rng = random.Random(7)
    def measured(run):
        before = cpu_ms(args.pid)
        r = run()
        if before is not None:
            r["service_cpu_ms_per_request"] = round((cpu_ms(args.pid) - before) / r["requests"], 2)
        return r

    rows = searches(u.hostname, u.port, samples, args.searches, rng, args.pid)
    for c in sorted({1, args.concurrency}):
        rows.append(measured(lambda c=c: registrations(u.hostname, u.port, args.registrations, c)))
    print("| label | measure | result | p50 ms | p95 ms | service CPU ms/request |")
    print("|---|---|---|---|---|---|")
    for r in rows:
        r["label"] = args.label
        print(json.dumps(r), flush=True)
    for r in rows:
        if r["measure"] == "ITI-65":
            res = f"{r['per_s']} /s at c={r['concurrency']} ({r['errors']} errors)"
        else:
            res = f"mean {r['mean_ms']} ms ({r['misses']} misses)"
        cpu = r.get("service_cpu_ms_per_request", "")
        print(f"| {args.label} | {r['measure']} | {res} | {r['p50_ms']} | {r['p95_ms']} | {cpu} |")


if __name__ == "__main__":
    main()
