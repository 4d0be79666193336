//! A real Kubernetes control plane for the end-to-end tests, and Vigil run as the chart's Deployment would
//! run it.
//!
//! kube-apiserver and etcd are the real ones, built from their Go modules by `scripts/control-plane/build.sh`
//! (which `make test` runs through `scripts/test-deps.sh`) and cached under `~/.cache/vigil` by version.
//! They listen on loopback only. Services get loopback ClusterIPs (`127.0.100.0/24`), so the API server
//! calls the chart's webhook configurations unchanged at `https://<ClusterIP>:<service port>`, and Vigil,
//! run as a plain process on that address with the Secret and ConfigMap laid out as kubelet mounts them,
//! answers. There is no kubelet, scheduler or controller-manager: pods stay Pending, and a namespace's
//! `default` ServiceAccount is made by [`Cluster::namespace`].
//!
//! `VIGIL_KUBERNETES` picks the version (default [`KUBERNETES_DEFAULT`]). A missing binary or a control
//! plane that does not start fails the test with the reason; nothing is skipped.

#![allow(dead_code)] // each test file uses its own part of this module

use std::fs;
use std::io::{Read as _, Write as _};
use std::net::{SocketAddr, TcpListener, TcpStream};
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::sync::{Mutex, MutexGuard};
use std::time::{Duration, Instant};

use base64::Engine as _;
use serde_json::Value;

/// The Kubernetes release the suite runs against unless `VIGIL_KUBERNETES` names another.
pub const KUBERNETES_DEFAULT: &str = "1.37.2";

/// Tokens of the users the API server knows (`--token-auth-file`): name, token, groups.
pub const USERS: &[(&str, &str, &str)] = &[
    ("admin", "vigil-e2e-admin-token", "system:masters"),
    ("dev", "vigil-e2e-dev-token", "developers"),
    ("sre-alice", "vigil-e2e-sre-token", "sre"),
];

/// One control plane at a time: the webhook configurations of one test would judge another's objects,
/// and Vigil binds the Service's ClusterIP and port.
static SERIAL: Mutex<()> = Mutex::new(());

pub fn root() -> &'static Path {
    Path::new(env!("CARGO_MANIFEST_DIR"))
}

pub fn kubernetes_version() -> String {
    std::env::var("VIGIL_KUBERNETES").unwrap_or_else(|_| KUBERNETES_DEFAULT.to_string())
}

fn cache_dir() -> PathBuf {
    match std::env::var_os("VIGIL_CACHE") {
        Some(dir) => PathBuf::from(dir),
        None => PathBuf::from(std::env::var_os("HOME").expect("HOME is set")).join(".cache/vigil"),
    }
}

/// A control-plane binary of the version under test.
fn control_plane_bin(name: &str) -> PathBuf {
    let version = kubernetes_version();
    let path = cache_dir()
        .join("control-plane")
        .join(format!("v{version}"))
        .join("bin")
        .join(name);
    if !path.is_file() {
        panic!(
            "{} is missing: run `make test` (scripts/test-deps.sh builds kube-apiserver and etcd {version} \
             with scripts/control-plane/build.sh), or `scripts/control-plane/build.sh {version}`",
            path.display()
        );
    }
    path
}

/// helm or kubectl, as `scripts/test-deps.sh` installs them under `.cache/bin`.
pub fn tool(name: &str) -> PathBuf {
    let path = root().join(".cache/bin").join(name);
    if !path.is_file() {
        panic!(
            "{} is missing: run `make test`, which installs it with scripts/test-deps.sh",
            path.display()
        );
    }
    path
}

/// A port nobody listens on now, on 127.0.0.1.
pub fn free_port() -> u16 {
    TcpListener::bind("127.0.0.1:0")
        .and_then(|l| l.local_addr())
        .expect("a free loopback port")
        .port()
}

/// What a command printed, and how it ended.
pub struct Out {
    pub what: String,
    pub code: Option<i32>,
    pub stdout: String,
    pub stderr: String,
}

impl Out {
    /// Stdout of a command that must succeed.
    #[track_caller]
    pub fn ok(&self) -> &str {
        assert_eq!(
            self.code,
            Some(0),
            "{} failed:\nstdout: {}\nstderr: {}",
            self.what,
            self.stdout,
            self.stderr
        );
        &self.stdout
    }

