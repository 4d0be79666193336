//! `vigil serve`: the HTTPS admission webhook, its health and metrics ports, and graceful shutdown.

mod handlers;
pub mod listener;
pub mod metrics;
pub mod tls;

use std::net::SocketAddr;
use std::path::PathBuf;
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};
use std::time::Duration;

use arc_swap::ArcSwapOption;
use clap::Args;
use tokio::net::TcpListener;
use tokio::sync::watch;
use tokio_rustls::TlsAcceptor;

use crate::admission::ConfigMapRef;
use crate::policy::Policy;
pub use crate::policy::parse_duration;
use crate::registry::{RegistryArgs, Resolver};
use crate::reload::{Reloader, Sources};
use metrics::Metrics;
use tls::{CertStore, ServingCert, TlsError};

/// Flags of `vigil serve`; each can also be set by its `VIGIL_*` environment variable.
#[derive(Debug, Clone, Args)]
pub struct ServeArgs {
    /// Policy file (in a mounted ConfigMap); the built-in default policy when absent.
    #[arg(long, env = "VIGIL_POLICY")]
    pub policy: Option<PathBuf>,
    /// Serving certificate chain (PEM). Without it, a self-signed one is made for localhost.
    #[arg(long, env = "VIGIL_TLS_CERT", requires = "tls_key")]
    pub tls_cert: Option<PathBuf>,
    /// Serving certificate key (PEM).
    #[arg(long, env = "VIGIL_TLS_KEY", requires = "tls_cert")]
    pub tls_key: Option<PathBuf>,
    /// Address of the TLS webhook port.
    #[arg(long, env = "VIGIL_ADDR", default_value = "0.0.0.0:8443")]
    pub addr: SocketAddr,
    /// Address of the plain-HTTP metrics and health port.
    #[arg(long, env = "VIGIL_METRICS_ADDR", default_value = "0.0.0.0:9090")]
    pub metrics_addr: SocketAddr,
    /// CA bundle (PEM) for mTLS: only client certificates it signed are accepted.
    #[arg(long, env = "VIGIL_CLIENT_CA")]
    pub client_ca: Option<PathBuf>,
    /// After SIGTERM, how long to keep accepting connections while readiness is failing.
    #[arg(long, env = "VIGIL_SHUTDOWN_GRACE", default_value = "5s", value_parser = parse_duration)]
    pub shutdown_grace: Duration,
    /// How often the policy and certificate files are checked, besides watching their directories.
    #[arg(long, env = "VIGIL_RELOAD_INTERVAL", default_value = "2s", value_parser = parse_duration)]
    pub reload_interval: Duration,
    /// The ConfigMap that holds the policy, as NAMESPACE/NAME: its edits are validated and recorded.
    #[arg(
        long,
        env = "VIGIL_POLICY_CONFIGMAP",
        default_value = "vigil/vigil-policy"
    )]
    pub policy_configmap: ConfigMapRef,
    #[command(flatten)]
    pub registry: RegistryArgs,
    /// The most reviews handled at once; beyond it a review is refused at once with 503 (load shedding)
    /// instead of queueing without bound.
    #[arg(long, env = "VIGIL_MAX_IN_FLIGHT", default_value_t = 1024)]
    pub max_in_flight: usize,
    /// The most open connections on the webhook port; a connection beyond it is closed at once.
    #[arg(long, env = "VIGIL_MAX_CONNECTIONS", default_value_t = 10_000)]
    pub max_connections: usize,
    /// How long a client may take to send its request headers once it has started; a slower one is cut off.
    #[arg(long, env = "VIGIL_HEADER_TIMEOUT", default_value = "10s", value_parser = parse_duration)]
    pub header_timeout: Duration,
    /// How long a connection may sit idle before it is closed; keep it above the API server's 90 s.
    #[arg(long, env = "VIGIL_IDLE_TIMEOUT", default_value = "120s", value_parser = parse_duration)]
    pub idle_timeout: Duration,
}

impl ServeArgs {
    fn timeouts(&self) -> listener::Timeouts {
        listener::Timeouts {
            handshake: self.header_timeout,
            header: self.header_timeout,
            idle: self.idle_timeout,
        }
    }
}

