#!/usr/bin/env python3
"""The cost of `image-signature`: cold and warm review latency, and p50/p99 at a fixed 2,000 reviews/s with a
warm cache against the same run without the rule.

    cargo build --release --bin vigil && python3 bench/signature.py

It starts Debian's docker-registry on loopback, pushes images and signs them with the cosign CLI that
scripts/test-deps.sh builds (a Sigstore bundle referrer, cosign 3's default, without a transparency log),
then runs the release vigil against them: a fresh process per run, pinned to one core, h2load (HTTP/1.1 over
TLS, 16 connections) on another. Knobs: N_COLD (30), DURATION (10 s), RUNS (3), RATE (2000).
"""

import hashlib
import http.client
import json
import os
import re
import socket
import ssl
import statistics
import subprocess
import sys
import tempfile
import time
import urllib.request
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
VIGIL = ROOT / "target" / "release" / "vigil"
N_COLD = int(os.environ.get("N_COLD", "30"))
SECONDS = float(os.environ.get("DURATION", "10"))
RUNS = int(os.environ.get("RUNS", "3"))
RATE = int(os.environ.get("RATE", "2000"))
CONNS = 16
CPUS = sorted(os.sched_getaffinity(0))


def free_port():
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def cosign_binary():
    text = (ROOT / "scripts" / "test-deps.sh").read_text()
    version = re.search(r'^COSIGN_VERSION="([^"]+)"', text, re.M).group(1)
    cache = Path(os.environ.get("XDG_CACHE_HOME", Path.home() / ".cache"))
    path = cache / "vigil" / "cosign" / version / "cosign"
    if not path.is_file():
        sys.exit(f"signature bench: {path} is missing; run ./scripts/test-deps.sh")
    return path


def wait_for(check, what, seconds=20):
    deadline = time.time() + seconds
    while time.time() < deadline:
        try:
            if check():
                return
        except OSError:
            pass
        time.sleep(0.05)
    sys.exit(f"signature bench: {what} did not come up")


class Registry:
    def __init__(self, work):
        self.port = free_port()
        self.host = f"127.0.0.1:{self.port}"
        config = work / "registry.yml"
        config.write_text(
            f"version: 0.1\nlog:\n  level: error\nstorage:\n  filesystem:\n    rootdirectory: {work / 'data'}\n"
            f"http:\n  addr: {self.host}\n")
        self.proc = subprocess.Popen(["docker-registry", "serve", str(config)],
                                     stdout=subprocess.DEVNULL, stderr=open(work / "registry.log", "w"))
        wait_for(lambda: urllib.request.urlopen(f"http://{self.host}/v2/").status == 200, "the registry")

    def blob(self, repo, data):
        digest = "sha256:" + hashlib.sha256(data).hexdigest()
        req = urllib.request.Request(f"http://{self.host}/v2/{repo}/blobs/uploads/", method="POST")
        location = urllib.request.urlopen(req).headers["Location"]
        url = location if location.startswith("http") else f"http://{self.host}{location}"
        url += ("&" if "?" in url else "?") + f"digest={digest}"
        urllib.request.urlopen(urllib.request.Request(url, data=data, method="PUT",
                                                      headers={"Content-Type": "application/octet-stream"}))
        return {"mediaType": "application/vnd.oci.image.layer.v1.tar", "digest": digest, "size": len(data)}

    def push(self, repo, tag, salt):
        layer = self.blob(repo, f"layer {salt}".encode())
        config = json.dumps({"architecture": "amd64", "os": "linux", "config": {"User": "1000"},
                             "rootfs": {"type": "layers", "diff_ids": [layer["digest"]]}}).encode()
        c = self.blob(repo, config)
        c["mediaType"] = "application/vnd.oci.image.config.v1+json"
        manifest = json.dumps({"schemaVersion": 2, "mediaType": "application/vnd.oci.image.manifest.v1+json",
                               "config": c, "layers": [layer]}).encode()
        urllib.request.urlopen(urllib.request.Request(
            f"http://{self.host}/v2/{repo}/manifests/{tag}", data=manifest, method="PUT",
            headers={"Content-Type": "application/vnd.oci.image.manifest.v1+json"}))
        return "sha256:" + hashlib.sha256(manifest).hexdigest()