    /// Stderr of a command that must fail.
    #[track_caller]
    pub fn err(&self) -> &str {
        assert_ne!(
            self.code,
            Some(0),
            "{} should have failed:\nstdout: {}\nstderr: {}",
            self.what,
            self.stdout,
            self.stderr
        );
        &self.stderr
    }

    pub fn json(&self) -> Value {
        serde_json::from_str(self.ok())
            .unwrap_or_else(|e| panic!("{}: {e}: {}", self.what, self.stdout))
    }
}

/// Runs a command with optional stdin, bounded to two minutes.
pub fn run(cmd: &mut Command, stdin: Option<&str>) -> Out {
    let what = format!("{cmd:?}");
    let mut child = cmd
        .stdin(if stdin.is_some() {
            Stdio::piped()
        } else {
            Stdio::null()
        })
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap_or_else(|e| panic!("cannot run {what}: {e}"));
    if let Some(input) = stdin {
        child
            .stdin
            .take()
            .unwrap()
            .write_all(input.as_bytes())
            .unwrap();
    }
    let (mut out, mut err) = (child.stdout.take().unwrap(), child.stderr.take().unwrap());
    let reader = std::thread::spawn(move || {
        let mut s = String::new();
        let _ = out.read_to_string(&mut s);
        s
    });
    let mut stderr = String::new();
    let _ = err.read_to_string(&mut stderr);
    let deadline = Instant::now() + Duration::from_secs(120);
    let status = loop {
        if let Some(status) = child.try_wait().unwrap() {
            break status;
        }
        if Instant::now() > deadline {
            let _ = child.kill();
            panic!("{what} did not finish in 120 s");
        }
        std::thread::sleep(Duration::from_millis(20));
    };
    Out {
        what,
        code: status.code(),
        stdout: reader.join().unwrap(),
        stderr,
    }
}

/// Polls `check` every 100 ms until it returns `Some`, or fails with `what` after `limit`.
#[track_caller]
pub fn wait_for<T>(what: &str, limit: Duration, mut check: impl FnMut() -> Option<T>) -> T {
    let deadline = Instant::now() + limit;
    loop {
        if let Some(v) = check() {
            return v;
        }
        if Instant::now() > deadline {
            panic!("timed out after {limit:?} waiting for {what}");
        }
        std::thread::sleep(Duration::from_millis(100));
    }
}

/// etcd and kube-apiserver on loopback, with an admin kubeconfig, token users and an audit log.
pub struct Cluster {
    _serial: MutexGuard<'static, ()>,
    pub dir: tempfile::TempDir,
    etcd: Child,
    apiserver: Child,
    pub url: String,
    pub kubeconfig: PathBuf,
    pub audit_log: PathBuf,
}