/// Why the server could not start.
#[derive(Debug, thiserror::Error)]
pub enum ServeError {
    #[error(transparent)]
    Tls(#[from] TlsError),
    #[error("cannot listen on {addr}: {source}")]
    Listen {
        addr: SocketAddr,
        #[source]
        source: std::io::Error,
    },
    #[error("registry access: {0}")]
    Registry(String),
    #[error("cannot write the self-signed CA to {path}: {source}")]
    WriteCa {
        path: String,
        #[source]
        source: std::io::Error,
    },
}

/// Where alert records go: one JSON line each.
pub enum AlertSink {
    /// Standard output, the stream a SIEM collects, written by a thread of its own (see `StdoutWriter`).
    Stdout(StdoutWriter),
    /// Kept in memory, for tests that read them back.
    Collect(std::sync::Mutex<Vec<String>>),
}

/// Alert lines waiting for the writer thread.
#[derive(Default)]
struct Pending {
    lines: Vec<u8>,
    closed: bool,
}

/// Writes alert lines to stdout from a thread of its own. A review only appends its line to a buffer; the
/// thread writes the buffer out every `ALERT_FLUSH_EVERY`, so no review waits on the pipe and no review wakes
/// a thread. Nothing is dropped: past `ALERT_BUFFER_MAX` bytes pending, a review waits for the writer.
pub struct StdoutWriter {
    pending: std::sync::Arc<(std::sync::Mutex<Pending>, std::sync::Condvar)>,
    thread: std::sync::Mutex<Option<std::thread::JoinHandle<()>>>,
}

/// How often the alert writer writes out what is pending.
const ALERT_FLUSH_EVERY: Duration = Duration::from_millis(10);
/// How many bytes of alerts may wait before reviews wait for the writer.
const ALERT_BUFFER_MAX: usize = 8 << 20;

impl AlertSink {
    /// A sink that writes to stdout from its own thread.
    pub fn stdout() -> AlertSink {
        let pending = std::sync::Arc::new((
            std::sync::Mutex::new(Pending::default()),
            std::sync::Condvar::new(),
        ));
        let shared = pending.clone();
        let thread = std::thread::Builder::new()
            .name("vigil-alerts".to_owned())
            .spawn(move || {
                use std::io::Write;
                let (lock, drained) = &*shared;
                let mut out = std::io::stdout().lock();
                let mut batch = Vec::new();
                loop {
                    std::thread::sleep(ALERT_FLUSH_EVERY);
                    let closed = {
                        let mut p = lock.lock().unwrap_or_else(|e| e.into_inner());
                        std::mem::swap(&mut batch, &mut p.lines);
                        p.closed
                    };
                    drained.notify_all();
                    if !batch.is_empty() {
                        if let Err(e) = out.write_all(&batch).and_then(|_| out.flush()) {
                            eprintln!("vigil: cannot write alerts to stdout: {e}");
                        }
                        batch.clear();
                    }
                    if closed
                        && lock
                            .lock()
                            .unwrap_or_else(|e| e.into_inner())
                            .lines
                            .is_empty()
                    {
                        return;
                    }
                }
            })
            .ok();
        if thread.is_none() {
            // Without its thread the sink writes directly; see `write`.
            pending.0.lock().unwrap_or_else(|e| e.into_inner()).closed = true;
        }
        AlertSink::Stdout(StdoutWriter {
            pending,
            thread: std::sync::Mutex::new(thread),
        })
    }

    /// Hands over one alert line. It is never dropped.
    pub fn write(&self, line: String) {
        match self {
            AlertSink::Stdout(writer) => {
                let (lock, drained) = &*writer.pending;
                let mut p = lock.lock().unwrap_or_else(|e| e.into_inner());
                while p.lines.len() > ALERT_BUFFER_MAX && !p.closed {
                    p = drained.wait(p).unwrap_or_else(|e| e.into_inner());
                }
                if p.closed {
                    // Closed, or without its thread: write directly rather than lose the record.
                    drop(p);
                    println!("{line}");
                    return;
                }
                p.lines.extend_from_slice(line.as_bytes());
                p.lines.push(b'\n');
            }
            AlertSink::Collect(lines) => lines.lock().unwrap_or_else(|p| p.into_inner()).push(line),
        }
    }

    /// Writes out every alert handed over so far; used at shutdown.
    pub fn close(&self) {
        if let AlertSink::Stdout(writer) = self {
            writer
                .pending
                .0
                .lock()
                .unwrap_or_else(|e| e.into_inner())
                .closed = true;
            if let Some(thread) = writer
                .thread
                .lock()
                .unwrap_or_else(|p| p.into_inner())
                .take()
            {
                let _ = thread.join();
            }
        }
    }

