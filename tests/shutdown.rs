//! SIGTERM on the real binary: readiness fails at once, a stream of reviews loses none, a review in flight
//! when the listener closes still finishes, and new connections are refused after the drain period; clients
//! are told to leave (HTTP/1.1 `Connection: close`, HTTP/2 GOAWAY) before their connections close.

mod common;

use std::io::{BufRead, BufReader};
use std::net::SocketAddr;
use std::process::{Child, Command, Stdio};
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, AtomicUsize, Ordering};
use std::time::{Duration, Instant};

use common::{Ca, Client, read_data, write};
use tokio::io::{AsyncReadExt, AsyncWriteExt};

/// Starts `vigil serve` and reads the bound addresses from its "serving" log line. Its stdout (the alert
/// stream) is written to `dir/alerts.jsonl`.
fn spawn_server(dir: &std::path::Path, ca: &Ca, grace: &str) -> (Child, SocketAddr, SocketAddr) {
    let pair = ca.server(1);
    let cert = write(dir, "tls.crt", &pair.cert_pem);
    let key = write(dir, "tls.key", &pair.key_pem);
    let mut child = Command::new(env!("CARGO_BIN_EXE_vigil"))
        .args([
            "serve",
            "--addr",
            "127.0.0.1:0",
            "--metrics-addr",
            "127.0.0.1:0",
            "--shutdown-grace",
            grace,
        ])
        .arg("--tls-cert")
        .arg(&cert)
        .arg("--tls-key")
        .arg(&key)
        .stdout(Stdio::from(
            std::fs::File::create(dir.join("alerts.jsonl")).unwrap(),
        ))
        .stderr(Stdio::piped())
        .spawn()
        .unwrap();
    let mut lines = BufReader::new(child.stderr.take().unwrap()).lines();
    let (addr, metrics) = loop {
        let line = lines
            .next()
            .expect("the server logs before exiting")
            .unwrap();
        let log: serde_json::Value = serde_json::from_str(&line).unwrap_or_default();
        if log["fields"]["message"] == "serving" {
            let field = |k: &str| log["fields"][k].as_str().unwrap().parse().unwrap();
            break (field("addr"), field("metrics_addr"));
        }
    };
    // Keep draining stderr so the server never blocks on it.
    std::thread::spawn(move || for _ in lines {});
    (child, addr, metrics)
}