impl Cluster {
    /// Starts a fresh control plane; it is ready (`/readyz`) when this returns.
    pub fn start() -> Cluster {
        let serial = SERIAL.lock().unwrap_or_else(|e| e.into_inner());
        let dir = tempfile::tempdir().expect("temp dir");
        let d = dir.path();
        let started = Instant::now();

        let (client, peer) = (free_port(), free_port());
        let etcd = Command::new(control_plane_bin("etcd"))
            .args([
                "--name=vigil-e2e",
                &format!("--data-dir={}", d.join("etcd").display()),
                &format!("--listen-client-urls=http://127.0.0.1:{client}"),
                &format!("--advertise-client-urls=http://127.0.0.1:{client}"),
                &format!("--listen-peer-urls=http://127.0.0.1:{peer}"),
                &format!("--initial-advertise-peer-urls=http://127.0.0.1:{peer}"),
                &format!("--initial-cluster=vigil-e2e=http://127.0.0.1:{peer}"),
                "--unsafe-no-fsync",
                "--log-level=error",
            ])
            .stdout(Stdio::null())
            .stderr(fs::File::create(d.join("etcd.log")).unwrap())
            .spawn()
            .expect("etcd starts");

        let sa_key = d.join("sa.key");
        run(
            Command::new("openssl")
                .args(["genrsa", "-out"])
                .arg(&sa_key)
                .arg("2048"),
            None,
        )
        .ok();
        let tokens: String = USERS
            .iter()
            .map(|(user, token, groups)| format!("{token},{user},{user}-uid,\"{groups}\"\n"))
            .collect();
        fs::write(d.join("tokens.csv"), tokens).unwrap();
        fs::write(
            d.join("audit-policy.yaml"),
            "apiVersion: audit.k8s.io/v1\nkind: Policy\nomitStages: [RequestReceived]\nrules:\n  - level: Metadata\n",
        )
        .unwrap();
        let audit_log = d.join("audit.log");
        let port = free_port();
        let apiserver = Command::new(control_plane_bin("kube-apiserver"))
            .args([
                &format!("--etcd-servers=http://127.0.0.1:{client}"),
                "--bind-address=127.0.0.1",
                "--advertise-address=127.0.0.1",
                "--endpoint-reconciler-type=none",
                &format!("--secure-port={port}"),
                &format!("--cert-dir={}", d.join("pki").display()),
                "--service-account-issuer=https://kubernetes.default.svc",
                &format!("--service-account-key-file={}", sa_key.display()),
                &format!("--service-account-signing-key-file={}", sa_key.display()),
                "--authorization-mode=RBAC",
                &format!("--token-auth-file={}", d.join("tokens.csv").display()),
                &format!(
                    "--audit-policy-file={}",
                    d.join("audit-policy.yaml").display()
                ),
                &format!("--audit-log-path={}", audit_log.display()),
                "--allow-privileged=true",
                "--service-cluster-ip-range=127.0.100.0/24",
            ])
            .stdout(Stdio::null())
            .stderr(fs::File::create(d.join("kube-apiserver.log")).unwrap())
            .spawn()
            .expect("kube-apiserver starts");

        let url = format!("https://127.0.0.1:{port}");
        let kubeconfig = d.join("kubeconfig");
        let users: String = USERS
            .iter()
            .map(|(user, token, _)| format!("- name: {user}\n  user:\n    token: {token}\n"))
            .collect();
        fs::write(
            &kubeconfig,
            format!(
                "apiVersion: v1\nkind: Config\nclusters:\n- name: e2e\n  cluster:\n    server: {url}\n    \
                 insecure-skip-tls-verify: true\nusers:\n{users}contexts:\n- name: e2e\n  context:\n    \
                 cluster: e2e\n    user: admin\ncurrent-context: e2e\n"
            ),
        )
        .unwrap();

        let mut cluster = Cluster {
            _serial: serial,
            dir,
            etcd,
            apiserver,
            url,
            kubeconfig,
            audit_log,
        };
        let ready = Instant::now() + Duration::from_secs(90);
        loop {
            if let Some(status) = cluster.apiserver.try_wait().unwrap() {
                panic!(
                    "kube-apiserver {} exited ({status}) before it was ready:\n{}",
                    kubernetes_version(),
                    cluster.log_tail("kube-apiserver.log")
                );
            }
            if let Some(status) = cluster.etcd.try_wait().unwrap() {
                panic!("etcd exited ({status}):\n{}", cluster.log_tail("etcd.log"));
            }
            let out = cluster.kubectl(&["get", "--raw", "/readyz"]);
            if out.code == Some(0) {
                break;
            }
            if Instant::now() > ready {
                panic!(
                    "kube-apiserver {} not ready in 90 s ({}):\n{}",
                    kubernetes_version(),
                    out.stderr,
                    cluster.log_tail("kube-apiserver.log")
                );
            }
            std::thread::sleep(Duration::from_millis(200));
        }
        // The bootstrap RBAC roles (admin, edit, view) are made by a post-start hook; wait for them too.
        wait_for(
            "the bootstrap cluster roles",
            Duration::from_secs(30),
            || (cluster.kubectl(&["get", "clusterrole", "edit"]).code == Some(0)).then_some(()),
        );
        let version = cluster.kubectl(&["get", "--raw", "/version"]).json();
        assert_eq!(
            version["gitVersion"],
            format!("v{}", kubernetes_version()),
            "the API server reports the version under test"
        );
        eprintln!(
            "cluster: kube-apiserver {} and etcd ready in {:.1} s",
            kubernetes_version(),
            started.elapsed().as_secs_f64()
        );
        cluster
    }

    fn log_tail(&self, name: &str) -> String {
        let text = fs::read_to_string(self.dir.path().join(name)).unwrap_or_default();
        let lines: Vec<&str> = text.lines().collect();
        lines[lines.len().saturating_sub(30)..].join("\n")
    }

