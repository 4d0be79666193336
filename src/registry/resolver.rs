//! The look-ups: `oci-client` against the image's registry, with a bounded cache, one look-up per image at a
//! time however many reviews ask, and every wait bounded by the review's deadline.

use std::collections::{HashMap, HashSet};
use std::path::PathBuf;
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use arc_swap::ArcSwap;
use oci_client::errors::{OciDistributionError, OciErrorCode};
use oci_client::{Client, Reference};
use prometheus_client::encoding::EncodeLabelSet;
use prometheus_client::metrics::counter::Counter;
use prometheus_client::metrics::family::Family;
use prometheus_client::metrics::histogram::Histogram;
use prometheus_client::registry::{Registry, Unit};
use tokio::sync::watch;

use super::auth::{Credentials, registry_key};
use super::{ImageFacts, Lookup, RegistryFacts};
use crate::image::ImageRef;
use crate::policy::RegistryOptions;

/// How many distinct registries get their own metrics label; the rest share `other`. Registry names come
/// from pod specs, so an attacker must not be able to grow the metrics without bound.
const MAX_REGISTRY_LABELS: usize = 64;

#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
struct RegistryLabel {
    registry: String,
}

#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
struct CacheLabel {
    result: &'static str,
}

#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
struct ErrorLabels {
    registry: String,
    kind: &'static str,
}

/// Metrics of the registry look-ups.
pub struct LookupMetrics {
    duration: Family<RegistryLabel, Histogram, fn() -> Histogram>,
    cache: Family<CacheLabel, Counter>,
    errors: Family<ErrorLabels, Counter>,
    seen: Mutex<HashSet<String>>,
}

impl Default for LookupMetrics {
    fn default() -> Self {
        fn histogram() -> Histogram {
            Histogram::new(crate::server::metrics::DURATION_BUCKETS)
        }
        LookupMetrics {
            duration: Family::new_with_constructor(histogram),
            cache: Family::default(),
            errors: Family::default(),
            seen: Mutex::new(HashSet::new()),
        }
    }
}

impl LookupMetrics {
    /// Registers the look-up metrics under `registry`.
    pub fn register(self: &Arc<Self>, registry: &mut Registry) {
        registry.register_with_unit(
            "registry_lookup_duration",
            "Registry look-up time, by registry",
            Unit::Seconds,
            self.duration.clone(),
        );
        registry.register(
            "registry_cache_requests",
            "Registry look-ups answered from the cache (hit) or by the registry (miss)",
            self.cache.clone(),
        );
        registry.register(
            "registry_errors",
            "Registry look-ups that could not be answered, by registry and kind",
            self.errors.clone(),
        );
    }

    fn label(&self, registry: &str) -> String {
        let mut seen = self.seen.lock().unwrap_or_else(|p| p.into_inner());
        if seen.contains(registry) {
            return registry.to_owned();
        }
        if seen.len() < MAX_REGISTRY_LABELS {
            seen.insert(registry.to_owned());
            return registry.to_owned();
        }
        "other".to_owned()
    }

    fn cache(&self, result: &'static str) {
        self.cache.get_or_create(&CacheLabel { result }).inc();
    }

    /// Makes a series of each family, so that they all show in an encoding.
    pub(crate) fn touch_every_family(&self) {
        self.duration
            .get_or_create(&RegistryLabel {
                registry: "example.com".to_owned(),
            })
            .observe(0.0);
        self.cache("hit");
        self.errors
            .get_or_create(&ErrorLabels {
                registry: "example.com".to_owned(),
                kind: "timeout",
            })
            .inc();
    }
}

/// Where and how to reach registries.
#[derive(Debug, Clone, Default)]
pub struct ResolverConfig {
    /// Registries (`host[:port]`) reached over plain HTTP; for local registries only.
    pub plain_http: Vec<String>,
    /// Extra CA bundles (PEM) to trust for registries.
    pub extra_ca: Vec<PathBuf>,
}

struct Entry {
    lookup: Lookup,
    expires: Instant,
}

