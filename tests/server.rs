//! The real server over real TLS: every captured review, decisions, /mutate, bad input, mTLS and metrics.

mod common;
mod corpus;

use std::io::Write as _;
use std::path::PathBuf;
use std::process::Command;

use common::{Client, Server, read_data, sample, write};
use serde_json::{Value, json};
use tokio::io::AsyncWriteExt;

const ENFORCE_PRIVILEGED: &str = "apiVersion: vigil.dev/v1alpha1\nkind: Policy\nmode: audit\nrules:\n  privileged: enforce\n  image-tag: warn\n  host-path: audit\n";

/// Drops the parts of a response that differ between two answers to one review: the alert's time.
fn without_time(mut response: Value) -> Value {
    if let Some(alert) = response["response"]["auditAnnotations"]["alert"].as_str() {
        let mut record: Value = serde_json::from_str(alert).unwrap();
        record["time"] = Value::Null;
        response["response"]["auditAnnotations"]["alert"] = record;
    }
    response
}

/// This project's own recordings from a real kube-apiserver, and the reviews derived from them.
#[tokio::test]
async fn every_recorded_review_gets_the_answer_vigil_review_gives() {
    let files = corpus::review_files(&common::data("reviews"));
    assert_eq!(files.len(), 8, "6 recordings and 2 derived reviews");
    served_equals_offline(&files).await;
}

/// The reviews other projects captured from their clusters (the corpus `admissionreview/`).
#[tokio::test]
async fn every_captured_review_of_the_corpus_gets_the_answer_vigil_review_gives() {
    let test = "server::every_captured_review_of_the_corpus_gets_the_answer_vigil_review_gives";
    let Some(files) = corpus::captured_reviews(test) else {
        return;
    };
    served_equals_offline(&files).await;
}

/// Sends each review to the real server and to `vigil review`: both answers must be the same.
async fn served_equals_offline(files: &[PathBuf]) {
    let server = Server::start(|args, dir| {
        args.policy = Some(write(dir, "policy.yaml", ENFORCE_PRIVILEGED))
    })
    .await;
    let policy = server.dir.path().join("policy.yaml");
    let mut client = server.client().await;
    for path in files {
        let file = path.display();
        let body = std::fs::read_to_string(path).unwrap();
        let reply = client.review("/validate", &body).await;
        assert_eq!(reply.status, 200, "{file}: {}", reply.body);
        assert_eq!(reply.content_type, "application/json");
        let served = reply.json();
        let request: Value = serde_json::from_str(&body).unwrap();
        assert_eq!(
            served["response"]["uid"], request["request"]["uid"],
            "{file}: the uid is echoed"
        );

        let offline = Command::new(env!("CARGO_BIN_EXE_vigil"))
            .args([
                "review",
                "--policy",
                policy.to_str().unwrap(),
                path.to_str().unwrap(),
            ])
            .output()
            .unwrap();
        assert!(offline.status.success(), "{file}");
        let offline: Value = serde_json::from_slice(&offline.stdout).unwrap();
        assert_eq!(
            without_time(served),
            without_time(offline),
            "{file}: server and `vigil review` differ"
        );
    }
}

fn review_of(object: Value, operation: &str, old: Option<Value>) -> String {
    json!({
        "apiVersion": "admission.k8s.io/v1",
        "kind": "AdmissionReview",
        "request": {
            "uid": "u-1",
            "kind": {"group": "apps", "version": "v1", "kind": "Deployment"},
            "resource": {"group": "apps", "version": "v1", "resource": "deployments"},
            "name": object["metadata"]["name"],
            "namespace": "team-a",
            "operation": operation,
            "userInfo": {"username": "bob", "groups": ["dev"]},
            "object": object,
            "oldObject": old,
            "dryRun": false
        }
    })
    .to_string()
}

fn deployment(container: Value) -> Value {
    json!({
        "apiVersion": "apps/v1", "kind": "Deployment",
        "metadata": {"name": "web", "namespace": "team-a"},
        "spec": {"selector": {"matchLabels": {"app": "web"}},
                 "template": {"metadata": {"labels": {"app": "web"}}, "spec": {"containers": [container]}}}
    })
}

