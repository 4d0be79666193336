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

/// One refusal to provoke: the request's head (without `content-length`), its body, and the status expected.
struct Refusal {
    name: &'static str,
    head: &'static str,
    body: Vec<u8>,
    status: u16,
}

/// A response read off a raw connection: its status and whether the server closes the connection after it.
struct Raw {
    status: u16,
    closes: bool,
}

type Tls = tokio_rustls::client::TlsStream<tokio::net::TcpStream>;

/// Sends one request as curl does: the head, then the whole body in writes (and so TLS records) of its own,
/// and only then reads the response (or after a second, when the server stopped reading the body). A
/// server that answers from the head and closes with the body unread makes the kernel reset the
/// connection, which can destroy the answer before the client reads it. Returns `None` when no HTTP response
/// arrived (a reset or an early close), and the stream when the connection stays open.
async fn exchange(stream: Tls, head: &str, body: &[u8]) -> (Option<Raw>, Option<Tls>) {
    let (mut reader, mut writer) = tokio::io::split(stream);
    let head = format!("{head}content-length: {}\r\n\r\n", body.len()).into_bytes();
    let body = body.to_vec();
    let (sent, sent_rx) = tokio::sync::oneshot::channel::<()>();
    let write = tokio::spawn(async move {
        if writer.write_all(&head).await.is_ok() && writer.flush().await.is_ok() {
            let _ = writer.write_all(&body).await;
            let _ = writer.flush().await;
        }
        let _ = sent.send(());
        writer
    });
    let _ = tokio::time::timeout(Duration::from_secs(1), sent_rx).await;
    let mut buf = Vec::new();
    let mut chunk = [0u8; 4096];
    let parsed = loop {
        if let Some(end) = buf.windows(4).position(|w| w == b"\r\n\r\n") {
            let head = String::from_utf8_lossy(&buf[..end]).to_ascii_lowercase();
            let length: usize = head
                .lines()
                .find_map(|l| l.strip_prefix("content-length:"))
                .map_or(0, |v| v.trim().parse().unwrap());
            if buf.len() >= end + 4 + length {
                let status = head.get(9..12).and_then(|s| s.parse().ok());
                break status.map(|status| Raw {
                    status,
                    closes: head.contains("connection: close"),
                });
            }
        }
        match tokio::time::timeout(Duration::from_secs(10), reader.read(&mut chunk)).await {
            Ok(Ok(n)) if n > 0 => buf.extend_from_slice(&chunk[..n]),
            _ => break None,
        }
    };
    let stream = match &parsed {
        Some(raw) if !raw.closes => Some(reader.unsplit(write.await.unwrap())),
        _ => {
            write.abort();
            None
        }
    };
    (parsed, stream)
}

const TRIES: usize = 200;

