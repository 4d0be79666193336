//! Registry verification against a real registry: Debian's `docker-registry` (distribution), started on
//! loopback by each test, with images the tests push themselves with oci-client's push API.

mod common;

use std::io::Write as _;
use std::path::Path;
use std::process::Command;
use std::sync::Arc;
use std::time::{Duration, Instant};

use common::cosign::{Cosign, Form};
use common::registry::{Registry, sha256_digest};
use common::{Ca, Server, write};
use oci_client::Client;
use oci_client::manifest::{OCI_IMAGE_INDEX_MEDIA_TYPE, OCI_IMAGE_MEDIA_TYPE};
use serde_json::{Value, json};

fn pod_review(uid: &str, containers: Value, pod_security: Value) -> String {
    json!({
        "apiVersion": "admission.k8s.io/v1", "kind": "AdmissionReview",
        "request": {"uid": uid, "kind": {"group": "", "version": "v1", "kind": "Pod"},
                    "namespace": "team-a", "name": "p", "operation": "CREATE",
                    "userInfo": {"username": "bob", "groups": ["dev"]},
                    "object": {"apiVersion": "v1", "kind": "Pod", "metadata": {"name": "p", "namespace": "team-a"},
                               "spec": {"securityContext": pod_security, "containers": containers}}}
    })
    .to_string()
}

fn one(image: &str) -> Value {
    json!([{"name": "app", "image": image}])
}

/// The violations of a response's alert, as (rule, mode, message).
fn violations(response: &Value) -> Vec<(String, String, String)> {
    let Some(alert) = response["response"]["auditAnnotations"]["alert"].as_str() else {
        return Vec::new();
    };
    let alert: Value = serde_json::from_str(alert).unwrap();
    alert["violations"]
        .as_array()
        .unwrap()
        .iter()
        .map(|v| {
            (
                v["rule"].as_str().unwrap().to_owned(),
                v["mode"].as_str().unwrap().to_owned(),
                v["message"].as_str().unwrap().to_owned(),
            )
        })
        .collect()
}

const HEAD: &str =
    "apiVersion: vigil.dev/v1alpha1\nkind: Policy\nmode: audit\nrules:\n  image-tag: off\n";

async fn vigil_for(
    registry: &Registry,
    policy: &str,
    tweak: impl FnOnce(&mut vigil::server::ServeArgs, &Path),
) -> Server {
    let host = registry.host.clone();
    let tls = registry.tls;
    let policy = policy.to_owned();
    Server::start(move |args, dir| {
        args.policy = Some(write(dir, "policy.yaml", &policy));
        if !tls {
            args.registry.registry_plain_http = vec![host];
        }
        tweak(args, dir);
    })
    .await
}