#[derive(Default)]
struct State {
    cache: HashMap<String, Entry>,
    in_flight: HashMap<String, watch::Receiver<Option<Lookup>>>,
    /// For each `name:tag`, the first digest seen and when.
    tags: HashMap<String, (String, Instant)>,
}

/// Looks images up in their registries.
pub struct Resolver {
    config: ResolverConfig,
    client: ArcSwap<Client>,
    credentials: ArcSwap<Credentials>,
    state: Mutex<State>,
    metrics: Arc<LookupMetrics>,
}

/// Why a registry configuration could not be used.
#[derive(Debug, thiserror::Error)]
#[error("{0}")]
pub struct ResolverError(String);

fn build_client(config: &ResolverConfig) -> Result<Client, ResolverError> {
    let mut extra = Vec::new();
    for path in &config.extra_ca {
        let data =
            std::fs::read(path).map_err(|e| ResolverError(format!("{}: {e}", path.display())))?;
        if !String::from_utf8_lossy(&data).contains("-----BEGIN CERTIFICATE-----") {
            return Err(ResolverError(format!(
                "{}: no PEM certificate found",
                path.display()
            )));
        }
        extra.push(oci_client::client::Certificate {
            encoding: oci_client::client::CertificateEncoding::Pem,
            data,
        });
    }
    let protocol = if config.plain_http.is_empty() {
        oci_client::client::ClientProtocol::Https
    } else {
        oci_client::client::ClientProtocol::HttpsExcept(config.plain_http.clone())
    };
    Ok(Client::new(oci_client::client::ClientConfig {
        protocol,
        extra_root_certificates: extra,
        connect_timeout: Some(Duration::from_secs(5)),
        read_timeout: Some(Duration::from_secs(10)),
        user_agent: concat!("vigil/", env!("CARGO_PKG_VERSION")),
        ..Default::default()
    }))
}

/// What kind of failure a look-up error is, for metrics and for the "not verified" reason.
fn classify(error: &OciDistributionError) -> Result<String, (&'static str, String)> {
    use OciDistributionError as E;
    match error {
        E::ImageManifestNotFoundError(m) => Ok(format!("manifest not found ({m})")),
        E::RegistryError { envelope, .. } => {
            let not_found = envelope.errors.iter().any(|e| {
                matches!(
                    e.code,
                    OciErrorCode::ManifestUnknown
                        | OciErrorCode::NameUnknown
                        | OciErrorCode::NotFound
                )
            });
            let unauthorized = envelope
                .errors
                .iter()
                .any(|e| matches!(e.code, OciErrorCode::Unauthorized | OciErrorCode::Denied));
            let message = envelope
                .errors
                .first()
                .map(|e| e.message.clone())
                .unwrap_or_default();
            if not_found {
                Ok(format!(
                    "the registry says {}",
                    if message.is_empty() {
                        "it does not exist".to_owned()
                    } else {
                        message
                    }
                ))
            } else if unauthorized {
                Err((
                    "auth",
                    format!("the registry refused the credentials ({message})"),
                ))
            } else {
                Err((
                    "registry",
                    format!("the registry answered with an error ({message})"),
                ))
            }
        }
        E::ServerError { code: 404, .. } => {
            Ok("the registry says it does not exist (HTTP 404)".to_owned())
        }
        E::ServerError { code, .. } => {
            Err(("registry", format!("the registry answered HTTP {code}")))
        }
        E::AuthenticationFailure(m) => Err(("auth", format!("authentication failed ({m})"))),
        E::UnauthorizedError { .. } => {
            Err(("auth", "the registry refused the credentials".to_owned()))
        }
        E::RequestError(e) if e.is_timeout() => {
            Err(("timeout", "the registry did not answer in time".to_owned()))
        }
        E::RequestError(e) if e.is_connect() => Err((
            "unreachable",
            format!("cannot connect to the registry ({e})"),
        )),
        E::RequestError(e) => Err(("unreachable", format!("request failed ({e})"))),
        other => Err(("bad-response", other.to_string())),
    }
}