    /// kubectl as `admin` (group system:masters).
    pub fn kubectl(&self, args: &[&str]) -> Out {
        self.kubectl_as("admin", args)
    }

    /// kubectl as one of [`USERS`].
    pub fn kubectl_as(&self, user: &str, args: &[&str]) -> Out {
        run(self.kubectl_command(user).args(args), None)
    }

    /// kubectl as `admin`, with `input` on stdin (for `apply -f -`).
    pub fn kubectl_stdin(&self, args: &[&str], input: &str) -> Out {
        run(self.kubectl_command("admin").args(args), Some(input))
    }

    pub fn kubectl_command(&self, user: &str) -> Command {
        let mut cmd = Command::new(tool("kubectl"));
        cmd.env("KUBECONFIG", &self.kubeconfig)
            .env("HOME", self.dir.path())
            .arg(format!("--user={user}"));
        cmd
    }

    /// helm with this cluster's kubeconfig and its own cache and config directories.
    pub fn helm(&self, args: &[&str]) -> Out {
        run(self.helm_command().args(args), None)
    }

    pub fn helm_command(&self) -> Command {
        let mut cmd = Command::new(tool("helm"));
        let home = self.dir.path().join("helm");
        cmd.env("KUBECONFIG", &self.kubeconfig)
            .env("HELM_CACHE_HOME", home.join("cache"))
            .env("HELM_CONFIG_HOME", home.join("config"))
            .env("HELM_DATA_HOME", home.join("data"))
            .current_dir(root());
        cmd
    }

    /// A namespace with its `default` ServiceAccount (no controller-manager makes it here).
    pub fn namespace(&self, name: &str) {
        self.kubectl(&["create", "namespace", name]).ok();
        self.kubectl(&["-n", name, "create", "serviceaccount", "default"])
            .ok();
    }

    /// The failurePolicy of one webhook of a ValidatingWebhookConfiguration, as the API server holds it.
    pub fn failure_policy(&self, configuration: &str, webhook: &str) -> String {
        let config = self
            .kubectl(&[
                "get",
                "validatingwebhookconfiguration",
                configuration,
                "-o",
                "json",
            ])
            .json();
        config["webhooks"]
            .as_array()
            .into_iter()
            .flatten()
            .find(|w| w["name"] == webhook)
            .and_then(|w| w["failurePolicy"].as_str())
            .unwrap_or_else(|| panic!("no webhook {webhook} in {configuration}"))
            .to_string()
    }

    /// Installs CRDs (`files` in `dir`, such as the corpus `crds/`) and waits until they are served.
    pub fn install_crds(&self, dir: &Path, files: &[&str]) {
        for file in files {
            self.kubectl(&[
                "apply",
                "--server-side",
                "-f",
                dir.join(file).to_str().unwrap(),
            ])
            .ok();
        }
        self.kubectl(&[
            "wait",
            "--for=condition=Established",
            "crd",
            "--all",
            "--timeout=30s",
        ])
        .ok();
    }

    /// The audit log's events so far.
    pub fn audit_events(&self) -> Vec<Value> {
        fs::read_to_string(&self.audit_log)
            .unwrap_or_default()
            .lines()
            .filter_map(|l| serde_json::from_str(l).ok())
            .collect()
    }

    /// The annotations of the audit events (stage ResponseComplete) about one object: `verb`, `resource`,
    /// `namespace` and `name` as the API server logs them.
    pub fn audit_annotations(
        &self,
        verb: &str,
        resource: &str,
        namespace: &str,
        name: &str,
    ) -> Vec<Value> {
        self.audit_events()
            .into_iter()
            .filter(|e| {
                e["stage"] == "ResponseComplete"
                    && e["verb"] == verb
                    && e["objectRef"]["resource"] == resource
                    && e["objectRef"]["namespace"] == namespace
                    && e["objectRef"]["name"] == name
            })
            .map(|e| e["annotations"].clone())
            .collect()
    }
}

impl Drop for Cluster {
    fn drop(&mut self) {
        for child in [&mut self.apiserver, &mut self.etcd] {
            let _ = child.kill();
            let _ = child.wait();
        }
    }
}