#[tokio::test]
async fn deny_warn_and_audit_answer_as_the_modes_say() {
    let server = Server::start(|args, dir| {
        args.policy = Some(write(dir, "policy.yaml", ENFORCE_PRIVILEGED))
    })
    .await;
    let mut client = server.client().await;

    // enforce: denied with 403, the message starts with kind, namespace and name.
    let denied = client
        .review("/validate", &review_of(deployment(json!({"name": "app", "image": "nginx:1.27", "securityContext": {"privileged": true}})), "CREATE", None))
        .await
        .json();
    let r = &denied["response"];
    assert_eq!(r["allowed"], false);
    assert_eq!(r["status"]["code"], 403);
    let message = r["status"]["message"].as_str().unwrap();
    assert!(
        message.starts_with("Deployment team-a/web denied by vigil: [privileged]"),
        "{message}"
    );
    assert!(
        message.contains("spec.template.spec.containers[0].securityContext.privileged"),
        "{message}"
    );
    assert_eq!(r["auditAnnotations"]["violations"], "privileged");

    // warn: allowed with a warning, and the alert recorded.
    let warned = client
        .review(
            "/validate",
            &review_of(
                deployment(json!({"name": "app", "image": "nginx"})),
                "CREATE",
                None,
            ),
        )
        .await
        .json();
    let r = &warned["response"];
    assert_eq!(r["allowed"], true);
    assert!(r.get("status").is_none());
    let warnings = r["warnings"].as_array().unwrap();
    assert_eq!(warnings.len(), 1);
    assert!(
        warnings[0].as_str().unwrap().starts_with("image-tag: "),
        "{warnings:?}"
    );
    assert_eq!(r["auditAnnotations"]["violations"], "image-tag");

    // audit: allowed quietly, recorded in the annotations only.
    let audited = deployment(json!({"name": "app", "image": "nginx:1.27", "volumeMounts": []}));
    let mut audited = audited;
    audited["spec"]["template"]["spec"]["volumes"] =
        json!([{"name": "logs", "hostPath": {"path": "/var/log"}}]);
    let quiet = client
        .review("/validate", &review_of(audited, "CREATE", None))
        .await
        .json();
    let r = &quiet["response"];
    assert_eq!(r["allowed"], true);
    assert!(r.get("warnings").is_none(), "{r}");
    let alert: Value =
        serde_json::from_str(r["auditAnnotations"]["alert"].as_str().unwrap()).unwrap();
    assert_eq!(alert["violations"][0]["rule"], "host-path");
    assert_eq!(alert["violations"][0]["mode"], "audit");
    assert_eq!(alert["user"]["username"], "bob");

    // One alert line per review with violations, each a whole record.
    let alerts = server.alerts();
    assert_eq!(alerts.len(), 3, "{alerts:?}");
    let first: Value = serde_json::from_str(&alerts[0]).unwrap();
    assert_eq!(first["schema"], "vigil.dev/alert/v1");
    assert_eq!(first["decision"], "denied");
    assert_eq!(first["uid"], "u-1");

    // Nothing wrong: allowed with nothing else, and no alert.
    let clean = client
        .review(
            "/validate",
            &review_of(
                deployment(json!({"name": "app", "image": "nginx:1.27"})),
                "CREATE",
                None,
            ),
        )
        .await
        .json();
    assert_eq!(clean["response"], json!({"uid": "u-1", "allowed": true}));
    assert_eq!(server.alerts().len(), 3);
}

fn apply_patch(object: &Value, response: &Value) -> Option<Value> {
    use base64::Engine as _;
    let patch = response["response"]["patch"].as_str()?;
    assert_eq!(response["response"]["patchType"], "JSONPatch");
    let bytes = base64::engine::general_purpose::STANDARD
        .decode(patch)
        .unwrap();
    let patch: json_patch::Patch = serde_json::from_slice(&bytes).unwrap();
    for op in patch.iter() {
        let path = match op {
            json_patch::PatchOperation::Add(o) => o.path.to_string(),
            json_patch::PatchOperation::Replace(o) => o.path.to_string(),
            json_patch::PatchOperation::Remove(o) => o.path.to_string(),
            other => panic!("unexpected op {other:?}"),
        };
        assert!(
            path == "/metadata/annotations" || path == "/metadata/annotations/vigil.dev~1alert",
            "the patch touches only the alert annotation: {path}"
        );
    }
    let mut patched = object.clone();
    json_patch::patch(&mut patched, &patch).expect("the patch applies cleanly");
    Some(patched)
}