async fn ready(metrics: SocketAddr) -> Option<u16> {
    let tcp = tokio::net::TcpStream::connect(metrics).await.ok()?;
    let (mut sender, conn) = hyper::client::conn::http1::handshake::<
        _,
        http_body_util::Full<hyper::body::Bytes>,
    >(hyper_util::rt::TokioIo::new(tcp))
    .await
    .ok()?;
    tokio::spawn(conn);
    let request = hyper::Request::get("/readyz")
        .header("host", "x")
        .body(Default::default())
        .unwrap();
    Some(sender.send_request(request).await.ok()?.status().as_u16())
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn sigterm_during_a_stream_of_reviews_loses_none() {
    common::install_provider();
    let dir = tempfile::tempdir().unwrap();
    let ca = Ca::new("test CA");
    let (mut child, addr, metrics) = spawn_server(dir.path(), &ca, "2s");
    let review = Arc::new(read_data(
        "reviews/deployment-create.kube-apiserver-1.36.json",
    ));

    // Four clients stream reviews on kept-alive connections, as the API server does, until readiness fails.
    let stop_sending = Arc::new(AtomicBool::new(false));
    let (answered, failed) = (Arc::new(AtomicUsize::new(0)), Arc::new(AtomicUsize::new(0)));
    let mut clients = Vec::new();
    for _ in 0..4 {
        let (review, stop, answered, failed, ca_pem) = (
            review.clone(),
            stop_sending.clone(),
            answered.clone(),
            failed.clone(),
            ca.pem.clone(),
        );
        clients.push(tokio::spawn(async move {
            let mut client = Client::connect(addr, &ca_pem, None).await.unwrap();
            while !stop.load(Ordering::Acquire) {
                // After SIGTERM a response carries `Connection: close`: the next review goes on a new
                // connection, as the API server's client does it.
                if !client.usable().await {
                    client = Client::connect(addr, &ca_pem, None).await.unwrap();
                }
                match client
                    .send(
                        "POST",
                        "/validate",
                        Some("application/json"),
                        review.as_bytes(),
                    )
                    .await
                {
                    Ok(reply)
                        if reply.status == 200
                            && reply.body.contains("1f753358-cc2a-432f-9c59-95e9b7250715") =>
                    {
                        answered.fetch_add(1, Ordering::AcqRel);
                    }
                    _ => {
                        failed.fetch_add(1, Ordering::AcqRel);
                    }
                }
            }
        }));
    }

    // A review that is in flight across the whole drain: headers and half the body now, the rest later.
    let config = common::client_config(&ca.pem, None);
    let tcp = tokio::net::TcpStream::connect(addr).await.unwrap();
    let mut slow = tokio_rustls::TlsConnector::from(Arc::new(config))
        .connect(
            rustls::pki_types::ServerName::try_from("localhost").unwrap(),
            tcp,
        )
        .await
        .unwrap();
    let (head, tail) = review.as_bytes().split_at(review.len() / 2);
    slow.write_all(
        format!(
            "POST /validate?timeout=30s HTTP/1.1\r\nhost: localhost\r\ncontent-type: application/json\r\ncontent-length: {}\r\n\r\n",
            review.len()
        )
        .as_bytes(),
    )
    .await
    .unwrap();
    slow.write_all(head).await.unwrap();

    tokio::time::sleep(Duration::from_millis(300)).await;
    assert!(
        answered.load(Ordering::Acquire) > 0,
        "the stream is flowing"
    );
    assert_eq!(ready(metrics).await, Some(200));

    let term = Instant::now();
    assert!(
        Command::new("kill")
            .args(["-TERM", &child.id().to_string()])
            .status()
            .unwrap()
            .success()
    );

    // Readiness fails at once, while connections are still accepted for the drain period.
    let mut saw_not_ready = false;
    while term.elapsed() < Duration::from_millis(500) {
        if ready(metrics).await == Some(503) {
            saw_not_ready = true;
            break;
        }
        tokio::time::sleep(Duration::from_millis(10)).await;
    }
    assert!(saw_not_ready, "readiness fails within 500 ms of SIGTERM");
    stop_sending.store(true, Ordering::Release);
    for c in clients {
        c.await.unwrap();
    }
    let mut late = Client::connect(addr, &ca.pem, None)
        .await
        .expect("new connections are accepted while draining");
    assert_eq!(late.review("/validate", &review).await.status, 200);
    drop(late);

    // After the drain period the listener is closed...
    tokio::time::sleep(Duration::from_millis(2300).saturating_sub(term.elapsed())).await;
    assert!(
        Client::connect(addr, &ca.pem, None).await.is_err(),
        "new connections are refused after the drain period"
    );

    // ...but the review in flight finishes.
    slow.write_all(tail).await.unwrap();
    let mut response = Vec::new();
    let _ = tokio::time::timeout(Duration::from_secs(5), slow.read_to_end(&mut response)).await;
    let response = String::from_utf8_lossy(&response);
    assert!(response.starts_with("HTTP/1.1 200"), "{response}");
    assert!(
        response.contains("1f753358-cc2a-432f-9c59-95e9b7250715"),
        "{response}"
    );

    let status = tokio::task::spawn_blocking(move || child.wait())
        .await
        .unwrap()
        .unwrap();
    assert!(status.success(), "vigil exits cleanly: {status}");
    let (answered, failed) = (
        answered.load(Ordering::Acquire),
        failed.load(Ordering::Acquire),
    );
    assert_eq!(
        failed,
        0,
        "{failed} of {} reviews were lost",
        answered + failed
    );
    eprintln!("shutdown: {answered} reviews answered across SIGTERM, none lost");
}

type Body = http_body_util::Full<hyper::body::Bytes>;

async fn tls_to(
    addr: SocketAddr,
    ca: &Ca,
    alpn: &[u8],
) -> tokio_rustls::client::TlsStream<tokio::net::TcpStream> {
    let mut config = common::client_config(&ca.pem, None);
    config.alpn_protocols = vec![alpn.to_vec()];
    let tcp = tokio::net::TcpStream::connect(addr).await.unwrap();
    tokio_rustls::TlsConnector::from(Arc::new(config))
        .connect(
            rustls::pki_types::ServerName::try_from("localhost").unwrap(),
            tcp,
        )
        .await
        .unwrap()
}

fn review_request(review: &str) -> hyper::Request<Body> {
    hyper::Request::post("https://localhost/validate")
        .header("content-type", "application/json")
        .body(Body::new(review.to_owned().into()))
        .unwrap()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn after_sigterm_clients_are_told_to_leave_before_connections_close() {
    common::install_provider();
    let dir = tempfile::tempdir().unwrap();
    let ca = Ca::new("test CA");
    let (mut child, addr, _) = spawn_server(dir.path(), &ca, "3s");
    let review = read_data("reviews/deployment-create.kube-apiserver-1.36.json");

    // HTTP/1.1 with keep-alive, as the API server calls a webhook behind a Service.
    let (mut h1, h1_conn) = hyper::client::conn::http1::handshake::<_, Body>(
        hyper_util::rt::TokioIo::new(tls_to(addr, &ca, b"http/1.1").await),
    )
    .await
    .unwrap();
    let h1_conn = tokio::spawn(h1_conn);
    // HTTP/2, as it calls a webhook registered by URL.
    let (mut h2, h2_conn) = hyper::client::conn::http2::handshake::<_, _, Body>(
        hyper_util::rt::TokioExecutor::new(),
        hyper_util::rt::TokioIo::new(tls_to(addr, &ca, b"h2").await),
    )
    .await
    .unwrap();
    let h2_conn = tokio::spawn(h2_conn);

    let before = h1.send_request(review_request(&review)).await.unwrap();
    assert_eq!(before.status(), 200);
    assert!(before.headers().get("connection").is_none());
    http_body_util::BodyExt::collect(before.into_body())
        .await
        .unwrap();
    let before = h2.send_request(review_request(&review)).await.unwrap();
    assert_eq!(before.status(), 200);
    assert_eq!(before.version(), hyper::Version::HTTP_2);
    http_body_util::BodyExt::collect(before.into_body())
        .await
        .unwrap();

    let term = Instant::now();
    assert!(
        Command::new("kill")
            .args(["-TERM", &child.id().to_string()])
            .status()
            .unwrap()
            .success()
    );

    // HTTP/2: GOAWAY ends the connection at once (nothing is in flight), well before the drain ends; no
    // new stream can be opened on it, so the client opens a new connection instead of losing a review.
    let ended = tokio::time::timeout(Duration::from_secs(2), h2_conn)
        .await
        .expect("the HTTP/2 connection ends after GOAWAY, before the drain period is over");
    let ended = ended.unwrap();
    assert!(ended.is_ok(), "a clean end, not an error: {ended:?}");
    eprintln!(
        "shutdown: HTTP/2 connection closed by GOAWAY {:?} after SIGTERM",
        term.elapsed()
    );
    assert!(h2.is_closed() || h2.ready().await.is_err());
    assert!(h2.send_request(review_request(&review)).await.is_err());

    // HTTP/1.1: the idle connection stays open (closing it would race a request); the next response on it
    // carries `Connection: close`, and then the connection closes.
    let after = h1.send_request(review_request(&review)).await.unwrap();
    assert_eq!(after.status(), 200);
    assert_eq!(
        after
            .headers()
            .get("connection")
            .map(|v| v.to_str().unwrap()),
        Some("close")
    );
    let body = http_body_util::BodyExt::collect(after.into_body())
        .await
        .unwrap()
        .to_bytes();
    assert!(String::from_utf8_lossy(&body).contains("1f753358-cc2a-432f-9c59-95e9b7250715"));
    tokio::time::timeout(Duration::from_secs(1), h1_conn)
        .await
        .expect("the HTTP/1.1 connection closes after its Connection: close response")
        .unwrap()
        .unwrap();

    // A new HTTP/2 connection during the drain is still served; it is told to leave at once.
    let (mut late, late_conn) = hyper::client::conn::http2::handshake::<_, _, Body>(
        hyper_util::rt::TokioExecutor::new(),
        hyper_util::rt::TokioIo::new(tls_to(addr, &ca, b"h2").await),
    )
    .await
    .unwrap();
    let late_conn = tokio::spawn(late_conn);
    let reply = late.send_request(review_request(&review)).await.unwrap();
    assert_eq!(reply.status(), 200);
    http_body_util::BodyExt::collect(reply.into_body())
        .await
        .unwrap();
    tokio::time::timeout(Duration::from_secs(2), late_conn)
        .await
        .expect("a connection opened while draining gets GOAWAY too")
        .unwrap()
        .unwrap();
    assert!(
        term.elapsed() < Duration::from_secs(3),
        "all of it within the drain period"
    );

    let status = tokio::task::spawn_blocking(move || child.wait())
        .await
        .unwrap()
        .unwrap();
    assert!(status.success(), "vigil exits cleanly: {status}");
}
