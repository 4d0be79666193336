//! Connections: TLS handshakes, HTTP/1.1 keep-alive and HTTP/2, per-connection timeouts, and draining.
//!
//! Each connection has a watchdog. A client that starts a request and does not finish its headers within
//! the header timeout is cut off (slow-loris), and a connection with nothing in flight for the idle timeout
//! is closed gracefully. The idle timeout is longer than the API server's own (Go's 90 s), so that the
//! client, not Vigil, closes idle connections and no request races a close.

use std::convert::Infallible;
use std::io;
use std::pin::Pin;
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, AtomicU64, AtomicUsize, Ordering};
use std::task::{Context, Poll};
use std::time::{Duration, Instant};

use axum::Router;
use axum::body::Body;
use hyper::body::Incoming;
use hyper_util::rt::{TokioExecutor, TokioIo, TokioTimer};
use hyper_util::server::conn::auto;
use tokio::io::{AsyncRead, AsyncReadExt, AsyncWrite, AsyncWriteExt, ReadBuf};
use tokio::net::{TcpListener, TcpStream};
use tokio::sync::{Notify, watch};
use tokio_rustls::TlsAcceptor;
use tower::ServiceExt;

/// Per-connection time limits.
#[derive(Debug, Clone, Copy)]
pub struct Timeouts {
    /// How long a TLS handshake may take.
    pub handshake: Duration,
    /// How long a client may take to finish its request headers once it has started sending them.
    pub header: Duration,
    /// How long a connection may sit with nothing in flight before it is closed.
    pub idle: Duration,
}

/// What a connection is doing, shared by its IO, its service and its watchdog.
struct ConnState {
    timeouts: Timeouts,
    epoch: Instant,
    /// Milliseconds since `epoch` of the last request finished (or of the connection's start).
    last_done: AtomicU64,
    /// Milliseconds since `epoch` (plus one) when bytes of a new request first arrived; 0 while none have.
    request_started: AtomicU64,
    in_flight: AtomicUsize,
    /// Whether closing the connection should drain what the client still sends (see [`Linger`]); off until
    /// the TLS handshake succeeds and after a stalled request is cut off.
    linger: AtomicBool,
    /// Whether a request has arrived on this connection (and so its protocol is known).
    served: AtomicBool,
}

impl ConnState {
    fn new(timeouts: Timeouts) -> ConnState {
        ConnState {
            timeouts,
            epoch: Instant::now(),
            last_done: AtomicU64::new(0),
            request_started: AtomicU64::new(0),
            in_flight: AtomicUsize::new(0),
            linger: AtomicBool::new(false),
            served: AtomicBool::new(false),
        }
    }

    fn now_ms(&self) -> u64 {
        self.epoch.elapsed().as_millis() as u64
    }

    /// Whether the connection should be closed now, and whether abruptly (a stalled request) or gracefully.
    fn verdict(&self) -> Option<Close> {
        if self.in_flight.load(Ordering::Acquire) > 0 {
            return None;
        }
        let now = self.now_ms();
        let started = self.request_started.load(Ordering::Acquire);
        if started > 0 {
            return (now + 1 - started > self.timeouts.header.as_millis() as u64)
                .then_some(Close::Abort);
        }
        (now - self.last_done.load(Ordering::Acquire) > self.timeouts.idle.as_millis() as u64)
            .then_some(Close::Graceful)
    }
}

enum Close {
    Graceful,
    Abort,
}

/// A stream that tells its connection's state when request bytes arrive.
struct Watched<S> {
    inner: S,
    state: Arc<ConnState>,
}

impl<S: AsyncRead + Unpin> AsyncRead for Watched<S> {
    fn poll_read(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        buf: &mut ReadBuf<'_>,
    ) -> Poll<io::Result<()>> {
        let before = buf.filled().len();
        let result = Pin::new(&mut self.inner).poll_read(cx, buf);
        if buf.filled().len() > before && self.state.in_flight.load(Ordering::Acquire) == 0 {
            let now = self.state.now_ms() + 1;
            let _ = self.state.request_started.compare_exchange(
                0,
                now,
                Ordering::AcqRel,
                Ordering::Acquire,
            );
        }
        result
    }
}