#[tokio::test]
async fn mutate_patches_apply_and_are_idempotent() {
    let server = Server::start(|args, dir| {
        args.policy = Some(write(dir, "policy.yaml", ENFORCE_PRIVILEGED))
    })
    .await;
    let mut client = server.client().await;

    let flagged = deployment(json!({"name": "app", "image": "nginx"}));
    let first = client
        .review("/mutate", &review_of(flagged.clone(), "CREATE", None))
        .await
        .json();
    assert_eq!(first["response"]["allowed"], true);
    let patched = apply_patch(&flagged, &first).expect("a violation is annotated");
    let annotation = patched["metadata"]["annotations"]["vigil.dev/alert"]
        .as_str()
        .unwrap();
    let record: Value = serde_json::from_str(annotation).unwrap();
    assert_eq!(record["violations"][0]["rule"], "image-tag");
    assert_eq!(
        patched["spec"], flagged["spec"],
        "nothing but the annotation changes"
    );

    // A second call on its own output changes nothing.
    let second = client
        .review(
            "/mutate",
            &review_of(patched.clone(), "UPDATE", Some(patched.clone())),
        )
        .await
        .json();
    assert!(second["response"].get("patch").is_none(), "{second}");

    // Existing annotations are kept; the alert one is added beside them.
    let mut annotated = flagged.clone();
    annotated["metadata"]["annotations"] = json!({"team": "a"});
    let reply = client
        .review("/mutate", &review_of(annotated.clone(), "CREATE", None))
        .await
        .json();
    let patched = apply_patch(&annotated, &reply).unwrap();
    assert_eq!(patched["metadata"]["annotations"]["team"], "a");
    assert!(patched["metadata"]["annotations"]["vigil.dev/alert"].is_string());

    // A forged alert annotation on a clean object is removed; a forged one on a flagged object is replaced.
    let mut forged = deployment(json!({"name": "app", "image": "nginx:1.27"}));
    forged["metadata"]["annotations"] =
        json!({"vigil.dev/alert": "{\"violations\":[]}", "keep": "me"});
    let reply = client
        .review("/mutate", &review_of(forged.clone(), "CREATE", None))
        .await
        .json();
    let cleaned = apply_patch(&forged, &reply).unwrap();
    assert_eq!(cleaned["metadata"]["annotations"], json!({"keep": "me"}));
    let mut forged_flagged = flagged.clone();
    forged_flagged["metadata"]["annotations"] = json!({"vigil.dev/alert": "all clear"});
    let reply = client
        .review(
            "/mutate",
            &review_of(forged_flagged.clone(), "CREATE", None),
        )
        .await
        .json();
    let fixed = apply_patch(&forged_flagged, &reply).unwrap();
    assert_ne!(
        fixed["metadata"]["annotations"]["vigil.dev/alert"],
        "all clear"
    );

    // A clean object without the annotation gets no patch at all.
    let clean = deployment(json!({"name": "app", "image": "nginx:1.27"}));
    let reply = client
        .review("/mutate", &review_of(clean, "CREATE", None))
        .await
        .json();
    assert_eq!(reply["response"], json!({"uid": "u-1", "allowed": true}));
}