/// Vigil run from a Helm release as kubelet would run the chart's Deployment: its container's args and
/// env, its ConfigMap and Secret volumes laid out like kubelet's atomic writer does (`..data` swapped on
/// each sync), listening on the Service's ClusterIP and port, metrics on a free loopback port.
pub struct Webhook {
    child: Option<Child>,
    pub mounts: tempfile::TempDir,
    pub namespace: String,
    pub deployment: String,
    pub addr: String,
    pub metrics: SocketAddr,
    pub stdout: PathBuf,
    pub stderr: PathBuf,
    args: Vec<String>,
    env: Vec<(String, String)>,
    volumes: Vec<Volume>,
}

/// A ConfigMap or Secret volume of the Deployment, and where the container mounts it.
struct Volume {
    kind: &'static str,
    name: String,
    mount_path: String,
}

impl Webhook {
    /// Reads the Deployment `name` in `namespace` and its Service of the same name, lays out the volumes
    /// and starts Vigil; ready (`/readyz` 200) when this returns.
    pub fn start(cluster: &Cluster, namespace: &str, name: &str) -> Webhook {
        let mut webhook = Webhook::prepare(cluster, namespace, name);
        webhook.spawn();
        webhook
    }

    /// [`Webhook::start`] without starting the process: its address can still be changed with
    /// [`Webhook::listen_on`] before [`Webhook::spawn`].
    pub fn prepare(cluster: &Cluster, namespace: &str, name: &str) -> Webhook {
        let deployment = cluster
            .kubectl(&["-n", namespace, "get", "deployment", name, "-o", "json"])
            .json();
        let pod = &deployment["spec"]["template"]["spec"];
        let container = &pod["containers"][0];
        let service = cluster
            .kubectl(&["-n", namespace, "get", "service", name, "-o", "json"])
            .json();
        let cluster_ip = service["spec"]["clusterIP"]
            .as_str()
            .expect("a ClusterIP")
            .to_string();
        let https = service["spec"]["ports"]
            .as_array()
            .unwrap()
            .iter()
            .find(|p| p["name"] == "https")
            .expect("the Service has an https port");
        let addr = format!("{cluster_ip}:{}", https["port"]);

        let mut volumes = Vec::new();
        for mount in container["volumeMounts"].as_array().into_iter().flatten() {
            let volume = pod["volumes"]
                .as_array()
                .unwrap()
                .iter()
                .find(|v| v["name"] == mount["name"])
                .expect("a volume for each mount");
            let (kind, name) = if let Some(name) = volume["configMap"]["name"].as_str() {
                ("configmap", name)
            } else if let Some(name) = volume["secret"]["secretName"].as_str() {
                ("secret", name)
            } else {
                panic!("volume kind not laid out by the suite: {volume}");
            };
            volumes.push(Volume {
                kind,
                name: name.to_string(),
                mount_path: mount["mountPath"].as_str().unwrap().to_string(),
            });
        }
        let mounts = tempfile::tempdir().unwrap();
        let metrics = SocketAddr::from(([127, 0, 0, 1], free_port()));
        let local = |arg: &str| -> String {
            let mut arg = arg.to_string();
            for v in &volumes {
                arg = arg.replace(
                    &v.mount_path,
                    &format!("{}{}", mounts.path().display(), v.mount_path),
                );
            }
            arg
        };
        let args: Vec<String> = container["args"]
            .as_array()
            .unwrap()
            .iter()
            .map(|a| {
                let a = a.as_str().unwrap();
                if a.starts_with("--addr=") {
                    format!("--addr={addr}")
                } else if a.starts_with("--metrics-addr=") {
                    format!("--metrics-addr={metrics}")
                } else {
                    local(a)
                }
            })
            .collect();
        let env: Vec<(String, String)> = container["env"]
            .as_array()
            .into_iter()
            .flatten()
            .filter_map(|e| {
                Some((
                    e["name"].as_str()?.to_string(),
                    e["value"].as_str()?.to_string(),
                ))
            })
            .collect();
        let webhook = Webhook {
            child: None,
            stdout: mounts.path().join("vigil.stdout"),
            stderr: mounts.path().join("vigil.stderr"),
            mounts,
            namespace: namespace.to_string(),
            deployment: name.to_string(),
            addr,
            metrics,
            args,
            env,
            volumes,
        };
        webhook.sync(cluster);
        webhook
    }

