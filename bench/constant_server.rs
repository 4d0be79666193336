//! The yardstick for Vigil's speed: a server on the same stack (axum, hyper, rustls, and Vigil's own
//! connection handling) that answers every POST with one constant AdmissionReview response. It does the
//! same TLS and HTTP work as Vigil and no admission work.
//!
//! `cargo run --release --example constant_server -- [ADDR] [CERT KEY]`; without a certificate it makes a
//! self-signed one and prints where its CA went.

use std::sync::Arc;
use std::time::Duration;

use axum::Router;
use axum::body::Bytes;
use axum::http::header;
use axum::routing::post;
use tokio::net::TcpListener;
use tokio_rustls::TlsAcceptor;
use vigil::server::listener::{self, Timeouts};
use vigil::server::tls::{self, CertStore, ServingCert};

// The same allocator as Vigil, so that the transport's allocations cost the same in both servers.
#[global_allocator]
static ALLOCATOR: mimalloc::MiMalloc = mimalloc::MiMalloc;

const RESPONSE: &str = r#"{"apiVersion":"admission.k8s.io/v1","kind":"AdmissionReview","response":{"uid":"1f753358-cc2a-432f-9c59-95e9b7250715","allowed":true}}"#;

#[tokio::main]
async fn main() {
    let _ = rustls::crypto::ring::default_provider().install_default();
    let args: Vec<String> = std::env::args().skip(1).collect();
    let addr = args.first().map(String::as_str).unwrap_or("127.0.0.1:8443");
    let provider = Arc::new(rustls::crypto::ring::default_provider());
    let cert = match (args.get(1), args.get(2)) {
        (Some(cert), Some(key)) => {
            ServingCert::load(cert.as_ref(), key.as_ref(), &provider).expect("certificate")
        }
        _ => {
            let generated = tls::self_signed().expect("self-signed certificate");
            let path = std::env::temp_dir().join("vigil-constant-ca.pem");
            std::fs::write(&path, &generated.ca_pem).expect("write CA");
            eprintln!("constant_server: CA written to {}", path.display());
            ServingCert::from_pem(
                generated.cert_pem.as_bytes(),
                generated.key_pem.as_bytes(),
                "cert",
                "key",
                &provider,
            )
            .expect("certificate")
        }
    };
    let config =
        tls::server_config(Arc::new(CertStore::new(cert)), None, provider).expect("tls config");
    // The body is read in full, as Vigil reads it: a handler that ignored it would skip that work, and
    // hyper closes a keep-alive connection rather than drain a large unread body.
    let router = Router::new().route(
        "/validate",
        post(|body: Bytes| async move {
            drop(body);
            ([(header::CONTENT_TYPE, "application/json")], RESPONSE)
        }),
    );
    let listener = TcpListener::bind(addr).await.expect("bind");
    eprintln!(
        "constant_server: listening on {}",
        listener.local_addr().expect("addr")
    );
    let (_stop, stop_rx) = tokio::sync::watch::channel(false);
    let (_drain, drain_rx) = tokio::sync::watch::channel(false);
    let timeouts = Timeouts {
        handshake: Duration::from_secs(10),
        header: Duration::from_secs(10),
        idle: Duration::from_secs(120),
    };
    listener::serve_tls(
        listener,
        TlsAcceptor::from(Arc::new(config)),
        router,
        timeouts,
        usize::MAX,
        drain_rx,
        stop_rx,
        Arc::new(|_| {}),
    )
    .await;
}
