//! Live policy and certificates against the real server and real files laid out as kubelet lays out a
//! mounted ConfigMap or Secret: a timestamped directory, a `..data` symlink, and file symlinks into it.

mod common;

use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, AtomicUsize, Ordering};
use std::time::{Duration, Instant};

use common::{Ca, Client, Server, sample};
use serde_json::{Value, json};

/// A directory that kubelet updates by swapping its `..data` symlink.
struct KubeletMount {
    dir: PathBuf,
    generation: usize,
}

impl KubeletMount {
    fn new(dir: &Path, files: &[(&str, &str)]) -> KubeletMount {
        std::fs::create_dir_all(dir).unwrap();
        let mut mount = KubeletMount {
            dir: dir.to_path_buf(),
            generation: 0,
        };
        mount.swap(files);
        for (name, _) in files {
            std::os::unix::fs::symlink(format!("..data/{name}"), dir.join(name)).unwrap();
        }
        mount
    }

    /// Writes a new timestamped directory and swaps `..data` to it atomically, as kubelet does.
    fn swap(&mut self, files: &[(&str, &str)]) {
        self.generation += 1;
        let stamp = format!("..2026_11_22_16_00_00.{:04}", self.generation);
        let target = self.dir.join(&stamp);
        std::fs::create_dir(&target).unwrap();
        for (name, text) in files {
            std::fs::write(target.join(name), text).unwrap();
        }
        let tmp = self.dir.join("..data_tmp");
        std::os::unix::fs::symlink(&stamp, &tmp).unwrap();
        let old = std::fs::read_link(self.dir.join("..data")).ok();
        std::fs::rename(&tmp, self.dir.join("..data")).unwrap();
        if let Some(old) = old {
            std::fs::remove_dir_all(self.dir.join(old)).unwrap();
        }
    }

    fn path(&self, name: &str) -> PathBuf {
        self.dir.join(name)
    }
}

const HEAD: &str = "apiVersion: vigil.dev/v1alpha1\nkind: Policy\nmode: audit\n";

fn policy(rules: &str) -> String {
    format!("{HEAD}rules:\n{rules}")
}

fn pod_review(uid: &str, containers: Value) -> String {
    json!({
        "apiVersion": "admission.k8s.io/v1", "kind": "AdmissionReview",
        "request": {"uid": uid, "kind": {"group": "", "version": "v1", "kind": "Pod"},
                    "namespace": "team-a", "name": "p", "operation": "CREATE",
                    "userInfo": {"username": "bob", "groups": ["dev"]},
                    "object": {"apiVersion": "v1", "kind": "Pod", "metadata": {"name": "p", "namespace": "team-a"},
                               "spec": {"containers": containers}}}
    })
    .to_string()
}

fn privileged_latest(uid: &str) -> String {
    pod_review(
        uid,
        json!([{"name": "app", "image": "nginx:latest", "securityContext": {"privileged": true}}]),
    )
}

/// The modes of privileged and image-tag in a response's alert.
fn modes(response: &Value) -> (String, String) {
    let alert: Value = serde_json::from_str(
        response["response"]["auditAnnotations"]["alert"]
            .as_str()
            .unwrap(),
    )
    .unwrap();
    let mode = |rule: &str| {
        alert["violations"]
            .as_array()
            .unwrap()
            .iter()
            .find(|v| v["rule"] == rule)
            .map(|v| v["mode"].as_str().unwrap().to_owned())
            .unwrap_or_default()
    };
    (mode("privileged"), mode("image-tag"))
}

async fn wait_until<F, Fut>(what: &str, limit: Duration, mut check: F) -> Duration
where
    F: FnMut() -> Fut,
    Fut: std::future::Future<Output = bool>,
{
    let start = Instant::now();
    while start.elapsed() < limit {
        if check().await {
            return start.elapsed();
        }
        tokio::time::sleep(Duration::from_millis(25)).await;
    }
    panic!("{what} did not happen within {limit:?}");
}

async fn policy_server(mount_dir: &Path, text: &str, reload: Duration) -> (Server, KubeletMount) {
    let mount = KubeletMount::new(mount_dir, &[("policy.yaml", text)]);
    let path = mount.path("policy.yaml");
    let server = Server::start(move |args, _| {
        args.policy = Some(path);
        // A long interval shows that the directory watch, not the interval, picks up the swap.
        args.reload_interval = reload;
    })
    .await;
    (server, mount)
}