    /// Listens on `addr` instead of the Service's ClusterIP, e.g. behind a balancer that holds the ClusterIP.
    pub fn listen_on(&mut self, addr: SocketAddr) {
        self.addr = addr.to_string();
        for arg in &mut self.args {
            if arg.starts_with("--addr=") {
                *arg = format!("--addr={addr}");
            }
        }
    }

    /// Starts the process (again, after [`Webhook::stop`]) and waits until it is ready.
    pub fn spawn(&mut self) {
        assert!(self.child.is_none(), "Vigil is already running");
        let open = |p: &Path| {
            fs::OpenOptions::new()
                .create(true)
                .append(true)
                .open(p)
                .unwrap()
        };
        let child = Command::new(env!("CARGO_BIN_EXE_vigil"))
            .args(&self.args)
            .envs(self.env.iter().map(|(k, v)| (k.as_str(), v.as_str())))
            .stdout(open(&self.stdout))
            .stderr(open(&self.stderr))
            .spawn()
            .expect("vigil starts");
        self.child = Some(child);
        let stderr = self.stderr.clone();
        let child = self.child.as_mut().unwrap();
        wait_for("Vigil's /readyz", Duration::from_secs(20), || {
            if let Some(status) = child.try_wait().unwrap() {
                panic!(
                    "vigil exited ({status}) before it was ready:\n{}",
                    fs::read_to_string(&stderr).unwrap_or_default()
                );
            }
            (http_get(self.metrics, "/readyz").0 == 200).then_some(())
        });
    }

    /// SIGTERM, then waits for the process to end.
    pub fn stop(&mut self) {
        if let Some(mut child) = self.child.take() {
            run(
                Command::new("kill").args(["-TERM", &child.id().to_string()]),
                None,
            )
            .ok();
            let deadline = Instant::now() + Duration::from_secs(30);
            while child.try_wait().unwrap().is_none() {
                if Instant::now() > deadline {
                    let _ = child.kill();
                    panic!("vigil did not exit within 30 s of SIGTERM");
                }
                std::thread::sleep(Duration::from_millis(50));
            }
        }
    }

    /// What kubelet does when a mounted ConfigMap or Secret changes: writes the new files into a fresh
    /// timestamped directory and swaps the `..data` symlink to it in one rename.
    pub fn sync(&self, cluster: &Cluster) {
        for v in &self.volumes {
            let object = cluster
                .kubectl(&["-n", &self.namespace, "get", v.kind, &v.name, "-o", "json"])
                .json();
            let mut files: Vec<(String, Vec<u8>)> = Vec::new();
            for (key, value) in object["data"].as_object().into_iter().flatten() {
                let text = value.as_str().unwrap();
                let bytes = if v.kind == "secret" {
                    base64::engine::general_purpose::STANDARD
                        .decode(text)
                        .unwrap()
                } else {
                    text.as_bytes().to_vec()
                };
                files.push((key.clone(), bytes));
            }
            let dir = self
                .mounts
                .path()
                .join(v.mount_path.trim_start_matches('/'));
            fs::create_dir_all(&dir).unwrap();
            let stamp = format!(
                "..{}",
                std::time::SystemTime::now()
                    .duration_since(std::time::UNIX_EPOCH)
                    .unwrap()
                    .as_nanos()
            );
            let fresh = dir.join(&stamp);
            fs::create_dir(&fresh).unwrap();
            for (key, bytes) in &files {
                fs::write(fresh.join(key), bytes).unwrap();
                let link = dir.join(key);
                if fs::symlink_metadata(&link).is_err() {
                    std::os::unix::fs::symlink(format!("..data/{key}"), &link).unwrap();
                }
            }
            let old = fs::read_link(dir.join("..data")).ok();
            std::os::unix::fs::symlink(&stamp, dir.join("..data_tmp")).unwrap();
            fs::rename(dir.join("..data_tmp"), dir.join("..data")).unwrap();
            if let Some(old) = old {
                let _ = fs::remove_dir_all(dir.join(old));
            }
        }
    }

