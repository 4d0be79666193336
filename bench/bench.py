#!/usr/bin/env python3
"""Vigil's benchmark driver: runs Vigil and the constant-response server one after the other under the
same HTTP/1.1-over-TLS load from h2load, and prints a table of medians and Vigil/reference ratios.

Called by bench/run.sh, which builds the binaries and finds h2load first; see bench/README.md for the
knobs (QUICK, RUNS, ...). Standard library only.
"""

import atexit
import ctypes
import datetime
import http.client
import json
import os
import platform
import re
import resource
import shutil
import signal
import socket
import ssl
import statistics
import subprocess
import sys
import threading
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
BENCH = ROOT / "bench"
VIGIL = Path(os.environ.get("BENCH_VIGIL_BIN") or ROOT / "target" / "release" / "vigil")
REVIEWS = ROOT / "tests" / "data" / "reviews"  # this project's own recordings from a real kube-apiserver
CONSTANT = Path(os.environ.get("BENCH_CONSTANT_BIN") or ROOT / "target" / "release" / "examples" / "constant_server")
H2LOAD = os.environ.get("H2LOAD", "h2load")

QUICK = os.environ.get("QUICK", "") not in ("", "0")


def env_num(name, default, kind=float):
    value = os.environ.get(name)
    if value is None or value == "":
        return default
    try:
        return kind(value)
    except ValueError:
        die(f"{name}={value!r} is not a number")


def die(message):
    print(f"bench: error: {message}", file=sys.stderr, flush=True)
    sys.exit(1)


RUNS = env_num("RUNS", 1 if QUICK else 3, int)
TPUT_SECONDS = env_num("TPUT_SECONDS", 1.0 if QUICK else 2.5)
LAT_SECONDS = env_num("LAT_SECONDS", 1.0 if QUICK else 3.0)
WARMUP_SECONDS = env_num("WARMUP_SECONDS", 0.3)
START_RUNS = env_num("START_RUNS", 3 if QUICK else 7, int)
PORT = env_num("BENCH_PORT", 18443, int)
METRICS_PORT = env_num("BENCH_METRICS_PORT", 19090, int)
WORK = Path(os.environ.get("BENCH_WORK", ROOT / "target" / "bench"))
CONNS = [16, 64]
# HTTP/2, as the API server calls a webhook registered by URL: (connections, concurrent streams on each).
H2_POINTS = [(1, 16), (4, 16)]
RATES = [2000, 5000]
LAT_CONNS = 16
# A fixed-rate run that reaches less than this share of its target rate is flagged: its latencies describe
# a saturated server, not the rate asked for.
RATE_SHORTFALL = 0.95

TARGETS = {"ratio": {"deployment": 0.7, "pod10": 0.5}, "p99_5000_ms": 1.0, "rss_mib": 40.0, "ready_ms": 100.0}

# --- child processes: every one is killed when the driver exits, however it exits -------------------------

CHILDREN = []
_libc = ctypes.CDLL(None, use_errno=True)
PR_SET_PDEATHSIG = 1


def _die_with_parent():
    # If the driver is killed outright (SIGKILL), its servers and h2load must not outlive it.
    _libc.prctl(PR_SET_PDEATHSIG, signal.SIGKILL)


def spawn(cmd, **kwargs):
    proc = subprocess.Popen(cmd, preexec_fn=_die_with_parent, **kwargs)
    CHILDREN.append(proc)
    return proc


def kill_children():
    for proc in CHILDREN:
        if proc.poll() is None:
            proc.kill()
            try:
                proc.wait(timeout=5)
            except subprocess.TimeoutExpired:
                pass


atexit.register(kill_children)


def _on_signal(signum, _frame):
    print(f"\nbench: interrupted by signal {signum}; stopping servers", file=sys.stderr, flush=True)
    sys.exit(128 + signum)


for _sig in (signal.SIGINT, signal.SIGTERM, signal.SIGHUP):
    signal.signal(_sig, _on_signal)

# --- pinning -----------------------------------------------------------------------------------------------

ALLOWED_CPUS = sorted(os.sched_getaffinity(0))
PIN = os.environ.get("PIN", "1") != "0" and len(ALLOWED_CPUS) >= 2 and shutil.which("taskset") is not None
SERVER_CPU = ALLOWED_CPUS[-1] if PIN else None
LOAD_CPU = ALLOWED_CPUS[0] if PIN else None


def pinned(cpu, cmd):
    return ["taskset", "-c", str(cpu), *cmd] if cpu is not None else list(cmd)


def pinning_note():
    if PIN:
        return (
            f"server pinned to CPU {SERVER_CPU}; h2load (1 thread) and this driver to CPU {LOAD_CPU} (taskset, "
            f"sched_setaffinity); a server's tokio runtime sizes itself to the 1 CPU it is allowed"
        )
    why = "PIN=0" if os.environ.get("PIN") == "0" else (
        "fewer than 2 CPUs available" if len(ALLOWED_CPUS) < 2 else "taskset not found")
    return f"nothing pinned ({why}); server and h2load share CPUs {ALLOWED_CPUS}"


# --- inputs ------------------------------------------------------------------------------------------------


def container(i, name, image, port):
    """One container of a typical, well-configured production pod: allowed under the baseline profile."""
    return {
        "name": name,
        "image": image,
        "args": [f"--listen=:{port}", "--log-format=json", f"--shard={i}", "--config=/etc/app/config.yaml"],
        "ports": [
            {"name": "http", "containerPort": port, "protocol": "TCP"},
            {"name": "metrics", "containerPort": 9000 + i, "protocol": "TCP"},
        ],
        "env": [
            {"name": "APP_NAME", "value": name},
            {"name": "APP_ENV", "value": "production"},
            {"name": "LOG_LEVEL", "value": "info"},
            {"name": "GOMAXPROCS", "valueFrom": {"resourceFieldRef": {"resource": "limits.cpu", "divisor": "1"}}},
            {"name": "POD_NAME", "valueFrom": {"fieldRef": {"apiVersion": "v1", "fieldPath": "metadata.name"}}},
            {"name": "POD_IP", "valueFrom": {"fieldRef": {"apiVersion": "v1", "fieldPath": "status.podIP"}}},
            {"name": "DB_PASSWORD", "valueFrom": {"secretKeyRef": {"name": "db-credentials", "key": "password"}}},
            {"name": "FEATURE_FLAGS", "value": "search,recommendations,new-checkout"},
        ],
        "envFrom": [{"configMapRef": {"name": "shop-common"}}],
        "resources": {
            "requests": {"cpu": "250m", "memory": "256Mi"},
            "limits": {"cpu": "1", "memory": "512Mi"},
        },
        "volumeMounts": [
            {"name": "config", "mountPath": "/etc/app", "readOnly": True},
            {"name": "tmp", "mountPath": "/tmp"},
            {"name": "cache", "mountPath": "/var/cache/app"},
            {"name": "kube-api-access", "mountPath": "/var/run/secrets/kubernetes.io/serviceaccount", "readOnly": True},
        ],
        "livenessProbe": {
            "httpGet": {"path": "/healthz", "port": port, "scheme": "HTTP"},
            "initialDelaySeconds": 10, "periodSeconds": 10, "timeoutSeconds": 1,
            "successThreshold": 1, "failureThreshold": 3,
        },
        "readinessProbe": {
            "httpGet": {"path": "/readyz", "port": port, "scheme": "HTTP"},
            "periodSeconds": 5, "timeoutSeconds": 1, "successThreshold": 1, "failureThreshold": 3,
        },
        "lifecycle": {"preStop": {"exec": {"command": ["/bin/sh", "-c", "sleep 5"]}}},
        "securityContext": {
            "allowPrivilegeEscalation": False,
            "readOnlyRootFilesystem": True,
            "runAsNonRoot": True,
            "runAsUser": 10001,
            "capabilities": {"drop": ["ALL"], "add": ["NET_BIND_SERVICE"]},
            "seccompProfile": {"type": "RuntimeDefault"},
        },
        "terminationMessagePath": "/dev/termination-log",
        "terminationMessagePolicy": "File",
        "imagePullPolicy": "IfNotPresent",
    }


