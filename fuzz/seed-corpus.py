#!/usr/bin/env python3
"""Builds the fuzz corpora in fuzz/corpus/<target>/ from fuzz/seeds/, the project's recorded reviews, and the
shared test corpora (VIGIL_CORPORA, else ../shared/corpora beside the project; skipped with a note if absent).

The corpora are not committed (libFuzzer grows them); this script makes them again from scratch. It needs
only Python 3; when PyYAML is installed, the YAML pods of the corpus psa/ also seed the `workload` target.
Run it from anywhere: `python3 fuzz/seed-corpus.py`.
"""

import hashlib
import json
import os
import pathlib
import sys

FUZZ = pathlib.Path(__file__).resolve().parent
ROOT = FUZZ.parent
REVIEWS = ROOT / "tests" / "data" / "reviews"
CORPORA = pathlib.Path(os.environ.get("VIGIL_CORPORA") or ROOT.parent / "shared" / "corpora")
TARGETS = ["review", "workload", "policy", "image", "manifest"]
KINDS = ["Pod", "Deployment", "ReplicaSet", "StatefulSet", "DaemonSet", "Job", "CronJob",
         "ReplicationController", "PodTemplate"]  # the order of WorkloadKind::ALL
PATTERNS = ["registry.corp.example", "ghcr.io/corp/*", "docker.io/library/*", "*.evil.example",
            "registry.corp.example:5000", "[::1]:5000", "localhost", "docker.io/nginx",
            "index.docker.io/bitnami/*", "ghcr.io/corp/app"]

counts = {t: 0 for t in TARGETS}


def put(target, data):
    if isinstance(data, str):
        data = data.encode()
    name = hashlib.sha1(data).hexdigest()
    path = FUZZ / "corpus" / target / name
    if not path.exists():
        path.write_bytes(data)
        counts[target] += 1


def main():
    for t in TARGETS:
        (FUZZ / "corpus" / t).mkdir(parents=True, exist_ok=True)
        for seed in sorted((FUZZ / "seeds" / t).glob("*")):
            put(t, seed.read_bytes())

    # Captured AdmissionReviews: whole bodies for `review`, their objects for `workload` and `manifest`.
    reviews = sorted(REVIEWS.glob("*.json"))
    if not CORPORA.is_dir():
        print(f"no shared corpora at {CORPORA} (set VIGIL_CORPORA): seeding from fuzz/seeds and "
              "tests/data/reviews only", file=sys.stderr)
    reviews += sorted((CORPORA / "admissionreview").rglob("*.json"))
    for path in reviews:
        if path.name == "INDEX.json":
            continue
        body = path.read_bytes()
        put("review", body)
        request = json.loads(body).get("request", {})
        kind = (request.get("kind") or {}).get("kind")
        for key in ("object", "oldObject"):
            obj = request.get(key)
            if obj and kind in KINDS:
                put("workload", bytes([KINDS.index(kind)]) + json.dumps(obj).encode())
                put("manifest", json.dumps(obj, indent=1))

    # Pod Security Admission fixtures: YAML pods.
    try:
        import yaml
    except ImportError:
        yaml = None
        print("PyYAML not installed: the psa pods seed `manifest` only", file=sys.stderr)
    for path in sorted((CORPORA / "psa").rglob("*.yaml")):
        text = path.read_text()
        put("manifest", text)
        if yaml is not None:
            for doc in yaml.safe_load_all(text):
                if isinstance(doc, dict) and doc.get("kind") in KINDS:
                    put("workload", bytes([KINDS.index(doc["kind"])]) + json.dumps(doc).encode())

    # A few small Helm renders (the corpus has many; the small ones carry the same shapes).
    renders = sorted((CORPORA / "benign" / "bitnami-rendered").glob("*.yaml"), key=lambda p: p.stat().st_size)
    for path in renders[:12]:
        put("manifest", path.read_text())

    # Image reference vectors, each paired with a pattern.
    vectors_file = CORPORA / "imageref" / "vectors.json"
    vectors = json.loads(vectors_file.read_text()) if vectors_file.exists() else {"vectors": [], "regexp": []}
    inputs = [v["input"] for v in vectors["vectors"]] + [v["input"] for v in vectors["regexp"]]
    for i, value in enumerate(inputs):
        put("image", f"{value}\n{PATTERNS[i % len(PATTERNS)]}")

    # Policies: the built-in default and the benchmark's.
    for path in [ROOT / "bench" / "policy.yaml"]:
        if path.exists():
            put("policy", path.read_text())

    for t in TARGETS:
        total = len(list((FUZZ / "corpus" / t).iterdir()))
        print(f"{t}: {counts[t]} new, {total} in fuzz/corpus/{t}")


if __name__ == "__main__":
    main()