    /// Syncs the mounts and waits until Vigil has loaded a policy other than the one in force before.
    pub fn sync_policy(&self, cluster: &Cluster) {
        let before = self.policy_hash();
        self.sync(cluster);
        wait_for(
            "Vigil to load the new policy",
            Duration::from_secs(20),
            || {
                let now = self.policy_hash();
                (now != before).then_some(())
            },
        );
    }

    /// The hash label of `vigil_policy_info`.
    pub fn policy_hash(&self) -> String {
        let metrics = self.metrics_text();
        metrics
            .lines()
            .find_map(|l| l.strip_prefix("vigil_policy_info{hash=\""))
            .and_then(|rest| rest.split('"').next())
            .unwrap_or_default()
            .to_string()
    }

    pub fn metrics_text(&self) -> String {
        http_get(self.metrics, "/metrics").1
    }

    /// The alert records Vigil wrote on stdout so far.
    pub fn alerts(&self) -> Vec<Value> {
        fs::read_to_string(&self.stdout)
            .unwrap_or_default()
            .lines()
            .filter_map(|l| serde_json::from_str::<Value>(l).ok())
            .filter(|v| v["schema"] == "vigil.dev/alert/v1")
            .collect()
    }

    /// Waits for the alert record about one object (kind, namespace, name) and operation.
    #[track_caller]
    pub fn alert_for(&self, kind: &str, namespace: &str, name: &str, operation: &str) -> Value {
        self.alert_since(0, kind, namespace, name, operation)
    }

    /// Waits for the alert record about one object and operation that `username` sent: the records of
    /// earlier requests about the same object, which the writer may still be flushing, never match.
    #[track_caller]
    pub fn alert_by(
        &self,
        username: &str,
        kind: &str,
        namespace: &str,
        name: &str,
        operation: &str,
    ) -> Value {
        wait_for(
            &format!("an alert for {operation} {kind} {namespace}/{name} by {username}"),
            Duration::from_secs(5),
            || {
                self.alerts().into_iter().find(|a| {
                    a["user"]["username"] == username
                        && a["object"]["kind"] == kind
                        && a["object"]["namespace"] == namespace
                        && a["object"]["name"] == name
                        && a["operation"] == operation
                })
            },
        )
    }

    /// Waits for such an alert record among those after the first `seen` (`alerts().len()` before the
    /// request), so that an older record about the same object is never taken for the new one.
    #[track_caller]
    pub fn alert_since(
        &self,
        seen: usize,
        kind: &str,
        namespace: &str,
        name: &str,
        operation: &str,
    ) -> Value {
        wait_for(
            &format!("an alert for {operation} {kind} {namespace}/{name} on Vigil's stdout"),
            Duration::from_secs(5),
            || {
                self.alerts().into_iter().skip(seen).find(|a| {
                    a["object"]["kind"] == kind
                        && a["object"]["namespace"] == namespace
                        && a["object"]["name"] == name
                        && a["operation"] == operation
                })
            },
        )
    }
}

impl Drop for Webhook {
    fn drop(&mut self) {
        if let Some(mut child) = self.child.take() {
            let _ = child.kill();
            let _ = child.wait();
        }
    }
}

/// The rule ids of an alert record's violations.
pub fn rules_of(alert: &Value) -> Vec<String> {
    alert["violations"]
        .as_array()
        .into_iter()
        .flatten()
        .filter_map(|v| v["rule"].as_str().map(str::to_string))
        .collect()
}

/// A plain HTTP/1.1 GET: status and body (0 and empty when nothing answers).
pub fn http_get(addr: SocketAddr, path: &str) -> (u16, String) {
    let Ok(mut tcp) = TcpStream::connect_timeout(&addr, Duration::from_secs(2)) else {
        return (0, String::new());
    };
    let _ = tcp.set_read_timeout(Some(Duration::from_secs(5)));
    let request = format!("GET {path} HTTP/1.1\r\nhost: localhost\r\nconnection: close\r\n\r\n");
    if tcp.write_all(request.as_bytes()).is_err() {
        return (0, String::new());
    }
    let mut response = String::new();
    let _ = tcp.read_to_string(&mut response);
    let status = response
        .split_whitespace()
        .nth(1)
        .and_then(|s| s.parse().ok())
        .unwrap_or(0);
    let body = response
        .split_once("\r\n\r\n")
        .map(|(_, b)| b.to_string())
        .unwrap_or_default();
    (status, body)
}
