#!/usr/bin/env python3
"""End-to-end load on `$generateHealthCertificate`: certificates per second, latency
p50/p99 and the service's peak RSS, at a given concurrency. Bounded in requests and
time, loopback only.

usage: bench/issue_load.py --url http://127.0.0.1:4321 --pid <service pid>
                           --body <QuestionnaireResponse.json> [--concurrency 32]
                           [--requests 2000] [--seconds 60]
Prints one JSON line.
"""
import argparse
import http.client
import json
import statistics
import threading
import time
import urllib.parse


def peak_rss_mib(pid):
    with open(f"/proc/{pid}/status") as f:
        for line in f:
            if line.startswith("VmHWM:"):
                return round(int(line.split()[1]) / 1024, 1)
    return None


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--url", required=True)
    ap.add_argument("--pid", type=int, required=True)
    ap.add_argument("--body", required=True)
    ap.add_argument("--concurrency", type=int, default=1)
    ap.add_argument("--requests", type=int, default=2000)
    ap.add_argument("--seconds", type=float, default=60)
    ap.add_argument("--label", default="")
    ap.add_argument("--same-holder", action="store_true",
                    help="keep the example's HCID: every certificate joins one ever-growing Folder")
    args = ap.parse_args()

    template = json.load(open(args.body))
    counter = [0]

    def next_body():
        # Each request is a distinct event: a resubmitted one would be answered from
        # the idempotency record instead of being issued.
        with lock:
            counter[0] += 1
            template["identifier"] = {"system": "urn:ddcc-mediator:bench", "value": f"{time.time_ns()}-{counter[0]}"}
            if not args.same_holder:
                # One holder per certificate, as a vaccination campaign has. With one
                # HCID every certificate would join one Folder and list all its doses,
                # so the cost would grow with the run's length.
                for item in template.get("item", []):
                    if item.get("linkId") == "hcid":
                        item["answer"] = [{"valueString": f"bench-{time.time_ns()}-{counter[0]}"}]
            return json.dumps(template).encode()

    lock = threading.Lock()
    u = urllib.parse.urlparse(args.url)
    path = "/fhir/QuestionnaireResponse/$generateHealthCertificate"
    latencies, errors = [], []
    remaining = [args.requests]
    deadline = time.monotonic() + args.seconds

    def worker():
        conn = http.client.HTTPConnection(u.hostname, u.port, timeout=30)
        while True:
            with lock:
                if remaining[0] <= 0 or time.monotonic() > deadline:
                    break
                remaining[0] -= 1
            t0 = time.perf_counter()
            try:
                conn.request("POST", path, next_body(), {"Content-Type": "application/fhir+json"})
                resp = conn.getresponse()
                resp.read()
                status = resp.status
            except (OSError, http.client.HTTPException) as e:
                conn.close()
                conn = http.client.HTTPConnection(u.hostname, u.port, timeout=30)
                status = str(e)
            dt = time.perf_counter() - t0
            with lock:
                if status == 200:
                    latencies.append(dt)
                else:
                    errors.append(status)
        conn.close()

    # Warm up: maps, caches, connections.
    for _ in range(5):
        c = http.client.HTTPConnection(u.hostname, u.port, timeout=30)
        c.request("POST", path, next_body(), {"Content-Type": "application/fhir+json"})
        c.getresponse().read()
        c.close()

    threads = [threading.Thread(target=worker) for _ in range(args.concurrency)]
    t0 = time.perf_counter()
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    elapsed = time.perf_counter() - t0
    lat = sorted(latencies)

    def pct(p):
        return round(lat[min(len(lat) - 1, int(p * len(lat)))] * 1000, 2) if lat else None

    print(json.dumps({
        "label": args.label,
        "concurrency": args.concurrency,
        "ok": len(lat),
        "errors": len(errors),
        "certificates_per_s": round(len(lat) / elapsed, 1),
        "p50_ms": pct(0.50),
        "p99_ms": pct(0.99),
        "mean_ms": round(statistics.mean(lat) * 1000, 2) if lat else None,
        "peak_rss_mib": peak_rss_mib(args.pid),
    }))


if __name__ == "__main__":
    main()
