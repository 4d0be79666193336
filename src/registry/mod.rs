//! Registry look-ups: what an image really is, not only what its name says.
//!
//! The facts (`RegistryFacts`) are plain data the rules read; the `Resolver` makes the look-ups with
//! `oci-client`, bounded by a cache, in-flight de-duplication and deadlines. Rules never touch the network.

pub mod auth;
mod resolver;

use std::collections::HashMap;
use std::path::PathBuf;
use std::sync::Arc;

use clap::Args;

use crate::image::ImageRef;
use crate::signature::SignatureCheck;
use crate::workload::Workload;

pub use resolver::{LookupMetrics, Resolver, ResolverConfig};

/// The images of `workloads` that `policy`'s registry rules need looked up.
pub fn images_for<'a>(
    policy: &crate::policy::Policy,
    workloads: impl IntoIterator<Item = &'a Workload>,
) -> Vec<(String, ImageRef)> {
    let mut images = images_to_look_up(workloads);
    images.retain(|(_, image)| policy.needs_lookup(image));
    images
}

/// What a registry said about one image.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ImageFacts {
    /// The digest of the image manifest for the platform (linux/amd64 by default).
    pub digest: String,
    /// The digest of the index (manifest list), when the reference points at one.
    pub index_digest: Option<String>,
    /// The image config's `User`, as written (empty when unset).
    pub user: String,
    /// For a tag: the digest this replica first saw for it, when the tag now resolves elsewhere.
    pub moved_from: Option<String>,
}

/// The outcome of looking an image up.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Lookup {
    /// The registry served the image.
    Found(Arc<ImageFacts>),
    /// The registry answered that the image does not exist; the reason says how.
    NotFound(String),
    /// The registry could not answer (unreachable, timed out, refused the credentials, ...).
    Unverified(String),
}

/// The look-ups made for one review, by image string as the pod spec writes it.
#[derive(Debug, Clone, Default)]
pub struct RegistryFacts {
    by_image: HashMap<String, Lookup>,
    /// What the signatures said, for the images `image-signature` covers.
    signatures: HashMap<String, SignatureCheck>,
}

impl RegistryFacts {
    /// Records the outcome for `image`.
    pub fn insert(&mut self, image: impl Into<String>, lookup: Lookup) {
        self.by_image.insert(image.into(), lookup);
    }

    /// The outcome for `image`, if it was looked up.
    pub fn get(&self, image: &str) -> Option<&Lookup> {
        self.by_image.get(image)
    }

    /// Records what the signatures of `image` said.
    pub fn insert_signature(&mut self, image: impl Into<String>, check: SignatureCheck) {
        self.signatures.insert(image.into(), check);
    }

    /// What the signatures of `image` said, if they were looked up.
    pub fn signature(&self, image: &str) -> Option<&SignatureCheck> {
        self.signatures.get(image)
    }
}

/// The images of `workloads` to look up: each container image that parses, once, as the pod spec writes it.
pub fn images_to_look_up<'a>(
    workloads: impl IntoIterator<Item = &'a Workload>,
) -> Vec<(String, ImageRef)> {
    let mut out: Vec<(String, ImageRef)> = Vec::new();
    for c in workloads.into_iter().flat_map(Workload::containers) {
        let Some(raw) = c.container.image.as_deref() else {
            continue;
        };
        if out.iter().any(|(r, _)| r == raw) {
            continue;
        }
        if let Ok(image) = ImageRef::parse(raw) {
            out.push((raw.to_owned(), image));
        }
    }
    out
}

/// Registry access flags, shared by `serve`, `check --resolve` and `review`.
#[derive(Debug, Clone, Default, Args)]
pub struct RegistryArgs {
    /// Registry credentials: a docker config.json (an image pull secret), reloaded like the policy.
    #[arg(long, env = "VIGIL_REGISTRY_AUTH")]
    pub registry_auth: Option<PathBuf>,
    /// Extra CA bundle (PEM) to trust for registries (repeatable).
    #[arg(long, env = "VIGIL_REGISTRY_CA", value_delimiter = ',')]
    pub registry_ca: Vec<PathBuf>,
    /// A registry reached over plain HTTP, as HOST[:PORT]; for local registries only (repeatable).
    #[arg(long, env = "VIGIL_REGISTRY_PLAIN_HTTP", value_delimiter = ',')]
    pub registry_plain_http: Vec<String>,
}

impl RegistryArgs {
    /// Builds a resolver from the flags, with the credentials loaded.
    pub fn resolver(&self, metrics: Arc<LookupMetrics>) -> Result<Resolver, String> {
        let resolver = Resolver::new(
            ResolverConfig {
                plain_http: self.registry_plain_http.clone(),
                extra_ca: self.registry_ca.clone(),
            },
            metrics,
        )
        .map_err(|e| e.to_string())?;
        if let Some(path) = &self.registry_auth {
            let name = path.display().to_string();
            let text = std::fs::read_to_string(path).map_err(|e| format!("{name}: {e}"))?;
            resolver
                .set_credentials(auth::Credentials::parse(&text, &name)?)
                .map_err(|e| e.to_string())?;
        }
        Ok(resolver)
    }
}
