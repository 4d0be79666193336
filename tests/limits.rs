//! Resource limits on the real server: load shedding, idle and slow clients, and connection floods.

mod common;

use std::sync::Arc;
use std::time::{Duration, Instant};

use common::{Client, Server, read_data, sample, write};
use tokio::io::{AsyncReadExt, AsyncWriteExt};

const REVIEW: &str = "reviews/pod-create.kube-apiserver-1.36.json";

/// A TLS connection that has finished its handshake and sends nothing.
async fn idle_connection(
    server: &Server,
) -> tokio_rustls::client::TlsStream<tokio::net::TcpStream> {
    let config = common::client_config(&server.ca.pem, None);
    let tcp = tokio::net::TcpStream::connect(server.addr()).await.unwrap();
    tokio_rustls::TlsConnector::from(Arc::new(config))
        .connect(
            rustls::pki_types::ServerName::try_from("localhost").unwrap(),
            tcp,
        )
        .await
        .unwrap()
}

/// Reads until the server closes the connection; returns how long that took.
async fn closed_after<S: tokio::io::AsyncRead + Unpin>(
    stream: &mut S,
    limit: Duration,
) -> Option<Duration> {
    let started = Instant::now();
    let mut buf = [0u8; 256];
    loop {
        match tokio::time::timeout(
            limit.saturating_sub(started.elapsed()),
            stream.read(&mut buf),
        )
        .await
        {
            Ok(Ok(0)) | Ok(Err(_)) => return Some(started.elapsed()),
            Ok(Ok(_)) => continue,
            Err(_) => return None,
        }
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_full_house_sheds_load_fast_instead_of_queueing() {
    // A "registry" that accepts connections and never answers keeps look-ups, and so reviews, in flight.
    let silent = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let silent_addr = silent.local_addr().unwrap();
    tokio::spawn(async move {
        let mut held = Vec::new();
        while let Ok((stream, _)) = silent.accept().await {
            held.push(stream);
        }
    });
    let policy = "apiVersion: vigil.dev/v1alpha1\nkind: Policy\nmode: audit\nrules:\n  image-resolvable: enforce\nregistry:\n  timeout: 3s\n";
    let server = Server::start(move |args, dir| {
        args.policy = Some(write(dir, "policy.yaml", policy));
        args.registry.registry_plain_http = vec![silent_addr.to_string()];
        args.max_in_flight = 2;
    })
    .await;
    let stuck = read_data(REVIEW).replace(
        r#""image": "nginx""#,
        &format!(r#""image": "{silent_addr}/stuck/app:1""#),
    );
    let mut slow = Vec::new();
    for _ in 0..2 {
        let mut client = server.client().await;
        let body = stuck.clone();
        slow.push(tokio::spawn(async move {
            client.review("/validate", &body).await
        }));
    }
    tokio::time::sleep(Duration::from_millis(300)).await;

    let mut third = server.client().await;
    let started = Instant::now();
    let reply = third
        .send(
            "POST",
            "/validate",
            Some("application/json"),
            read_data(REVIEW).as_bytes(),
        )
        .await
        .unwrap();
    let took = started.elapsed();
    assert_eq!(reply.status, 503, "{}", reply.body);
    eprintln!("limits: a review beyond --max-in-flight was refused in {took:?}");
    assert!(
        took < Duration::from_secs(1),
        "refused at once, not queued: {took:?}"
    );
    assert_eq!(
        sample(
            &server.metrics().await,
            "vigil_bad_requests_total{reason=\"overloaded\"}"
        ),
        1.0
    );

    for s in slow {
        let reply = s.await.unwrap();
        assert_eq!(reply.status, 200, "the reviews in flight still finish");
        assert!(reply.body.contains("not verified"), "{}", reply.body);
    }
    assert_eq!(
        third.review("/validate", &read_data(REVIEW)).await.status,
        200,
        "served again once there is room"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_thousand_idle_tls_connections_do_not_stop_others() {
    let _ = rlimit::increase_nofile_limit(u64::MAX);
    let server = Server::start(|_, _| {}).await;
    let mut idle = Vec::new();
    let opened = Instant::now();
    for _ in 0..1000 {
        idle.push(idle_connection(&server).await);
    }
    eprintln!(
        "limits: 1000 idle TLS connections opened in {:?}",
        opened.elapsed()
    );
    let started = Instant::now();
    let mut client = server.client().await;
    let reply = client.review("/validate", &read_data(REVIEW)).await;
    assert_eq!(reply.status, 200);
    eprintln!(
        "limits: with 1000 idle connections open, a new client was answered in {:?}",
        started.elapsed()
    );
    // The idle connections are all still open and usable.
    let last = idle.last_mut().unwrap();
    last.write_all(b"GET /healthz HTTP/1.1\r\nhost: localhost\r\n\r\n")
        .await
        .unwrap();
    let mut buf = [0u8; 64];
    let n = last.read(&mut buf).await.unwrap();
    assert!(String::from_utf8_lossy(&buf[..n]).starts_with("HTTP/1.1 200"));
}

#[tokio::test]
async fn connections_beyond_the_limit_are_closed_and_counted() {
    let server = Server::start(|args, _| args.max_connections = 20).await;
    let mut held = Vec::new();
    for _ in 0..20 {
        held.push(idle_connection(&server).await);
    }
    let refused = Client::connect(server.addr(), &server.ca.pem, None).await;
    assert!(
        refused.is_err(),
        "the connection beyond the limit is closed"
    );
    tokio::time::sleep(Duration::from_millis(100)).await;
    assert!(
        sample(
            &server.metrics().await,
            "vigil_bad_requests_total{reason=\"connection-limit\"}"
        ) >= 1.0
    );
    drop(held.pop());
    tokio::time::sleep(Duration::from_millis(200)).await;
    let mut client = Client::connect(server.addr(), &server.ca.pem, None)
        .await
        .expect("room again");
    assert_eq!(
        client.review("/validate", &read_data(REVIEW)).await.status,
        200
    );
}

#[tokio::test]
async fn a_slow_loris_is_cut_off_and_idle_connections_close() {
    let server = Server::start(|args, _| {
        args.header_timeout = Duration::from_secs(1);
        args.idle_timeout = Duration::from_secs(2);
    })
    .await;

    // Headers dribbled one byte at a time, never finished.
    let mut loris = idle_connection(&server).await;
    let dribble = tokio::spawn(async move {
        let started = Instant::now();
        for byte in b"POST /validate HTTP/1.1\r\nhost: localhost\r\ncontent-type: application/json\r\nx-slow: ".iter().cycle() {
            if loris.write_all(&[*byte]).await.is_err() || loris.flush().await.is_err() {
                return Some(started.elapsed());
            }
            tokio::time::sleep(Duration::from_millis(100)).await;
            if started.elapsed() > Duration::from_secs(10) {
                return None;
            }
        }
        None
    });

    // Meanwhile others are served.
    let mut client = server.client().await;
    assert_eq!(
        client.review("/validate", &read_data(REVIEW)).await.status,
        200
    );

    let cut = dribble.await.unwrap().expect("the slow client is cut off");
    eprintln!("limits: a slow-loris client was cut off after {cut:?} (header timeout 1s)");
    assert!(cut < Duration::from_secs(5), "{cut:?}");

    // A connection that sends nothing is closed after the idle timeout.
    let mut quiet = idle_connection(&server).await;
    let closed = closed_after(&mut quiet, Duration::from_secs(8))
        .await
        .expect("the idle connection is closed");
    eprintln!("limits: an idle connection was closed after {closed:?} (idle timeout 2s)");
    assert!(
        closed >= Duration::from_millis(1500),
        "not before the idle timeout: {closed:?}"
    );
}
