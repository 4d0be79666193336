//! Registry verification against a real registry: Debian's `docker-registry` (distribution), started on
//! loopback by each test, with images the tests push themselves with oci-client's push API.

mod common;

use std::io::Write as _;
use std::net::TcpListener;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::sync::Arc;
use std::time::{Duration, Instant};

use common::{Ca, Server, write};
use oci_client::client::{ClientConfig, ClientProtocol, Config, ImageLayer};
use oci_client::manifest::{
    ImageIndexEntry, OCI_IMAGE_INDEX_MEDIA_TYPE, OCI_IMAGE_MEDIA_TYPE, OciImageIndex,
    OciImageManifest,
};
use oci_client::secrets::RegistryAuth;
use oci_client::{Client, Reference};
use serde_json::{Value, json};

/// A running registry on loopback, with its access log.
struct Registry {
    child: Child,
    host: String,
    log: PathBuf,
    /// Holds the registry's storage and configuration until the registry is dropped.
    _dir: tempfile::TempDir,
    tls: bool,
    user: Option<(String, String)>,
}

fn free_port() -> u16 {
    TcpListener::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap()
        .port()
}

fn registry_binary() -> &'static str {
    let found = Command::new("docker-registry").arg("--version").output();
    assert!(
        found.is_ok_and(|o| o.status.success()),
        "docker-registry is not installed: run `make test`, which installs Debian's docker-registry"
    );
    "docker-registry"
}

impl Registry {
    /// Starts a registry; with `tls`, its certificate comes from `ca`; with `user`, htpasswd auth is on.
    fn start(tls: Option<&Ca>, user: Option<(&str, &str)>) -> Registry {
        let dir = tempfile::tempdir().unwrap();
        let port = free_port();
        let mut config = format!(
            "version: 0.1\nlog:\n  level: info\n  formatter: text\n  accesslog:\n    disabled: false\nstorage:\n  filesystem:\n    rootdirectory: {}\n  delete:\n    enabled: true\nhttp:\n  addr: 127.0.0.1:{port}\n",
            dir.path().join("data").display()
        );
        if let Some(ca) = tls {
            let pair = ca.server(9);
            let cert = write(dir.path(), "registry.crt", &pair.cert_pem);
            let key = write(dir.path(), "registry.key", &pair.key_pem);
            config.push_str(&format!(
                "  tls:\n    certificate: {}\n    key: {}\n",
                cert.display(),
                key.display()
            ));
        }
        if let Some((name, password)) = user {
            let hash = bcrypt::hash(password, 4).unwrap();
            let htpasswd = write(dir.path(), "htpasswd", &format!("{name}:{hash}\n"));
            config.push_str(&format!(
                "auth:\n  htpasswd:\n    realm: vigil-test\n    path: {}\n",
                htpasswd.display()
            ));
        }
        let config_path = write(dir.path(), "config.yml", &config);
        let log = dir.path().join("registry.log");
        let child = Command::new(registry_binary())
            .arg("serve")
            .arg(&config_path)
            .stdout(Stdio::from(
                std::fs::File::create(dir.path().join("stdout.log")).unwrap(),
            ))
            .stderr(Stdio::from(std::fs::File::create(&log).unwrap()))
            .spawn()
            .unwrap();
        let registry = Registry {
            child,
            host: format!("127.0.0.1:{port}"),
            log,
            _dir: dir,
            tls: tls.is_some(),
            user: user.map(|(u, p)| (u.to_owned(), p.to_owned())),
        };
        let start = Instant::now();
        while std::net::TcpStream::connect(&registry.host).is_err() {
            assert!(
                start.elapsed() < Duration::from_secs(10),
                "the registry did not start:\n{}",
                registry.log_text()
            );
            std::thread::sleep(Duration::from_millis(20));
        }
        registry
    }

    fn log_text(&self) -> String {
        std::fs::read_to_string(&self.log).unwrap_or_default()
    }

    /// How many GET requests for manifests of `repo` the registry's request log holds.
    fn manifest_gets(&self, repo: &str) -> usize {
        let uri = format!("http.request.uri=/v2/{repo}/manifests/");
        self.log_text()
            .lines()
            .filter(|l| {
                l.contains("msg=\"response completed\"")
                    && l.contains("http.request.method=GET")
                    && l.contains(&uri)
            })
            .count()
    }