    /// The alerts collected so far (empty for stdout).
    pub fn collected(&self) -> Vec<String> {
        match self {
            AlertSink::Stdout(_) => Vec::new(),
            AlertSink::Collect(lines) => lines.lock().unwrap_or_else(|p| p.into_inner()).clone(),
        }
    }
}

/// What the handlers share.
pub struct App {
    /// The policy in force; `None` until a valid one is loaded.
    pub policy: ArcSwapOption<Policy>,
    pub certs: Arc<CertStore>,
    pub metrics: Metrics,
    /// Set on SIGTERM: readiness fails from then on.
    pub draining: AtomicBool,
    pub alerts: AlertSink,
    /// The ConfigMap whose edits are validated and recorded.
    pub policy_configmap: ConfigMapRef,
    /// Registry look-ups, for the registry rules.
    pub resolver: Arc<Resolver>,
    /// Permits for reviews in flight (`--max-in-flight`).
    pub in_flight: Arc<tokio::sync::Semaphore>,
}

impl App {
    /// Ready: a valid policy and a certificate are loaded, and the server is not draining.
    pub fn ready(&self) -> bool {
        self.not_ready_because().is_none()
    }

    /// Why the server is not ready, if it is not.
    pub fn not_ready_because(&self) -> Option<&'static str> {
        if self.draining.load(Ordering::Acquire) {
            Some("draining")
        } else if self.policy.load().is_none() {
            Some("no valid policy is loaded")
        } else if self.certs.current().is_none() {
            Some("no valid certificate is loaded")
        } else {
            None
        }
    }

    /// Puts a policy in force.
    pub fn set_policy(&self, policy: Policy) {
        self.metrics.set_policy(&policy.hash);
        self.policy.store(Some(Arc::new(policy)));
    }

    /// Puts a certificate in force for new connections.
    pub fn set_cert(&self, cert: ServingCert) {
        self.metrics
            .cert_expiry
            .set(cert.not_after.unix_timestamp() as f64);
        self.certs.replace(cert);
    }
}

/// A started server: where it listens, and how to stop it.
pub struct Running {
    pub addr: SocketAddr,
    pub metrics_addr: SocketAddr,
    pub app: Arc<App>,
    drain: watch::Sender<bool>,
    stop: watch::Sender<bool>,
    done: tokio::task::JoinHandle<()>,
    grace: Duration,
}

impl Running {
    /// Drains and stops: readiness fails at once and clients are told to leave (HTTP/1.1 responses carry
    /// `Connection: close`, HTTP/2 connections get GOAWAY); connections are still accepted for the grace
    /// period, then the listeners close and in-flight reviews finish.
    pub async fn shutdown(self) {
        self.app.draining.store(true, Ordering::Release);
        let _ = self.drain.send(true);
        tracing::info!(grace = ?self.grace, "draining");
        tokio::time::sleep(self.grace).await;
        let _ = self.stop.send(true);
        let _ = self.done.await;
        self.app.alerts.close();
        tracing::info!("stopped");
    }
}

fn provider() -> Arc<rustls::crypto::CryptoProvider> {
    Arc::new(rustls::crypto::ring::default_provider())
}

/// Makes a self-signed certificate and writes its CA next to the system's temporary files.
fn self_signed_cert(port: u16) -> Result<(ServingCert, PathBuf), ServeError> {
    let generated = tls::self_signed()?;
    let path = std::env::temp_dir().join(format!("vigil-ca-{port}.pem"));
    std::fs::write(&path, &generated.ca_pem).map_err(|source| ServeError::WriteCa {
        path: path.display().to_string(),
        source,
    })?;
    let cert = ServingCert::from_pem(
        generated.cert_pem.as_bytes(),
        generated.key_pem.as_bytes(),
        "self-signed certificate",
        "self-signed key",
        &provider(),
    )?;
    Ok((cert, path))
}

/// Starts the webhook and metrics listeners and returns once they accept connections.
pub async fn start(args: ServeArgs) -> Result<Running, ServeError> {
    start_with(args, AlertSink::stdout()).await
}

