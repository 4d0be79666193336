//! Test support: certificates made with rcgen, the real server started on ephemeral ports, and a real
//! HTTPS client (rustls + hyper) that keeps its connection alive.
#![allow(dead_code)]

pub mod cosign;
pub mod registry;

use std::net::SocketAddr;
use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::time::Duration;

use http_body_util::{BodyExt, Full};
use hyper::body::Bytes;
use hyper::client::conn::http1;
use hyper_util::rt::TokioIo;
use rcgen::{
    BasicConstraints, CertificateParams, DnType, ExtendedKeyUsagePurpose, IsCa, Issuer, KeyPair,
};
use rustls::pki_types::pem::PemObject;
use rustls::pki_types::{CertificateDer, PrivateKeyDer, ServerName};
use tokio::net::TcpStream;
use tokio_rustls::TlsConnector;
use vigil::server::{Running, ServeArgs};

/// A certificate authority that signs serving and client certificates.
pub struct Ca {
    pub pem: String,
    issuer: Issuer<'static, KeyPair>,
}

/// A PEM certificate and key.
pub struct Pair {
    pub cert_pem: String,
    pub key_pem: String,
    pub serial: String,
}

impl Ca {
    pub fn new(name: &str) -> Ca {
        let key = KeyPair::generate().unwrap();
        let mut params = CertificateParams::new(Vec::<String>::new()).unwrap();
        params.is_ca = IsCa::Ca(BasicConstraints::Unconstrained);
        params.distinguished_name.push(DnType::CommonName, name);
        let cert = params.self_signed(&key).unwrap();
        Ca {
            pem: cert.pem(),
            issuer: Issuer::new(params, key),
        }
    }

    fn sign(&self, names: &[&str], client: bool, serial: u64, days: i64) -> Pair {
        let key = KeyPair::generate().unwrap();
        let mut params =
            CertificateParams::new(names.iter().map(|n| n.to_string()).collect::<Vec<_>>())
                .unwrap();
        params.distinguished_name.push(
            DnType::CommonName,
            names.first().copied().unwrap_or("client"),
        );
        params.serial_number = Some(serial.into());
        let now = time::OffsetDateTime::now_utc();
        params.not_before = now - time::Duration::hours(1);
        params.not_after = now + time::Duration::days(days);
        if client {
            params.extended_key_usages = vec![ExtendedKeyUsagePurpose::ClientAuth];
        }
        let cert = params.signed_by(&key, &self.issuer).unwrap();
        Pair {
            cert_pem: cert.pem(),
            key_pem: key.serialize_pem(),
            serial: format!("{serial:02x}"),
        }
    }

    /// A serving certificate for localhost and 127.0.0.1.
    pub fn server(&self, serial: u64) -> Pair {
        self.sign(&["localhost", "127.0.0.1"], false, serial, 30)
    }

    /// A serving certificate that expires in `days`.
    pub fn server_expiring(&self, serial: u64, days: i64) -> Pair {
        self.sign(&["localhost", "127.0.0.1"], false, serial, days)
    }

    /// A client certificate.
    pub fn client(&self, name: &str) -> Pair {
        self.sign(&[name], true, 7, 30)
    }
}

/// Writes `text` to `dir/name` and returns the path.
pub fn write(dir: &Path, name: &str, text: &str) -> PathBuf {
    let path = dir.join(name);
    std::fs::write(&path, text).unwrap();
    path
}

/// Serve flags for a test: ephemeral ports, the given certificate files, everything else default.
pub fn serve_args(cert: &Path, key: &Path) -> ServeArgs {
    ServeArgs {
        policy: None,
        tls_cert: Some(cert.to_path_buf()),
        tls_key: Some(key.to_path_buf()),
        addr: "127.0.0.1:0".parse().unwrap(),
        metrics_addr: "127.0.0.1:0".parse().unwrap(),
        client_ca: None,
        shutdown_grace: Duration::from_millis(100),
        reload_interval: Duration::from_millis(200),
        policy_configmap: Default::default(),
        registry: Default::default(),
        max_in_flight: 1024,
        max_connections: 10_000,
        header_timeout: Duration::from_secs(10),
        idle_timeout: Duration::from_secs(120),
    }
}

/// A running server with its own CA and files.
pub struct Server {
    pub running: Running,
    pub ca: Ca,
    pub dir: tempfile::TempDir,
}

impl Server {
    /// Starts a server whose certificate is signed by a fresh CA; `tweak` adjusts the flags.
    pub async fn start(tweak: impl FnOnce(&mut ServeArgs, &Path)) -> Server {
        install_provider();
        let dir = tempfile::tempdir().unwrap();
        let ca = Ca::new("test CA");
        let pair = ca.server(1);
        let cert = write(dir.path(), "tls.crt", &pair.cert_pem);
        let key = write(dir.path(), "tls.key", &pair.key_pem);
        let mut args = serve_args(&cert, &key);
        tweak(&mut args, dir.path());
        let sink = vigil::server::AlertSink::Collect(Default::default());
        let running = vigil::server::start_with(args, sink)
            .await
            .expect("server starts");
        Server { running, ca, dir }
    }

    pub fn addr(&self) -> SocketAddr {
        self.running.addr
    }

    /// A client that trusts this server's CA.
    pub async fn client(&self) -> Client {
        Client::connect(self.addr(), &self.ca.pem, None)
            .await
            .expect("client connects")
    }

    /// The alert lines written so far.
    pub fn alerts(&self) -> Vec<String> {
        self.running.app.alerts.collected()
    }

    /// The metrics port's text.
    pub async fn metrics(&self) -> String {
        plain_get(self.running.metrics_addr, "/metrics").await.1
    }
}

