//! A real OCI registry for the tests: Debian's `docker-registry` (distribution), started on loopback, with
//! images pushed by oci-client's push API, and the request log to count what reached it.

use std::net::TcpListener;
use std::path::PathBuf;
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use oci_client::client::{ClientConfig, ClientProtocol, Config, ImageLayer};
use oci_client::manifest::{
    ImageIndexEntry, OCI_IMAGE_INDEX_MEDIA_TYPE, OCI_IMAGE_MEDIA_TYPE, OciImageIndex,
    OciImageManifest,
};
use oci_client::secrets::RegistryAuth;
use oci_client::{Client, Reference};
use serde_json::json;

use super::{Ca, write};

/// A running registry on loopback, with its access log.
pub struct Registry {
    child: Child,
    pub host: String,
    log: PathBuf,
    /// Holds the registry's storage and configuration until the registry is dropped.
    _dir: tempfile::TempDir,
    pub tls: bool,
    user: Option<(String, String)>,
}

pub fn free_port() -> u16 {
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
    pub fn start(tls: Option<&Ca>, user: Option<(&str, &str)>) -> Registry {
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

    pub fn log_text(&self) -> String {
        std::fs::read_to_string(&self.log).unwrap_or_default()
    }

    /// How many GET requests for manifests of `repo` the registry's request log holds.
    pub fn manifest_gets(&self, repo: &str) -> usize {
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

    pub fn stop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }

    /// A client that pushes to this registry.
    pub fn pusher(&self, ca: Option<&Ca>) -> Client {
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

    pub fn auth(&self) -> RegistryAuth {
        match &self.user {
            Some((u, p)) => RegistryAuth::Basic(u.clone(), p.clone()),
            None => RegistryAuth::Anonymous,
        }
    }

    pub fn reference(&self, repo: &str, tag: &str) -> Reference {
        Reference::with_tag(self.host.clone(), repo.to_owned(), tag.to_owned())
    }

    /// Pushes a one-layer image whose config says `user`, and returns its manifest digest.
    pub async fn push_image(
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
    pub async fn push_index(&self, client: &Client, repo: &str, tag: &str) -> (String, String) {
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

impl Registry {
    /// How many GET requests whose URI contains `fragment` the registry's request log holds, answered or
    /// not (a 404 counts: it is a look-up that reached the registry).
    pub fn gets(&self, fragment: &str) -> usize {
        self.log_text()
            .lines()
            .filter(|l| {
                l.contains("msg=\"response completed")
                    && l.contains("http.request.method=GET")
                    && l.contains("http.request.uri=")
                    && l.contains(fragment)
            })
            .count()
    }

    /// Copies a blob from one repository to another, as an attacker with push access would.
    pub async fn copy_blob(&self, client: &Client, from: &str, to: &str, digest: &str) {
        let mut data = Vec::new();
        client
            .pull_blob(&self.reference(from, "x"), digest, &mut data)
            .await
            .expect("pull blob");
        client
            .push_blob(&self.reference(to, "x"), data, digest)
            .await
            .expect("push blob");
    }

    /// The raw manifest at `repo:reference` (a tag, or a digest), accepting an image manifest or an index.
    pub async fn manifest(&self, client: &Client, repo: &str, reference: &str) -> Vec<u8> {
        let r = if reference.starts_with("sha256:") {
            Reference::with_digest(self.host.clone(), repo.to_owned(), reference.to_owned())
        } else {
            self.reference(repo, reference)
        };
        client
            .pull_manifest_raw(
                &r,
                &self.auth(),
                &[OCI_IMAGE_MEDIA_TYPE, OCI_IMAGE_INDEX_MEDIA_TYPE],
            )
            .await
            .expect("pull manifest")
            .0
            .to_vec()
    }

    /// Pushes `body` as a manifest of `media_type` at `repo:reference` (a tag, or its own digest).
    pub async fn put_manifest(
        &self,
        client: &Client,
        repo: &str,
        reference: &str,
        media_type: &str,
        body: Vec<u8>,
    ) -> String {
        let r = if reference.starts_with("sha256:") {
            Reference::with_digest(self.host.clone(), repo.to_owned(), reference.to_owned())
        } else {
            self.reference(repo, reference)
        };
        client
            .push_manifest_raw(&r, body, media_type.parse().unwrap())
            .await
            .expect("push manifest")
    }

    /// Copies the image manifest at `from:reference` (and its blobs) to `to` under `tag`, or under its
    /// digest when `tag` is `None`; returns its digest.
    pub async fn copy_manifest(
        &self,
        client: &Client,
        from: &str,
        reference: &str,
        to: &str,
        tag: Option<&str>,
    ) -> String {
        let body = self.manifest(client, from, reference).await;
        let manifest: serde_json::Value = serde_json::from_slice(&body).unwrap();
        let mut blobs = vec![manifest["config"]["digest"].as_str().unwrap().to_owned()];
        for layer in manifest["layers"].as_array().unwrap() {
            blobs.push(layer["digest"].as_str().unwrap().to_owned());
        }
        for digest in blobs {
            self.copy_blob(client, from, to, &digest).await;
        }
        let digest = sha256_digest(&body);
        let at = tag.map_or(digest.clone(), str::to_owned);
        self.put_manifest(client, to, &at, OCI_IMAGE_MEDIA_TYPE, body)
            .await;
        digest
    }
}

/// `sha256:<hex>` of `data`.
pub fn sha256_digest(data: &[u8]) -> String {
    use sha2::Digest as _;
    let hash = sha2::Sha256::digest(data);
    format!(
        "sha256:{}",
        hash.iter().map(|b| format!("{b:02x}")).collect::<String>()
    )
}

impl Registry {
    /// Pushes `data` as a blob of `repo`; returns its descriptor as JSON, with `media_type`.
    pub async fn push_blob(
        &self,
        client: &Client,
        repo: &str,
        media_type: &str,
        data: Vec<u8>,
    ) -> serde_json::Value {
        let digest = sha256_digest(&data);
        let size = data.len();
        client
            .push_blob(&self.reference(repo, "x"), data, &digest)
            .await
            .expect("push blob");
        json!({"mediaType": media_type, "digest": digest, "size": size})
    }
}