#[tokio::test]
async fn resolvable_root_and_deny_listed_images() {
    common::install_provider();
    let registry = Registry::start(None, None);
    let client = registry.pusher(None);
    let root_digest = registry
        .push_image(&client, "team/root", "v1", "root", "amd64", "x")
        .await;
    registry
        .push_image(&client, "team/nonroot", "v1", "1000:1000", "amd64", "y")
        .await;
    let (index_digest, _) = registry.push_index(&client, "team/multi", "v1").await;
    let bad = "sha256:0000000000000000000000000000000000000000000000000000000000000bad";
    let policy = format!(
        "{HEAD}  image-resolvable: enforce\n  image-runs-as-root: enforce\n  image-digest-deny:\n    mode: enforce\n    digests: [\"{root_digest}\", \"{index_digest}\", \"{bad}\"]\n"
    );
    let server = vigil_for(&registry, &policy, |_, _| {}).await;
    let mut c = server.client().await;
    let host = &registry.host;

    // Resolvable and not: a missing tag and a missing repository do not resolve.
    let ok = c
        .review(
            "/validate",
            &pod_review("r1", one(&format!("{host}/team/nonroot:v1")), json!({})),
        )
        .await
        .json();
    assert_eq!(ok["response"]["allowed"], true, "{ok}");
    assert!(violations(&ok).is_empty(), "{:?}", violations(&ok));
    for missing in [
        format!("{host}/team/nonroot:v9"),
        format!("{host}/team/typo:v1"),
    ] {
        let r = c
            .review("/validate", &pod_review("r2", one(&missing), json!({})))
            .await
            .json();
        assert_eq!(r["response"]["allowed"], false, "{missing}");
        let v = violations(&r);
        assert_eq!(v[0].0, "image-resolvable", "{v:?}");
        assert!(v[0].2.contains("does not resolve"), "{v:?}");
    }

    // Deny-listed digests, whether the pod names the tag or the digest.
    let by_tag = c
        .review(
            "/validate",
            &pod_review(
                "d1",
                one(&format!("{host}/team/root:v1")),
                json!({"runAsNonRoot": true}),
            ),
        )
        .await
        .json();
    let v = violations(&by_tag);
    assert!(
        v.iter().any(|(r, m, msg)| r == "image-digest-deny"
            && m == "enforce"
            && msg.contains(&root_digest)),
        "{v:?}"
    );
    let by_digest = c
        .review(
            "/validate",
            &pod_review(
                "d2",
                one(&format!("{host}/team/root@{root_digest}")),
                json!({"runAsNonRoot": true}),
            ),
        )
        .await
        .json();
    assert!(
        violations(&by_digest)
            .iter()
            .any(|(r, _, _)| r == "image-digest-deny")
    );
    let unknown_bad = c
        .review(
            "/validate",
            &pod_review("d3", one(&format!("{host}/team/gone@{bad}")), json!({})),
        )
        .await
        .json();
    assert!(
        violations(&unknown_bad)
            .iter()
            .any(|(r, _, _)| r == "image-digest-deny"),
        "a named bad digest needs no look-up"
    );
    let index = c
        .review(
            "/validate",
            &pod_review(
                "d4",
                one(&format!("{host}/team/multi:v1")),
                json!({"runAsNonRoot": true}),
            ),
        )
        .await
        .json();
    let v = violations(&index);
    assert!(
        v.iter()
            .any(|(r, _, msg)| r == "image-digest-deny" && msg.contains(&index_digest)),
        "the index digest counts: {v:?}"
    );

    // Runs as root from the image config, and not when the pod sets runAsNonRoot or a non-zero user.
    let root = c
        .review(
            "/validate",
            &pod_review("u1", one(&format!("{host}/team/multi:amd64")), json!({})),
        )
        .await
        .json();
    let v = violations(&root);
    assert!(
        v.iter()
            .any(|(r, _, msg)| r == "image-runs-as-root" && msg.contains("User \"root\"")),
        "{v:?}"
    );
    for security in [json!({"runAsNonRoot": true}), json!({"runAsUser": 1000})] {
        let r = c
            .review(
                "/validate",
                &pod_review(
                    "u2",
                    one(&format!("{host}/team/multi:amd64")),
                    security.clone(),
                ),
            )
            .await
            .json();
        assert!(
            !violations(&r)
                .iter()
                .any(|(rule, _, _)| rule == "image-runs-as-root"),
            "{security}"
        );
    }
    let nonroot = c
        .review(
            "/validate",
            &pod_review("u3", one(&format!("{host}/team/nonroot:v1")), json!({})),
        )
        .await
        .json();
    assert!(
        !violations(&nonroot)
            .iter()
            .any(|(rule, _, _)| rule == "image-runs-as-root")
    );
}

#[tokio::test]
async fn a_re_pushed_tag_raises_image_tag_moved() {
    common::install_provider();
    let registry = Registry::start(None, None);
    let client = registry.pusher(None);
    let first = registry
        .push_image(&client, "team/app", "stable", "1000", "amd64", "one")
        .await;
    let policy = format!(
        "{HEAD}  image-tag-moved: {{ mode: enforce, window: 1h }}\nregistry:\n  cacheTTL: 0s\n"
    );
    let server = vigil_for(&registry, &policy, |_, _| {}).await;
    let mut c = server.client().await;
    let image = format!("{}/team/app:stable", registry.host);
    let r = c
        .review("/validate", &pod_review("m1", one(&image), json!({})))
        .await
        .json();
    assert_eq!(r["response"]["allowed"], true, "first seen: {r}");
    let again = c
        .review("/validate", &pod_review("m2", one(&image), json!({})))
        .await
        .json();
    assert_eq!(again["response"]["allowed"], true, "same digest again");

    let second = registry
        .push_image(&client, "team/app", "stable", "1000", "amd64", "two")
        .await;
    assert_ne!(first, second);
    let moved = c
        .review("/validate", &pod_review("m3", one(&image), json!({})))
        .await
        .json();
    assert_eq!(moved["response"]["allowed"], false);
    let v = violations(&moved);
    assert_eq!(v[0].0, "image-tag-moved");
    assert!(v[0].2.contains(&first) && v[0].2.contains(&second), "{v:?}");
    assert!(v[0].2.contains("not proof of compromise"), "{v:?}");
}