impl Resolver {
    /// A resolver for `config`, with anonymous access until credentials are set.
    pub fn new(
        config: ResolverConfig,
        metrics: Arc<LookupMetrics>,
    ) -> Result<Resolver, ResolverError> {
        let client = build_client(&config)?;
        Ok(Resolver {
            config,
            client: ArcSwap::from_pointee(client),
            credentials: ArcSwap::from_pointee(Credentials::default()),
            state: Mutex::new(State::default()),
            metrics,
        })
    }

    /// Replaces the registry credentials. The client's token cache is dropped with the old ones.
    pub fn set_credentials(&self, credentials: Credentials) -> Result<(), ResolverError> {
        if **self.credentials.load() == credentials {
            return Ok(());
        }
        self.client.store(Arc::new(build_client(&self.config)?));
        self.credentials.store(Arc::new(credentials));
        Ok(())
    }

    /// Looks up every image, concurrently, each by `deadline` at the latest.
    pub async fn resolve_all(
        self: &Arc<Self>,
        images: Vec<(String, ImageRef)>,
        options: &RegistryOptions,
        tag_window: Duration,
        deadline: Instant,
    ) -> RegistryFacts {
        let mut facts = RegistryFacts::default();
        let mut set = tokio::task::JoinSet::new();
        for (raw, image) in images {
            let (resolver, options) = (self.clone(), options.clone());
            set.spawn(async move {
                let lookup = resolver
                    .resolve(&image, &options, tag_window, deadline)
                    .await;
                (raw, lookup)
            });
        }
        while let Some(joined) = set.join_next().await {
            if let Ok((raw, lookup)) = joined {
                facts.insert(raw, lookup);
            }
        }
        facts
    }

    /// Looks one image up: from the cache, from a look-up already under way, or from its registry.
    pub async fn resolve(
        self: &Arc<Self>,
        image: &ImageRef,
        options: &RegistryOptions,
        tag_window: Duration,
        deadline: Instant,
    ) -> Lookup {
        let key = image.to_string();
        let mut pending = {
            let mut state = self.state.lock().unwrap_or_else(|p| p.into_inner());
            let now = Instant::now();
            if let Some(entry) = state.cache.get(&key) {
                if entry.expires > now {
                    self.metrics.cache("hit");
                    return entry.lookup.clone();
                }
                state.cache.remove(&key);
            }
            self.metrics.cache("miss");
            match state.in_flight.get(&key) {
                Some(rx) => rx.clone(),
                None => {
                    let (tx, rx) = watch::channel(None);
                    state.in_flight.insert(key.clone(), rx.clone());
                    let resolver = self.clone();
                    let (image, options) = (image.clone(), options.clone());
                    tokio::spawn(async move {
                        let lookup = resolver.fetch(&image, &options, tag_window).await;
                        resolver.remember(&key, &lookup, &options);
                        let _ = tx.send(Some(lookup));
                    });
                    rx
                }
            }
        };
        let waited =
            tokio::time::timeout_at(deadline.into(), pending.wait_for(Option::is_some)).await;
        match waited {
            Ok(Ok(result)) => result
                .clone()
                .unwrap_or_else(|| Lookup::Unverified("the look-up was lost".to_owned())),
            Ok(Err(_)) => Lookup::Unverified("the look-up was abandoned".to_owned()),
            Err(_) => Lookup::Unverified(
                "the registry did not answer within the review's timeout".to_owned(),
            ),
        }
    }

    fn remember(&self, key: &str, lookup: &Lookup, options: &RegistryOptions) {
        let mut state = self.state.lock().unwrap_or_else(|p| p.into_inner());
        state.in_flight.remove(key);
        let ttl = match lookup {
            Lookup::Found(_) => options.cache_ttl,
            Lookup::NotFound(_) | Lookup::Unverified(_) => options.negative_cache_ttl,
        };
        if ttl.is_zero() {
            return;
        }
        let now = Instant::now();
        if state.cache.len() >= options.max_entries {
            state.cache.retain(|_, e| e.expires > now);
        }
        while state.cache.len() >= options.max_entries {
            // Evict the entry closest to expiry.
            let Some(oldest) = state
                .cache
                .iter()
                .min_by_key(|(_, e)| e.expires)
                .map(|(k, _)| k.clone())
            else {
                break;
            };
            state.cache.remove(&oldest);
        }
        state.cache.insert(
            key.to_owned(),
            Entry {
                lookup: lookup.clone(),
                expires: now + ttl,
            },
        );
    }