    fn stop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }

    /// A client that pushes to this registry.
    fn pusher(&self, ca: Option<&Ca>) -> Client {
        let mut config = ClientConfig {
            protocol: if self.tls {
                ClientProtocol::Https
            } else {
                ClientProtocol::Http
            },
            ..Default::default()
        };
        if let Some(ca) = ca {
            config
                .extra_root_certificates
                .push(oci_client::client::Certificate {
                    encoding: oci_client::client::CertificateEncoding::Pem,
                    data: ca.pem.clone().into_bytes(),
                });
        }
        Client::new(config)
    }

    fn auth(&self) -> RegistryAuth {
        match &self.user {
            Some((u, p)) => RegistryAuth::Basic(u.clone(), p.clone()),
            None => RegistryAuth::Anonymous,
        }
    }

    fn reference(&self, repo: &str, tag: &str) -> Reference {
        Reference::with_tag(self.host.clone(), repo.to_owned(), tag.to_owned())
    }

    /// Pushes a one-layer image whose config says `user`, and returns its manifest digest.
    async fn push_image(
        &self,
        client: &Client,
        repo: &str,
        tag: &str,
        user: &str,
        arch: &str,
        salt: &str,
    ) -> String {
        let layer = ImageLayer::oci_v1(format!("layer of {repo}:{tag} {salt}").into_bytes(), None);
        let config = json!({
            "architecture": arch, "os": "linux",
            "config": {"User": user, "Cmd": ["/app"]},
            "rootfs": {"type": "layers", "diff_ids": [layer.sha256_digest()]}
        });
        let config = Config::oci_v1(serde_json::to_vec(&config).unwrap(), None);
        let manifest = OciImageManifest::build(std::slice::from_ref(&layer), &config, None);
        let reference = self.reference(repo, tag);
        client
            .push(&reference, &[layer], config, &self.auth(), Some(manifest))
            .await
            .expect("push");
        let (_, digest) = client
            .pull_image_manifest(&reference, &self.auth())
            .await
            .expect("pull back");
        digest
    }

    /// Pushes a two-platform index (amd64 runs as root, arm64 does not) and returns (index, amd64) digests.
    async fn push_index(&self, client: &Client, repo: &str, tag: &str) -> (String, String) {
        let amd64 = self
            .push_image(client, repo, "amd64", "root", "amd64", "a")
            .await;
        let arm64 = self
            .push_image(client, repo, "arm64", "1000", "arm64", "b")
            .await;
        let size = |t: &str| {
            let client = client.clone();
            let reference = self.reference(repo, t);
            let auth = self.auth();
            async move {
                client
                    .pull_manifest_raw(&reference, &auth, &[OCI_IMAGE_MEDIA_TYPE])
                    .await
                    .unwrap()
                    .0
                    .len() as i64
            }
        };
        let entry = |digest: &str, size: i64, arch: &str| ImageIndexEntry {
            media_type: OCI_IMAGE_MEDIA_TYPE.to_owned(),
            digest: digest.to_owned(),
            size,
            platform: Some(
                serde_json::from_value(json!({"architecture": arch, "os": "linux"})).unwrap(),
            ),
            annotations: None,
            artifact_type: None,
        };
        let index = OciImageIndex {
            schema_version: 2,
            media_type: Some(OCI_IMAGE_INDEX_MEDIA_TYPE.to_owned()),
            manifests: vec![
                entry(&amd64, size("amd64").await, "amd64"),
                entry(&arm64, size("arm64").await, "arm64"),
            ],
            artifact_type: None,
            annotations: None,
        };
        let reference = self.reference(repo, tag);
        client
            .push_manifest_list(&reference, &self.auth(), index)
            .await
            .expect("push index");
        let (_, platform, _, index_digest) = client
            .pull_manifest_and_config_and_list_digest(&reference, &self.auth())
            .await
            .expect("pull index");
        assert_eq!(
            platform, amd64,
            "the index resolves to the amd64 image here"
        );
        (index_digest.expect("an index digest"), amd64)
    }
}

impl Drop for Registry {
    fn drop(&mut self) {
        self.stop();
    }
}

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
        let mut c = server.client().await;
        let started = Instant::now();
        let body = pod_review("o1", one(&image), json!({}));
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
            "answered inside the request's timeout: {took:?}"
        );
        let r = reply.json();
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