def pod10_review(template):
    """A Pod CREATE with 10 containers, built on the envelope of a real captured review."""
    images = [
        "ghcr.io/corp/shop/frontend:v3.14.2",
        "ghcr.io/corp/shop/cart:v2.8.0",
        "ghcr.io/corp/shop/checkout:v2.9.1",
        "ghcr.io/corp/shop/catalog:v5.0.3",
        "ghcr.io/corp/shop/search:v1.22.7",
        "docker.io/library/nginx:1.27.3",
        "docker.io/library/redis:7.4.1",
        "quay.io/prometheus/node-exporter:v1.8.2",
        "registry.k8s.io/pause:3.10",
        "ghcr.io/corp/platform/log-shipper:v0.31.0@sha256:" + "4f" * 32,
    ]
    names = ["frontend", "cart", "checkout", "catalog", "search", "proxy", "cache", "exporter", "pause",
             "log-shipper"]
    containers = [container(i, n, img, 8080 + i) for i, (n, img) in enumerate(zip(names, images))]
    labels = {"app.kubernetes.io/name": "shop", "app.kubernetes.io/instance": "shop-prod",
              "app.kubernetes.io/version": "3.14.2", "app.kubernetes.io/component": "web",
              "pod-template-hash": "7d9c6b5f4b"}
    pod = {
        "kind": "Pod",
        "apiVersion": "v1",
        "metadata": {
            "generateName": "shop-7d9c6b5f4b-",
            "namespace": "shop",
            "uid": "a3f0c1d2-5b6e-4f70-8a91-b2c3d4e5f607",
            "creationTimestamp": "2026-11-22T15:04:05Z",
            "labels": labels,
            "annotations": {
                "prometheus.io/scrape": "true", "prometheus.io/port": "9000",
                "kubectl.kubernetes.io/default-container": "frontend",
            },
            "ownerReferences": [{"apiVersion": "apps/v1", "kind": "ReplicaSet", "name": "shop-7d9c6b5f4b",
                                 "uid": "0b1c2d3e-4f50-6172-8394-a5b6c7d8e9f0", "controller": True,
                                 "blockOwnerDeletion": True}],
            "managedFields": [{
                "manager": "kube-controller-manager", "operation": "Update", "apiVersion": "v1",
                "time": "2026-11-22T15:04:05Z", "fieldsType": "FieldsV1",
                "fieldsV1": {"f:metadata": {"f:generateName": {}, "f:labels": {f"f:{k}": {} for k in labels}},
                             "f:spec": {f'k:{{"name":"{n}"}}': {".": {}, "f:image": {}, "f:name": {}}
                                        for n in names}},
            }],
        },
        "spec": {
            "volumes": [
                {"name": "config", "configMap": {"name": "shop-config", "defaultMode": 420}},
                {"name": "tmp", "emptyDir": {"medium": "Memory", "sizeLimit": "64Mi"}},
                {"name": "cache", "emptyDir": {}},
                {"name": "kube-api-access", "projected": {"defaultMode": 420, "sources": [
                    {"serviceAccountToken": {"expirationSeconds": 3607, "path": "token"}},
                    {"configMap": {"name": "kube-root-ca.crt", "items": [{"key": "ca.crt", "path": "ca.crt"}]}},
                    {"downwardAPI": {"items": [{"path": "namespace", "fieldRef": {
                        "apiVersion": "v1", "fieldPath": "metadata.namespace"}}]}},
                ]}},
            ],
            "containers": containers,
            "restartPolicy": "Always",
            "terminationGracePeriodSeconds": 30,
            "dnsPolicy": "ClusterFirst",
            "serviceAccountName": "shop",
            "serviceAccount": "shop",
            "securityContext": {"runAsNonRoot": True, "fsGroup": 10001,
                                "seccompProfile": {"type": "RuntimeDefault"}},
            "affinity": {"podAntiAffinity": {"preferredDuringSchedulingIgnoredDuringExecution": [{
                "weight": 100, "podAffinityTerm": {
                    "labelSelector": {"matchLabels": {"app.kubernetes.io/name": "shop"}},
                    "topologyKey": "kubernetes.io/hostname"}}]}},
            "schedulerName": "default-scheduler",
            "tolerations": [
                {"key": "node.kubernetes.io/not-ready", "operator": "Exists", "effect": "NoExecute",
                 "tolerationSeconds": 300},
                {"key": "node.kubernetes.io/unreachable", "operator": "Exists", "effect": "NoExecute",
                 "tolerationSeconds": 300},
            ],
            "priority": 0,
            "enableServiceLinks": True,
            "preemptionPolicy": "PreemptLowerPriority",
        },
        "status": {"phase": "Pending", "qosClass": "Burstable"},
    }
    review = json.loads(json.dumps(template))
    request = review["request"]
    request["uid"] = "5c1e8a4b-2d3f-4e60-9a7b-8c9d0e1f2a3b"
    request["name"] = ""
    request["namespace"] = "shop"
    request["userInfo"] = {"username": "system:serviceaccount:kube-system:replicaset-controller",
                           "uid": "6f7e8d9c-0b1a-4c3d-8e5f-a6b7c8d9e0f1",
                           "groups": ["system:serviceaccounts", "system:serviceaccounts:kube-system",
                                      "system:authenticated"]}
    request["object"] = pod
    return review


class Input:
    def __init__(self, key, label, path, allowed):
        self.key, self.label, self.path, self.allowed = key, label, Path(path), allowed
        self.body = self.path.read_bytes()
        self.uid = json.loads(self.body)["request"]["uid"]

    def describe(self):
        verdict = "admitted" if self.allowed else "denied"
        return f"{self.label}: {self.path.relative_to(ROOT) if self.path.is_relative_to(ROOT) else self.path} " \
               f"({len(self.body) / 1024:.1f} KiB, {verdict})"


