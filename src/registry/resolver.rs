//! The look-ups: `oci-client` against the image's registry, with a bounded cache, one look-up per image at a
//! time however many reviews ask, and every wait bounded by the review's deadline. The same holds for the
//! signature look-ups of `image-signature`, cached by repository, digest and key set.

use std::collections::{HashMap, HashSet};
use std::future::Future;
use std::path::PathBuf;
use std::pin::Pin;
use std::sync::{Arc, Mutex};
use std::task::{Context, Poll};
use std::time::{Duration, Instant};

use arc_swap::ArcSwap;
use oci_client::errors::{OciDistributionError, OciErrorCode};
use oci_client::manifest::{
    IMAGE_MANIFEST_MEDIA_TYPE, OCI_IMAGE_MEDIA_TYPE, OciDescriptor, OciImageManifest,
};
use oci_client::secrets::RegistryAuth;
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
use crate::policy::{RegistryOptions, RuleOptions, SignaturePolicy};
use crate::signature::{self, Candidate, SignatureCheck, SignatureForm};

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
struct VerdictLabel {
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
    signature_duration: Family<RegistryLabel, Histogram, fn() -> Histogram>,
    signature_cache: Family<CacheLabel, Counter>,
    signature_verdicts: Family<VerdictLabel, Counter>,
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
            signature_duration: Family::new_with_constructor(histogram),
            signature_cache: Family::default(),
            signature_verdicts: Family::default(),
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
        registry.register_with_unit(
            "signature_lookup_duration",
            "Signature look-up time (both cosign forms, fetch and verification), by registry",
            Unit::Seconds,
            self.signature_duration.clone(),
        );
        registry.register(
            "signature_cache_requests",
            "Signature verdicts answered from the cache (hit) or by a look-up (miss)",
            self.signature_cache.clone(),
        );
        registry.register(
            "signature_verifications",
            "Signature look-ups by verdict: verified, unsigned, untrusted, other-digest, other-repository, unverified",
            self.signature_verdicts.clone(),
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

    fn signature_cache(&self, result: &'static str) {
        self.signature_cache
            .get_or_create(&CacheLabel { result })
            .inc();
    }

    fn error(&self, label: &str, kind: &'static str) {
        self.errors
            .get_or_create(&ErrorLabels {
                registry: label.to_owned(),
                kind,
            })
            .inc();
    }

    /// Makes a series of each family, so that they all show in an encoding.
    pub(crate) fn touch_every_family(&self) {
        self.duration
            .get_or_create(&RegistryLabel {
                registry: "example.com".to_owned(),
            })
            .observe(0.0);
        self.cache("hit");
        self.error("example.com", "timeout");
        self.signature_duration
            .get_or_create(&RegistryLabel {
                registry: "example.com".to_owned(),
            })
            .observe(0.0);
        self.signature_cache("hit");
        self.signature_verdicts
            .get_or_create(&VerdictLabel { result: "verified" })
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

struct Entry<V> {
    value: V,
    expires: Instant,
}

/// Answers remembered for a while, and the look-ups under way, by key.
struct Memo<V> {
    cache: HashMap<String, Entry<V>>,
    in_flight: HashMap<String, watch::Receiver<Option<V>>>,
}

impl<V> Default for Memo<V> {
    fn default() -> Self {
        Memo {
            cache: HashMap::new(),
            in_flight: HashMap::new(),
        }
    }
}

impl<V: Clone> Memo<V> {
    /// The remembered answer for `key`, unless it expired.
    fn cached(&mut self, key: &str, now: Instant) -> Option<V> {
        match self.cache.get(key) {
            Some(entry) if entry.expires > now => Some(entry.value.clone()),
            Some(_) => {
                self.cache.remove(key);
                None
            }
            None => None,
        }
    }

    /// Ends the look-up of `key` and remembers its answer for `ttl`, within `max_entries`.
    fn remember(&mut self, key: &str, value: &V, ttl: Duration, max_entries: usize) {
        self.in_flight.remove(key);
        if ttl.is_zero() {
            return;
        }
        let now = Instant::now();
        if self.cache.len() >= max_entries {
            self.cache.retain(|_, e| e.expires > now);
        }
        while self.cache.len() >= max_entries {
            // Evict the entry closest to expiry.
            let Some(oldest) = self
                .cache
                .iter()
                .min_by_key(|(_, e)| e.expires)
                .map(|(k, _)| k.clone())
            else {
                break;
            };
            self.cache.remove(&oldest);
        }
        self.cache.insert(
            key.to_owned(),
            Entry {
                value: value.clone(),
                expires: now + ttl,
            },
        );
    }
}

#[derive(Default)]
struct State {
    images: Memo<Lookup>,
    signatures: Memo<SignatureCheck>,
    /// For each `name:tag`, the first digest seen and when.
    tags: HashMap<String, (String, Instant)>,
}

/// A buffer that takes at most `limit` bytes, for blobs that must be small: a signature served as a
/// gigabyte blob fails here instead of filling memory.
struct LimitedBuffer {
    data: Vec<u8>,
    limit: usize,
    overflowed: bool,
}

impl tokio::io::AsyncWrite for LimitedBuffer {
    fn poll_write(
        mut self: Pin<&mut Self>,
        _cx: &mut Context<'_>,
        buf: &[u8],
    ) -> Poll<std::io::Result<usize>> {
        if self.data.len() + buf.len() > self.limit {
            self.overflowed = true;
            return Poll::Ready(Err(std::io::Error::other(
                "the blob is larger than allowed",
            )));
        }
        self.data.extend_from_slice(buf);
        Poll::Ready(Ok(buf.len()))
    }

    fn poll_flush(self: Pin<&mut Self>, _cx: &mut Context<'_>) -> Poll<std::io::Result<()>> {
        Poll::Ready(Ok(()))
    }

    fn poll_shutdown(self: Pin<&mut Self>, _cx: &mut Context<'_>) -> Poll<std::io::Result<()>> {
        Poll::Ready(Ok(()))
    }
}

/// Why the signatures of one form could not be read: (metrics kind, reason).
type FormError = (&'static str, String);

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

    /// Looks up every image, concurrently, each by `deadline` at the latest; and, for the images that
    /// `image-signature` covers (when `signatures` is given), their signatures.
    pub async fn resolve_all(
        self: &Arc<Self>,
        images: Vec<(String, ImageRef)>,
        options: &RuleOptions,
        signatures: Option<&Arc<SignaturePolicy>>,
        deadline: Instant,
    ) -> RegistryFacts {
        let mut facts = RegistryFacts::default();
        let mut set = tokio::task::JoinSet::new();
        for (raw, image) in images {
            let resolver = self.clone();
            let (registry, tag_window) = (options.registry.clone(), options.tag_moved_window);
            let signatures = signatures.filter(|s| s.covers(&image)).cloned();
            set.spawn(async move {
                let lookup = resolver
                    .resolve(&image, &registry, tag_window, deadline)
                    .await;
                let signature = match signatures {
                    Some(policy) => Some(
                        resolver
                            .signature(&image, &lookup, &policy, &registry, deadline)
                            .await,
                    ),
                    None => None,
                };
                (raw, lookup, signature)
            });
        }
        while let Some(joined) = set.join_next().await {
            if let Ok((raw, lookup, signature)) = joined {
                if let Some(check) = signature {
                    facts.insert_signature(raw.clone(), check);
                }
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
        let fetch = {
            let (resolver, image, options) = (self.clone(), image.clone(), options.clone());
            async move { resolver.fetch(&image, &options, tag_window).await }
        };
        let ttl = {
            let options = options.clone();
            move |lookup: &Lookup| match lookup {
                Lookup::Found(_) => options.cache_ttl,
                Lookup::NotFound(_) | Lookup::Unverified(_) => options.negative_cache_ttl,
            }
        };
        let metrics = self.metrics.clone();
        self.single_flight(
            |state| &mut state.images,
            key,
            deadline,
            move |result| metrics.cache(result),
            fetch,
            ttl,
            options.max_entries,
        )
        .await
        .unwrap_or_else(Lookup::Unverified)
    }

    /// What the signatures of `image` say under `policy`'s keys, once `lookup` told its digest: from the
    /// cache, from a look-up already under way, or from its registry.
    pub async fn signature(
        self: &Arc<Self>,
        image: &ImageRef,
        lookup: &Lookup,
        policy: &Arc<SignaturePolicy>,
        options: &RegistryOptions,
        deadline: Instant,
    ) -> SignatureCheck {
        let facts = match lookup {
            Lookup::Found(facts) => facts,
            Lookup::NotFound(why) => {
                return SignatureCheck::Untrusted {
                    digest: String::new(),
                    why: format!("the image does not resolve in its registry ({why})"),
                };
            }
            Lookup::Unverified(why) => return SignatureCheck::Unverified(why.clone()),
        };
        // `cosign sign` signs what the reference resolves to: the index of a multi-platform image.
        let digest = facts
            .index_digest
            .clone()
            .unwrap_or_else(|| facts.digest.clone());
        let key = format!("{}@{digest}|{}", image.name(), policy.keyset);
        let fetch = {
            let (resolver, image, policy, options) =
                (self.clone(), image.clone(), policy.clone(), options.clone());
            async move {
                resolver
                    .fetch_signatures(&image, &digest, &policy, &options)
                    .await
            }
        };
        let ttl = {
            let options = options.clone();
            move |check: &SignatureCheck| match check {
                SignatureCheck::Unverified(_) => options.negative_cache_ttl,
                // Unsigned is remembered briefly too: a signature pushed after the image should count soon.
                SignatureCheck::Unsigned { .. } => options.negative_cache_ttl,
                _ => options.cache_ttl,
            }
        };
        let metrics = self.metrics.clone();
        self.single_flight(
            |state| &mut state.signatures,
            key,
            deadline,
            move |result| metrics.signature_cache(result),
            fetch,
            ttl,
            options.max_entries,
        )
        .await
        .unwrap_or_else(SignatureCheck::Unverified)
    }

    /// Answers `key` from `memo`'s cache, from the look-up under way for it, or from a new look-up made
    /// with `fetch`, which goes on in the background when the wait ends at `deadline`.
    #[allow(clippy::too_many_arguments)]
    async fn single_flight<V, F>(
        self: &Arc<Self>,
        memo: fn(&mut State) -> &mut Memo<V>,
        key: String,
        deadline: Instant,
        count: impl Fn(&'static str),
        fetch: F,
        ttl: impl Fn(&V) -> Duration + Send + 'static,
        max_entries: usize,
    ) -> Result<V, String>
    where
        V: Clone + Send + Sync + 'static,
        F: Future<Output = V> + Send + 'static,
    {
        let mut pending = {
            let mut state = self.state.lock().unwrap_or_else(|p| p.into_inner());
            let entries = memo(&mut state);
            if let Some(value) = entries.cached(&key, Instant::now()) {
                count("hit");
                return Ok(value);
            }
            count("miss");
            match entries.in_flight.get(&key) {
                Some(rx) => rx.clone(),
                None => {
                    let (tx, rx) = watch::channel(None);
                    entries.in_flight.insert(key.clone(), rx.clone());
                    let resolver = self.clone();
                    tokio::spawn(async move {
                        let value = fetch.await;
                        {
                            let mut state =
                                resolver.state.lock().unwrap_or_else(|p| p.into_inner());
                            memo(&mut state).remember(&key, &value, ttl(&value), max_entries);
                        }
                        let _ = tx.send(Some(value));
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
                .ok_or_else(|| "the look-up was lost".to_owned()),
            Ok(Err(_)) => Err("the look-up was abandoned".to_owned()),
            Err(_) => Err("the registry did not answer within the review's timeout".to_owned()),
        }
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
            self.metrics.error(&label, kind);
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

    /// Reads the signatures of `digest` in `image`'s repository, in both forms, and verifies them.
    async fn fetch_signatures(
        &self,
        image: &ImageRef,
        digest: &str,
        policy: &SignaturePolicy,
        options: &RegistryOptions,
    ) -> SignatureCheck {
        let registry = registry_key(image.domain());
        let label = self.metrics.label(&registry);
        let reference = Reference::with_digest(
            image.domain().to_owned(),
            image.path().to_owned(),
            digest.to_owned(),
        );
        let auth = self.credentials.load().for_registry(image.domain());
        let client = self.client.load_full();
        let started = Instant::now();
        let read = async {
            client
                .store_auth_if_needed(reference.resolve_registry(), &auth)
                .await;
            tokio::join!(
                sig_tag_candidates(&client, &reference, &auth),
                bundle_candidates(&client, &reference, &auth),
            )
        };
        let result = tokio::time::timeout(options.timeout, read).await;
        let check = match result {
            Err(_) => Err((
                "timeout",
                format!("the registry did not answer within {:?}", options.timeout),
            )),
            Ok((tag, bundle)) => {
                let mut candidates = Vec::new();
                let mut failed = None;
                for form in [tag, bundle] {
                    match form {
                        Ok(found) => candidates.extend(found),
                        Err(e) => failed = failed.or(Some(e)),
                    }
                }
                let check = signature::verify(&candidates, &policy.keys, image, digest);
                match (check, failed) {
                    // One form verified: what the other would have said does not matter.
                    (check @ SignatureCheck::Verified { .. }, _) => Ok(check),
                    // The form that could not be read might have held the signature.
                    (_, Some(e)) => Err(e),
                    (check, None) => Ok(check),
                }
            }
        };
        self.metrics
            .signature_duration
            .get_or_create(&RegistryLabel {
                registry: label.clone(),
            })
            .observe(started.elapsed().as_secs_f64());
        let check = check.unwrap_or_else(|(kind, why)| {
            self.metrics.error(&label, kind);
            tracing::warn!(image = %image, registry = %registry, kind, reason = %why, "signature look-up failed");
            SignatureCheck::Unverified(why)
        });
        let verdict = match &check {
            SignatureCheck::Verified { .. } => "verified",
            SignatureCheck::Unsigned { .. } => "unsigned",
            SignatureCheck::Untrusted { .. } => "untrusted",
            SignatureCheck::OtherDigest { .. } => "other-digest",
            SignatureCheck::OtherRepository { .. } => "other-repository",
            SignatureCheck::Unverified(_) => "unverified",
        };
        self.metrics
            .signature_verdicts
            .get_or_create(&VerdictLabel { result: verdict })
            .inc();
        check
    }
}

/// What a registry error means for one signature form: `Ok(None)`, nothing there (no signature);
/// `Ok(Some(why))`, an answer that is not a signature (a `.sig` tag or a referrers tag holding something
/// else), which counts as an invalid signature, never as a registry failure that `onError: allow` would
/// let through; or a failure to read (unreachable, refused, timed out).
fn form_error(
    error: &OciDistributionError,
    form: SignatureForm,
) -> Result<Option<String>, FormError> {
    match classify(error) {
        Ok(_) => Ok(None),
        Err(("bad-response", why)) => Ok(Some(format!("{form} is not a signature ({why})"))),
        Err((kind, why)) => Err((kind, format!("reading {form}: {why}"))),
    }
}

/// Reads a blob of at most `signature::MAX_SIGNATURE_BYTES`, checked against its digest.
async fn small_blob(
    client: &Client,
    reference: &Reference,
    layer: &OciDescriptor,
    form: SignatureForm,
) -> Result<Result<Vec<u8>, String>, FormError> {
    let limit = signature::MAX_SIGNATURE_BYTES;
    if layer.size < 0 || layer.size as u64 > limit {
        return Ok(Err(format!(
            "{form} has a layer of {} bytes, more than a signature's {limit}",
            layer.size
        )));
    }
    let mut buffer = LimitedBuffer {
        data: Vec::new(),
        limit: limit as usize,
        overflowed: false,
    };
    match client.pull_blob(reference, layer, &mut buffer).await {
        Ok(()) => Ok(Ok(buffer.data)),
        Err(_) if buffer.overflowed => Ok(Err(format!(
            "{form} served a layer of more than {limit} bytes"
        ))),
        Err(OciDistributionError::DigestError(e)) => Ok(Err(format!(
            "{form} served a layer that does not match its digest ({e})"
        ))),
        Err(e) => match form_error(&e, form)? {
            Some(why) => Ok(Err(why)),
            None => Ok(Err(format!(
                "{form} names a layer the registry does not have"
            ))),
        },
    }
}

/// The `.sig` tag's layers: (payload, signature) pairs, or what is wrong with each.
async fn sig_tag_candidates(
    client: &Client,
    image: &Reference,
    auth: &RegistryAuth,
) -> Result<Vec<Candidate>, FormError> {
    let form = SignatureForm::Tag;
    let digest = image.digest().unwrap_or_default();
    let tag = Reference::with_tag(
        image.registry().to_owned(),
        image.repository().to_owned(),
        format!("{}.sig", digest.replace(':', "-")),
    );
    let body = match client
        .pull_manifest_raw(
            &tag,
            auth,
            &[OCI_IMAGE_MEDIA_TYPE, IMAGE_MANIFEST_MEDIA_TYPE],
        )
        .await
    {
        Ok((body, _)) => body,
        Err(e) => {
            return Ok(form_error(&e, form)?
                .map(|why| vec![Candidate::Malformed { form, why }])
                .unwrap_or_default());
        }
    };
    let malformed = |why: String| Candidate::Malformed { form, why };
    let manifest: OciImageManifest = match serde_json::from_slice(&body) {
        Ok(m) => m,
        Err(e) => {
            return Ok(vec![malformed(format!(
                "{form} is not an image manifest ({e})"
            ))]);
        }
    };
    let mut out = Vec::new();
    let layers = manifest
        .layers
        .iter()
        .filter(|l| l.media_type == signature::SIMPLE_SIGNING_MEDIA_TYPE)
        .take(signature::MAX_SIGNATURES);
    for layer in layers {
        let Some(sig) = layer
            .annotations
            .as_ref()
            .and_then(|a| a.get(signature::SIGNATURE_ANNOTATION))
        else {
            out.push(malformed(format!("{form} has a layer without a signature")));
            continue;
        };
        let Ok(sig) =
            base64::Engine::decode(&base64::engine::general_purpose::STANDARD, sig.trim())
        else {
            out.push(malformed(format!(
                "{form} has a signature that is not base64"
            )));
            continue;
        };
        match small_blob(client, &tag, layer, form).await? {
            Ok(payload) => out.push(Candidate::SimpleSigning {
                payload,
                signature: sig,
            }),
            Err(why) => out.push(malformed(why)),
        }
    }
    if out.is_empty() {
        out.push(malformed(format!("{form} holds no simple-signing layer")));
    }
    Ok(out)
}

/// The Sigstore bundles attached to `image` as referrers (the referrers API, or the referrers tag scheme
/// where the registry has none).
async fn bundle_candidates(
    client: &Client,
    image: &Reference,
    auth: &RegistryAuth,
) -> Result<Vec<Candidate>, FormError> {
    let form = SignatureForm::Bundle;
    let index = match client
        .pull_referrers(image, Some(signature::BUNDLE_ARTIFACT_TYPE))
        .await
    {
        Ok(index) => index,
        Err(e) => {
            return Ok(form_error(&e, form)?
                .map(|why| vec![Candidate::Malformed { form, why }])
                .unwrap_or_default());
        }
    };
    let malformed = |why: String| Candidate::Malformed { form, why };
    let mut out = Vec::new();
    let entries = index
        .manifests
        .iter()
        .filter(|m| m.artifact_type.as_deref() == Some(signature::BUNDLE_ARTIFACT_TYPE))
        .take(signature::MAX_SIGNATURES);
    for entry in entries {
        let referrer = image.clone_with_digest(entry.digest.clone());
        let body = match client
            .pull_manifest_raw(&referrer, auth, &[OCI_IMAGE_MEDIA_TYPE])
            .await
        {
            Ok((body, _)) => body,
            Err(e) => {
                let why = form_error(&e, form)?
                    .unwrap_or_else(|| format!("{form} is listed but missing"));
                out.push(malformed(why));
                continue;
            }
        };
        let manifest: OciImageManifest = match serde_json::from_slice(&body) {
            Ok(m) => m,
            Err(e) => {
                out.push(malformed(format!("{form} is not an image manifest ({e})")));
                continue;
            }
        };
        let Some(layer) = manifest
            .layers
            .iter()
            .find(|l| l.media_type == signature::BUNDLE_ARTIFACT_TYPE)
        else {
            out.push(malformed(format!("{form} holds no bundle layer")));
            continue;
        };
        match small_blob(client, &referrer, layer, form).await? {
            Ok(bundle) => out.push(Candidate::Bundle(bundle)),
            Err(why) => out.push(malformed(why)),
        }
    }
    Ok(out)
}
