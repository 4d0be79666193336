//! Watching the policy file and the serving certificate, and keeping the last good one of each.
//!
//! Kubelet updates a mounted ConfigMap or Secret by writing a new timestamped directory and swapping the
//! `..data` symlink to it, so the file Vigil was given never changes in place. Watching the file would
//! miss that. Instead the directory is watched (any event there triggers a check) and the content hash is
//! checked on an interval as well. A new policy is parsed and validated completely before it is swapped
//! in, in one atomic store, so every review runs under exactly one policy. A certificate pair is loaded
//! only when both files parse and the key belongs to the certificate.

use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::time::Duration;

use sha2::{Digest, Sha256};
use time::OffsetDateTime;
use tokio::sync::{mpsc, watch};

use crate::policy::Policy;
use crate::server::App;
use crate::server::metrics::ResultLabels;
use crate::server::tls::ServingCert;

/// How close to expiry a certificate in force must be to be warned about.
pub const EXPIRY_WARNING: time::Duration = time::Duration::days(7);
/// How often the expiry warning repeats while it holds.
const EXPIRY_WARNING_EVERY: Duration = Duration::from_secs(3600);

/// What the watcher last saw of a source: the content hash, or the read error.
#[derive(Debug, Clone, PartialEq, Eq)]
enum Seen {
    Nothing,
    Content([u8; 32]),
    Unreadable(String),
}

/// The files to watch.
#[derive(Debug, Clone)]
pub struct Sources {
    pub policy: Option<PathBuf>,
    pub cert: Option<(PathBuf, PathBuf)>,
    /// Registry credentials (a docker config.json).
    pub registry_auth: Option<PathBuf>,
}

/// Checks the sources and swaps in what changed and is valid.
pub struct Reloader {
    app: Arc<App>,
    sources: Sources,
    policy_seen: Seen,
    cert_seen: Seen,
    auth_seen: Seen,
    last_expiry_warning: Option<std::time::Instant>,
}

fn read_or_describe(path: &Path) -> Result<Vec<u8>, String> {
    std::fs::read(path).map_err(|e| format!("{}: {e}", path.display()))
}

/// What a check found in a text file.
enum TextChange {
    /// The same content, or the same read error, as last time: nothing to do.
    Unchanged,
    /// The file cannot be read (first time this error is seen).
    Unreadable(String),
    /// New content.
    Changed(String),
}

/// Reads a text file and compares it with what was seen last time, updating `seen`.
fn read_if_changed(path: &Path, seen: &mut Seen) -> TextChange {
    let read = read_or_describe(path).and_then(|b| {
        String::from_utf8(b).map_err(|_| format!("{}: not UTF-8 text", path.display()))
    });
    let (now, change) = match read {
        Ok(text) => (
            Seen::Content(Sha256::digest(text.as_bytes()).into()),
            TextChange::Changed(text),
        ),
        Err(why) => (Seen::Unreadable(why.clone()), TextChange::Unreadable(why)),
    };
    if *seen == now {
        return TextChange::Unchanged;
    }
    *seen = now;
    change
}

impl Reloader {
    /// A reloader for `sources`, feeding `app`.
    pub fn new(app: Arc<App>, sources: Sources) -> Reloader {
        Reloader {
            app,
            sources,
            policy_seen: Seen::Nothing,
            cert_seen: Seen::Nothing,
            auth_seen: Seen::Nothing,
            last_expiry_warning: None,
        }
    }

    /// Checks every source once.
    pub fn check(&mut self) {
        self.check_policy();
        self.check_cert();
        self.check_registry_auth();
        self.warn_on_expiry();
    }

    fn check_policy(&mut self) {
        let Some(path) = &self.sources.policy else {
            return;
        };
        let name = path.display().to_string();
        let metrics = &self.app.metrics;
        let text = match read_if_changed(path, &mut self.policy_seen) {
            TextChange::Unchanged => return,
            TextChange::Changed(text) => text,
            TextChange::Unreadable(why) => {
                metrics
                    .policy_reloads
                    .get_or_create(&ResultLabels { result: "error" })
                    .inc();
                tracing::error!(error = %why, in_force = %self.in_force_hash(), "cannot read the policy; the last good policy stays in force");
                return;
            }
        };
        match Policy::parse(&text, &name) {
            Ok(policy) => {
                let old = self.app.policy.load_full();
                if old.as_ref().is_some_and(|o| o.hash == policy.hash) {
                    return;
                }
                let change = match &old {
                    Some(old) => policy.change_summary(old),
                    None => policy.summary(),
                };
                tracing::info!(hash = %policy.hash, change = %change, "policy loaded");
                self.app.set_policy(policy);
                metrics
                    .policy_reloads
                    .get_or_create(&ResultLabels { result: "success" })
                    .inc();
            }
            Err(e) => {
                metrics
                    .policy_reloads
                    .get_or_create(&ResultLabels { result: "error" })
                    .inc();
                let errors: Vec<String> = e.errors.iter().map(ToString::to_string).collect();
                tracing::error!(
                    file = %name,
                    errors = ?errors,
                    in_force = %self.in_force_hash(),
                    "invalid policy; the last good policy stays in force"
                );
            }
        }
    }

    fn in_force_hash(&self) -> String {
        self.app
            .policy
            .load()
            .as_ref()
            .map_or_else(|| "none (not ready)".to_owned(), |p| p.hash.clone())
    }