def review(image):
    pod = {"apiVersion": "v1", "kind": "Pod", "metadata": {"name": "web", "namespace": "team-a"},
           "spec": {"containers": [{"name": "web", "image": image,
                                    "securityContext": {"allowPrivilegeEscalation": False}}]}}
    return json.dumps({"apiVersion": "admission.k8s.io/v1", "kind": "AdmissionReview",
                       "request": {"uid": "bench", "kind": {"group": "", "version": "v1", "kind": "Pod"},
                                   "namespace": "team-a", "name": "web", "operation": "CREATE",
                                   "userInfo": {"username": "bench"}, "object": pod}}).encode()


class Vigil:
    def __init__(self, work, policy, registry):
        self.port, self.metrics = free_port(), free_port()
        (work / "policy.yaml").write_text(policy)
        cmd = [str(VIGIL), "serve", "--addr", f"127.0.0.1:{self.port}", "--metrics-addr",
               f"127.0.0.1:{self.metrics}", "--policy", str(work / "policy.yaml"),
               "--registry-plain-http", registry.host, "--shutdown-grace", "0s"]
        if len(CPUS) >= 2:
            cmd = ["taskset", "-c", str(CPUS[0])] + cmd
        self.proc = subprocess.Popen(cmd, stdout=subprocess.DEVNULL, stderr=open(work / "vigil.log", "w"),
                                     cwd=work)
        wait_for(lambda: urllib.request.urlopen(f"http://127.0.0.1:{self.metrics}/readyz").status == 200,
                 "vigil")
        self.ctx = ssl.create_default_context()
        self.ctx.check_hostname = False
        self.ctx.verify_mode = ssl.CERT_NONE
        self.conn = http.client.HTTPSConnection("127.0.0.1", self.port, context=self.ctx, timeout=10)

    def ask(self, body):
        started = time.perf_counter()
        self.conn.request("POST", "/validate?timeout=5s", body=body,
                          headers={"Content-Type": "application/json"})
        answer = json.loads(self.conn.getresponse().read())
        return time.perf_counter() - started, answer["response"]

    def metric(self, name):
        text = urllib.request.urlopen(f"http://127.0.0.1:{self.metrics}/metrics").read().decode()
        return sum(float(l.rsplit(" ", 1)[1]) for l in text.splitlines() if l.startswith(name))

    def stop(self):
        self.conn.close()
        self.proc.terminate()
        self.proc.wait()


def h2load(vigil, body_path, log):
    cmd = ["h2load", "--h1", "-c", str(CONNS), "-t", "1", "-D", f"{int(SECONDS * 1000)}ms",
           "--warm-up-time", "2000ms", "--rps", f"{RATE / CONNS:g}", "-H", "content-type: application/json",
           "-d", str(body_path), f"--log-file={log}", f"https://127.0.0.1:{vigil.port}/validate"]
    if len(CPUS) >= 2:
        cmd = ["taskset", "-c", str(CPUS[1])] + cmd
    out = subprocess.run(cmd, capture_output=True, text=True, check=True).stdout
    ok = re.search(r"(\d+) succeeded, (\d+) failed, (\d+) errored", out)
    if not ok or int(ok.group(2)) or int(ok.group(3)):
        sys.exit(f"signature bench: h2load saw failures:\n{out[-1500:]}")
    us = sorted(int(l.split("\t")[2]) for l in Path(log).read_text().splitlines() if l.strip())
    pick = lambda q: us[min(len(us) - 1, int(q * len(us)))] / 1000
    return {"p50": pick(0.50), "p99": pick(0.99), "p999": pick(0.999), "rate": len(us) / SECONDS}