pub fn install_provider() {
    let _ = rustls::crypto::ring::default_provider().install_default();
}

/// A response: status, content type, body.
pub struct Reply {
    pub status: u16,
    pub content_type: String,
    pub body: String,
}

impl Reply {
    pub fn json(&self) -> serde_json::Value {
        serde_json::from_str(&self.body).unwrap_or_else(|e| panic!("not JSON ({e}): {}", self.body))
    }
}

/// An HTTPS client on one kept-alive connection.
pub struct Client {
    sender: http1::SendRequest<Full<Bytes>>,
    pub peer_serial: String,
}

/// The client TLS configuration: trust `ca_pem`, optionally present a client certificate.
pub fn client_config(ca_pem: &str, identity: Option<&Pair>) -> rustls::ClientConfig {
    let mut roots = rustls::RootCertStore::empty();
    for cert in CertificateDer::pem_slice_iter(ca_pem.as_bytes()) {
        roots.add(cert.unwrap()).unwrap();
    }
    let builder = rustls::ClientConfig::builder_with_provider(Arc::new(
        rustls::crypto::ring::default_provider(),
    ))
    .with_safe_default_protocol_versions()
    .unwrap()
    .with_root_certificates(roots);
    match identity {
        None => builder.with_no_client_auth(),
        Some(pair) => {
            let chain = CertificateDer::pem_slice_iter(pair.cert_pem.as_bytes())
                .map(|c| c.unwrap())
                .collect();
            let key = PrivateKeyDer::from_pem_slice(pair.key_pem.as_bytes()).unwrap();
            builder.with_client_auth_cert(chain, key).unwrap()
        }
    }
}

/// The serial number of a DER certificate, in hex.
pub fn serial_of(der: &[u8]) -> String {
    let (_, cert) = x509_parser::parse_x509_certificate(der).unwrap();
    cert.tbs_certificate.raw_serial_as_string().replace(':', "")
}

impl Client {
    /// Connects over TLS, trusting `ca_pem`, with an optional client certificate.
    pub async fn connect(
        addr: SocketAddr,
        ca_pem: &str,
        identity: Option<&Pair>,
    ) -> std::io::Result<Client> {
        let mut config = client_config(ca_pem, identity);
        config.alpn_protocols = vec![b"http/1.1".to_vec()];
        let tcp = TcpStream::connect(addr).await?;
        let tls = TlsConnector::from(Arc::new(config))
            .connect(ServerName::try_from("localhost").unwrap(), tcp)
            .await?;
        let peer_serial = {
            let (_, session) = tls.get_ref();
            serial_of(session.peer_certificates().expect("server certificate")[0].as_ref())
        };
        let (sender, conn) = http1::handshake(TokioIo::new(tls))
            .await
            .map_err(std::io::Error::other)?;
        tokio::spawn(async move {
            let _ = conn.await;
        });
        Ok(Client {
            sender,
            peer_serial,
        })
    }

    /// Whether the connection can take another request; false once the server has closed it (after a
    /// `Connection: close` response, say), when a client opens a new one.
    pub async fn usable(&mut self) -> bool {
        self.sender.ready().await.is_ok()
    }

    /// Sends a request and reads the whole response.
    pub async fn send(
        &mut self,
        method: &str,
        path: &str,
        content_type: Option<&str>,
        body: &[u8],
    ) -> Result<Reply, hyper::Error> {
        self.sender.ready().await?;
        let mut request = hyper::Request::builder()
            .method(method)
            .uri(path)
            .header("host", "localhost");
        if let Some(ct) = content_type {
            request = request.header("content-type", ct);
        }
        let request = request
            .body(Full::new(Bytes::copy_from_slice(body)))
            .unwrap();
        let response = self.sender.send_request(request).await?;
        let status = response.status().as_u16();
        let content_type = response
            .headers()
            .get("content-type")
            .map(|v| v.to_str().unwrap().to_owned())
            .unwrap_or_default();
        let body = response.into_body().collect().await?.to_bytes();
        Ok(Reply {
            status,
            content_type,
            body: String::from_utf8_lossy(&body).into_owned(),
        })
    }

    /// POSTs a JSON review to `path`.
    pub async fn review(&mut self, path: &str, body: &str) -> Reply {
        self.send("POST", path, Some("application/json"), body.as_bytes())
            .await
            .expect("review answered")
    }
}

/// A GET over plain HTTP (the metrics port): status and body.
pub async fn plain_get(addr: SocketAddr, path: &str) -> (u16, String) {
    let tcp = TcpStream::connect(addr).await.unwrap();
    let (mut sender, conn) = http1::handshake::<_, Full<Bytes>>(TokioIo::new(tcp))
        .await
        .unwrap();
    tokio::spawn(async move {
        let _ = conn.await;
    });
    let request = hyper::Request::get(path)
        .header("host", "localhost")
        .body(Full::new(Bytes::new()))
        .unwrap();
    let response = sender.send_request(request).await.unwrap();
    let status = response.status().as_u16();
    let body = response.into_body().collect().await.unwrap().to_bytes();
    (status, String::from_utf8_lossy(&body).into_owned())
}

/// The test data directory.
pub fn data(rel: &str) -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR"))
        .join("tests/data")
        .join(rel)
}

/// Reads a test data file.
pub fn read_data(rel: &str) -> String {
    std::fs::read_to_string(data(rel)).unwrap_or_else(|e| panic!("{rel}: {e}"))
}

/// The value of one sample in Prometheus text, `0` when absent.
pub fn sample(metrics: &str, series: &str) -> f64 {
    metrics
        .lines()
        .find_map(|l| {
            l.strip_prefix(series)?
                .strip_prefix(' ')?
                .trim()
                .parse()
                .ok()
        })
        .unwrap_or(0.0)
}