def make_inputs():
    inputs_dir = WORK / "inputs"
    inputs_dir.mkdir(parents=True, exist_ok=True)
    pod10 = inputs_dir / "review-pod-10-containers.json"
    template = json.loads((REVIEWS / "pod-create.kube-apiserver-1.36.json").read_text())
    # Compact, as the API server sends it.
    pod10.write_text(json.dumps(pod10_review(template), separators=(",", ":")) + "\n")
    return [
        Input("deployment", "Deployment (sample)", REVIEWS / "deployment-create.kube-apiserver-1.36.json", True),
        Input("pod10", "Pod, 10 containers", pod10, True),
        Input("privileged", "Privileged pod", REVIEWS / "pod-create-privileged.DERIVED.json", False),
    ]


# --- TLS material ------------------------------------------------------------------------------------------


def make_certificate():
    """A CA and a serving certificate for localhost and 127.0.0.1, ECDSA P-256 like Vigil's own self-signed
    one; both servers serve the same one so that the handshakes cost the same."""
    tls = WORK / "tls"
    tls.mkdir(parents=True, exist_ok=True)
    ext = tls / "leaf.ext"
    ext.write_text("subjectAltName=DNS:localhost,IP:127.0.0.1\nbasicConstraints=CA:FALSE\n"
                   "keyUsage=critical,digitalSignature\nextendedKeyUsage=serverAuth\n"
                   "subjectKeyIdentifier=hash\nauthorityKeyIdentifier=keyid\n")
    steps = [
        ["openssl", "req", "-x509", "-newkey", "ec", "-pkeyopt", "ec_paramgen_curve:P-256", "-nodes",
         "-keyout", "ca.key", "-out", "ca.pem", "-days", "30", "-subj", "/CN=vigil bench CA"],
        ["openssl", "req", "-new", "-newkey", "ec", "-pkeyopt", "ec_paramgen_curve:P-256", "-nodes",
         "-keyout", "key.pem", "-out", "leaf.csr", "-subj", "/CN=localhost"],
        ["openssl", "x509", "-req", "-in", "leaf.csr", "-CA", "ca.pem", "-CAkey", "ca.key",
         "-CAcreateserial", "-out", "cert.pem", "-days", "30", "-extfile", "leaf.ext"],
    ]
    for step in steps:
        done = subprocess.run(step, cwd=tls, capture_output=True, text=True)
        if done.returncode != 0:
            die(f"{' '.join(step)} failed:\n{done.stderr}")
    return tls / "ca.pem", tls / "cert.pem", tls / "key.pem"


# --- servers -----------------------------------------------------------------------------------------------

CLK_TCK = os.sysconf("SC_CLK_TCK")


def cpu_times(cpu):
    """(all, idle) jiffies of one CPU from /proc/stat; steal counts as busy, since others had the core."""
    if cpu is None:
        return None
    for line in Path("/proc/stat").read_text().splitlines():
        if line.startswith(f"cpu{cpu} "):
            values = [int(v) for v in line.split()[1:]]
            # user nice system idle iowait irq softirq steal guest guest_nice; guest time is inside user.
            return sum(values[:8]), values[3] + values[4]
    return None


def http_status(port, path, timeout=0.2):
    """The status of a plain-HTTP GET, or None if nothing answers yet."""
    try:
        with socket.create_connection(("127.0.0.1", port), timeout=timeout) as sock:
            sock.sendall(f"GET {path} HTTP/1.1\r\nHost: 127.0.0.1\r\nConnection: close\r\n\r\n".encode())
            head = sock.recv(64)
        match = re.match(rb"HTTP/1\.[01] (\d{3})", head)
        return int(match.group(1)) if match else None
    except OSError:
        return None


def tcp_open(port):
    try:
        with socket.create_connection(("127.0.0.1", port), timeout=0.2):
            return True
    except OSError:
        return False


class ServerDied(Exception):
    """A server that exited while it was being measured: a crash, or a signal from outside."""


class Server:
    """One server process: started pinned, timed to readiness, measured, stopped."""

    def __init__(self, name, cmd, ready, log_name):
        self.name, self.cmd, self.ready, self.log_name = name, cmd, ready, log_name
        self.proc = None
        self.ready_ms = None

    def start(self):
        log = open(WORK / "logs" / self.log_name, "ab")
        log.write(f"--- {datetime.datetime.now().isoformat()} {' '.join(map(str, self.cmd))}\n".encode())
        log.flush()
        env = {k: v for k, v in os.environ.items() if not k.startswith("VIGIL_") or k == "VIGIL_LOG"}
        started = time.perf_counter()
        # Vigil's alert stream (stdout) is written to a file, as in production; never to /dev/null.
        alerts = open(WORK / "logs" / f"{self.name}.alerts.jsonl", "ab")
        self.proc = spawn(pinned(SERVER_CPU, self.cmd), stdout=alerts, stderr=log, env=env)
        log.close()
        alerts.close()
        deadline = started + 30
        while not self.ready():
            if self.proc.poll() is not None:
                die(f"{self.name} exited with status {self.proc.returncode} before it was ready; "
                    f"see {WORK / 'logs' / self.log_name}:\n{self.log_tail()}")
            if time.perf_counter() > deadline:
                die(f"{self.name} was not ready within 30 s; see {WORK / 'logs' / self.log_name}")
            time.sleep(0.001)
        self.ready_ms = (time.perf_counter() - started) * 1000
        return self

    def log_tail(self, lines=20):
        text = (WORK / "logs" / self.log_name).read_text(errors="replace").splitlines()
        return "\n".join(text[-lines:])

    def alive(self):
        if self.proc.poll() is not None:
            raise ServerDied(f"{self.name} exited with status {self.proc.returncode} in the middle of a run "
                             f"(log: {WORK / 'logs' / self.log_name}); last log line: "
                             f"{self.log_tail(1)[:300]}")

    def cpu_seconds(self):
        stat = Path(f"/proc/{self.proc.pid}/stat").read_text()
        fields = stat[stat.rindex(")") + 2:].split()
        return (int(fields[11]) + int(fields[12])) / CLK_TCK

    def status_kib(self, field):
        for line in Path(f"/proc/{self.proc.pid}/status").read_text().splitlines():
            if line.startswith(field + ":"):
                return int(line.split()[1])
        return None

    def open_fds(self):
        return len(os.listdir(f"/proc/{self.proc.pid}/fd"))

    def stop(self):
        if self.proc is None:
            return
        if self.proc.poll() is None:
            self.proc.send_signal(signal.SIGTERM)
            try:
                self.proc.wait(timeout=5)
            except subprocess.TimeoutExpired:
                self.proc.kill()
                self.proc.wait()
        # The port must be free before the next server binds it.
        for _ in range(500):
            if not tcp_open(PORT):
                return
            time.sleep(0.01)
        die(f"port {PORT} still open after {self.name} stopped")


def vigil_server(policy, cert=None, key=None):
    cmd = [str(VIGIL), "serve", "--addr", f"127.0.0.1:{PORT}", "--metrics-addr", f"127.0.0.1:{METRICS_PORT}",
           "--policy", str(policy), "--shutdown-grace", "0s"]
    if cert:
        cmd += ["--tls-cert", str(cert), "--tls-key", str(key)]
    return Server("vigil", cmd, lambda: http_status(METRICS_PORT, "/readyz") == 200, "vigil.stderr.log")