impl<S: AsyncWrite + Unpin> AsyncWrite for Watched<S> {
    fn poll_write(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        buf: &[u8],
    ) -> Poll<io::Result<usize>> {
        Pin::new(&mut self.inner).poll_write(cx, buf)
    }
    fn poll_flush(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        Pin::new(&mut self.inner).poll_flush(cx)
    }
    fn poll_shutdown(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        Pin::new(&mut self.inner).poll_shutdown(cx)
    }
    fn poll_write_vectored(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        bufs: &[io::IoSlice<'_>],
    ) -> Poll<io::Result<usize>> {
        Pin::new(&mut self.inner).poll_write_vectored(cx, bufs)
    }
    fn is_write_vectored(&self) -> bool {
        self.inner.is_write_vectored()
    }
}

/// How much a closing connection reads and discards of what the client still sends, at most.
const LINGER_BYTES: usize = 8 << 20;
/// How long a closing connection waits for the client to stop sending, at most.
const LINGER_TIME: Duration = Duration::from_secs(2);

/// The TCP stream under TLS, closed gracefully. A refusal is often written while request bytes are still
/// unread (a 413 before its body, a 404 whose body nobody reads); closing a socket with unread bytes makes
/// the kernel send a reset, and a client that gets the reset before it has read the response loses the
/// response. So on drop the write side is shut (the client sees the response, then end of stream) and what
/// the client still sends is read and discarded, up to `LINGER_BYTES` and `LINGER_TIME`, before the close.
struct Linger {
    stream: Option<TcpStream>,
    state: Arc<ConnState>,
}

impl Drop for Linger {
    fn drop(&mut self) {
        let Some(mut stream) = self.stream.take() else {
            return;
        };
        if !self.state.linger.load(Ordering::Acquire) {
            return;
        }
        let Ok(runtime) = tokio::runtime::Handle::try_current() else {
            return;
        };
        runtime.spawn(async move {
            let _ = stream.shutdown().await;
            let mut buf = vec![0u8; 16 * 1024];
            let mut read = 0;
            let deadline = tokio::time::Instant::now() + LINGER_TIME;
            while read < LINGER_BYTES {
                match tokio::time::timeout_at(deadline, stream.read(&mut buf)).await {
                    Ok(Ok(n)) if n > 0 => read += n,
                    _ => break,
                }
            }
        });
    }
}

impl Linger {
    fn stream(self: Pin<&mut Self>) -> Pin<&mut TcpStream> {
        // Some until drop.
        Pin::new(self.get_mut().stream.as_mut().expect("open until dropped"))
    }
}

impl AsyncRead for Linger {
    fn poll_read(
        self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        buf: &mut ReadBuf<'_>,
    ) -> Poll<io::Result<()>> {
        self.stream().poll_read(cx, buf)
    }
}

impl AsyncWrite for Linger {
    fn poll_write(
        self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        buf: &[u8],
    ) -> Poll<io::Result<usize>> {
        self.stream().poll_write(cx, buf)
    }
    fn poll_flush(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        self.stream().poll_flush(cx)
    }
    fn poll_shutdown(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        self.stream().poll_shutdown(cx)
    }
    fn poll_write_vectored(
        self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        bufs: &[io::IoSlice<'_>],
    ) -> Poll<io::Result<usize>> {
        self.stream().poll_write_vectored(cx, bufs)
    }
    fn is_write_vectored(&self) -> bool {
        true
    }
}

/// Counts open connections, so that shutdown can wait for them.
#[derive(Default)]
pub struct ConnectionCount {
    open: AtomicUsize,
    closed: Notify,
}

impl ConnectionCount {
    /// The number of open connections.
    pub fn open(&self) -> usize {
        self.open.load(Ordering::Acquire)
    }