#[tokio::test]
async fn basic_auth_with_right_and_wrong_credentials() {
    common::install_provider();
    let registry = Registry::start(None, Some(("puller", "right-password")));
    let client = registry.pusher(None);
    registry
        .push_image(&client, "private/app", "v1", "1000", "amd64", "p")
        .await;
    let image = format!("{}/private/app:v1", registry.host);
    let policy = format!("{HEAD}  image-resolvable: {{ mode: enforce, onError: deny }}\n");
    let config = |password: &str| {
        use base64::Engine as _;
        let auth = base64::engine::general_purpose::STANDARD.encode(format!("puller:{password}"));
        json!({"auths": {registry.host.clone(): {"auth": auth}}}).to_string()
    };
    for (password, allowed, says) in [
        ("right-password", true, ""),
        ("wrong-password", false, "not verified"),
    ] {
        let docker_config = config(password);
        let server = vigil_for(&registry, &policy, move |args, dir| {
            args.registry.registry_auth = Some(write(dir, "config.json", &docker_config));
        })
        .await;
        let r = server
            .client()
            .await
            .review("/validate", &pod_review("a1", one(&image), json!({})))
            .await
            .json();
        assert_eq!(r["response"]["allowed"], allowed, "{password}: {r}");
        if !says.is_empty() {
            let v = violations(&r);
            assert!(
                v[0].2.contains(says) && v[0].2.contains("credentials"),
                "{v:?}"
            );
        }
    }
}

#[tokio::test]
async fn tls_registries_need_their_ca() {
    common::install_provider();
    let ca = Ca::new("registry CA");
    let registry = Registry::start(Some(&ca), None);
    let client = registry.pusher(Some(&ca));
    registry
        .push_image(&client, "secure/app", "v1", "1000", "amd64", "s")
        .await;
    let image = format!("{}/secure/app:v1", registry.host);
    let policy = format!("{HEAD}  image-resolvable: {{ mode: enforce, onError: deny }}\n");

    let ca_pem = ca.pem.clone();
    let trusted = vigil_for(&registry, &policy, move |args, dir| {
        args.registry.registry_ca = vec![write(dir, "registry-ca.pem", &ca_pem)];
    })
    .await;
    let r = trusted
        .client()
        .await
        .review("/validate", &pod_review("t1", one(&image), json!({})))
        .await
        .json();
    assert_eq!(r["response"]["allowed"], true, "{r}");

    let untrusted = vigil_for(&registry, &policy, |_, _| {}).await;
    let r = untrusted
        .client()
        .await
        .review("/validate", &pod_review("t2", one(&image), json!({})))
        .await
        .json();
    assert_eq!(r["response"]["allowed"], false);
    assert!(
        violations(&r)[0].2.contains("not verified"),
        "{:?}",
        violations(&r)
    );
}

/// Sends a pod review of `image` with the API server's `timeout=2s` and checks that the answer came inside
/// it, whatever the registry does; returns the answer and how long it took.
async fn review_within_two_seconds(server: &Server, uid: &str, image: &str) -> (Value, Duration) {
    let mut c = server.client().await;
    let started = Instant::now();
    let body = pod_review(uid, one(image), json!({}));
    let reply = c
        .send(
            "POST",
            "/validate?timeout=2s",
            Some("application/json"),
            body.as_bytes(),
        )
        .await
        .unwrap();
    let took = started.elapsed();
    assert!(
        took < Duration::from_secs(2),
        "answered inside the review's timeout: {took:?}"
    );
    (reply.json(), took)
}