def constant_server(cert, key):
    cmd = [str(CONSTANT), f"127.0.0.1:{PORT}", str(cert), str(key)]
    return Server("reference", cmd, lambda: tcp_open(PORT), "constant_server.stderr.log")


def check_answers(server, inputs, ca):
    """One request per input before the load: HTTP 200, the uid echoed, and the expected decision."""
    ctx = ssl.create_default_context(cafile=str(ca))
    for inp in inputs:
        conn = http.client.HTTPSConnection("127.0.0.1", PORT, context=ctx, timeout=10)
        try:
            conn.request("POST", "/validate", body=inp.body, headers={"Content-Type": "application/json"})
            resp = conn.getresponse()
            body = resp.read()
        except (OSError, http.client.HTTPException) as e:
            server.alive()
            die(f"{server.name}: {inp.key}: the check request failed: {e}")
        finally:
            conn.close()
        if resp.status != 200:
            die(f"{server.name}: {inp.key}: HTTP {resp.status}: {body[:300]!r}")
        if server.name != "vigil":
            continue
        answer = json.loads(body).get("response", {})
        if answer.get("uid") != inp.uid:
            die(f"vigil: {inp.key}: uid {answer.get('uid')!r} does not echo {inp.uid!r}")
        if answer.get("allowed") != inp.allowed:
            die(f"vigil: {inp.key}: allowed={answer.get('allowed')}, expected {inp.allowed}: {body[:400]!r}")


# --- load --------------------------------------------------------------------------------------------------

SUMMARY_RE = re.compile(r"finished in ([\d.]+)(\w+), ([\d.]+) req/s")
REQUESTS_RE = re.compile(r"requests: (\d+) total, (\d+) started, (\d+) done, (\d+) succeeded, (\d+) failed, "
                         r"(\d+) errored, (\d+) timeout")
TLS_RE = re.compile(r"TLS Protocol: (\S+)\s*\nCipher: (\S+)")
ALPN_RE = re.compile(r"Application protocol: (\S+)")
TLS_SEEN = {}