    fn check_cert(&mut self) {
        let Some((cert_path, key_path)) = &self.sources.cert else {
            return;
        };
        let metrics = &self.app.metrics;
        let result = |r: &'static str| {
            metrics
                .cert_reloads
                .get_or_create(&ResultLabels { result: r })
                .inc()
        };
        let (cert, key) = match (read_or_describe(cert_path), read_or_describe(key_path)) {
            (Ok(c), Ok(k)) => (c, k),
            (Err(why), _) | (_, Err(why)) => {
                let seen = Seen::Unreadable(why.clone());
                if self.cert_seen != seen {
                    self.cert_seen = seen;
                    result("error");
                    tracing::error!(error = %why, "cannot read the certificate pair; keeping the one in force");
                }
                return;
            }
        };
        let mut hasher = Sha256::new();
        hasher.update(&cert);
        hasher.update([0]);
        hasher.update(&key);
        let seen = Seen::Content(hasher.finalize().into());
        if self.cert_seen == seen {
            return;
        }
        self.cert_seen = seen;
        let provider = rustls::crypto::ring::default_provider();
        match ServingCert::from_pem(
            &cert,
            &key,
            &cert_path.display().to_string(),
            &key_path.display().to_string(),
            &provider,
        ) {
            Ok(new) => {
                if self
                    .app
                    .certs
                    .current()
                    .is_some_and(|c| c.key.cert == new.key.cert)
                {
                    return;
                }
                tracing::info!(serial = %new.serial, not_after = %new.not_after, "certificate loaded for new connections");
                self.app.set_cert(new);
                self.last_expiry_warning = None;
                result("success");
            }
            Err(e) => {
                result("error");
                tracing::error!(error = %e, "certificate pair refused; keeping the one in force");
            }
        }
    }

    fn check_registry_auth(&mut self) {
        let Some(path) = &self.sources.registry_auth else {
            return;
        };
        let name = path.display().to_string();
        let text = match read_if_changed(path, &mut self.auth_seen) {
            TextChange::Unchanged => return,
            TextChange::Changed(text) => text,
            TextChange::Unreadable(why) => {
                tracing::error!(error = %why, "cannot read the registry credentials; keeping the ones in force");
                return;
            }
        };
        match crate::registry::auth::Credentials::parse(&text, &name).and_then(|c| {
            self.app
                .resolver
                .set_credentials(c)
                .map_err(|e| e.to_string())
        }) {
            Ok(()) => tracing::info!(file = %name, "registry credentials loaded"),
            Err(e) => {
                tracing::error!(error = %e, "registry credentials refused; keeping the ones in force")
            }
        }
    }

    fn warn_on_expiry(&mut self) {
        let Some(cert) = self.app.certs.current() else {
            return;
        };
        let left = cert.not_after - OffsetDateTime::now_utc();
        if left > EXPIRY_WARNING
            || self
                .last_expiry_warning
                .is_some_and(|t| t.elapsed() < EXPIRY_WARNING_EVERY)
        {
            return;
        }
        self.last_expiry_warning = Some(std::time::Instant::now());
        tracing::warn!(serial = %cert.serial, not_after = %cert.not_after, days_left = left.whole_days(), "the serving certificate expires within 7 days");
    }

    /// Checks on every change in the watched directories and every `interval`, until `stop` turns true.
    pub async fn run(mut self, interval: Duration, mut stop: watch::Receiver<bool>) {
        let (tx, mut rx) = mpsc::channel::<()>(1);
        let watcher = self.watch_directories(tx);
        if watcher.is_none() {
            tracing::warn!(
                "cannot watch the policy and certificate directories; checking every interval only"
            );
        }
        let mut tick = tokio::time::interval(interval);
        tick.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
        loop {
            tokio::select! {
                _ = tick.tick() => {}
                Some(()) = rx.recv() => {
                    // Let a burst of events (kubelet's symlink swap) settle before reading.
                    tokio::time::sleep(Duration::from_millis(50)).await;
                    while rx.try_recv().is_ok() {}
                }
                _ = crate::server::listener::stopped(&mut stop) => break,
            }
            self.check();
        }
        drop(watcher);
    }

    fn watch_directories(&self, tx: mpsc::Sender<()>) -> Option<notify::RecommendedWatcher> {
        use notify::Watcher;
        let mut watcher =
            notify::recommended_watcher(move |event: notify::Result<notify::Event>| {
                if event.is_ok() {
                    // A full channel already holds a pending check.
                    let _ = tx.try_send(());
                }
            })
            .ok()?;
        let mut dirs: Vec<PathBuf> = Vec::new();
        let files = self
            .sources
            .policy
            .iter()
            .chain(self.sources.cert.iter().flat_map(|(c, k)| [c, k]));
        for file in files {
            let dir = file
                .parent()
                .filter(|d| !d.as_os_str().is_empty())
                .unwrap_or(Path::new("."));
            if !dirs.iter().any(|d| d == dir) {
                dirs.push(dir.to_path_buf());
            }
        }
        for dir in &dirs {
            if let Err(e) = watcher.watch(dir, notify::RecursiveMode::NonRecursive) {
                tracing::warn!(dir = %dir.display(), error = %e, "cannot watch directory; relying on the interval");
            }
        }
        Some(watcher)
    }
}