#[tokio::test]
async fn policy_swaps_take_effect_and_bad_ones_are_refused() {
    let tmp = tempfile::tempdir().unwrap();
    let enforce_privileged = policy("  privileged: enforce\n");
    let (server, mut mount) = policy_server(
        &tmp.path().join("policy"),
        &enforce_privileged,
        Duration::from_secs(60),
    )
    .await;
    let mut client = server.client().await;
    let allowed = |r: &Value| r["response"]["allowed"].as_bool().unwrap();
    assert!(!allowed(
        &client
            .review("/validate", &privileged_latest("a"))
            .await
            .json()
    ));
    let first_hash = server
        .running
        .app
        .policy
        .load()
        .as_ref()
        .unwrap()
        .hash
        .clone();

    // An atomic swap to a new policy changes decisions within 5 s.
    mount.swap(&[("policy.yaml", &policy("  privileged: audit\n"))]);
    let took = wait_until("the new policy", Duration::from_secs(5), || async {
        allowed(
            &server
                .client()
                .await
                .review("/validate", &privileged_latest("b"))
                .await
                .json(),
        )
    })
    .await;
    eprintln!("reload: a swapped policy took effect after {took:?}");
    let metrics = server.metrics().await;
    assert_eq!(
        sample(&metrics, "vigil_policy_reloads_total{result=\"success\"}"),
        2.0,
        "the first load and the swap"
    );
    let second_hash = server
        .running
        .app
        .policy
        .load()
        .as_ref()
        .unwrap()
        .hash
        .clone();
    assert!(
        metrics.contains(&format!("vigil_policy_info{{hash=\"{second_hash}\"}} 1")),
        "{metrics}"
    );
    assert!(
        !metrics.contains(&first_hash),
        "only the policy in force is shown"
    );

    // A swap to an invalid policy keeps the old decisions, counts the error, and stays ready.
    mount.swap(&[(
        "policy.yaml",
        "apiVersion: vigil.dev/v1alpha1\nkind: Policy\nmode: enforced\n",
    )]);
    wait_until(
        "the error to be counted",
        Duration::from_secs(5),
        || async {
            sample(
                &server.metrics().await,
                "vigil_policy_reloads_total{result=\"error\"}",
            ) == 1.0
        },
    )
    .await;
    assert!(
        allowed(
            &client
                .review("/validate", &privileged_latest("c"))
                .await
                .json()
        ),
        "old decisions kept"
    );
    assert!(
        server
            .metrics()
            .await
            .contains(&format!("vigil_policy_info{{hash=\"{second_hash}\"}} 1"))
    );
    assert_eq!(
        client
            .send("GET", "/readyz", None, b"")
            .await
            .unwrap()
            .status,
        200,
        "still ready"
    );

    // A missing policy file is an error too, and changes nothing.
    std::fs::remove_file(mount.path("policy.yaml")).unwrap();
    wait_until(
        "the missing file to be counted",
        Duration::from_secs(5),
        || async {
            sample(
                &server.metrics().await,
                "vigil_policy_reloads_total{result=\"error\"}",
            ) == 2.0
        },
    )
    .await;
    std::os::unix::fs::symlink("..data/policy.yaml", mount.path("policy.yaml")).unwrap();
    assert!(allowed(
        &client
            .review("/validate", &privileged_latest("d"))
            .await
            .json()
    ));

    // A swap back to a valid policy takes effect.
    mount.swap(&[("policy.yaml", &enforce_privileged)]);
    wait_until("the valid policy", Duration::from_secs(5), || async {
        !allowed(
            &server
                .client()
                .await
                .review("/validate", &privileged_latest("e"))
                .await
                .json(),
        )
    })
    .await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn every_review_across_a_swap_agrees_with_one_policy() {
    let tmp = tempfile::tempdir().unwrap();
    let old = policy("  privileged: enforce\n  image-tag: audit\n");
    let new = policy("  privileged: audit\n  image-tag: enforce\n");
    let (server, mut mount) =
        policy_server(&tmp.path().join("policy"), &old, Duration::from_millis(100)).await;
    let stop = Arc::new(AtomicBool::new(false));
    let (answered, saw_new) = (Arc::new(AtomicUsize::new(0)), Arc::new(AtomicUsize::new(0)));
    let mut tasks = Vec::new();
    for t in 0..4 {
        let mut client = server.client().await;
        let (stop, answered, saw_new) = (stop.clone(), answered.clone(), saw_new.clone());
        tasks.push(tokio::spawn(async move {
            let mut switched = false;
            let mut n = 0;
            while !stop.load(Ordering::Acquire) {
                n += 1;
                let reply = client
                    .review("/validate", &privileged_latest(&format!("t{t}-{n}")))
                    .await;
                assert_eq!(reply.status, 200, "no review fails");
                let response = reply.json();
                let message = response["response"]["status"]["message"]
                    .as_str()
                    .unwrap()
                    .to_owned();
                match modes(&response) {
                    (p, i) if p == "enforce" && i == "audit" => {
                        assert!(
                            !switched,
                            "a connection saw the old policy after the new one"
                        );
                        assert!(
                            message.contains("[privileged]") && !message.contains("[image-tag]"),
                            "{message}"
                        );
                    }
                    (p, i) if p == "audit" && i == "enforce" => {
                        switched = true;
                        assert!(
                            message.contains("[image-tag]") && !message.contains("[privileged]"),
                            "{message}"
                        );
                    }
                    other => panic!("a review mixed the two policies: {other:?}"),
                }
                answered.fetch_add(1, Ordering::AcqRel);
            }
            if switched {
                saw_new.fetch_add(1, Ordering::AcqRel);
            }
        }));
    }
    tokio::time::sleep(Duration::from_millis(300)).await;
    mount.swap(&[("policy.yaml", &new)]);
    tokio::time::sleep(Duration::from_millis(1500)).await;
    stop.store(true, Ordering::Release);
    for t in tasks {
        t.await.unwrap();
    }
    assert_eq!(
        saw_new.load(Ordering::Acquire),
        4,
        "every stream saw the new policy"
    );
    eprintln!(
        "reload: {} reviews across a policy swap, each under exactly one policy",
        answered.load(Ordering::Acquire)
    );
}

#[tokio::test]
async fn a_start_with_an_invalid_policy_is_not_ready_until_fixed() {
    let tmp = tempfile::tempdir().unwrap();
    let (server, mut mount) = policy_server(
        &tmp.path().join("policy"),
        "mode: [broken",
        Duration::from_millis(200),
    )
    .await;
    let mut client = server.client().await;
    let readyz = client.send("GET", "/readyz", None, b"").await.unwrap();
    assert_eq!(readyz.status, 503);
    assert_eq!(readyz.body.trim(), "no valid policy is loaded");
    // It never serves an empty or default policy meanwhile.
    let reply = client.review("/validate", &privileged_latest("x")).await;
    assert_eq!(reply.status, 503, "{}", reply.body);

    mount.swap(&[("policy.yaml", &policy("  privileged: enforce\n"))]);
    wait_until("readiness", Duration::from_secs(5), || async {
        server
            .client()
            .await
            .send("GET", "/readyz", None, b"")
            .await
            .unwrap()
            .status
            == 200
    })
    .await;
    assert_eq!(
        client
            .review("/validate", &privileged_latest("y"))
            .await
            .json()["response"]["allowed"],
        false
    );
}

#[tokio::test]
async fn certificates_rotate_for_new_connections_only() {
    common::install_provider();
    let tmp = tempfile::tempdir().unwrap();
    let ca = Ca::new("rotation CA");
    let first = ca.server(0x11);
    let mut mount = KubeletMount::new(
        &tmp.path().join("tls"),
        &[("tls.crt", &first.cert_pem), ("tls.key", &first.key_pem)],
    );
    let (cert, key) = (mount.path("tls.crt"), mount.path("tls.key"));
    let server = Server::start(move |args, _| {
        args.tls_cert = Some(cert);
        args.tls_key = Some(key);
        args.reload_interval = Duration::from_millis(200);
    })
    .await;
    let review = common::read_data("reviews/pod-create.kube-apiserver-1.36.json");
    let mut old_conn = Client::connect(server.addr(), &ca.pem, None).await.unwrap();
    assert_eq!(old_conn.peer_serial, "11");

    // A new pair: new connections get it, the open one keeps working.
    let second = ca.server(0x22);
    mount.swap(&[("tls.crt", &second.cert_pem), ("tls.key", &second.key_pem)]);
    wait_until("the new certificate", Duration::from_secs(5), || async {
        Client::connect(server.addr(), &ca.pem, None)
            .await
            .unwrap()
            .peer_serial
            == "22"
    })
    .await;
    assert_eq!(
        old_conn.review("/validate", &review).await.status,
        200,
        "open connections are not cut"
    );
    let expiry = sample(
        &server.metrics().await,
        "vigil_certificate_expiry_timestamp_seconds",
    );
    let in_force = server.running.app.certs.current().unwrap();
    assert_eq!(
        expiry,
        in_force.not_after.unix_timestamp() as f64,
        "the expiry follows the pair in force"
    );
    assert_eq!(in_force.serial, "22");

    // A half-written pair and a mismatched pair are refused; the pair in force stays.
    let third = ca.server(0x33);
    let half = &third.cert_pem[..third.cert_pem.len() / 2];
    mount.swap(&[("tls.crt", half), ("tls.key", &third.key_pem)]);
    let fourth = ca.server(0x44);
    wait_until(
        "the half-written pair to be refused",
        Duration::from_secs(5),
        || async {
            sample(
                &server.metrics().await,
                "vigil_certificate_reloads_total{result=\"error\"}",
            ) == 1.0
        },
    )
    .await;
    mount.swap(&[("tls.crt", &third.cert_pem), ("tls.key", &fourth.key_pem)]);
    wait_until(
        "the mismatched pair to be refused",
        Duration::from_secs(5),
        || async {
            sample(
                &server.metrics().await,
                "vigil_certificate_reloads_total{result=\"error\"}",
            ) == 2.0
        },
    )
    .await;
    let mut fresh = Client::connect(server.addr(), &ca.pem, None).await.unwrap();
    assert_eq!(fresh.peer_serial, "22", "the last good pair stays in force");
    assert_eq!(fresh.review("/validate", &review).await.status, 200);
    assert_eq!(
        fresh
            .send("GET", "/readyz", None, b"")
            .await
            .unwrap()
            .status,
        200
    );
}

#[tokio::test]
async fn a_certificate_near_expiry_is_warned_about() {
    // The real binary, whose log is read.
    let tmp = tempfile::tempdir().unwrap();
    let ca = Ca::new("expiry CA");
    let soon = ca.server_expiring(5, 3);
    let cert = common::write(tmp.path(), "tls.crt", &soon.cert_pem);
    let key = common::write(tmp.path(), "tls.key", &soon.key_pem);
    let mut child = std::process::Command::new(env!("CARGO_BIN_EXE_vigil"))
        .args([
            "serve",
            "--addr",
            "127.0.0.1:0",
            "--metrics-addr",
            "127.0.0.1:0",
        ])
        .arg("--tls-cert")
        .arg(&cert)
        .arg("--tls-key")
        .arg(&key)
        .stdout(std::process::Stdio::null())
        .stderr(std::process::Stdio::piped())
        .spawn()
        .unwrap();
    use std::io::BufRead;
    let lines = std::io::BufReader::new(child.stderr.take().unwrap()).lines();
    let mut warned = None;
    for line in lines {
        let line = line.unwrap();
        if line.contains("expires within 7 days") {
            warned = Some(line);
            break;
        }
        if line.contains("\"serving\"") {
            break;
        }
    }
    let _ = child.kill();
    let _ = child.wait();
    let warned = warned.expect("a warning before serving");
    let log: Value = serde_json::from_str(&warned).unwrap();
    assert_eq!(log["level"], "WARN");
    assert_eq!(log["fields"]["serial"], "05");
}

fn configmap_review(
    operation: &str,
    namespace: &str,
    name: &str,
    data: Option<Value>,
    old: Option<Value>,
) -> String {
    let object = |d: &Option<Value>| {
        d.as_ref().map(|d| json!({"apiVersion": "v1", "kind": "ConfigMap", "metadata": {"name": name, "namespace": namespace}, "data": d}))
    };
    json!({
        "apiVersion": "admission.k8s.io/v1", "kind": "AdmissionReview",
        "request": {"uid": "cm-1", "kind": {"group": "", "version": "v1", "kind": "ConfigMap"},
                    "resource": {"group": "", "version": "v1", "resource": "configmaps"},
                    "namespace": namespace, "name": name, "operation": operation,
                    "userInfo": {"username": "mallory", "groups": ["ops"]},
                    "object": object(&data), "oldObject": object(&old)}
    })
    .to_string()
}

fn alert_of(response: &Value) -> Value {
    serde_json::from_str(
        response["response"]["auditAnnotations"]["alert"]
            .as_str()
            .expect("an alert"),
    )
    .unwrap()
}

#[tokio::test]
async fn policy_configmap_edits_are_validated_and_recorded() {
    let server =
        Server::start(|args, _| args.policy_configmap = "vigil/vigil-policy".parse().unwrap())
            .await;
    let mut client = server.client().await;
    let strict = json!({"policy.yaml": "apiVersion: vigil.dev/v1alpha1\nkind: Policy\nmode: enforce\nrules:\n  privileged: enforce\n"});

    // A bad policy.yaml is denied, with errors that carry their paths.
    let bad = json!({"policy.yaml": "apiVersion: vigil.dev/v1alpha1\nkind: Policy\nmode: enforced\nrules:\n  image-registry:\n    allow: [\"ghcr.io/corp/**\"]\n"});
    let reply = client
        .review(
            "/validate",
            &configmap_review(
                "UPDATE",
                "vigil",
                "vigil-policy",
                Some(bad),
                Some(strict.clone()),
            ),
        )
        .await
        .json();
    let r = &reply["response"];
    assert_eq!(r["allowed"], false);
    let message = r["status"]["message"].as_str().unwrap();
    assert!(
        message.starts_with("ConfigMap vigil/vigil-policy: policy.yaml is not a valid policy"),
        "{message}"
    );
    assert!(
        message.contains("policy.yaml: mode: unknown variant `enforced`"),
        "{message}"
    );
    assert!(
        message.contains(
            "policy.yaml: rules.image-registry.allow[0]: \"ghcr.io/corp/**\": '**' is not a pattern"
        ),
        "{message}"
    );
    assert!(
        message.len() < 1024,
        "short enough for kubectl to show in full"
    );

    // A good one is admitted, with a policy-change alert naming what changed and who changed it.
    let weaker = json!({"policy.yaml": "apiVersion: vigil.dev/v1alpha1\nkind: Policy\nmode: audit\nrules:\n  privileged: audit\nexemptions:\n  - name: mallory\n    reason: trust me\n"});
    let reply = client
        .review(
            "/validate",
            &configmap_review(
                "UPDATE",
                "vigil",
                "vigil-policy",
                Some(weaker.clone()),
                Some(strict.clone()),
            ),
        )
        .await
        .json();
    assert_eq!(reply["response"]["allowed"], true);
    let alert = alert_of(&reply);
    assert_eq!(alert["violations"][0]["rule"], "policy-change");
    assert_eq!(alert["violations"][0]["techniques"], json!(["T1562.001"]));
    assert_eq!(alert["user"]["username"], "mallory");
    assert_eq!(
        alert["violations"][0]["message"],
        "mode enforce -> audit; rule privileged mode enforce -> audit; exemption mallory added"
    );
    assert_eq!(
        reply["response"]["auditAnnotations"]["violations"],
        "policy-change"
    );
    assert!(
        server
            .alerts()
            .iter()
            .any(|a| a.contains("exemption mallory added")),
        "the change is in the alert stream"
    );

    // CREATE and DELETE are recorded too; a DELETE is admitted.
    let created = client
        .review(
            "/validate",
            &configmap_review(
                "CREATE",
                "vigil",
                "vigil-policy",
                Some(strict.clone()),
                None,
            ),
        )
        .await
        .json();
    assert!(
        alert_of(&created)["violations"][0]["message"]
            .as_str()
            .unwrap()
            .starts_with("created: mode enforce")
    );
    let deleted = client
        .review(
            "/validate",
            &configmap_review("DELETE", "vigil", "vigil-policy", None, Some(weaker)),
        )
        .await
        .json();
    assert_eq!(deleted["response"]["allowed"], true);
    assert!(
        alert_of(&deleted)["violations"][0]["message"]
            .as_str()
            .unwrap()
            .starts_with("deleted the policy ConfigMap")
    );

    // A ConfigMap without policy.yaml is denied: the policy would silently vanish.
    let empty = client
        .review(
            "/validate",
            &configmap_review(
                "UPDATE",
                "vigil",
                "vigil-policy",
                Some(json!({"other": "x"})),
                Some(strict),
            ),
        )
        .await
        .json();
    assert_eq!(empty["response"]["allowed"], false);

    // Any other ConfigMap is admitted at once, without reading it: even one that would not decode.
    for (ns, name) in [("vigil", "other"), ("team-a", "vigil-policy")] {
        let unreadable = configmap_review("CREATE", ns, name, Some(json!(5)), None);
        let reply = client.review("/validate", &unreadable).await.json();
        assert_eq!(
            reply["response"],
            json!({"uid": "cm-1", "allowed": true}),
            "{ns}/{name}"
        );
    }
}