/// Starts the server with alerts going to `alerts`.
pub async fn start_with(args: ServeArgs, alerts: AlertSink) -> Result<Running, ServeError> {
    let listener = TcpListener::bind(args.addr)
        .await
        .map_err(|source| ServeError::Listen {
            addr: args.addr,
            source,
        })?;
    let metrics_listener = TcpListener::bind(args.metrics_addr)
        .await
        .map_err(|source| ServeError::Listen {
            addr: args.metrics_addr,
            source,
        })?;
    let addr = listener.local_addr().map_err(|source| ServeError::Listen {
        addr: args.addr,
        source,
    })?;
    let metrics_addr = metrics_listener
        .local_addr()
        .map_err(|source| ServeError::Listen {
            addr: args.metrics_addr,
            source,
        })?;

    let metrics = Metrics::new();
    let resolver = crate::registry::Resolver::new(
        crate::registry::ResolverConfig {
            plain_http: args.registry.registry_plain_http.clone(),
            extra_ca: args.registry.registry_ca.clone(),
        },
        metrics.registry_lookups.clone(),
    )
    .map_err(|e| ServeError::Registry(e.to_string()))?;
    let app = Arc::new(App {
        policy: ArcSwapOption::empty(),
        certs: Arc::new(CertStore::default()),
        metrics,
        draining: AtomicBool::new(false),
        alerts,
        policy_configmap: args.policy_configmap.clone(),
        resolver: Arc::new(resolver),
        in_flight: Arc::new(tokio::sync::Semaphore::new(args.max_in_flight.max(1))),
    });
    let sources = Sources {
        policy: args.policy.clone(),
        cert: args.tls_cert.clone().zip(args.tls_key.clone()),
        registry_auth: args.registry.registry_auth.clone(),
    };
    if sources.policy.is_none() {
        app.set_policy(Policy::default_policy());
    }
    if sources.cert.is_none() {
        let (cert, ca_path) = self_signed_cert(addr.port())?;
        tracing::warn!(
            ca = %ca_path.display(),
            "no --tls-cert given: serving a self-signed certificate for localhost and 127.0.0.1"
        );
        eprintln!(
            "vigil: self-signed certificate; CA written to {}",
            ca_path.display()
        );
        app.set_cert(cert);
    }
    crate::rules::warm_up();
    // The first check runs before serving; a bad policy or certificate leaves the server not ready, and
    // the reloader keeps retrying.
    let mut reloader = Reloader::new(app.clone(), sources);
    reloader.check();
    if let Some(why) = app.not_ready_because() {
        tracing::error!(
            reason = why,
            "not ready; retrying every --reload-interval and on every file change"
        );
    }

    let tls_config = tls::server_config(app.certs.clone(), args.client_ca.as_ref(), provider())?;
    let acceptor = TlsAcceptor::from(Arc::new(tls_config));
    let (stop, stop_rx) = watch::channel(false);
    let (drain, drain_rx) = watch::channel(false);
    let bad_app = app.clone();
    let on_bad: listener::OnBadConnection =
        Arc::new(move |reason| bad_app.metrics.record_bad_request(reason));

    let webhook = tokio::spawn(listener::serve_tls(
        listener,
        acceptor,
        handlers::webhook_router(app.clone()),
        args.timeouts(),
        args.max_connections.max(1),
        drain_rx,
        stop_rx.clone(),
        on_bad,
    ));
    let metrics = tokio::spawn(listener::serve_plain(
        metrics_listener,
        handlers::metrics_router(app.clone()),
        args.timeouts(),
        stop_rx.clone(),
    ));
    let reload = tokio::spawn(reloader.run(args.reload_interval, stop_rx.clone()));
    let done = tokio::spawn(async move {
        if let Ok(connections) = webhook.await {
            connections.all_closed().await;
        }
        let _ = metrics.await;
        let _ = reload.await;
    });
    tracing::info!(%addr, %metrics_addr, policy = %app.policy.load().as_ref().map(|p| p.hash.clone()).unwrap_or_default(), "serving");
    Ok(Running {
        addr,
        metrics_addr,
        app,
        drain,
        stop,
        done,
        grace: args.shutdown_grace,
    })
}

/// Runs the server until SIGTERM or Ctrl-C, then drains and stops.
pub async fn run(args: ServeArgs) -> Result<(), ServeError> {
    let running = start(args).await?;
    wait_for_signal().await;
    running.shutdown().await;
    Ok(())
}

async fn wait_for_signal() {
    use tokio::signal::unix::{SignalKind, signal};
    match signal(SignalKind::terminate()) {
        Ok(mut term) => {
            tokio::select! {
                _ = term.recv() => {}
                _ = tokio::signal::ctrl_c() => {}
            }
        }
        Err(_) => {
            let _ = tokio::signal::ctrl_c().await;
        }
    }
}