async fn refusals_all_arrive(server: &Server, refusals: &[Refusal]) {
    let review = read_data(REVIEW);
    let review_head =
        "POST /validate HTTP/1.1\r\nhost: localhost\r\ncontent-type: application/json\r\n";
    for refusal in refusals {
        // Fresh: each refusal is the first request of a new connection.
        let mut got = 0;
        for _ in 0..TRIES {
            let (raw, _) =
                exchange(idle_connection(server).await, refusal.head, &refusal.body).await;
            got += usize::from(raw.is_some_and(|r| r.status == refusal.status));
        }
        // Reused: each refusal follows a review on a kept-alive connection; a small body's refusal leaves
        // the connection open for the next request.
        let mut reused_got = 0;
        let mut connections = 0;
        let mut open: Option<Tls> = None;
        for _ in 0..TRIES {
            let stream = match open.take() {
                Some(stream) => stream,
                None => {
                    connections += 1;
                    let (raw, stream) = exchange(
                        idle_connection(server).await,
                        review_head,
                        review.as_bytes(),
                    )
                    .await;
                    assert_eq!(raw.map(|r| r.status), Some(200));
                    stream.expect("kept alive after a review")
                }
            };
            let (raw, stream) = exchange(stream, refusal.head, &refusal.body).await;
            reused_got += usize::from(raw.is_some_and(|r| r.status == refusal.status));
            open = stream;
        }
        eprintln!(
            "limits: {} ({}, {} B body): {got}/{TRIES} on fresh connections, {reused_got}/{TRIES} on reused ones ({connections} connections)",
            refusal.name,
            refusal.status,
            refusal.body.len()
        );
        assert_eq!(got, TRIES, "{}: every refusal arrives", refusal.name);
        assert_eq!(reused_got, TRIES, "{}: every refusal arrives", refusal.name);
        if refusal.body.len() <= 1024 {
            assert_eq!(
                connections, 1,
                "{}: a small refusal keeps the connection",
                refusal.name
            );
        }
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn every_early_refusal_arrives_as_a_response() {
    let server = Server::start(|_, _| {}).await;
    let kib = vec![b'{'; 1024];
    refusals_all_arrive(
        &server,
        &[
            Refusal {
                name: "wrong content type",
                head: "POST /validate HTTP/1.1\r\nhost: localhost\r\ncontent-type: text/plain\r\n",
                body: kib.clone(),
                status: 415,
            },
            Refusal {
                name: "unknown path",
                head: "POST /nowhere HTTP/1.1\r\nhost: localhost\r\ncontent-type: application/json\r\n",
                body: kib.clone(),
                status: 404,
            },
            Refusal {
                name: "wrong method",
                head: "PUT /validate HTTP/1.1\r\nhost: localhost\r\ncontent-type: application/json\r\n",
                body: kib.clone(),
                status: 405,
            },
            Refusal {
                name: "4 MiB body",
                head: "POST /validate HTTP/1.1\r\nhost: localhost\r\ncontent-type: application/json\r\n",
                body: vec![b' '; 4 << 20],
                status: 413,
            },
        ],
    )
    .await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn load_shedding_refusals_arrive_as_responses() {
    // One review held in flight by a registry that never answers fills `--max-in-flight 1`.
    let silent = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let silent_addr = silent.local_addr().unwrap();
    tokio::spawn(async move {
        let mut held = Vec::new();
        while let Ok((stream, _)) = silent.accept().await {
            held.push(stream);
        }
    });
    let policy = "apiVersion: vigil.dev/v1alpha1\nkind: Policy\nmode: audit\nrules:\n  image-resolvable: enforce\nregistry:\n  timeout: 60s\n";
    let server = Server::start(move |args, dir| {
        args.policy = Some(write(dir, "policy.yaml", policy));
        args.registry.registry_plain_http = vec![silent_addr.to_string()];
        args.max_in_flight = 1;
    })
    .await;
    let stuck = read_data(REVIEW).replace(
        r#""image": "nginx""#,
        &format!(r#""image": "{silent_addr}/stuck/app:1""#),
    );
    let mut holder = server.client().await;
    let held = tokio::spawn(async move {
        holder
            .send(
                "POST",
                "/validate?timeout=60s",
                Some("application/json"),
                stuck.as_bytes(),
            )
            .await
    });
    tokio::time::sleep(Duration::from_millis(300)).await;
    let started = Instant::now();
    // The reused connections' warm-up review is itself refused with 503 here, so only fresh ones are
    // meaningful: each refusal is sent on a new connection and then again on the same one.
    let mut got = 0;
    let head = "POST /validate HTTP/1.1\r\nhost: localhost\r\ncontent-type: application/json\r\n";
    let body = read_data(REVIEW).into_bytes();
    for _ in 0..TRIES {
        let (raw, stream) = exchange(idle_connection(&server).await, head, &body).await;
        got += usize::from(raw.as_ref().is_some_and(|r| r.status == 503));
        let (raw, _) = exchange(stream.expect("kept alive after a 503"), head, &body).await;
        got += usize::from(raw.is_some_and(|r| r.status == 503));
    }
    eprintln!(
        "limits: 503 (load shed): {got}/{} arrived, fresh and reused, in {:?}",
        2 * TRIES,
        started.elapsed()
    );
    assert_eq!(got, 2 * TRIES);
    held.abort();
}