    /// Waits until every connection has closed.
    pub async fn all_closed(&self) {
        loop {
            let notified = self.closed.notified();
            if self.open() == 0 {
                return;
            }
            notified.await;
        }
    }
}

struct Guard(Arc<ConnectionCount>);

impl Drop for Guard {
    fn drop(&mut self) {
        if self.0.open.fetch_sub(1, Ordering::AcqRel) == 1 {
            self.0.closed.notify_waiters();
        }
    }
}

/// Resolves once `stop` turns true (or its sender is gone).
pub(crate) async fn stopped(stop: &mut watch::Receiver<bool>) {
    let _ = stop.wait_for(|s| *s).await;
}

/// Resolves once `drain` turns true; never without one.
async fn drained(drain: &mut Option<watch::Receiver<bool>>) {
    match drain {
        Some(drain) => stopped(drain).await,
        None => std::future::pending().await,
    }
}

/// Called for connections that never became HTTP: a failed or timed-out handshake.
pub type OnBadConnection = Arc<dyn Fn(&'static str) + Send + Sync>;

/// Accepts TLS connections on `listener` and serves `router` on each, until `stop` turns true. Then the
/// listener is closed (new connections are refused), every open connection is asked to finish what it is
/// doing and close, and the returned count lets the caller wait for them.
///
/// From the moment `drain` turns true (SIGTERM), clients are told to stop sending on their connections
/// before those close: each HTTP/1.1 response carries `Connection: close`, and HTTP/2 connections get
/// GOAWAY. Idle HTTP/1.1 connections are left open until `stop`, since closing one races a request the
/// client may be sending on it.
#[allow(clippy::too_many_arguments)]
pub async fn serve_tls(
    listener: TcpListener,
    acceptor: TlsAcceptor,
    router: Router,
    timeouts: Timeouts,
    max_connections: usize,
    drain: watch::Receiver<bool>,
    mut stop: watch::Receiver<bool>,
    on_bad: OnBadConnection,
) -> Arc<ConnectionCount> {
    let count = Arc::new(ConnectionCount::default());
    loop {
        let (stream, _) = tokio::select! {
            accepted = listener.accept() => match accepted {
                Ok(pair) => pair,
                Err(e) => {
                    // Out of file descriptors and the like: back off instead of spinning.
                    tracing::warn!(error = %e, "accept failed");
                    tokio::time::sleep(Duration::from_millis(50)).await;
                    continue;
                }
            },
            _ = stopped(&mut stop) => break,
        };
        if count.open() >= max_connections {
            // Closed at once: a flood of connections must not starve the ones already served.
            on_bad("connection-limit");
            drop(stream);
            continue;
        }
        count.open.fetch_add(1, Ordering::AcqRel);
        let guard = Guard(count.clone());
        let (acceptor, router, drain, stop, on_bad) = (
            acceptor.clone(),
            router.clone(),
            drain.clone(),
            stop.clone(),
            on_bad.clone(),
        );
        tokio::spawn(async move {
            let _guard = guard;
            serve_connection(stream, acceptor, router, timeouts, drain, stop, on_bad).await;
        });
    }
    drop(listener);
    count
}

/// Serves plain HTTP (the metrics port) until `stop` turns true.
pub async fn serve_plain(
    listener: TcpListener,
    router: Router,
    timeouts: Timeouts,
    mut stop: watch::Receiver<bool>,
) {
    loop {
        let (stream, _) = tokio::select! {
            accepted = listener.accept() => match accepted {
                Ok(pair) => pair,
                Err(_) => {
                    tokio::time::sleep(Duration::from_millis(50)).await;
                    continue;
                }
            },
            _ = stopped(&mut stop) => break,
        };
        let (router, stop) = (router.clone(), stop.clone());
        tokio::spawn(async move {
            let state = Arc::new(ConnState::new(timeouts));
            let io = Watched {
                inner: stream,
                state: state.clone(),
            };
            drive(io, router, state, None, stop, false).await;
        });
    }
}

async fn serve_connection(
    stream: TcpStream,
    acceptor: TlsAcceptor,
    router: Router,
    timeouts: Timeouts,
    drain: watch::Receiver<bool>,
    stop: watch::Receiver<bool>,
    on_bad: OnBadConnection,
) {
    let _ = stream.set_nodelay(true);
    let state = Arc::new(ConnState::new(timeouts));
    let stream = Linger {
        stream: Some(stream),
        state: state.clone(),
    };
    let tls = match tokio::time::timeout(timeouts.handshake, acceptor.accept(stream)).await {
        Ok(Ok(tls)) => tls,
        Ok(Err(e)) => {
            tracing::debug!(error = %e, "tls handshake failed");
            on_bad("tls-handshake");
            return;
        }
        Err(_) => {
            on_bad("tls-handshake-timeout");
            return;
        }
    };
    state.linger.store(true, Ordering::Release);
    let h2 = tls.get_ref().1.alpn_protocol() == Some(b"h2");
    let io = Watched {
        inner: tls,
        state: state.clone(),
    };
    drive(io, router, state, Some(drain), stop, h2).await;
}

/// Runs HTTP on one connection, with its watchdog and the shutdown signals. `h2` is what TLS negotiated.
async fn drive<S>(
    io: Watched<S>,
    router: Router,
    state: Arc<ConnState>,
    drain: Option<watch::Receiver<bool>>,
    mut stop: watch::Receiver<bool>,
    h2: bool,
) where
    S: AsyncRead + AsyncWrite + Unpin + Send + 'static,
{
    let service_state = state.clone();
    let service_drain = drain.clone();
    let service = hyper::service::service_fn(move |request: hyper::Request<Incoming>| {
        let state = service_state.clone();
        let router = router.clone();
        let drain = service_drain.clone();
        let http1 = request.version() < hyper::Version::HTTP_2;
        state.in_flight.fetch_add(1, Ordering::AcqRel);
        state.request_started.store(0, Ordering::Release);
        state.served.store(true, Ordering::Release);
        async move {
            let response = router.oneshot(request.map(Body::new)).await;
            let mut response = response.unwrap_or_else(|never| match never {});
            state.last_done.store(state.now_ms(), Ordering::Release);
            state.in_flight.fetch_sub(1, Ordering::AcqRel);
            if http1 && drain.is_some_and(|d| *d.borrow()) {
                // The client opens a new connection for its next request, to a replica that stays.
                response.headers_mut().insert(
                    hyper::header::CONNECTION,
                    hyper::header::HeaderValue::from_static("close"),
                );
            }
            Ok::<_, Infallible>(response)
        }
    });
    let mut builder = auto::Builder::new(TokioExecutor::new());
    builder
        .http1()
        .timer(TokioTimer::new())
        .header_read_timeout(None)
        .keep_alive(true)
        .max_buf_size(64 * 1024);
    builder
        .http2()
        .timer(TokioTimer::new())
        .max_concurrent_streams(64)
        .keep_alive_interval(Some(Duration::from_secs(30)));
    let conn = builder.serve_connection(TokioIo::new(io), service);
    tokio::pin!(conn);
    let check_every = (state.timeouts.header.min(state.timeouts.idle) / 4)
        .clamp(Duration::from_millis(50), Duration::from_secs(1));
    let mut tick = tokio::time::interval(check_every);
    let mut shutting_down = false;
    let mut drain = drain.filter(|_| h2);
    // GOAWAY waits for the first request: before it, shutting down would drop the connection while its
    // protocol is still being read, instead of telling the client anything.
    let mut goaway_pending = false;
    loop {
        tokio::select! {
            result = conn.as_mut() => {
                if let Err(e) = result {
                    tracing::debug!(error = %e, "connection ended with an error");
                }
                return;
            }
            _ = tick.tick() => match state.verdict() {
                Some(Close::Abort) => {
                    state.linger.store(false, Ordering::Release);
                    return;
                }
                Some(Close::Graceful) if !shutting_down => {
                    shutting_down = true;
                    conn.as_mut().graceful_shutdown();
                }
                _ if goaway_pending && !shutting_down && state.served.load(Ordering::Acquire) => {
                    shutting_down = true;
                    conn.as_mut().graceful_shutdown();
                }
                _ => {}
            },
            _ = stopped(&mut stop), if !shutting_down => {
                shutting_down = true;
                conn.as_mut().graceful_shutdown();
            }
            // HTTP/2: GOAWAY at once; the streams in flight finish, the client opens no new ones here.
            _ = drained(&mut drain), if !shutting_down && !goaway_pending => {
                if state.served.load(Ordering::Acquire) {
                    shutting_down = true;
                    conn.as_mut().graceful_shutdown();
                } else {
                    goaway_pending = true;
                }
            }
        }
    }
}