def percentile(sorted_values, q):
    """Nearest-rank percentile of an ascending list."""
    if not sorted_values:
        return float("nan")
    rank = max(1, -(-len(sorted_values) * q // 100))
    return sorted_values[int(rank) - 1]


def h2load(server, inp, conns, seconds, tag, rps=None, sample=None, streams=None):
    """One h2load run against the server; returns throughput, latencies, errors, and CPU figures.

    HTTP/1.1 keep-alive without `streams`; HTTP/2 (ALPN h2) with `streams` concurrent streams per connection.
    """
    server.alive()
    log = WORK / "runs" / f"{tag}.tsv"
    log.unlink(missing_ok=True)
    protocol = ["--h1"] if streams is None else ["-m", str(streams)]
    cmd = [H2LOAD, *protocol, "-c", str(conns), "-t", "1", "-D", f"{int(seconds * 1000)}ms",
           "--warm-up-time", f"{int(WARMUP_SECONDS * 1000)}ms",
           "-H", "content-type: application/json", "-d", str(inp.path), f"--log-file={log}",
           f"https://127.0.0.1:{PORT}/validate"]
    if rps is not None:
        cmd += ["--rps", f"{rps / conns:g}"]
    cpu = {}

    def mark_measurement_start():
        cpu["server0"] = server.cpu_seconds()
        cpu["core0"] = cpu_times(SERVER_CPU)
        cpu["wall0"] = time.perf_counter()

    usage0 = resource.getrusage(resource.RUSAGE_CHILDREN)
    wall0 = time.perf_counter()
    proc = spawn(pinned(LOAD_CPU, cmd), stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True)
    timer = threading.Timer(WARMUP_SECONDS, mark_measurement_start)
    timer.start()
    samples = []
    if sample:
        # Soak: sample the server every `sample` seconds while the load runs.
        next_at = time.perf_counter() + sample
        while proc.poll() is None:
            time.sleep(0.05)
            if time.perf_counter() >= next_at:
                samples.append((time.perf_counter() - wall0, server.status_kib("VmRSS"), server.open_fds()))
                next_at += sample
    try:
        out, _ = proc.communicate(timeout=seconds + WARMUP_SECONDS + 60)
    except subprocess.TimeoutExpired:
        proc.kill()
        die(f"h2load did not finish: {' '.join(cmd)}")
    cpu["server1"] = server.cpu_seconds()
    cpu["core1"] = cpu_times(SERVER_CPU)
    cpu["wall1"] = time.perf_counter()
    timer.join()
    wall = time.perf_counter() - wall0
    usage1 = resource.getrusage(resource.RUSAGE_CHILDREN)
    if proc.returncode != 0:
        die(f"h2load exited with status {proc.returncode}:\n{' '.join(cmd)}\n{out[-2000:]}")
    summary = SUMMARY_RE.search(out)
    counts = REQUESTS_RE.search(out)
    if not summary or not counts:
        die(f"cannot read h2load's summary:\n{out[-2000:]}")
    tls = TLS_RE.search(out)
    alpn = ALPN_RE.search(out)
    if tls:
        TLS_SEEN["tls"] = f"{tls.group(1)} {tls.group(2)}"
    if alpn:
        TLS_SEEN.setdefault("alpns", set()).add(alpn.group(1))
    total, started, done, succeeded, failed, errored, timeout = map(int, counts.groups())

    statuses = {}
    durations = []
    starts = []
    with open(log) as f:
        for line in f:
            parts = line.split("\t")
            if len(parts) < 3:
                continue
            starts.append(int(parts[0]))
            statuses[parts[1]] = statuses.get(parts[1], 0) + 1
            durations.append(int(parts[2]))
    durations_sorted = sorted(durations)
    measured = len(durations)
    non200 = {code: n for code, n in statuses.items() if code != "200"}
    # A run in which nothing was answered (a server that closes every connection, say) is an error too.
    no_answers = 1 if measured == 0 else 0
    errors = sum(non200.values()) + failed + errored + timeout + (total - done) + no_answers
    cpu_window = cpu["wall1"] - cpu.get("wall0", cpu["wall1"])
    server_cpu = cpu["server1"] - cpu.get("server0", cpu["server1"])
    load_cpu = (usage1.ru_utime + usage1.ru_stime) - (usage0.ru_utime + usage0.ru_stime)
    # How much of the server's core other processes (or the hypervisor) took while it was measured.
    others = float("nan")
    if cpu.get("core0") and cpu.get("core1"):
        all_ = (cpu["core1"][0] - cpu["core0"][0]) / CLK_TCK
        idle = (cpu["core1"][1] - cpu["core0"][1]) / CLK_TCK
        if all_ > 0:
            others = max(0.0, (all_ - idle - server_cpu) / all_)
    result = {
        "rps": float(summary.group(3)),
        "requests": measured,
        "p50_ms": percentile(durations_sorted, 50) / 1000,
        "p99_ms": percentile(durations_sorted, 99) / 1000,
        "p999_ms": percentile(durations_sorted, 99.9) / 1000,
        "max_ms": (durations_sorted[-1] / 1000) if durations_sorted else float("nan"),
        "errors": errors,
        "error_detail": {"non200": non200, "failed": failed, "errored": errored, "timeout": timeout,
                         "not_done": total - done, "no_answers": no_answers},
        "server_cpu_busy": server_cpu / cpu_window if cpu_window > 0 else float("nan"),
        "server_cpu_us_per_req": server_cpu * 1e6 / measured if measured else float("nan"),
        "load_cpu_busy": load_cpu / wall if wall > 0 else float("nan"),
        "others_on_server_cpu": others,
        "hwm_kib": server.status_kib("VmHWM"),
        "threads": len(os.listdir(f"/proc/{server.proc.pid}/task")),
    }
    if sample:
        result["samples"] = samples
        result["starts"] = starts
        result["durations"] = durations
    return result


# --- the benchmark -----------------------------------------------------------------------------------------


INCIDENTS = []
RETRIES = 2


def measure_point(make_server, name, inp, ca, kind, x, round_no, results):
    """One measurement of one server: a fresh process, one answer checked, one h2load run, stopped.

    A server that exits in the middle is recorded as an incident, and the run is done again (twice at most):
    on a shared machine something else may signal it, and one such run should not sink the whole benchmark.
    """
    for attempt in range(RETRIES + 1):
        server = make_server().start()
        try:
            r = measure_once(server, name, inp, ca, kind, x, round_no)
            server.alive()
        except ServerDied as e:
            INCIDENTS.append(f"round {round_no}, {kind} {inp.key} {x}: {e}")
            progress(f"{name}: {e}; {'running it again' if attempt < RETRIES else 'giving up'}")
            server.stop()
            continue
        server.stop()
        results.setdefault((name, kind, inp.key, x), []).append(r)
        return
    die(f"{name} kept exiting during {kind} {inp.key} {x}:\n" + "\n".join(INCIDENTS[-RETRIES - 1:]))


def measure_once(server, name, inp, ca, kind, x, round_no):
    check_answers(server, [inp], ca)
    tag = f"{name}-r{round_no}-{kind}-{inp.key}-{x}"
    if kind == "h2":
        conns, streams = x
        tag = f"{name}-r{round_no}-h2-{inp.key}-{conns}x{streams}"
        r = h2load(server, inp, conns, TPUT_SECONDS, tag, streams=streams)
        progress(f"{name:9} {inp.key:10} h2 {conns}x{streams:<3} {r['rps']:9.0f} req/s  "
                 f"server CPU {r['server_cpu_busy'] * 100:3.0f}% ({r['server_cpu_us_per_req']:.1f} us/req), "
                 f"others on its core {r['others_on_server_cpu'] * 100:3.0f}%, "
                 f"h2load CPU {r['load_cpu_busy'] * 100:3.0f}%{error_note(r)}")
    elif kind == "tput":
        r = h2load(server, inp, x, TPUT_SECONDS, tag)
        progress(f"{name:9} {inp.key:10} c={x:<3} {r['rps']:9.0f} req/s  "
                 f"server CPU {r['server_cpu_busy'] * 100:3.0f}% ({r['server_cpu_us_per_req']:.1f} us/req), "
                 f"others on its core {r['others_on_server_cpu'] * 100:3.0f}%, "
                 f"h2load CPU {r['load_cpu_busy'] * 100:3.0f}%{error_note(r)}")
    else:
        r = h2load(server, inp, LAT_CONNS, LAT_SECONDS, tag, rps=x)
        short = " SHORT OF RATE" if r["rps"] < x * RATE_SHORTFALL else ""
        progress(f"{name:9} {inp.key:10} {x}/s {r['rps']:7.0f} req/s  p50 {r['p50_ms']:.3f}  "
                 f"p99 {r['p99_ms']:.3f}  p99.9 {r['p999_ms']:.3f} ms, "
                 f"others on its core {r['others_on_server_cpu'] * 100:3.0f}%{short}{error_note(r)}")
    return r


def error_note(r):
    return f"  ERRORS {r['errors']}: {r['error_detail']}" if r["errors"] else ""


def progress(message):
    print(f"  {message}", file=sys.stderr, flush=True)


def med(values):
    values = [v for v in values if v is not None]
    return statistics.median(values) if values else float("nan")


def git_description():
    def git(*args):
        done = subprocess.run(["git", *args], cwd=ROOT, capture_output=True, text=True)
        return done.stdout.strip() if done.returncode == 0 else ""
    commit = git("rev-parse", "--short", "HEAD") or "unknown"
    dirty = git("status", "--porcelain", "--", "src", "Cargo.toml", "Cargo.lock", "bench/constant_server.rs")
    return commit + (" with uncommitted changes to src/Cargo" if dirty else "")


def machine_description():
    model = "unknown CPU"
    try:
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            if line.startswith("model name"):
                model = line.split(":", 1)[1].strip()
                break
    except OSError:
        pass
    mem = os.sysconf("SC_PAGE_SIZE") * os.sysconf("SC_PHYS_PAGES") / 2**30
    return f"{os.cpu_count()} x {model}, {mem:.0f} GiB, Linux {platform.release()}"


def tool_version(cmd):
    done = subprocess.run(cmd, capture_output=True, text=True)
    return (done.stdout or done.stderr).strip().splitlines()[0] if done.returncode == 0 else "unknown"


def fmt(value, spec):
    return "n/a" if value is None or value != value else format(value, spec)


def report(inputs, results, ready, started_at):
    lines = []
    out = lines.append
    runs = RUNS
    out("Vigil benchmark")
    out(f"  commit   {git_description()}; {datetime.datetime.now().astimezone().isoformat(timespec='seconds')}")
    if os.environ.get("BENCH_VIGIL_BIN") or os.environ.get("BENCH_CONSTANT_BIN"):
        out(f"  binaries {VIGIL} and {CONSTANT} (given; not built from this tree)")
    out(f"  machine  {machine_description()}; 1-minute load average {LOAD_AT_START:.2f} at start, "
        f"{os.getloadavg()[0]:.2f} at end")
    threads = {name: sorted({r["threads"] for key, runs_ in results.items() if key[0] == name for r in runs_})
               for name in ("vigil", "reference")}
    out(f"  pinning  {pinning_note()}; threads under load: vigil {threads['vigil']}, "
        f"reference {threads['reference']}")
    out(f"  load     {tool_version([H2LOAD, '--version'])}, HTTP/1.1 keep-alive over TLS "
        f"and HTTP/2 ({TLS_SEEN.get('tls', '?')}, ALPN {' and '.join(sorted(TLS_SEEN.get('alpns', {'?'})))}, "
        f"ECDSA P-256 certificate); 1 h2load thread; no HTTP/1.1 pipelining")
    out(f"  runs     each figure is the median of {runs} run{'s' if runs != 1 else ''}"
        f"{' (QUICK=1: a smoke run, not a measurement)' if QUICK else ''}; at every point Vigil and the "
        f"reference take turns, each a freshly started process; throughput {TPUT_SECONDS:g} s and fixed rate {LAT_SECONDS:g} s per run, "
        f"after {WARMUP_SECONDS:g} s of warm-up")
    out(f"  policy   bench/policy.yaml (enforce, baseline, registry rules); alerts (stdout) and operational "
        f"log (stderr) to files, as in production")
    out("  inputs   " + "; ".join(i.describe() for i in inputs))
    others = med([r["others_on_server_cpu"] for key, runs_ in results.items() for r in runs_])
    if others == others and others > CONTENDED:
        out(f"  WARNING  other processes took a median {others * 100:.0f}% of the server's core during the runs: "
            f"the machine was busy, and absolute figures (latency above all) say more about it than about Vigil; "
            f"trust the CPU cost per request most, and rerun on a quiet machine")
    out("")

    def pct(values):
        return fmt(med(values) * 100, "3.0f") + "%"

    out("Throughput (requests/s with every connection kept busy; ratio = median of the per-round Vigil/reference "
        "ratios)")
    out(f"  {'input':22} {'conns':>5} {'vigil':>8} {'reference':>9} {'ratio':>6} | {'server CPU us/req: vigil':>24} "
        f"{'ref':>5} {'ref/vigil':>9} | {'others on server core':>21} | {'h2load CPU':>10}")
    for inp in inputs:
        for conns in CONNS:
            v = results.get(("vigil", "tput", inp.key, conns), [])
            r = results.get(("reference", "tput", inp.key, conns), [])
            ratios = [a["rps"] / b["rps"] for a, b in zip(v, r) if b["rps"] > 0]
            cost = [b["server_cpu_us_per_req"] / a["server_cpu_us_per_req"] for a, b in zip(v, r)
                    if a["server_cpu_us_per_req"] > 0]
            bound = max([x["load_cpu_busy"] for x in v + r] or [0]) >= LOAD_BOUND
            out(f"  {inp.label:22} {conns:>5} {fmt(med([x['rps'] for x in v]), '8.0f')} "
                f"{fmt(med([x['rps'] for x in r]), '9.0f')} {fmt(med(ratios), '6.2f')} | "
                f"{fmt(med([x['server_cpu_us_per_req'] for x in v]), '24.1f')} "
                f"{fmt(med([x['server_cpu_us_per_req'] for x in r]), '5.1f')} {fmt(med(cost), '9.2f')} | "
                f"{pct([x['others_on_server_cpu'] for x in v]):>11} / {pct([x['others_on_server_cpu'] for x in r]):<7} | "
                f"{pct([x['load_cpu_busy'] for x in v]):>4} / {pct([x['load_cpu_busy'] for x in r]):<4}"
                f"{'  h2load-bound' if bound else ''}")
    out("  server CPU us/req: the server's CPU time over the requests answered, the figure least moved by noise;")
    out("  ref/vigil: the share of the reference's speed that Vigil's CPU cost allows. Others on server core: the")
    out("  share of the server's core that other processes or the hypervisor took (vigil / reference runs).")
    out(f"  h2load-bound: h2load at >= {LOAD_BOUND * 100:.0f}% of its core, so the throughput there is a lower bound.")
    out("")

    out("Throughput over HTTP/2 (conns x concurrent streams on each; requests/s; ratio as above)")
    out(f"  {'input':22} {'load':>5} {'vigil':>8} {'reference':>9} {'ratio':>6} | {'server CPU us/req: vigil':>24} "
        f"{'ref':>5} {'ref/vigil':>9} | {'others on server core':>21} | {'h2load CPU':>10}")
    for inp in inputs:
        for point in H2_POINTS:
            v = results.get(("vigil", "h2", inp.key, point), [])
            r = results.get(("reference", "h2", inp.key, point), [])
            ratios = [a["rps"] / b["rps"] for a, b in zip(v, r) if b["rps"] > 0]
            cost = [b["server_cpu_us_per_req"] / a["server_cpu_us_per_req"] for a, b in zip(v, r)
                    if a["server_cpu_us_per_req"] > 0]
            bound = max([x["load_cpu_busy"] for x in v + r] or [0]) >= LOAD_BOUND
            label = f"{point[0]}x{point[1]}"
            out(f"  {inp.label:22} {label:>5} {fmt(med([x['rps'] for x in v]), '8.0f')} "
                f"{fmt(med([x['rps'] for x in r]), '9.0f')} {fmt(med(ratios), '6.2f')} | "
                f"{fmt(med([x['server_cpu_us_per_req'] for x in v]), '24.1f')} "
                f"{fmt(med([x['server_cpu_us_per_req'] for x in r]), '5.1f')} {fmt(med(cost), '9.2f')} | "
                f"{pct([x['others_on_server_cpu'] for x in v]):>11} / {pct([x['others_on_server_cpu'] for x in r]):<7} | "
                f"{pct([x['load_cpu_busy'] for x in v]):>4} / {pct([x['load_cpu_busy'] for x in r]):<4}"
                f"{'  h2load-bound' if bound else ''}")
    out("")

    out(f"Latency at a fixed rate ({LAT_CONNS} connections; ms, from when h2load sends each request)")
    out(f"  {'input':22} {'rate/s':>6} | {'vigil: p50':>10} {'p99':>7} {'p99.9':>7} {'achieved':>9} | "
        f"{'reference: p50':>14} {'p99':>7} {'p99.9':>7} | {'others on server core':>21}")
    for inp in inputs:
        for rate in RATES:
            v = results.get(("vigil", "lat", inp.key, rate), [])
            r = results.get(("reference", "lat", inp.key, rate), [])
            achieved = med([x["rps"] for x in v])
            flag = "!" if achieved < rate * RATE_SHORTFALL else " "
            out(f"  {inp.label:22} {rate:>6} | {fmt(med([x['p50_ms'] for x in v]), '10.3f')} "
                f"{fmt(med([x['p99_ms'] for x in v]), '7.3f')} {fmt(med([x['p999_ms'] for x in v]), '7.3f')} "
                f"{fmt(achieved, '8.0f')}{flag} | {fmt(med([x['p50_ms'] for x in r]), '14.3f')} "
                f"{fmt(med([x['p99_ms'] for x in r]), '7.3f')} {fmt(med([x['p999_ms'] for x in r]), '7.3f')} | "
                f"{pct([x['others_on_server_cpu'] for x in v]):>11} / {pct([x['others_on_server_cpu'] for x in r]):<7}")
    out(f"  !: Vigil answered fewer than {RATE_SHORTFALL * 100:.0f}% of the requests asked for; "
        f"the latencies are those of a saturated server.")
    out("")

    def peak(name, keys):
        per_round = []
        for i in range(RUNS):
            values = [runs_[i]["hwm_kib"] for key, runs_ in results.items()
                      if key[0] == name and key in keys and len(runs_) > i and runs_[i]["hwm_kib"]]
            if values:
                per_round.append(max(values))
        return med(per_round) / 1024

    every = [key for key in results]
    hwm_5000 = peak("vigil", [("vigil", "lat", "deployment", 5000)])
    hwm_v = peak("vigil", every)
    hwm_r = peak("reference", every)
    out(f"Peak RSS (VmHWM; a fresh process per run)   vigil {fmt(hwm_5000, '.1f')} MiB at 5,000/s with the "
        f"Deployment, {fmt(hwm_v, '.1f')} MiB at most over every load   (reference {fmt(hwm_r, '.1f')} MiB at most)")
    ready_cert, ready_self = ready
    out(f"Start to /readyz 200 (fork+exec to first 200, polled every 1 ms; median of {len(ready_cert)})   "
        f"with --tls-cert {fmt(med(ready_cert), '.1f')} ms (min {fmt(min(ready_cert), '.1f')}, "
        f"max {fmt(max(ready_cert), '.1f')})   self-signed {fmt(med(ready_self), '.1f')} ms")

    error_lines = []
    total_errors = 0
    for key, runs_ in sorted(results.items(), key=lambda kv: str(kv[0])):
        if len(key) < 3:
            continue
        for i, r in enumerate(runs_):
            if r["errors"]:
                total_errors += r["errors"]
                error_lines.append(f"    {key[0]} {key[1]} {key[2]} {key[3]} run {i + 1}: {r['errors']} "
                                   f"errors {r['error_detail']}")
    total_requests = sum(r["requests"] for key, runs_ in results.items() if len(key) >= 3 for r in runs_)
    out(f"Errors (non-200 responses, failed or unfinished requests)   {total_errors} "
        f"in {total_requests} measured requests")
    lines.extend(error_lines)
    if INCIDENTS:
        out(f"Incidents: a server exited mid-run {len(INCIDENTS)} time(s); each such run was done again")
        lines.extend(f"    {incident}" for incident in INCIDENTS)
    out("")

    def ratio(kind, key, x):
        return med([a["rps"] / b["rps"] for a, b in zip(results.get(("vigil", kind, key, x), []),
                                                       results.get(("reference", kind, key, x), []))
                    if b["rps"] > 0])
    p99_5000 = {inp.key: med([x["p99_ms"] for x in results.get(("vigil", "lat", inp.key, 5000), [])])
                for inp in inputs}
    lat_errors = sum(r["errors"] for key, runs_ in results.items()
                     if key[0] == "vigil" and len(key) >= 3 and key[1] == "lat" for r in runs_)

    def verdict(ok):
        return "met" if ok else "MISSED"

    out("Targets")
    for key, label in (("deployment", "Deployment"), ("pod10", "10-container pod")):
        want = TARGETS["ratio"][key]
        for kind, x, load in [("tput", 16, "HTTP/1.1, 16 conns"), *[("h2", p, f"HTTP/2, {p[0]}x{p[1]}")
                                                                   for p in H2_POINTS]]:
            got = ratio(kind, key, x)
            what = f"throughput ratio >= {want} ({label}, {load})"
            out(f"  {what:56}{fmt(got, '.2f'):>8}   {verdict(got >= want)}")
    worst = max(p99_5000.values())
    out(f"  p99 <= {TARGETS['p99_5000_ms']:g} ms at 5,000/s, no errors                     "
        f"{fmt(p99_5000['deployment'], '.3f'):>8}   {verdict(p99_5000['deployment'] <= TARGETS['p99_5000_ms'] and lat_errors == 0)}"
        f"  (Deployment; worst input {fmt(worst, '.3f')} ms; {lat_errors} errors)")
    out(f"  peak RSS <= {TARGETS['rss_mib']:g} MiB (the most over every load)           "
        f"{fmt(hwm_v, '.1f'):>8}   {verdict(hwm_v <= TARGETS['rss_mib'])}")
    out(f"  start to ready <= {TARGETS['ready_ms']:g} ms (with --tls-cert)              "
        f"{fmt(med(ready_cert), '.1f'):>8}   {verdict(med(ready_cert) <= TARGETS['ready_ms'])}")
    out("")
    out(f"Total time {time.perf_counter() - started_at:.0f} s; raw h2load logs and server logs in {WORK}")
    return "\n".join(lines)


def measure_ready(policy, cert, key):
    """Start-to-ready, measured on its own: a fresh process each time, nothing else running."""
    with_cert, self_signed = [], []
    for _ in range(START_RUNS):
        for server, bucket in ((vigil_server(policy, cert, key), with_cert), (vigil_server(policy), self_signed)):
            server.start()
            bucket.append(server.ready_ms)
            server.stop()
    return with_cert, self_signed


def preflight():
    for binary in (VIGIL, CONSTANT):
        if not binary.is_file():
            die(f"{binary} is missing; run bench/run.sh, which builds it")
    if shutil.which(H2LOAD) is None:
        die(f"{H2LOAD} not found; run bench/run.sh, which installs it")
    if shutil.which("openssl") is None:
        die("openssl not found")
    for port in (PORT, METRICS_PORT):
        if tcp_open(port):
            die(f"port {port} is already in use; set BENCH_PORT / BENCH_METRICS_PORT")
    for sub in ("logs", "runs"):
        (WORK / sub).mkdir(parents=True, exist_ok=True)
    for old in (WORK / "runs").glob("*.tsv"):
        old.unlink()


LOAD_AT_START = os.getloadavg()[0]
# Past this median share of the server's core taken by other processes, the report warns that the machine
# was too busy for its absolute figures to mean much.
CONTENDED = 0.10
# h2load busier than this is itself the limit, and the reference's figure (and so the ratio) is a bound.
LOAD_BOUND = 0.9


def main_bench():
    started_at = time.perf_counter()
    preflight()
    inputs = make_inputs()
    ca, cert, key = make_certificate()
    policy = BENCH / "policy.yaml"
    if PIN:
        os.sched_setaffinity(0, {LOAD_CPU})
    print(f"bench: {pinning_note()}", file=sys.stderr)
    print(f"bench: {RUNS} round(s); writing raw results under {WORK}", file=sys.stderr, flush=True)

    ready = measure_ready(policy, cert, key)
    servers = {"vigil": lambda: vigil_server(policy, cert, key), "reference": lambda: constant_server(cert, key)}
    points = [("tput", inp, conns) for inp in inputs for conns in CONNS]
    points += [("h2", inp, point) for inp in inputs for point in H2_POINTS]
    points += [("lat", inp, rate) for inp in inputs for rate in RATES]
    results = {}
    for round_no in range(1, RUNS + 1):
        print(f"bench: round {round_no} of {RUNS}", file=sys.stderr, flush=True)
        for i, (kind, inp, x) in enumerate(points):
            # Vigil and the reference take turns at every point, and which goes first alternates, so that
            # the machine's drifting noise falls on both alike.
            order = ["vigil", "reference"] if (round_no + i) % 2 else ["reference", "vigil"]
            for name in order:
                measure_point(servers[name], name, inp, ca, kind, x, round_no, results)

    table = report(inputs, results, ready, started_at)
    (WORK / "results.txt").write_text(table + "\n")
    serialisable = {" ".join("x".join(map(str, p)) if isinstance(p, tuple) else str(p) for p in k): v
                    for k, v in results.items()}
    (WORK / "results.json").write_text(json.dumps({"results": serialisable, "ready_ms": ready}, indent=1))
    print(table, flush=True)


class KubeletMount:
    """A directory laid out as kubelet mounts a ConfigMap or Secret: timestamped directories, a `..data`
    symlink swapped atomically to the newest, and each file a symlink into `..data`."""

    def __init__(self, root, files):
        self.root = Path(root)
        self.root.mkdir(parents=True, exist_ok=True)
        self.generation = 0
        self.swap(files)
        for name in files:
            link = self.root / name
            if not link.is_symlink():
                link.symlink_to(f"..data/{name}")

    def swap(self, files):
        self.generation += 1
        stamp = f"..{time.strftime('%Y_%m_%d_%H_%M_%S')}.{self.generation:04d}"
        target = self.root / stamp
        target.mkdir()
        for name, data in files.items():
            (target / name).write_bytes(data)
        tmp = self.root / "..data_tmp"
        if tmp.is_symlink():
            tmp.unlink()
        tmp.symlink_to(stamp)
        old = os.readlink(self.root / "..data") if (self.root / "..data").is_symlink() else None
        os.replace(tmp, self.root / "..data")
        if old:
            shutil.rmtree(self.root / old, ignore_errors=True)


def new_leaf(tls, n):
    """A new serving certificate from the bench CA, for a rotation: (cert PEM, key PEM)."""
    key, csr, cert = tls / f"rot{n}.key", tls / f"rot{n}.csr", tls / f"rot{n}.pem"
    steps = [
        ["openssl", "req", "-new", "-newkey", "ec", "-pkeyopt", "ec_paramgen_curve:P-256", "-nodes",
         "-keyout", key.name, "-out", csr.name, "-subj", "/CN=localhost"],
        ["openssl", "x509", "-req", "-in", csr.name, "-CA", "ca.pem", "-CAkey", "ca.key",
         "-CAcreateserial", "-out", cert.name, "-days", "30", "-extfile", "leaf.ext"],
    ]
    for step in steps:
        done = subprocess.run(step, cwd=tls, capture_output=True, text=True)
        if done.returncode != 0:
            die(f"{' '.join(step)} failed:\n{done.stderr}")
    return cert.read_bytes(), key.read_bytes()


def metric(port, series):
    """One sample of Vigil's /metrics, 0 when absent."""
    try:
        conn = http.client.HTTPConnection("127.0.0.1", port, timeout=5)
        conn.request("GET", "/metrics")
        text = conn.getresponse().read().decode()
    except (OSError, http.client.HTTPException):
        return None
    for line in text.splitlines():
        if line.startswith(series + " "):
            return float(line.split()[-1])
    return 0.0


def main_soak():
    """Vigil alone at a fixed rate for a long time, with its policy and certificate swapped every
    SOAK_RELOAD seconds the way kubelet updates mounts: RSS, open files and p99 per interval, to catch
    leaks, and every reload counted."""
    seconds = env_num("SOAK_SECONDS", 600.0)
    rate = env_num("SOAK_RATE", 2000, int)
    interval = env_num("SOAK_INTERVAL", 10.0)
    reload_every = env_num("SOAK_RELOAD", 30.0)
    preflight()
    if PIN:
        os.sched_setaffinity(0, {LOAD_CPU})
    inputs = make_inputs()
    ca, cert, key = make_certificate()
    soak = WORK / "soak"
    shutil.rmtree(soak, ignore_errors=True)
    base_policy = (BENCH / "policy.yaml").read_bytes()
    policies = [base_policy, base_policy + b"\n# soak: the same rules, a different text\n"]
    policy_mount = KubeletMount(soak / "policy", {"policy.yaml": policies[0]})
    tls_mount = KubeletMount(soak / "tls", {"tls.crt": cert.read_bytes(), "tls.key": key.read_bytes()})
    server = vigil_server(policy_mount.root / "policy.yaml", tls_mount.root / "tls.crt", tls_mount.root / "tls.key").start()
    check_answers(server, inputs, ca)
    print(f"bench: soak: {pinning_note()}", file=sys.stderr)
    print(f"bench: soak: Deployment review at {rate}/s over {LAT_CONNS} connections for {seconds:g} s, "
          f"policy and certificate swapped every {reload_every:g} s", file=sys.stderr, flush=True)

    stop = threading.Event()
    swaps = {"policy": 0, "certificate": 0}

    def reloader():
        n = 0
        while not stop.wait(reload_every):
            n += 1
            policy_mount.swap({"policy.yaml": policies[n % 2]})
            swaps["policy"] += 1
            cert_pem, key_pem = new_leaf(WORK / "tls", n)
            tls_mount.swap({"tls.crt": cert_pem, "tls.key": key_pem})
            swaps["certificate"] += 1

    thread = threading.Thread(target=reloader, daemon=True)
    thread.start()
    r = h2load(server, inputs[0], LAT_CONNS, seconds, "soak", rps=rate, sample=interval)
    stop.set()
    thread.join()
    time.sleep(3)
    reloads = {
        "policy ok": metric(METRICS_PORT, 'vigil_policy_reloads_total{result="success"}'),
        "policy errors": metric(METRICS_PORT, 'vigil_policy_reloads_total{result="error"}'),
        "certificate ok": metric(METRICS_PORT, 'vigil_certificate_reloads_total{result="success"}'),
        "certificate errors": metric(METRICS_PORT, 'vigil_certificate_reloads_total{result="error"}'),
    }
    hwm = server.status_kib("VmHWM")
    server.stop()
    t0 = min(r["starts"]) if r["starts"] else 0
    buckets = {}
    for start, duration in zip(r["starts"], r["durations"]):
        buckets.setdefault(int((start - t0) / 1e6 // interval), []).append(duration)
    print(f"Vigil soak: {r['requests']} requests at {r['rps']:.0f}/s, {r['errors']} errors, "
          f"peak RSS {hwm / 1024:.1f} MiB")
    print(f"  swaps made: {swaps['policy']} policy, {swaps['certificate']} certificate; "
          f"Vigil counted: " + ", ".join(f"{k} {v:g}" if v is not None else f"{k} ?" for k, v in reloads.items())
          + " (the first load counts as one ok)")
    print(f"  {'t (s)':>7} {'RSS MiB':>8} {'fds':>5}   {'interval':>8} {'p50 ms':>7} {'p99 ms':>7} {'p99.9 ms':>8}")
    for i, (t, rss, fds) in enumerate(r["samples"]):
        durations = sorted(buckets.get(i, []))
        print(f"  {t:7.0f} {rss / 1024:8.1f} {fds:5d}   {i * interval:6.0f} s "
              f"{percentile(durations, 50) / 1000:7.3f} {percentile(durations, 99) / 1000:7.3f} "
              f"{percentile(durations, 99.9) / 1000:8.3f}")
    if r["samples"]:
        first, last = r["samples"][0][1], r["samples"][-1][1]
        print(f"  RSS grew {(last - first) / 1024:+.1f} MiB from the first sample to the last")
    failed = r["errors"] or reloads["policy errors"] or reloads["certificate errors"]
    if r["errors"]:
        print(f"  ERRORS: {r['error_detail']}")
    if failed:
        sys.exit(1)


if __name__ == "__main__":
    mode = sys.argv[1] if len(sys.argv) > 1 else "bench"
    try:
        if mode == "bench":
            main_bench()
        elif mode == "soak":
            main_soak()
        else:
            die(f"unknown mode {mode!r}; use no argument (the benchmark) or 'soak'")
    except ServerDied as e:
        die(str(e))