    /// For a tag, the first digest seen within `window`, when `digest` differs from it. Records `digest`
    /// as the first one when none is remembered.
    fn moved_from(
        &self,
        name_tag: &str,
        digest: &str,
        window: Duration,
        max_entries: usize,
    ) -> Option<String> {
        let mut state = self.state.lock().unwrap_or_else(|p| p.into_inner());
        let now = Instant::now();
        match state.tags.get(name_tag) {
            Some((first, seen)) if now.duration_since(*seen) < window => {
                (first != digest).then(|| first.clone())
            }
            _ => {
                if state.tags.len() >= max_entries {
                    state
                        .tags
                        .retain(|_, (_, seen)| now.duration_since(*seen) < window);
                }
                if state.tags.len() < max_entries {
                    state
                        .tags
                        .insert(name_tag.to_owned(), (digest.to_owned(), now));
                }
                None
            }
        }
    }

    async fn fetch(
        &self,
        image: &ImageRef,
        options: &RegistryOptions,
        tag_window: Duration,
    ) -> Lookup {
        let registry = registry_key(image.domain());
        let label = self.metrics.label(&registry);
        let reference = match (image.tag(), image.digest()) {
            (Some(tag), Some(digest)) => Reference::with_tag_and_digest(
                image.domain().to_owned(),
                image.path().to_owned(),
                tag.to_owned(),
                digest.to_owned(),
            ),
            (None, Some(digest)) => Reference::with_digest(
                image.domain().to_owned(),
                image.path().to_owned(),
                digest.to_owned(),
            ),
            (tag, None) => Reference::with_tag(
                image.domain().to_owned(),
                image.path().to_owned(),
                tag.unwrap_or("latest").to_owned(),
            ),
        };
        let auth = self.credentials.load().for_registry(image.domain());
        let client = self.client.load_full();
        let started = Instant::now();
        let result = tokio::time::timeout(
            options.timeout,
            client.pull_manifest_and_config_and_list_digest(&reference, &auth),
        )
        .await;
        self.metrics
            .duration
            .get_or_create(&RegistryLabel {
                registry: label.clone(),
            })
            .observe(started.elapsed().as_secs_f64());
        let error = |kind: &'static str, why: String| {
            self.metrics
                .errors
                .get_or_create(&ErrorLabels {
                    registry: label.clone(),
                    kind,
                })
                .inc();
            tracing::warn!(image = %image, registry = %registry, kind, reason = %why, "registry look-up failed");
            Lookup::Unverified(why)
        };
        match result {
            Err(_) => error(
                "timeout",
                format!("the registry did not answer within {:?}", options.timeout),
            ),
            Ok(Err(e)) => match classify(&e) {
                Ok(not_found) => Lookup::NotFound(not_found),
                Err((kind, why)) => error(kind, why),
            },
            Ok(Ok((_manifest, digest, config, index_digest))) => {
                let user = serde_json::from_str::<serde_json::Value>(&config)
                    .ok()
                    .and_then(|c| c["config"]["User"].as_str().map(str::to_owned))
                    .unwrap_or_default();
                let moved_from = match (image.tag(), image.digest()) {
                    (tag, None) => {
                        let name_tag = format!("{}:{}", image.name(), tag.unwrap_or("latest"));
                        let current = index_digest.as_deref().unwrap_or(&digest);
                        self.moved_from(&name_tag, current, tag_window, options.max_entries)
                    }
                    _ => None,
                };
                Lookup::Found(Arc::new(ImageFacts {
                    digest,
                    index_digest,
                    user,
                    moved_from,
                }))
            }
        }
    }
}