def main():
    if not VIGIL.is_file():
        sys.exit("signature bench: build it first: cargo build --release --bin vigil")
    cosign = cosign_binary()
    work = Path(tempfile.mkdtemp(prefix="vigil-signature-bench-"))
    registry = Registry(work)
    home = work / "home"
    home.mkdir()
    env = dict(os.environ, COSIGN_PASSWORD="", HOME=str(home), TUF_ROOT=str(home / "tuf"))
    subprocess.run([str(cosign), "generate-key-pair", "--output-key-prefix", str(work / "bench")],
                   env=env, check=True, capture_output=True)
    pem = (work / "bench.pub").read_text()
    images = []
    for i in range(N_COLD + 1):
        digest = registry.push(f"bench/app{i}", "v1", f"app{i}")
        subprocess.run([str(cosign), "sign", "--key", str(work / "bench.key"), "--tlog-upload=false",
                        "--use-signing-config=false", "--allow-http-registry", "--yes",
                        f"{registry.host}/bench/app{i}@{digest}"], env=env, check=True, capture_output=True)
        images.append(f"{registry.host}/bench/app{i}:v1")
    keys = "".join(f"\n          {line}" for line in pem.splitlines())
    base = ("apiVersion: vigil.dev/v1alpha1\nkind: Policy\nmode: enforce\nprofile: baseline\n"
            "rules:\n  image-tag: warn\n")
    with_rule = base + (f"  image-signature:\n    mode: enforce\n    images: [\"{registry.host}/bench/*\"]\n"
                        f"    keys:\n      - name: bench\n        publicKey: |{keys}\n")

    # Cold and warm, one review at a time, each image new to the process at first.
    vigil = Vigil(work, with_rule, registry)
    cold, warm = [], []
    for image in images[1:]:
        took, response = vigil.ask(review(image))
        assert response["allowed"], response
        cold.append(took * 1000)
    for _ in range(5):
        for image in images[1:]:
            took, response = vigil.ask(review(image))
            assert response["allowed"], response
            warm.append(took * 1000)
    lookups = vigil.metric("vigil_signature_lookup_duration_seconds_sum"), vigil.metric(
        "vigil_signature_lookup_duration_seconds_count")
    vigil.stop()
    q = lambda xs, p: sorted(xs)[min(len(xs) - 1, int(p * len(xs)))]
    print(f"cold review (image and signature look-ups, {len(cold)} new signed images): "
          f"p50 {statistics.median(cold):.2f} ms, p99 {q(cold, 0.99):.2f} ms; "
          f"the signature look-up alone {1000 * lookups[0] / max(lookups[1], 1):.2f} ms on average")
    print(f"warm review (cached): p50 {statistics.median(warm):.3f} ms, p99 {q(warm, 0.99):.3f} ms "
          f"(one request at a time, Python client)")

    # Fixed rate with a warm cache, against the same review without the rule.
    body = work / "review.json"
    body.write_bytes(review(images[0]))
    results = {"with image-signature": [], "without": []}
    for run in range(RUNS):
        for name, policy in (("with image-signature", with_rule), ("without", base)):
            vigil = Vigil(work, policy, registry)
            _, response = vigil.ask(body.read_bytes())
            assert response["allowed"], response
            log = work / f"h2load-{run}-{'with' if policy is with_rule else 'without'}.log"
            log.unlink(missing_ok=True)
            results[name].append(h2load(vigil, body, log))
            vigil.stop()
    print(f"fixed {RATE}/s, {CONNS} connections, HTTP/1.1 over TLS, {SECONDS:g} s per run, median of {RUNS} runs "
          f"(ms, from when h2load sends each request):")
    for name, runs in results.items():
        med = {k: statistics.median(r[k] for r in runs) for k in ("p50", "p99", "p999", "rate")}
        print(f"  {name:22} p50 {med['p50']:.2f}  p99 {med['p99']:.2f}  p99.9 {med['p999']:.2f}  "
              f"achieved {med['rate']:.0f}/s")
    registry.proc.terminate()


if __name__ == "__main__":
    main()