#[tokio::test]
async fn bad_input_gets_its_status_and_the_server_keeps_answering() {
    let server = Server::start(|_, _| {}).await;
    let valid = read_data("reviews/deployment-create.kube-apiserver-1.36.json");
    let huge = vec![b' '; 3 * 1024 * 1024 + 1];
    // (what, path, content type, body, status, metrics reason)
    type Case<'a> = (&'a str, &'a str, Option<&'a str>, Vec<u8>, u16, &'a str);
    let cases: Vec<Case<'_>> = vec![
        ("not json", "/validate", Some("application/json"), b"{not json".to_vec(), 400, "not-json"),
        ("not a review", "/validate", Some("application/json"), br#"{"hello":"world"}"#.to_vec(), 400, "wrong-api-version"),
        ("wrong apiVersion", "/validate", Some("application/json"), br#"{"apiVersion":"admission.k8s.io/v1beta1","kind":"AdmissionReview","request":{"uid":"x"}}"#.to_vec(), 400, "wrong-api-version"),
        ("wrong kind", "/validate", Some("application/json"), br#"{"apiVersion":"admission.k8s.io/v1","kind":"Pod","request":{"uid":"x"}}"#.to_vec(), 400, "wrong-kind"),
        ("no request", "/validate", Some("application/json"), br#"{"apiVersion":"admission.k8s.io/v1","kind":"AdmissionReview"}"#.to_vec(), 400, "no-request"),
        ("no uid", "/validate", Some("application/json"), br#"{"apiVersion":"admission.k8s.io/v1","kind":"AdmissionReview","request":{"operation":"CREATE"}}"#.to_vec(), 400, "no-uid"),
        ("wrong content type", "/validate", Some("text/plain"), valid.as_bytes().to_vec(), 415, "unsupported-media-type"),
        ("no content type", "/mutate", None, valid.as_bytes().to_vec(), 415, "unsupported-media-type"),
        ("over 3 MiB", "/validate", Some("application/json"), huge, 413, "too-large"),
        ("unknown path", "/admit", Some("application/json"), valid.as_bytes().to_vec(), 404, "not-found"),
    ];
    let mut client = server.client().await;
    for (what, path, ct, body, status, reason) in &cases {
        let before = sample(
            &server.metrics().await,
            &format!("vigil_bad_requests_total{{reason=\"{reason}\"}}"),
        );
        let reply = match client.send("POST", path, *ct, body).await {
            Ok(reply) => reply,
            Err(_) => {
                // The server may close a connection after refusing a body; the client reconnects.
                client = server.client().await;
                client.send("POST", path, *ct, body).await.expect(what)
            }
        };
        assert_eq!(reply.status, *status, "{what}: {}", reply.body);
        assert_eq!(
            reply.body.lines().count(),
            1,
            "{what}: one-line reason: {:?}",
            reply.body
        );
        let after = sample(
            &server.metrics().await,
            &format!("vigil_bad_requests_total{{reason=\"{reason}\"}}"),
        );
        assert_eq!(after, before + 1.0, "{what}: counted under {reason}");
        // The server still answers a valid review afterwards.
        let mut fresh = server.client().await;
        assert_eq!(
            fresh.review("/validate", &valid).await.status,
            200,
            "after {what}"
        );
    }

    let reply = client.send("GET", "/validate", None, b"").await.unwrap();
    assert_eq!(reply.status, 405);
    assert!(
        sample(
            &server.metrics().await,
            "vigil_bad_requests_total{reason=\"method-not-allowed\"}"
        ) >= 1.0
    );
}

#[tokio::test]
async fn an_undecodable_object_is_denied_in_band() {
    let server = Server::start(|_, _| {}).await;
    let mut client = server.client().await;
    let cases = [
        (
            "a number where a string belongs",
            json!({"metadata": {"name": "p"}, "spec": {"containers": [{"name": "a", "image": 5}]}}),
            "spec.containers[0].image",
        ),
        (
            "a null spec",
            json!({"metadata": {"name": "p"}, "spec": null}),
            "no pod spec",
        ),
        (
            "a string where an object belongs",
            json!({"metadata": {"name": "p"}, "spec": {"containers": [{"name": "a", "securityContext": "privileged"}]}}),
            "securityContext",
        ),
    ];
    for (what, object, mentions) in cases {
        let body = json!({
            "apiVersion": "admission.k8s.io/v1", "kind": "AdmissionReview",
            "request": {"uid": "bad-1", "kind": {"group": "", "version": "v1", "kind": "Pod"},
                        "namespace": "default", "operation": "CREATE", "userInfo": {"username": "x"}, "object": object}
        });
        let reply = client.review("/validate", &body.to_string()).await;
        assert_eq!(reply.status, 200, "{what}: never an HTTP error");
        let r = &reply.json()["response"];
        assert_eq!(r["uid"], "bad-1");
        assert_eq!(r["allowed"], false, "{what}");
        assert_eq!(r["status"]["code"], 400, "{what}");
        assert!(
            r["status"]["message"].as_str().unwrap().contains(mentions),
            "{what}: {r}"
        );
    }
}

#[tokio::test]
async fn a_body_announced_over_the_limit_is_refused_without_being_read() {
    let server = Server::start(|_, _| {}).await;
    // Announce 4 MiB, send only a few bytes: the answer must come without waiting for the rest.
    let config = common::client_config(&server.ca.pem, None);
    let tcp = tokio::net::TcpStream::connect(server.addr()).await.unwrap();
    let mut tls = tokio_rustls::TlsConnector::from(std::sync::Arc::new(config))
        .connect(
            rustls::pki_types::ServerName::try_from("localhost").unwrap(),
            tcp,
        )
        .await
        .unwrap();
    tls.write_all(b"POST /validate HTTP/1.1\r\nhost: localhost\r\ncontent-type: application/json\r\ncontent-length: 4194304\r\n\r\n{\"a\":")
        .await
        .unwrap();
    let mut reply = Vec::new();
    let read = tokio::time::timeout(std::time::Duration::from_secs(5), async {
        use tokio::io::AsyncReadExt;
        let mut buf = [0u8; 1024];
        loop {
            let n = tls.read(&mut buf).await.unwrap_or(0);
            if n == 0 {
                break;
            }
            reply.extend_from_slice(&buf[..n]);
            if reply.windows(4).any(|w| w == b"\r\n\r\n") {
                break;
            }
        }
    })
    .await;
    assert!(read.is_ok(), "the 413 came without the body");
    assert!(
        String::from_utf8_lossy(&reply).starts_with("HTTP/1.1 413"),
        "{}",
        String::from_utf8_lossy(&reply)
    );
}

#[tokio::test]
async fn plain_http_to_the_tls_port_is_dropped_cleanly() {
    let server = Server::start(|_, _| {}).await;
    let mut tcp = tokio::net::TcpStream::connect(server.addr()).await.unwrap();
    tcp.write_all(b"GET /healthz HTTP/1.1\r\nhost: localhost\r\n\r\n")
        .await
        .unwrap();
    let mut buf = Vec::new();
    use tokio::io::AsyncReadExt;
    let _ = tokio::time::timeout(std::time::Duration::from_secs(5), tcp.read_to_end(&mut buf))
        .await
        .expect("closed promptly");
    assert!(!String::from_utf8_lossy(&buf).contains("200 OK"));
    let mut client = server.client().await;
    assert_eq!(
        client
            .send("GET", "/healthz", None, b"")
            .await
            .unwrap()
            .status,
        200
    );
    tokio::time::sleep(std::time::Duration::from_millis(100)).await;
    assert!(
        sample(
            &server.metrics().await,
            "vigil_bad_requests_total{reason=\"tls-handshake\"}"
        ) >= 1.0
    );
}

#[tokio::test]
async fn mtls_accepts_only_certificates_from_the_client_ca() {
    let client_ca = common::Ca::new("api server client CA");
    let client_ca_pem = client_ca.pem.clone();
    let server = Server::start(move |args, dir| {
        args.client_ca = Some(write(dir, "client-ca.crt", &client_ca_pem))
    })
    .await;
    let valid = read_data("reviews/pod-create.kube-apiserver-1.36.json");

    // No client certificate: the handshake or the first request fails.
    let anonymous = match Client::connect(server.addr(), &server.ca.pem, None).await {
        Err(_) => true,
        Ok(mut c) => c
            .send(
                "POST",
                "/validate",
                Some("application/json"),
                valid.as_bytes(),
            )
            .await
            .is_err(),
    };
    assert!(anonymous, "a client without a certificate is refused");

    // A certificate from another CA is refused.
    let stranger = common::Ca::new("someone else").client("mallory");
    let refused = match Client::connect(server.addr(), &server.ca.pem, Some(&stranger)).await {
        Err(_) => true,
        Ok(mut c) => c
            .send(
                "POST",
                "/validate",
                Some("application/json"),
                valid.as_bytes(),
            )
            .await
            .is_err(),
    };
    assert!(refused, "a certificate from another CA is refused");

    // The right one works.
    let apiserver = client_ca.client("kube-apiserver");
    let mut client = Client::connect(server.addr(), &server.ca.pem, Some(&apiserver))
        .await
        .unwrap();
    assert_eq!(client.review("/validate", &valid).await.status, 200);
}

#[tokio::test]
async fn health_and_readiness_on_both_ports() {
    let server = Server::start(|_, _| {}).await;
    let mut client = server.client().await;
    assert_eq!(
        client
            .send("GET", "/healthz", None, b"")
            .await
            .unwrap()
            .status,
        200
    );
    assert_eq!(
        client
            .send("GET", "/readyz", None, b"")
            .await
            .unwrap()
            .status,
        200
    );
    assert_eq!(
        common::plain_get(server.running.metrics_addr, "/healthz")
            .await
            .0,
        200
    );
    assert_eq!(
        common::plain_get(server.running.metrics_addr, "/readyz")
            .await
            .0,
        200
    );
    server
        .running
        .app
        .draining
        .store(true, std::sync::atomic::Ordering::Release);
    assert_eq!(
        client
            .send("GET", "/readyz", None, b"")
            .await
            .unwrap()
            .status,
        503
    );
    assert_eq!(
        common::plain_get(server.running.metrics_addr, "/readyz")
            .await
            .0,
        503
    );
    assert_eq!(
        client
            .send("GET", "/healthz", None, b"")
            .await
            .unwrap()
            .status,
        200,
        "alive while draining"
    );
}

/// `promtool check metrics`, from Debian's prometheus package, which `make test` installs.
fn promtool_check(text: &str) {
    let mut child = Command::new("promtool")
        .args(["check", "metrics"])
        .stdin(std::process::Stdio::piped())
        .stdout(std::process::Stdio::piped())
        .stderr(std::process::Stdio::piped())
        .spawn()
        .expect("promtool is installed by `make test` (Debian package prometheus)");
    child
        .stdin
        .take()
        .unwrap()
        .write_all(text.as_bytes())
        .unwrap();
    let out = child.wait_with_output().unwrap();
    assert!(
        out.status.success(),
        "promtool check metrics failed:\n{}{}\n{text}",
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    );
}

#[tokio::test]
async fn metrics_parse_as_prometheus_text_and_move() {
    let policy = "apiVersion: vigil.dev/v1alpha1\nkind: Policy\nmode: audit\nrules:\n  privileged: enforce\nexemptions:\n  - name: bob-may\n    reason: test\n    users: [bob]\n    rules: [image-tag]\n";
    let server =
        Server::start(|args, dir| args.policy = Some(write(dir, "policy.yaml", policy))).await;
    let mut client = server.client().await;
    let before = server.metrics().await;
    promtool_check(&before);
    assert!(before.contains("vigil_policy_info{hash="), "{before}");
    assert!(sample(&before, "vigil_certificate_expiry_timestamp_seconds") > 1.7e9);

    client.review("/validate", &review_of(deployment(json!({"name": "app", "image": "nginx", "securityContext": {"privileged": true}})), "CREATE", None)).await;
    client
        .review("/validate", &read_data("reviews/pod-delete.DERIVED.json"))
        .await;
    client
        .send("POST", "/validate", Some("application/json"), b"nope")
        .await
        .unwrap();

    let after = server.metrics().await;
    promtool_check(&after);
    let delta = |series: &str| sample(&after, series) - sample(&before, series);
    assert_eq!(
        delta(
            "vigil_admission_requests_total{kind=\"Deployment\",operation=\"CREATE\",decision=\"denied\"}"
        ),
        1.0
    );
    assert_eq!(
        delta(
            "vigil_admission_requests_total{kind=\"Pod\",operation=\"DELETE\",decision=\"skipped\"}"
        ),
        1.0
    );
    assert_eq!(
        delta("vigil_violations_total{rule=\"privileged\",mode=\"enforce\"}"),
        1.0
    );
    assert_eq!(
        delta("vigil_exemptions_applied_total{exemption=\"bob-may\"}"),
        1.0
    );
    assert_eq!(delta("vigil_bad_requests_total{reason=\"not-json\"}"), 1.0);
    assert_eq!(delta("vigil_admission_duration_seconds_count"), 2.0);
    assert!(
        after.contains("vigil_admission_duration_seconds_bucket{le=\"0.00005\"}"),
        "buckets start at 50 µs"
    );
}

/// `kubectl exec`, `attach` and `port-forward`, as recorded from a real kube-apiserver: under the default
/// policy each is admitted, written to the alert stream and counted by its options kind with operation
/// CONNECT; under `pod-exec: enforce` exec and attach are denied, and the counters say so.
#[tokio::test]
async fn exec_attach_and_port_forward_are_recorded_counted_and_enforceable() {
    let captured = [
        (
            "reviews/pod-exec-connect.kube-apiserver-1.36.json",
            "PodExecOptions",
            "pod-exec",
        ),
        (
            "reviews/pod-attach-connect.kube-apiserver-1.36.json",
            "PodAttachOptions",
            "pod-exec",
        ),
        (
            "reviews/pod-portforward-connect.kube-apiserver-1.36.json",
            "PodPortForwardOptions",
            "port-forward",
        ),
    ];
    let server = Server::start(|_, _| {}).await;
    let mut client = server.client().await;
    let before = server.metrics().await;
    for (rel, _, _) in captured {
        let reply = client.review("/validate", &read_data(rel)).await.json();
        assert_eq!(reply["response"]["allowed"], true, "{rel}: {reply}");
    }
    let after = server.metrics().await;
    promtool_check(&after);
    let delta = |series: &str| sample(&after, series) - sample(&before, series);
    for (_, kind, _) in captured {
        assert_eq!(
            delta(&format!(
                "vigil_admission_requests_total{{kind=\"{kind}\",operation=\"CONNECT\",decision=\"allowed\"}}"
            )),
            1.0,
            "{kind}"
        );
    }
    assert_eq!(
        delta("vigil_violations_total{rule=\"pod-exec\",mode=\"audit\"}"),
        2.0
    );
    assert_eq!(
        delta("vigil_violations_total{rule=\"port-forward\",mode=\"audit\"}"),
        1.0
    );
    let alerts: Vec<Value> = server
        .alerts()
        .iter()
        .map(|line| serde_json::from_str(line).unwrap())
        .collect();
    let rules: Vec<&str> = alerts
        .iter()
        .map(|a| {
            assert_eq!(a["operation"], "CONNECT", "{a}");
            assert_eq!(a["object"]["kind"], "Pod", "{a}");
            a["violations"][0]["rule"].as_str().unwrap()
        })
        .collect();
    assert_eq!(rules, ["pod-exec", "pod-exec", "port-forward"]);

    let enforcing = Server::start(|args, dir| {
        args.policy = Some(write(
            dir,
            "policy.yaml",
            "apiVersion: vigil.dev/v1alpha1\nkind: Policy\nrules:\n  pod-exec: enforce\n",
        ))
    })
    .await;
    let mut client = enforcing.client().await;
    for (rel, kind, rule) in captured {
        let reply = client.review("/validate", &read_data(rel)).await.json();
        let denied = rule == "pod-exec";
        assert_eq!(reply["response"]["allowed"], !denied, "{rel}: {reply}");
        let metrics = enforcing.metrics().await;
        let decision = if denied { "denied" } else { "allowed" };
        assert_eq!(
            sample(
                &metrics,
                &format!(
                    "vigil_admission_requests_total{{kind=\"{kind}\",operation=\"CONNECT\",decision=\"{decision}\"}}"
                )
            ),
            1.0,
            "{kind}"
        );
    }
}