#[tokio::test]
async fn a_registry_outage_is_seen_and_on_error_decides() {
    common::install_provider();
    let mut registry = Registry::start(None, None);
    let client = registry.pusher(None);
    registry
        .push_image(&client, "team/app", "v1", "1000", "amd64", "o")
        .await;
    let image = format!("{}/team/app:v1", registry.host);
    let allow = format!("{HEAD}  image-resolvable: enforce\nregistry:\n  timeout: 1s\n");
    let deny = format!(
        "{HEAD}  image-resolvable: {{ mode: enforce, onError: deny }}\nregistry:\n  timeout: 1s\n"
    );
    let allow_server = vigil_for(&registry, &allow, |_, _| {}).await;
    let deny_server = vigil_for(&registry, &deny, |_, _| {}).await;
    registry.stop();

    for (server, allowed) in [(&allow_server, true), (&deny_server, false)] {
        let (r, took) = review_within_two_seconds(server, "o1", &image).await;
        assert_eq!(r["response"]["allowed"], allowed, "{r}");
        let v = violations(&r);
        assert_eq!(v.len(), 1, "{v:?}");
        assert!(v[0].2.contains("not verified"), "{v:?}");
        assert_eq!(v[0].1, if allowed { "audit" } else { "enforce" });
        eprintln!(
            "registry: outage answered in {took:?} (onError {})",
            if allowed { "allow" } else { "deny" }
        );
    }
    let metrics = allow_server.metrics().await;
    assert!(
        metrics.contains("vigil_registry_errors_total{registry=\"127.0.0.1:"),
        "{metrics}"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn concurrent_reviews_of_one_new_image_make_one_look_up() {
    common::install_provider();
    let registry = Registry::start(None, None);
    let client = registry.pusher(None);
    registry
        .push_image(&client, "team/popular", "v1", "1000", "amd64", "d")
        .await;
    let image = format!("{}/team/popular:v1", registry.host);
    let policy = format!("{HEAD}  image-resolvable: enforce\n");
    let server = vigil_for(&registry, &policy, |_, _| {}).await;
    let before = registry.manifest_gets("team/popular");

    let mut clients = Vec::new();
    for _ in 0..50 {
        clients.push(server.client().await);
    }
    let body = Arc::new(pod_review("c", one(&image), json!({})));
    let tasks: Vec<_> = clients
        .into_iter()
        .map(|mut c| {
            let body = body.clone();
            tokio::spawn(async move { c.review("/validate", &body).await.json() })
        })
        .collect();
    for t in tasks {
        assert_eq!(t.await.unwrap()["response"]["allowed"], true);
    }
    // The registry writes its access log asynchronously; give it a moment.
    tokio::time::sleep(Duration::from_millis(300)).await;
    let gets = registry.manifest_gets("team/popular") - before;
    assert_eq!(
        gets,
        1,
        "50 concurrent reviews make exactly one manifest request:\n{}",
        registry.log_text()
    );
    let metrics = server.metrics().await;
    assert_eq!(
        common::sample(
            &metrics,
            "vigil_registry_cache_requests_total{result=\"miss\"}"
        ),
        50.0,
        "all 50 missed the cache, and waited on one look-up"
    );
    let _ = std::io::stderr()
        .write_all(b"registry: 50 concurrent reviews of one new image, 1 manifest request\n");
}

#[test]
fn check_resolve_makes_the_same_look_ups() {
    common::install_provider();
    let runtime = tokio::runtime::Runtime::new().unwrap();
    let registry = Registry::start(None, None);
    let client = registry.pusher(None);
    runtime.block_on(registry.push_image(&client, "team/app", "v1", "root", "amd64", "c"));
    let dir = tempfile::tempdir().unwrap();
    let policy = write(
        dir.path(),
        "policy.yaml",
        &format!("{HEAD}  image-resolvable: enforce\n  image-runs-as-root: enforce\n"),
    );
    let manifest = write(
        dir.path(),
        "pod.yaml",
        &format!(
            "apiVersion: v1\nkind: Pod\nmetadata: {{name: p}}\nspec:\n  containers:\n  - {{name: a, image: '{0}/team/app:v1'}}\n  - {{name: b, image: '{0}/team/missing:v1'}}\n",
            registry.host
        ),
    );
    let out = Command::new(env!("CARGO_BIN_EXE_vigil"))
        .args([
            "check",
            "--resolve",
            "--output",
            "json",
            "--registry-plain-http",
            &registry.host,
        ])
        .arg("--policy")
        .arg(&policy)
        .arg(&manifest)
        .output()
        .unwrap();
    assert_eq!(
        out.status.code(),
        Some(1),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let results: Value = serde_json::from_slice(&out.stdout).unwrap();
    let rules: Vec<&str> = results[0]["violations"]
        .as_array()
        .unwrap()
        .iter()
        .map(|v| v["rule"].as_str().unwrap())
        .collect();
    assert_eq!(
        rules,
        ["image-resolvable", "image-runs-as-root"],
        "{results}"
    );
}

// ------------------------------------------------------------------------------------------------
// image-signature: images signed by the real cosign CLI, in both of its forms.
// ------------------------------------------------------------------------------------------------

/// A policy whose `image-signature` covers `{host}/signed/*` and trusts `keys` (name, PEM).
fn signature_policy(host: &str, keys: &[(&str, &str)], extra: &str) -> String {
    let mut policy = format!(
        "{HEAD}  image-signature:\n    mode: enforce\n    images: [\"{host}/signed/*\"]\n    keys:\n"
    );
    for (name, pem) in keys {
        policy.push_str(&format!("      - name: {name}\n        publicKey: |\n"));
        for line in pem.lines() {
            policy.push_str(&format!("          {line}\n"));
        }
    }
    policy.push_str(extra);
    policy
}

/// The `signatures` audit annotation: the images a trusted key verified.
fn signed(response: &Value) -> Vec<Value> {
    response["response"]["auditAnnotations"]["signatures"]
        .as_str()
        .map(|s| serde_json::from_str(s).unwrap())
        .unwrap_or_default()
}

/// `sha256-<hex>`: the tag cosign derives from a digest (`.sig` appended for the legacy form).
fn digest_tag(digest: &str) -> String {
    digest.replace(':', "-")
}

/// Copies the signature of `from@from_digest` onto `to@to_digest`, as an attacker with push access to `to`
/// would: the `.sig` manifest under the target's `.sig` tag, or the bundle referrer re-pointed at the target
/// and listed in the target's referrers tag. What is signed is left as it was.
async fn copy_signature(
    registry: &Registry,
    client: &Client,
    form: Form,
    (from, from_digest): (&str, &str),
    (to, to_digest): (&str, &str),
) {
    match form {
        Form::Tag => {
            let sig = format!("{}.sig", digest_tag(from_digest));
            let target = format!("{}.sig", digest_tag(to_digest));
            registry
                .copy_manifest(client, from, &sig, to, Some(&target))
                .await;
        }
        Form::Bundle => {
            let index = registry
                .manifest(client, from, &digest_tag(from_digest))
                .await;
            let index: Value = serde_json::from_slice(&index).unwrap();
            let referrer = index["manifests"][0]["digest"].as_str().unwrap();
            let body = registry.manifest(client, from, referrer).await;
            let mut manifest: Value = serde_json::from_slice(&body).unwrap();
            for blob in [&manifest["config"], &manifest["layers"][0]] {
                registry
                    .copy_blob(client, from, to, blob["digest"].as_str().unwrap())
                    .await;
            }
            let target = registry.manifest(client, to, to_digest).await;
            manifest["subject"]["digest"] = json!(to_digest);
            manifest["subject"]["size"] = json!(target.len());
            let body = serde_json::to_vec(&manifest).unwrap();
            let (digest, size) = (sha256_digest(&body), body.len());
            registry
                .put_manifest(client, to, &digest, OCI_IMAGE_MEDIA_TYPE, body)
                .await;
            let index = json!({"schemaVersion": 2, "mediaType": OCI_IMAGE_INDEX_MEDIA_TYPE,
                "manifests": [{"mediaType": OCI_IMAGE_MEDIA_TYPE, "size": size, "digest": digest,
                               "artifactType": "application/vnd.dev.sigstore.bundle.v0.3+json"}]});
            registry
                .put_manifest(
                    client,
                    to,
                    &digest_tag(to_digest),
                    OCI_IMAGE_INDEX_MEDIA_TYPE,
                    serde_json::to_vec(&index).unwrap(),
                )
                .await;
        }
    }
}

/// Sends a pod with `image` and returns the response.
async fn judge(c: &mut common::Client, uid: &str, image: &str) -> Value {
    c.review("/validate", &pod_review(uid, one(image), json!({})))
        .await
        .json()
}

/// The one `image-signature` violation of a denial, as (mode, message).
fn signature_denial(r: &Value, what: &str) -> String {
    assert_eq!(r["response"]["allowed"], false, "{what}: {r}");
    let v = violations(r);
    assert_eq!(v.len(), 1, "{what}: {v:?}");
    assert_eq!(
        (v[0].0.as_str(), v[0].1.as_str()),
        ("image-signature", "enforce"),
        "{what}"
    );
    v[0].2.clone()
}

#[tokio::test]
async fn cosign_signatures_in_both_forms() {
    common::install_provider();
    let registry = Registry::start(None, None);
    let client = registry.pusher(None);
    let cosign = Cosign::find();
    let trusted = cosign.key_pair("trusted");
    let other = cosign.key_pair("other");
    let host = registry.host.clone();
    let policy = signature_policy(
        &host,
        &[("corp-release", &trusted.public_pem)],
        "registry:\n  cacheTTL: 0s\n  negativeCacheTTL: 0s\n",
    );
    let server = vigil_for(&registry, &policy, |_, _| {}).await;
    let mut c = server.client().await;
    let sign = |key: &Path, repo: &str, digest: &str, form: Form| {
        cosign.sign(key, &format!("{host}/{repo}@{digest}"), form)
    };

    for form in Form::BOTH {
        let repo = |name: &str| format!("signed/{}/{name}", form.as_alert());
        let image = |name: &str, tag: &str| format!("{host}/{}:{tag}", repo(name));
        let push = |name: &str, salt: &str| {
            let (client, repo) = (client.clone(), repo(name));
            let registry = &registry;
            let salt = format!("{salt} {form:?}");
            async move {
                registry
                    .push_image(&client, &repo, "v1", "1000", "amd64", &salt)
                    .await
            }
        };

        // Signed by a trusted key: admitted, and the key is named.
        let app = push("app", "app").await;
        sign(&trusted.key, &repo("app"), &app, form);
        let r = judge(&mut c, "s1", &image("app", "v1")).await;
        assert_eq!(r["response"]["allowed"], true, "{form:?}: {r}");
        assert!(violations(&r).is_empty(), "{form:?}: {:?}", violations(&r));
        assert_eq!(
            signed(&r),
            [
                json!({"container": "app", "image": image("app", "v1"), "digest": app,
                    "key": "corp-release", "form": form.as_alert()})
            ],
            "{form:?}"
        );
        // With another violation, the alert record names the key too.
        let privileged = json!([{"name": "app", "image": image("app", "v1"), "securityContext": {"privileged": true}}]);
        let r = c
            .review("/validate", &pod_review("s2", privileged, json!({})))
            .await
            .json();
        let record: Value =
            serde_json::from_str(r["response"]["auditAnnotations"]["alert"].as_str().unwrap())
                .unwrap();
        assert_eq!(record["signatures"][0]["key"], "corp-release", "{record}");

        // Unsigned.
        push("plain", "plain").await;
        let m = signature_denial(
            &judge(&mut c, "s3", &image("plain", "v1")).await,
            "unsigned",
        );
        assert!(
            m.contains("is not signed: no cosign signature for sha256:"),
            "{form:?}: {m}"
        );

        // Signed by a key the policy does not trust.
        let stranger = push("stranger", "stranger").await;
        sign(&other.key, &repo("stranger"), &stranger, form);
        let m = signature_denial(
            &judge(&mut c, "s4", &image("stranger", "v1")).await,
            "other key",
        );
        assert!(
            m.contains("has no signature by a trusted key"),
            "{form:?}: {m}"
        );
        assert!(m.contains("signature by no trusted key"), "{form:?}: {m}");

        // A tag re-pushed after signing: the new digest is unsigned; the old signature copied onto it names
        // the old digest.
        let first = push("moving", "first").await;
        sign(&trusted.key, &repo("moving"), &first, form);
        assert_eq!(
            judge(&mut c, "s5", &image("moving", "v1")).await["response"]["allowed"],
            true
        );
        let second = push("moving", "second").await;
        assert_ne!(first, second);
        let m = signature_denial(
            &judge(&mut c, "s6", &image("moving", "v1")).await,
            "re-pushed",
        );
        assert!(
            m.contains("is not signed") && m.contains(&second),
            "{form:?}: {m}"
        );
        copy_signature(
            &registry,
            &client,
            form,
            (&repo("moving"), &first),
            (&repo("moving"), &second),
        )
        .await;
        let m = signature_denial(
            &judge(&mut c, "s7", &image("moving", "v1")).await,
            "old signature on a re-pushed tag",
        );
        assert!(
            m.contains("for another digest") && m.contains(&first) && m.contains(&second),
            "{form:?}: {m}"
        );

        // A signature copied from another repository onto another image names that image's digest.
        let forged = push("forged", "forged").await;
        copy_signature(
            &registry,
            &client,
            form,
            (&repo("app"), &app),
            (&repo("forged"), &forged),
        )
        .await;
        let m = signature_denial(&judge(&mut c, "s8", &image("forged", "v1")).await, "copied");
        assert!(
            m.contains("for another digest") && m.contains(&app),
            "{form:?}: {m}"
        );

        // The same signed content copied into another repository with its signature: the `.sig` payload
        // names the repository it was signed in; cosign 3's bundle names only the digest.
        registry
            .copy_manifest(&client, &repo("app"), &app, &repo("mirror"), Some("v1"))
            .await;
        copy_signature(
            &registry,
            &client,
            form,
            (&repo("app"), &app),
            (&repo("mirror"), &app),
        )
        .await;
        let r = judge(&mut c, "s9", &image("mirror", "v1")).await;
        match form {
            Form::Tag => {
                let m = signature_denial(&r, "same content, other repository");
                assert!(
                    m.contains("for another repository")
                        && m.contains(&format!("{host}/{}", repo("app"))),
                    "{m}"
                );
            }
            Form::Bundle => {
                assert_eq!(r["response"]["allowed"], true, "{r}");
                eprintln!(
                    "registry: a bundle copied with its content into another repository verifies: cosign 3's bundle names no repository"
                );
            }
        }

        // A multi-platform index, signed at the index digest as `cosign sign` does.
        let (index, amd64) = registry.push_index(&client, &repo("multi"), "v1").await;
        sign(&trusted.key, &repo("multi"), &index, form);
        let r = judge(&mut c, "s10", &image("multi", "v1")).await;
        assert_eq!(r["response"]["allowed"], true, "{form:?}: {r}");
        assert_eq!(signed(&r)[0]["digest"], json!(index));
        let by_platform = format!("{host}/{}@{amd64}", repo("multi"));
        let m = signature_denial(&judge(&mut c, "s11", &by_platform).await, "platform digest");
        assert!(
            m.contains("is not signed"),
            "the platform manifest itself is not signed: {m}"
        );
        eprintln!(
            "registry: cosign {form:?}: signed, unsigned, other key, re-pushed tag, copied signatures and a signed index judged"
        );
    }

    // Images the rule does not cover are not looked up for signatures.
    let outside = "elsewhere/app";
    registry
        .push_image(&client, outside, "v1", "1000", "amd64", "outside")
        .await;
    let before = registry.gets(&format!("/v2/{outside}/"));
    let r = judge(&mut c, "s12", &format!("{host}/{outside}:v1")).await;
    assert_eq!(r["response"]["allowed"], true, "{r}");
    tokio::time::sleep(Duration::from_millis(300)).await;
    let after = registry.gets(&format!("/v2/{outside}/"));
    assert_eq!(after, before, "no look-up at all");

    let metrics = server.metrics().await;
    for result in [
        "verified",
        "unsigned",
        "untrusted",
        "other-digest",
        "other-repository",
    ] {
        assert!(
            common::sample(
                &metrics,
                &format!("vigil_signature_verifications_total{{result=\"{result}\"}}")
            ) >= 1.0,
            "{result}:\n{metrics}"
        );
    }
}

/// A proxy in front of `upstream` that passes each request on, except those whose path contains `hang`:
/// those it holds, unanswered.
async fn hanging_proxy(upstream: String, hang: &'static str) -> String {
    use hyper_util::client::legacy;
    use hyper_util::rt::{TokioExecutor, TokioIo};
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let addr = listener.local_addr().unwrap().to_string();
    let client: legacy::Client<_, hyper::body::Incoming> =
        legacy::Client::builder(TokioExecutor::new()).build_http();
    tokio::spawn(async move {
        loop {
            let Ok((stream, _)) = listener.accept().await else {
                return;
            };
            let (client, upstream) = (client.clone(), upstream.clone());
            tokio::spawn(async move {
                let service = hyper::service::service_fn(
                    move |mut req: hyper::Request<hyper::body::Incoming>| {
                        let (client, upstream) = (client.clone(), upstream.clone());
                        async move {
                            if req.uri().path().contains(hang) {
                                std::future::pending::<()>().await;
                            }
                            let path = req.uri().path_and_query().map_or("/", |p| p.as_str());
                            *req.uri_mut() = format!("http://{upstream}{path}").parse().unwrap();
                            req.headers_mut().remove(hyper::header::HOST);
                            client.request(req).await
                        }
                    },
                );
                let _ = hyper::server::conn::http1::Builder::new()
                    .serve_connection(TokioIo::new(stream), service)
                    .await;
            });
        }
    });
    addr
}

#[tokio::test]
async fn a_registry_that_hangs_on_signatures_leaves_it_to_on_error_within_the_review_timeout() {
    common::install_provider();
    let registry = Registry::start(None, None);
    let client = registry.pusher(None);
    registry
        .push_image(&client, "signed/app", "v1", "1000", "amd64", "hang")
        .await;
    // Manifests pass; the signature look-ups (the `.sig` tag, the referrers) never get an answer.
    let proxy = hanging_proxy(registry.host.clone(), "sha256-").await;
    let image = format!("{proxy}/signed/app:v1");
    let pem = std::fs::read_to_string(common::data("cosign/cosign.pub")).unwrap();
    // onError allow with a look-up timeout shorter than the review's; onError deny with a longer one,
    // which the review's own timeout cuts short.
    for (on_error, timeout, allowed) in [("allow", "1s", true), ("deny", "30s", false)] {
        let policy = signature_policy(
            &proxy,
            &[("corp-release", &pem)],
            &format!("    onError: {on_error}\nregistry:\n  timeout: {timeout}\n"),
        );
        let proxy = proxy.clone();
        let server = Server::start(move |args, dir| {
            args.policy = Some(write(dir, "policy.yaml", &policy));
            args.registry.registry_plain_http = vec![proxy];
        })
        .await;
        let (r, took) = review_within_two_seconds(&server, "h1", &image).await;
        assert_eq!(r["response"]["allowed"], allowed, "onError {on_error}: {r}");
        let v = violations(&r);
        assert_eq!(v.len(), 1, "{v:?}");
        assert_eq!(v[0].0, "image-signature");
        assert_eq!(v[0].1, if allowed { "audit" } else { "enforce" });
        assert!(
            v[0].2.contains("not verified: the registry did not answer"),
            "{v:?}"
        );
        eprintln!(
            "registry: signature look-up hanging, answered in {took:?} (onError {on_error}, timeout {timeout}): {}",
            v[0].2
        );
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn concurrent_reviews_of_one_new_signed_image_make_one_signature_look_up() {
    common::install_provider();
    let registry = Registry::start(None, None);
    let client = registry.pusher(None);
    let digest = registry
        .push_image(&client, "signed/popular", "v1", "1000", "amd64", "popular")
        .await;
    let cosign = Cosign::find();
    let key = cosign.key_pair("trusted");
    cosign.sign(
        &key.key,
        &format!("{}/signed/popular@{digest}", registry.host),
        Form::Bundle,
    );
    let policy = signature_policy(&registry.host, &[("corp-release", &key.public_pem)], "");
    let server = vigil_for(&registry, &policy, |_, _| {}).await;
    let tag = digest_tag(&digest);
    // distribution has no referrers API, and does not log the 404 of that route: the referrers tag is
    // what counts here.
    let counts = || {
        (
            registry.gets(&format!("/manifests/{tag}.sig")),
            registry.gets(&format!("/manifests/{tag} ")),
        )
    };
    let before = counts();

    let mut clients = Vec::new();
    for _ in 0..50 {
        clients.push(server.client().await);
    }
    let body = Arc::new(pod_review(
        "c",
        one(&format!("{}/signed/popular:v1", registry.host)),
        json!({}),
    ));
    let started = Instant::now();
    let tasks: Vec<_> = clients
        .into_iter()
        .map(|mut c| {
            let body = body.clone();
            tokio::spawn(async move { c.review("/validate", &body).await.json() })
        })
        .collect();
    for t in tasks {
        let r = t.await.unwrap();
        assert_eq!(r["response"]["allowed"], true, "{r}");
    }
    let took = started.elapsed();
    tokio::time::sleep(Duration::from_millis(300)).await;
    let after = counts();
    assert_eq!(
        (after.0 - before.0, after.1 - before.1),
        (1, 1),
        "one .sig look-up and one referrers look-up:\n{}",
        registry.log_text()
    );
    let metrics = server.metrics().await;
    assert_eq!(
        common::sample(
            &metrics,
            "vigil_signature_cache_requests_total{result=\"miss\"}"
        ),
        50.0,
        "all 50 missed the cache, and waited on one look-up"
    );
    assert_eq!(
        common::sample(
            &metrics,
            "vigil_signature_verifications_total{result=\"verified\"}"
        ),
        1.0
    );
    let _ = std::io::stderr().write_all(
        format!("registry: 50 concurrent reviews of one new signed image in {took:?}, 1 signature look-up\n").as_bytes(),
    );
}

#[test]
fn check_resolve_and_review_verify_signatures() {
    common::install_provider();
    let runtime = tokio::runtime::Runtime::new().unwrap();
    let registry = Registry::start(None, None);
    let client = registry.pusher(None);
    let app_digest =
        runtime.block_on(registry.push_image(&client, "signed/app", "v1", "1000", "amd64", "c"));
    runtime.block_on(registry.push_image(&client, "signed/other", "v1", "1000", "amd64", "d"));
    let cosign = Cosign::find();
    let key = cosign.key_pair("trusted");
    cosign.sign(
        &key.key,
        &format!("{}/signed/app@{app_digest}", registry.host),
        Form::Tag,
    );
    let dir = tempfile::tempdir().unwrap();
    let policy = write(
        dir.path(),
        "policy.yaml",
        &signature_policy(&registry.host, &[("corp-release", &key.public_pem)], ""),
    );
    let manifest = write(
        dir.path(),
        "pod.yaml",
        &format!(
            "apiVersion: v1\nkind: Pod\nmetadata: {{name: p}}\nspec:\n  containers:\n  - {{name: a, image: '{0}/signed/app:v1'}}\n  - {{name: b, image: '{0}/signed/other:v1'}}\n",
            registry.host
        ),
    );
    let vigil = |args: &[&str], stdin: Option<&Path>| {
        let mut c = Command::new(env!("CARGO_BIN_EXE_vigil"));
        c.args(args)
            .args(["--registry-plain-http", &registry.host])
            .arg("--policy")
            .arg(&policy);
        if let Some(file) = stdin {
            c.arg(file);
        }
        c.output().unwrap()
    };
    let out = vigil(
        &[
            "check",
            "--resolve",
            "--output",
            "json",
            manifest.to_str().unwrap(),
        ],
        None,
    );
    assert_eq!(
        out.status.code(),
        Some(1),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let results: Value = serde_json::from_slice(&out.stdout).unwrap();
    let v = &results[0]["violations"];
    assert_eq!(v.as_array().unwrap().len(), 1, "{results}");
    assert_eq!(v[0]["rule"], "image-signature");
    assert_eq!(v[0]["container"], "b");
    assert_eq!(
        results[0]["signatures"][0]["key"], "corp-release",
        "{results}"
    );
    assert_eq!(results[0]["signatures"][0]["container"], "a");

    let review = write(
        dir.path(),
        "review.json",
        &pod_review(
            "r1",
            one(&format!("{}/signed/app:v1", registry.host)),
            json!({}),
        ),
    );
    let out = vigil(&["review"], Some(&review));
    assert_eq!(
        out.status.code(),
        Some(0),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let r: Value = serde_json::from_slice(&out.stdout).unwrap();
    assert_eq!(r["response"]["allowed"], true, "{r}");
    assert_eq!(signed(&r)[0]["key"], "corp-release", "{r}");
    assert_eq!(signed(&r)[0]["form"], "sig-tag", "{r}");
}
