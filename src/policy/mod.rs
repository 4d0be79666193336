//! The Policy: parsing and validation with paths, the compiled form the engine runs, and mode resolution.

mod document;
pub mod edit;
mod exemption;
mod glob;

use std::collections::BTreeSet;
use std::fmt;
use std::sync::Arc;

use serde::{Deserialize, Serialize};
use sha2::{Digest, Sha256};
use time::OffsetDateTime;

use crate::image::{ImageRef, RegistryPattern};
use crate::rules::{DefaultMode, RuleId, RuleProfile};
use crate::signature::TrustedKey;

pub use document::{API_VERSION, KIND};
use document::{Document, OptionShape, RuleConfig};
pub use exemption::{Exemption, Requester};
pub use glob::Glob;

/// What a violation does.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash, Deserialize, Serialize)]
#[serde(rename_all = "lowercase")]
pub enum Mode {
    /// Not evaluated, nothing recorded.
    Off,
    /// Admitted quietly; the alert is recorded.
    Audit,
    /// Admitted with a warning; the alert is recorded.
    Warn,
    /// Denied; the alert is recorded.
    Enforce,
}

impl Mode {
    /// The mode as written in policies.
    pub fn as_str(self) -> &'static str {
        match self {
            Mode::Off => "off",
            Mode::Audit => "audit",
            Mode::Warn => "warn",
            Mode::Enforce => "enforce",
        }
    }

    /// Parses a mode as written in policies and on the command line.
    pub fn parse(s: &str) -> Option<Mode> {
        match s {
            "off" => Some(Mode::Off),
            "audit" => Some(Mode::Audit),
            "warn" => Some(Mode::Warn),
            "enforce" => Some(Mode::Enforce),
            _ => None,
        }
    }

    /// Parses a `--mode` flag, with an error that lists the modes.
    pub fn parse_flag(s: &str) -> Result<Mode, String> {
        Mode::parse(s)
            .ok_or_else(|| format!("{s:?} is not a mode; use off, audit, warn or enforce"))
    }
}

impl fmt::Display for Mode {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

/// Which set of rules a policy turns on.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Deserialize, Serialize)]
#[serde(rename_all = "lowercase")]
pub enum Profile {
    Baseline,
    Restricted,
}

impl Profile {
    /// The profile as written in policies.
    pub fn as_str(self) -> &'static str {
        match self {
            Profile::Baseline => "baseline",
            Profile::Restricted => "restricted",
        }
    }
}

/// How an UPDATE is judged.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Deserialize, Serialize)]
#[serde(rename_all = "kebab-case")]
pub enum Updates {
    /// Only violations the old object lacked can deny.
    NewViolations,
    /// Every violation counts, old or new.
    All,
}

/// What a registry rule does when the registry cannot answer.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Deserialize, Serialize)]
#[serde(rename_all = "lowercase")]
pub enum OnError {
    /// Admit, and record the image as not verified.
    #[default]
    Allow,
    /// Treat the image as violating the rule.
    Deny,
}

/// How registry look-ups are bounded (the policy's `registry` section).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct RegistryOptions {
    /// The most one look-up may take (less, when the request's own timeout is shorter).
    pub timeout: std::time::Duration,
    /// How long a resolved image is remembered.
    pub cache_ttl: std::time::Duration,
    /// How long a missing image, or a registry that could not answer, is remembered.
    pub negative_cache_ttl: std::time::Duration,
    /// The most images remembered.
    pub max_entries: usize,
}

impl Default for RegistryOptions {
    fn default() -> Self {
        RegistryOptions {
            timeout: std::time::Duration::from_secs(2),
            cache_ttl: std::time::Duration::from_secs(300),
            negative_cache_ttl: std::time::Duration::from_secs(30),
            max_entries: 10_000,
        }
    }
}

/// Parses a duration as Kubernetes and Go write them: `500ms`, `5s`, `2m`, `1h`; a bare number is seconds.
pub fn parse_duration(text: &str) -> Result<std::time::Duration, String> {
    let text = text.trim();
    let split = text
        .find(|c: char| !c.is_ascii_digit() && c != '.')
        .unwrap_or(text.len());
    let (number, unit) = text.split_at(split);
    let value: f64 = number
        .parse()
        .map_err(|_| format!("{text:?} is not a duration such as 5s"))?;
    let seconds = match unit {
        "" | "s" => value,
        "ms" => value / 1000.0,
        "m" => value * 60.0,
        "h" => value * 3600.0,
        _ => {
            return Err(format!(
                "{text:?} is not a duration such as 5s (units: ms, s, m, h)"
            ));
        }
    };
    std::time::Duration::try_from_secs_f64(seconds).map_err(|_| format!("{text:?} is out of range"))
}

/// One validation error: where, and what is wrong.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct FieldError {
    pub path: String,
    pub message: String,
}

impl FieldError {
    /// Makes an error at `path`.
    pub fn new(path: impl Into<String>, message: impl Into<String>) -> FieldError {
        FieldError {
            path: path.into(),
            message: message.into(),
        }
    }
}

impl fmt::Display for FieldError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}: {}", self.path, self.message)
    }
}

/// A policy that failed validation, with every error found.
#[derive(Debug, Clone, thiserror::Error)]
pub struct PolicyError {
    /// Where the policy came from, such as a file name.
    pub source_name: String,
    pub errors: Vec<FieldError>,
}

impl fmt::Display for PolicyError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        for (i, e) in self.errors.iter().enumerate() {
            if i > 0 {
                f.write_str("\n")?;
            }
            write!(f, "{}: {e}", self.source_name)?;
        }
        Ok(())
    }
}

/// The options of the rules that take them.
#[derive(Debug, Clone)]
pub struct RuleOptions {
    /// Capabilities allowed beyond the profile's set, as written (compared exactly).
    pub capabilities_allow: Vec<String>,
    /// Host path prefixes allowed, normalized.
    pub host_path_allow: Vec<String>,
    /// Host ports allowed.
    pub host_ports_allow: Vec<i32>,
    /// `image-registry` allow list; `None` allows every registry.
    pub registry_allow: Option<Vec<RegistryPattern>>,
    /// `image-registry` deny list.
    pub registry_deny: Vec<RegistryPattern>,
    /// `image-digest-deny`: known-bad digests, as `algorithm:hex`.
    pub denied_digests: Vec<String>,
    /// `image-tag-moved`: how long the first digest seen for a tag is remembered.
    pub tag_moved_window: std::time::Duration,
    /// What each registry rule does when the registry cannot answer.
    pub lookup_on_error: Vec<(RuleId, OnError)>,
    /// Bounds of the registry look-ups.
    pub registry: RegistryOptions,
    /// `image-signature`: the images to check and the keys to trust, when configured.
    pub signature: Option<Arc<SignaturePolicy>>,
}

impl Default for RuleOptions {
    fn default() -> Self {
        RuleOptions {
            capabilities_allow: Vec::new(),
            host_path_allow: Vec::new(),
            host_ports_allow: Vec::new(),
            registry_allow: None,
            registry_deny: Vec::new(),
            denied_digests: Vec::new(),
            tag_moved_window: std::time::Duration::from_secs(24 * 3600),
            lookup_on_error: Vec::new(),
            registry: RegistryOptions::default(),
            signature: None,
        }
    }
}

impl RuleOptions {
    /// What `rule` does when the registry cannot answer (allow unless the policy says deny).
    pub fn on_error(&self, rule: RuleId) -> OnError {
        self.lookup_on_error
            .iter()
            .find(|(r, _)| *r == rule)
            .map_or(OnError::Allow, |(_, e)| *e)
    }
}

/// The rules that need registry look-ups.
pub const LOOKUP_RULES: [RuleId; 5] = [
    RuleId::ImageResolvable,
    RuleId::ImageDigestDeny,
    RuleId::ImageTagMoved,
    RuleId::ImageRunsAsRoot,
    RuleId::ImageSignature,
];

/// `image-signature`: which images must be signed, and by which keys.
#[derive(Debug, Clone, PartialEq)]
pub struct SignaturePolicy {
    /// Which images must be signed; `None` means every image.
    pub images: Option<Vec<RegistryPattern>>,
    /// The trusted keys; a signature by any one of them suffices.
    pub keys: Vec<TrustedKey>,
    /// Identifies the set of keys, so that a cached verdict is never read under other keys.
    pub keyset: String,
}

impl SignaturePolicy {
    /// Whether `image` must be signed.
    pub fn covers(&self, image: &ImageRef) -> bool {
        self.images
            .as_ref()
            .is_none_or(|patterns| patterns.iter().any(|p| p.matches(image)))
    }
}

/// A namespace override: every rule takes `mode` in the matching namespaces.
#[derive(Debug, Clone)]
pub struct NamespaceOverride {
    pub matches: Vec<Glob>,
    pub mode: Mode,
}

/// How one rule is set in the policy.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct RuleSetting {
    /// Whether the rule is evaluated at all.
    pub active: bool,
    /// The rule's own mode, when the policy sets one.
    pub mode: Option<Mode>,
}

/// A validated policy, ready for the engine.
#[derive(Debug, Clone)]
pub struct Policy {
    pub mode: Mode,
    pub profile: Profile,
    pub updates: Updates,
    pub settings: Vec<RuleSetting>,
    pub options: RuleOptions,
    pub namespaces: Vec<NamespaceOverride>,
    pub exemptions: Vec<Exemption>,
    /// Replaces the resolved mode of every active rule (`vigil check --mode`).
    pub forced_mode: Option<Mode>,
    /// First 16 hex digits of the SHA-256 of the policy text.
    pub hash: String,
    /// The decoded document, kept to summarise what an edit changed.
    document: Document,
}

/// The built-in default policy: audit everything under baseline, warn on mutable tags.
pub const DEFAULT_POLICY: &str = "\
apiVersion: vigil.dev/v1alpha1
kind: Policy
mode: audit
profile: baseline
updates: new-violations
rules:
  image-tag: warn
";

fn option_shape(id: &str) -> Option<OptionShape> {
    let rule = RuleId::parse(id)?;
    Some(match rule {
        RuleId::Capabilities | RuleId::HostPath | RuleId::HostPorts => OptionShape::AllowList,
        RuleId::ImageRegistry => OptionShape::AllowAndDeny,
        RuleId::ImageResolvable | RuleId::ImageRunsAsRoot => OptionShape::Lookup,
        RuleId::ImageDigestDeny => OptionShape::DigestDeny,
        RuleId::ImageTagMoved => OptionShape::TagMoved,
        RuleId::ImageSignature => OptionShape::Signature,
        RuleId::PolicyChange => OptionShape::Fixed,
        _ => OptionShape::ModeOnly,
    })
}

/// A policy's warnings: things that are valid but likely not what was meant.
pub fn warnings(policy: &Policy, now: OffsetDateTime) -> Vec<String> {
    policy
        .exemptions
        .iter()
        .enumerate()
        .filter(|(_, e)| e.until.is_some_and(|until| until <= now))
        .map(|(i, e)| {
            format!(
                "exemptions[{i}] ({}): expired at {}; it no longer applies",
                e.name,
                exemption::format_time(e.until.expect("filtered on until"))
            )
        })
        .collect()
}

impl Policy {
    /// The built-in default policy.
    pub fn default_policy() -> Policy {
        Policy::parse(DEFAULT_POLICY, "default policy")
            .expect("the built-in default policy is valid")
    }

    /// Parses and validates a policy document. `source_name` names it in errors (a file name, say).
    pub fn parse(text: &str, source_name: &str) -> Result<Policy, PolicyError> {
        let fail = |errors| PolicyError {
            source_name: source_name.to_owned(),
            errors,
        };
        // A byte order mark is not content (editors on Windows write one).
        let text = text.strip_prefix('\u{feff}').unwrap_or(text);
        // libyaml's scanner slows down with every level of flow nesting: refuse deep nesting first.
        if let Err(e) = crate::manifest::check_flow_nesting(text) {
            return Err(fail(vec![FieldError::new("(document)", e.to_string())]));
        }
        let (document, mut errors) = document::parse(text, option_shape);
        let Some(document) = document else {
            return Err(fail(errors));
        };
        let policy = compile(document, text, &mut errors);
        if errors.is_empty() {
            Ok(policy)
        } else {
            Err(fail(errors))
        }
    }

    /// The setting of one rule.
    pub fn setting(&self, rule: RuleId) -> RuleSetting {
        self.settings[rule as usize]
    }

    /// Whether any active rule needs registry look-ups.
    pub fn needs_registry(&self) -> bool {
        LOOKUP_RULES.iter().any(|r| self.setting(*r).active)
    }

    /// Whether the active registry rules need `image` looked up: every image for the rules about every
    /// image, and for `image-signature` alone only the images it covers.
    pub fn needs_lookup(&self, image: &ImageRef) -> bool {
        LOOKUP_RULES.iter().any(|&r| {
            self.setting(r).active
                && (r != RuleId::ImageSignature
                    || self.signature_policy().is_some_and(|s| s.covers(image)))
        })
    }

    /// The `image-signature` settings, when that rule is active.
    pub fn signature_policy(&self) -> Option<&Arc<SignaturePolicy>> {
        if !self.setting(RuleId::ImageSignature).active {
            return None;
        }
        self.options.signature.as_ref()
    }

    /// The rules this policy evaluates, in catalogue order.
    pub fn active_rules(&self) -> impl Iterator<Item = RuleId> + '_ {
        RuleId::ALL
            .iter()
            .copied()
            .filter(|r| self.setting(*r).active)
    }

    /// The first namespace override that matches `namespace`.
    pub fn namespace_override(&self, namespace: &str) -> Option<Mode> {
        self.namespaces
            .iter()
            .find(|o| o.matches.iter().any(|g| g.matches(namespace)))
            .map(|o| o.mode)
    }

    /// The mode of an active rule in a namespace, before exemptions: namespace override, then the rule's own
    /// mode, then the catalogue's fixed default, then the policy's mode. `--mode` replaces the result.
    pub fn rule_mode(&self, rule: RuleId, namespace_override: Option<Mode>) -> Mode {
        if let Some(forced) = self.forced_mode {
            return forced;
        }
        if let Some(mode) = namespace_override {
            return mode;
        }
        if let Some(mode) = self.setting(rule).mode {
            return mode;
        }
        match rule.rule().default_mode {
            DefaultMode::Fixed(mode) => mode,
            DefaultMode::Policy => self.mode,
        }
    }

    /// The same policy with every active rule's mode replaced by `mode`.
    pub fn with_forced_mode(mut self, mode: Mode) -> Policy {
        self.forced_mode = Some(mode);
        self
    }

    /// A one-line summary of what changed from `old` to `self`: mode, profile, rules and exemptions.
    pub fn change_summary(&self, old: &Policy) -> String {
        let (new_doc, old_doc) = (&self.document, &old.document);
        let mut parts = Vec::new();
        if self.mode != old.mode {
            parts.push(format!("mode {} -> {}", old.mode, self.mode));
        }
        if self.profile != old.profile {
            parts.push(format!(
                "profile {} -> {}",
                old.profile.as_str(),
                self.profile.as_str()
            ));
        }
        if self.updates != old.updates {
            parts.push("updates changed".to_owned());
        }
        let rule = |doc: &Document, id: &str| {
            doc.rules
                .iter()
                .find(|(r, _)| r == id)
                .map(|(_, c)| c.clone())
        };
        for id in RuleId::ALL {
            let (was, now) = (rule(old_doc, id.as_str()), rule(new_doc, id.as_str()));
            let describe = |c: &RuleConfig| c.mode.map_or("options".to_owned(), |m| m.to_string());
            match (was, now) {
                (None, Some(c)) => parts.push(format!("rule {id} added ({})", describe(&c))),
                (Some(_), None) => parts.push(format!("rule {id} removed")),
                (Some(a), Some(b)) if a != b => {
                    if a.mode != b.mode {
                        parts.push(format!(
                            "rule {id} mode {} -> {}",
                            a.mode.map_or("default", Mode::as_str),
                            b.mode.map_or("default", Mode::as_str)
                        ));
                    } else {
                        parts.push(format!("rule {id} options changed"));
                    }
                }
                _ => {}
            }
        }
        let names = |doc: &Document| {
            doc.exemptions
                .iter()
                .map(|(_, e)| e.name.clone())
                .collect::<Vec<_>>()
        };
        let (old_names, new_names) = (names(old_doc), names(new_doc));
        for name in new_names.iter().filter(|n| !old_names.contains(n)) {
            parts.push(format!("exemption {name} added"));
        }
        for name in old_names.iter().filter(|n| !new_names.contains(n)) {
            parts.push(format!("exemption {name} removed"));
        }
        for (_, e) in &new_doc.exemptions {
            if let Some((_, before)) = old_doc.exemptions.iter().find(|(_, o)| o.name == e.name)
                && before != e
            {
                parts.push(format!("exemption {} changed", e.name));
            }
        }
        let overrides = |doc: &Document| {
            doc.namespaces
                .iter()
                .map(|(_, o)| o.clone())
                .collect::<Vec<_>>()
        };
        if overrides(new_doc) != overrides(old_doc) {
            parts.push("namespace overrides changed".to_owned());
        }
        if parts.is_empty() {
            "no change to mode, rules or exemptions".to_owned()
        } else {
            parts.join("; ")
        }
    }

    /// Where this policy enforces: `mode` when its mode is enforce, `rules.<id>` for each rule set to enforce,
    /// and `namespaces[<patterns>]` for each namespace override that enforces. The chart counts the same
    /// places when it works out the webhook's failurePolicy (`vigil.enforcing`).
    pub fn enforced_places(&self) -> BTreeSet<String> {
        let mut places = BTreeSet::new();
        if self.mode == Mode::Enforce {
            places.insert("mode".to_owned());
        }
        for (id, config) in &self.document.rules {
            if config.mode == Some(Mode::Enforce) {
                places.insert(format!("rules.{id}"));
            }
        }
        for o in self.namespaces.iter().filter(|o| o.mode == Mode::Enforce) {
            let patterns: Vec<String> = o.matches.iter().map(Glob::to_string).collect();
            places.insert(format!("namespaces[{}]", patterns.join(",")));
        }
        places
    }

    /// The mode settings that differ from `old` and that a single value can set: the policy mode, and
    /// each rule whose new setting is a mode alone. Each is a path in the policy document (`mode`,
    /// `rules.<id>`) with its new mode.
    pub fn mode_changes(&self, old: &Policy) -> Vec<(String, Mode)> {
        let mut changes = Vec::new();
        if self.mode != old.mode {
            changes.push(("mode".to_owned(), self.mode));
        }
        let mode_of = |doc: &Document, id: &str| {
            doc.rules
                .iter()
                .find(|(r, _)| r == id)
                .and_then(|(_, c)| c.mode)
        };
        for (id, config) in &self.document.rules {
            let mode_only = RuleConfig {
                mode: config.mode,
                ..RuleConfig::default()
            };
            if let Some(mode) = config.mode
                && *config == mode_only
                && mode_of(&old.document, id) != Some(mode)
            {
                changes.push((format!("rules.{id}"), mode));
            }
        }
        changes
    }

    /// A one-line summary of this policy, for a policy created or deleted outright.
    pub fn summary(&self) -> String {
        let rules: Vec<String> = self
            .document
            .rules
            .iter()
            .map(|(id, c)| format!("{id}={}", c.mode.map_or("options", Mode::as_str)))
            .collect();
        let exemptions: Vec<&str> = self.exemptions.iter().map(|e| e.name.as_str()).collect();
        format!(
            "mode {}, profile {}, rules [{}], exemptions [{}]",
            self.mode,
            self.profile.as_str(),
            rules.join(", "),
            exemptions.join(", ")
        )
    }
}

/// Parses registry patterns, recording an error at `path[i]` for each one that does not parse.
fn parse_patterns(
    list: &[String],
    path: &str,
    errors: &mut Vec<FieldError>,
) -> Vec<RegistryPattern> {
    list.iter()
        .enumerate()
        .filter_map(|(i, p)| match RegistryPattern::parse(p) {
            Ok(pattern) => Some(pattern),
            Err(e) => {
                errors.push(FieldError::new(format!("{path}[{i}]"), e.to_string()));
                None
            }
        })
        .collect()
}

/// Whether `digest` is `algorithm:hex` with a hex length that fits the algorithm.
fn valid_digest(digest: &str) -> bool {
    let Some((algorithm, hex)) = digest.split_once(':') else {
        return false;
    };
    let want = match algorithm {
        "sha256" => 64,
        "sha384" => 96,
        "sha512" => 128,
        _ => return false,
    };
    hex.len() == want && hex.bytes().all(|b| b.is_ascii_hexdigit())
}

/// Reads the options of `image-signature`, recording an error at its path for each one that is wrong.
fn signature_policy(
    config: &RuleConfig,
    path: &str,
    errors: &mut Vec<FieldError>,
) -> SignaturePolicy {
    let images = config
        .images
        .as_ref()
        .map(|images| parse_patterns(images, &format!("{path}.images"), errors));
    let mut keys: Vec<TrustedKey> = Vec::new();
    for (i, key) in config.keys.iter().flatten().enumerate() {
        let at = format!("{path}.keys[{i}]");
        if key.name.trim().is_empty() {
            errors.push(FieldError::new(
                format!("{at}.name"),
                "a key needs a name; alerts name the key that verified an image",
            ));
            continue;
        }
        if keys.iter().any(|k| k.name == key.name) {
            errors.push(FieldError::new(
                format!("{at}.name"),
                format!("{:?} names two keys", key.name),
            ));
            continue;
        }
        match TrustedKey::from_pem(&key.name, &key.public_key) {
            Ok(k) => keys.push(k),
            Err(e) => errors.push(FieldError::new(format!("{at}.publicKey"), e)),
        }
    }
    if config.keys.as_ref().is_none_or(Vec::is_empty) && config.mode.is_none_or(|m| m != Mode::Off)
    {
        errors.push(FieldError::new(
            path,
            "list the cosign public keys to trust under `keys` (name and publicKey, as in cosign.pub)",
        ));
    }
    let keyset = crate::signature::keyset_id(&keys);
    SignaturePolicy {
        images,
        keys,
        keyset,
    }
}

fn compile(doc: Document, text: &str, errors: &mut Vec<FieldError>) -> Policy {
    let profile = doc.profile.unwrap_or(Profile::Baseline);
    let mut options = RuleOptions::default();
    let mut configured: Vec<Option<&RuleConfig>> = vec![None; RuleId::ALL.len()];

    for (id, config) in &doc.rules {
        let rule = RuleId::parse(id).expect("the document only holds known rule ids");
        let path = format!("rules.{id}");
        configured[rule as usize] = Some(config);
        match rule {
            RuleId::Capabilities => {
                if let Some(items) = &config.allow {
                    let path = format!("{path}.allow");
                    for (i, cap) in document::allow_strings(items, &path, errors)
                        .into_iter()
                        .enumerate()
                    {
                        if cap.is_empty()
                            || !cap
                                .bytes()
                                .all(|b| b.is_ascii_uppercase() || b.is_ascii_digit() || b == b'_')
                        {
                            errors.push(FieldError::new(
                                format!("{path}[{i}]"),
                                format!("{cap:?} is not a capability name; write it as Kubernetes does, e.g. NET_ADMIN"),
                            ));
                        } else {
                            options.capabilities_allow.push(cap);
                        }
                    }
                }
            }
            RuleId::HostPath => {
                if let Some(items) = &config.allow {
                    let path = format!("{path}.allow");
                    for (i, prefix) in document::allow_strings(items, &path, errors)
                        .into_iter()
                        .enumerate()
                    {
                        match crate::rules::host_path::normalize(&prefix) {
                            Some(normalized) if !prefix.split('/').any(|c| c == "..") => {
                                options.host_path_allow.push(normalized)
                            }
                            _ => errors.push(FieldError::new(
                                format!("{path}[{i}]"),
                                format!("{prefix:?} is not an absolute path without '..'"),
                            )),
                        }
                    }
                }
            }
            RuleId::HostPorts => {
                if let Some(items) = &config.allow {
                    for (i, item) in items.iter().enumerate() {
                        match item.as_i64() {
                            Some(port) if (1..=65535).contains(&port) => {
                                options.host_ports_allow.push(port as i32)
                            }
                            _ => errors.push(FieldError::new(
                                format!("{path}.allow[{i}]"),
                                "expected a port number from 1 to 65535",
                            )),
                        }
                    }
                }
            }
            RuleId::ImageRegistry => {
                if let Some(items) = &config.allow {
                    let allow = format!("{path}.allow");
                    let strings = document::allow_strings(items, &allow, errors);
                    options.registry_allow = Some(parse_patterns(&strings, &allow, errors));
                }
                if let Some(deny) = &config.deny {
                    options.registry_deny = parse_patterns(deny, &format!("{path}.deny"), errors);
                }
                if config.allow.is_none()
                    && config.deny.is_none()
                    && config.mode.is_some_and(|m| m != Mode::Off)
                {
                    errors.push(FieldError::new(
                        path,
                        "a mode without `allow` or `deny` checks nothing; list the registries to allow or deny",
                    ));
                }
            }
            RuleId::ImageDigestDeny => {
                for (i, digest) in config.digests.iter().flatten().enumerate() {
                    if valid_digest(digest) {
                        options.denied_digests.push(digest.to_ascii_lowercase());
                    } else {
                        errors.push(FieldError::new(
                            format!("{path}.digests[{i}]"),
                            format!("{digest:?} is not a digest such as sha256:<64 hex digits>"),
                        ));
                    }
                }
                if config.digests.as_ref().is_none_or(Vec::is_empty)
                    && config.mode.is_none_or(|m| m != Mode::Off)
                {
                    errors.push(FieldError::new(
                        path.clone(),
                        "list the known-bad digests under `digests`",
                    ));
                }
            }
            RuleId::ImageSignature => {
                options.signature = Some(Arc::new(signature_policy(config, &path, errors)));
            }
            RuleId::ImageTagMoved => {
                if let Some(window) = &config.window {
                    match parse_duration(window) {
                        Ok(w) if !w.is_zero() => options.tag_moved_window = w,
                        Ok(_) => errors.push(FieldError::new(
                            format!("{path}.window"),
                            "the window must be longer than 0s",
                        )),
                        Err(e) => errors.push(FieldError::new(format!("{path}.window"), e)),
                    }
                }
            }
            _ => {}
        }
        if let Some(on_error) = config.on_error {
            options.lookup_on_error.push((rule, on_error));
        }
    }
    if let Some(registry) = &doc.registry {
        let mut duration = |value: &Option<String>, field: &str, into: &mut std::time::Duration| {
            if let Some(text) = value {
                match parse_duration(text) {
                    Ok(d) => *into = d,
                    Err(e) => errors.push(FieldError::new(format!("registry.{field}"), e)),
                }
            }
        };
        let r = &mut options.registry;
        duration(&registry.timeout, "timeout", &mut r.timeout);
        duration(&registry.cache_ttl, "cacheTTL", &mut r.cache_ttl);
        duration(
            &registry.negative_cache_ttl,
            "negativeCacheTTL",
            &mut r.negative_cache_ttl,
        );
        if r.timeout.is_zero() {
            errors.push(FieldError::new(
                "registry.timeout",
                "a look-up needs some time; use at least 100ms",
            ));
        }
        if let Some(n) = registry.max_entries {
            if n == 0 {
                errors.push(FieldError::new(
                    "registry.maxEntries",
                    "keep at least one entry",
                ));
            }
            r.max_entries = n.max(1);
        }
    }

    let settings = RuleId::ALL
        .iter()
        .map(|&rule| {
            let config = configured[rule as usize];
            let mode = config.and_then(|c| c.mode);
            let by_profile = match rule.rule().profile {
                RuleProfile::Baseline => true,
                RuleProfile::Restricted => profile == Profile::Restricted || config.is_some(),
                RuleProfile::Configured => match rule {
                    RuleId::ImageRegistry => {
                        config.is_some_and(|c| c.allow.is_some() || c.deny.is_some())
                    }
                    _ => config.is_some(),
                },
                // Recorded by the admission module for the policy ConfigMap; never run on pods.
                RuleProfile::PolicyEdits => false,
            };
            let default_off = rule.rule().default_mode == DefaultMode::Fixed(Mode::Off);
            let active = match mode {
                Some(m) => m != Mode::Off && by_profile,
                None => by_profile && !default_off,
            };
            RuleSetting { active, mode }
        })
        .collect();

    let namespaces = doc
        .namespaces
        .iter()
        .filter_map(|(i, o)| {
            if o.match_.is_empty() {
                errors.push(FieldError::new(
                    format!("namespaces[{i}].match"),
                    "an empty list matches no namespace",
                ));
                return None;
            }
            Some(NamespaceOverride {
                matches: o.match_.iter().map(|m| Glob::new(m)).collect(),
                mode: o.mode,
            })
        })
        .collect();

    let mut exemptions = Vec::new();
    for (n, (i, e)) in doc.exemptions.iter().enumerate() {
        let path = format!("exemptions[{i}]");
        if doc.exemptions[..n]
            .iter()
            .any(|(_, other)| other.name == e.name)
        {
            errors.push(FieldError::new(
                format!("{path}.name"),
                format!("{:?} is used by an earlier exemption", e.name),
            ));
        }
        if let Some(exemption) = Exemption::compile(e, &path, errors) {
            exemptions.push(exemption);
        }
    }

    let digest = Sha256::digest(text.as_bytes());
    let hash = digest.iter().take(8).map(|b| format!("{b:02x}")).collect();
    Policy {
        mode: doc.mode.unwrap_or(Mode::Audit),
        profile,
        updates: doc.updates.unwrap_or(Updates::NewViolations),
        settings,
        options,
        namespaces,
        exemptions,
        forced_mode: None,
        hash,
        document: doc,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn errors(text: &str) -> Vec<String> {
        match Policy::parse(text, "policy.yaml") {
            Ok(_) => panic!("expected errors for:\n{text}"),
            Err(e) => e.to_string().lines().map(str::to_owned).collect(),
        }
    }

    const HEAD: &str = "apiVersion: vigil.dev/v1alpha1\nkind: Policy\n";

    #[test]
    fn durations_parse_as_kubernetes_writes_them() {
        assert_eq!(parse_duration("5s"), Ok(std::time::Duration::from_secs(5)));
        assert_eq!(parse_duration("10"), Ok(std::time::Duration::from_secs(10)));
        assert_eq!(
            parse_duration("250ms"),
            Ok(std::time::Duration::from_millis(250))
        );
        assert_eq!(
            parse_duration("2m"),
            Ok(std::time::Duration::from_secs(120))
        );
        assert!(parse_duration("five").is_err());
        assert!(parse_duration("5d").is_err());
        assert!(parse_duration("-1s").is_err());
    }

    #[test]
    fn default_policy_is_audit_baseline_with_image_tag_warn() {
        let p = Policy::default_policy();
        assert_eq!(
            (p.mode, p.profile, p.updates),
            (Mode::Audit, Profile::Baseline, Updates::NewViolations)
        );
        assert_eq!(p.rule_mode(RuleId::ImageTag, None), Mode::Warn);
        assert_eq!(p.rule_mode(RuleId::Privileged, None), Mode::Audit);
        assert!(
            !p.setting(RuleId::ImageRegistry).active,
            "the registry rule is inactive until configured"
        );
        assert!(!p.setting(RuleId::ImageDigest).active);
        assert!(
            !p.setting(RuleId::RunAsNonRoot).active,
            "restricted rules are off under baseline"
        );
        assert!(p.setting(RuleId::EphemeralContainers).active);
    }

    #[test]
    fn design_example_is_valid() {
        let text = r#"
apiVersion: vigil.dev/v1alpha1
kind: Policy
mode: audit
profile: baseline
updates: new-violations
rules:
  privileged: enforce
  capabilities: { mode: enforce, allow: [NET_BIND_SERVICE] }
  host-path: { allow: ["/var/log"] }
  image-registry:
    mode: enforce
    allow: ["registry.corp.example", "ghcr.io/corp/*", "docker.io/library/*"]
    deny: ["*.evil.example"]
  image-tag: warn
namespaces:
  - match: ["kube-system", "monitoring-*"]
    mode: audit
exemptions:
  - name: sre-debugging
    reason: break-glass debugging by SRE
    rules: [privileged, host-namespaces]
    namespaces: ["debug-*"]
    users: ["alice@corp.example"]
    groups: ["sre"]
    serviceAccounts: ["ops:debugger"]
    images: ["registry.corp.example/tools/*"]
    from: 2026-11-01T00:00:00Z
    until: 2026-12-01T00:00:00Z
"#;
        let p = Policy::parse(text, "example").unwrap_or_else(|e| panic!("{e}"));
        assert!(p.setting(RuleId::ImageRegistry).active);
        assert_eq!(p.options.host_path_allow, ["/var/log"]);
        assert_eq!(p.namespace_override("monitoring-x"), Some(Mode::Audit));
        assert_eq!(p.exemptions[0].name, "sre-debugging");
    }

    #[test]
    fn every_error_is_reported_with_its_path() {
        let text = format!(
            "{HEAD}mode: enforced\nprofile: strict\nbogus: 1\nrules:\n  privileged: maybe\n  no-such-rule: enforce\n  \
             ephemeral-containers: {{ colour: red }}\n  image-registry:\n    allow: [\"ghcr.io/corp/**\", 5]\n  capabilities: {{ allow: [net_admin] }}\n  \
             host-ports: {{ allow: [70000] }}\n  host-path: {{ allow: [relative] }}\nnamespaces:\n  - match: []\n    mode: audit\n  \
             - match: [x]\n    mode: loud\nexemptions:\n  - name: a\n    reason: r\n    rules: [nope]\n    from: yesterday\n    users: []\n  \
             - name: a\n    reason: ''\n    serviceAccounts: [debugger]\n    images: [\"Ghcr.io/Corp\"]\n  \
             - name: b\n    reason: r\n    extra: 1\n  - name: c\n    reason: r\n    from: 2026-12-01T00:00:00Z\n    until: 2026-11-01T00:00:00Z\n"
        );
        let errs = errors(&text);
        let expect_paths = [
            "policy.yaml: mode:",
            "policy.yaml: profile:",
            "policy.yaml: bogus: unknown field `bogus`",
            "policy.yaml: rules.privileged: unknown variant `maybe`",
            "policy.yaml: rules.no-such-rule: unknown rule id",
            "policy.yaml: rules.ephemeral-containers.colour: unknown field `colour`",
            "policy.yaml: rules.image-registry.allow[0]: \"ghcr.io/corp/**\": '**' is not a pattern",
            "policy.yaml: rules.image-registry.allow[1]: expected a string",
            "policy.yaml: rules.capabilities.allow[0]: \"net_admin\" is not a capability name",
            "policy.yaml: rules.host-ports.allow[0]: expected a port number",
            "policy.yaml: rules.host-path.allow[0]: \"relative\" is not an absolute path",
            "policy.yaml: namespaces[0].match: an empty list matches no namespace",
            "policy.yaml: namespaces[1].mode: unknown variant `loud`",
            "policy.yaml: exemptions[0].rules[0]: unknown rule id \"nope\"",
            "policy.yaml: exemptions[0].from: \"yesterday\" is not an RFC 3339 time",
            "policy.yaml: exemptions[0].users: an empty list matches nothing",
            "policy.yaml: exemptions[1].name: \"a\" is used by an earlier exemption",
            "policy.yaml: exemptions[1].reason: say why",
            "policy.yaml: exemptions[1].serviceAccounts[0]: \"debugger\" is not NAMESPACE:NAME",
            "policy.yaml: exemptions[1].images[0]:",
            "policy.yaml: exemptions[2].extra: unknown field `extra`",
            "policy.yaml: exemptions[3].until: 2026-11-01T00:00:00Z is not after from",
        ];
        for want in expect_paths {
            assert!(
                errs.iter().any(|e| e.starts_with(want)),
                "missing {want:?} in:\n{}",
                errs.join("\n")
            );
        }
        assert_eq!(errs.len(), expect_paths.len(), "{}", errs.join("\n"));
    }

    #[test]
    fn registry_pattern_errors_suggest_the_fix() {
        let errs = errors(&format!(
            "{HEAD}rules:\n  image-registry:\n    allow: [ghcr.io/corp/x, \"ghcr.io/corp/**\"]\n"
        ));
        assert_eq!(
            errs,
            [
                "policy.yaml: rules.image-registry.allow[1]: \"ghcr.io/corp/**\": '**' is not a pattern; use 'ghcr.io/corp/*'"
            ]
        );
    }

    #[test]
    fn registry_mode_without_lists_is_an_error() {
        let errs = errors(&format!("{HEAD}rules:\n  image-registry: enforce\n"));
        assert_eq!(errs.len(), 1);
        assert!(errs[0].contains("checks nothing"), "{errs:?}");
        let p = Policy::parse(&format!("{HEAD}rules:\n  image-registry: off\n"), "p").unwrap();
        assert!(!p.setting(RuleId::ImageRegistry).active);
    }

    #[test]
    fn unparseable_policies_never_become_empty_ones() {
        for text in [
            "",
            "   \n# only a comment\n",
            "[1, 2]",
            "mode: [unclosed",
            "apiVersion: v1\nkind: ConfigMap\n",
        ] {
            assert!(Policy::parse(text, "p").is_err(), "{text:?} must not parse");
        }
        assert_eq!(
            errors("kind: Policy\n"),
            ["policy.yaml: apiVersion: missing; use vigil.dev/v1alpha1"]
        );
    }

    #[test]
    fn image_signature_options_validate() {
        let pem = std::fs::read_to_string(concat!(
            env!("CARGO_MANIFEST_DIR"),
            "/tests/data/cosign/cosign.pub"
        ))
        .unwrap();
        let indented: String = pem.lines().map(|l| format!("\n          {l}")).collect();
        let good = format!(
            "{HEAD}rules:\n  image-signature:\n    mode: enforce\n    images: [\"registry.corp.example/*\"]\n    onError: deny\n    keys:\n      - name: corp-release\n        publicKey: |{indented}\n"
        );
        let p = Policy::parse(&good, "p").unwrap_or_else(|e| panic!("{e}\n{good}"));
        assert!(p.needs_registry());
        let sig = p.signature_policy().expect("active");
        assert_eq!(sig.keys[0].name, "corp-release");
        assert_eq!(p.options.on_error(RuleId::ImageSignature), OnError::Deny);
        assert!(p.needs_lookup(&ImageRef::parse("registry.corp.example/app:1").unwrap()));
        assert!(
            !p.needs_lookup(&ImageRef::parse("docker.io/library/nginx:1").unwrap()),
            "an image the rule does not cover is not looked up"
        );

        let mut errs = errors(&format!(
            "{HEAD}rules:\n  image-signature:\n    images: [\"ghcr.io/corp/**\"]\n    keys:\n      - {{ name: a, publicKey: nonsense }}\n      - {{ name: '', publicKey: x }}\n      - name: b\n        publicKey: |{indented}\n      - {{ name: b, publicKey: x }}\n"
        ));
        errs.extend(errors(&format!(
            "{HEAD}rules:\n  image-signature:\n    keys:\n      - {{ name: c, key: x }}\n  image-resolvable: {{ keys: [] }}\n"
        )));
        let expect = [
            "policy.yaml: rules.image-signature.images[0]: \"ghcr.io/corp/**\": '**' is not a pattern",
            "policy.yaml: rules.image-signature.keys[0].publicKey: expected a PEM public key",
            "policy.yaml: rules.image-signature.keys[1].name: a key needs a name",
            "policy.yaml: rules.image-signature.keys[3].name: \"b\" names two keys",
            "policy.yaml: rules.image-signature.keys[0].key: unknown field `key`",
            "policy.yaml: rules.image-resolvable.keys: unknown field `keys`",
        ];
        for want in expect {
            assert!(
                errs.iter().any(|e| e.starts_with(want)),
                "missing {want:?} in:\n{}",
                errs.join("\n")
            );
        }
        let errs = errors(&format!("{HEAD}rules:\n  image-signature: enforce\n"));
        assert!(
            errs.iter()
                .any(|e| e.contains("list the cosign public keys")),
            "{errs:?}"
        );
        let off = Policy::parse(&format!("{HEAD}rules:\n  image-signature: off\n"), "p").unwrap();
        assert!(off.signature_policy().is_none() && !off.needs_registry());
    }

    #[test]
    fn registry_rules_and_their_options_validate() {
        let good = format!(
            "{HEAD}rules:\n  image-resolvable: {{ mode: enforce, onError: deny }}\n  image-runs-as-root: warn\n  \
             image-tag-moved: {{ window: 12h }}\n  image-digest-deny:\n    digests: [\"sha256:{}\"]\nregistry:\n  timeout: 500ms\n  cacheTTL: 1m\n  negativeCacheTTL: 5s\n  maxEntries: 100\n",
            "a".repeat(64)
        );
        let p = Policy::parse(&good, "p").unwrap_or_else(|e| panic!("{e}"));
        assert!(p.needs_registry());
        assert_eq!(p.options.on_error(RuleId::ImageResolvable), OnError::Deny);
        assert_eq!(p.options.on_error(RuleId::ImageRunsAsRoot), OnError::Allow);
        assert_eq!(
            p.options.tag_moved_window,
            std::time::Duration::from_secs(12 * 3600)
        );
        assert_eq!(
            p.options.registry.timeout,
            std::time::Duration::from_millis(500)
        );
        assert_eq!(p.options.registry.max_entries, 100);
        assert!(
            !Policy::default_policy().needs_registry(),
            "registry rules are off unless turned on"
        );

        let errs = errors(&format!(
            "{HEAD}rules:\n  image-resolvable: {{ onError: maybe }}\n  image-digest-deny: {{ digests: [\"md5:abc\", \"sha256:xyz\"] }}\n  \
             image-tag-moved: {{ window: forever }}\n  image-runs-as-root: {{ digests: [] }}\nregistry:\n  timeout: 0s\n  cacheTTL: soon\n  retries: 3\n"
        ));
        let expect = [
            "policy.yaml: rules.image-resolvable.onError: unknown variant `maybe`, expected `allow` or `deny`",
            "policy.yaml: rules.image-digest-deny.digests[0]: \"md5:abc\" is not a digest",
            "policy.yaml: rules.image-digest-deny.digests[1]: \"sha256:xyz\" is not a digest",
            "policy.yaml: rules.image-tag-moved.window: \"forever\" is not a duration",
            "policy.yaml: rules.image-runs-as-root.digests: unknown field `digests`",
            "policy.yaml: registry.retries: unknown field `retries`",
        ];
        for want in expect {
            assert!(
                errs.iter().any(|e| e.starts_with(want)),
                "missing {want:?} in:\n{}",
                errs.join("\n")
            );
        }
        let errs = errors(&format!(
            "{HEAD}registry:\n  timeout: 0s\n  cacheTTL: soon\n"
        ));
        assert!(
            errs.iter()
                .any(|e| e.starts_with("policy.yaml: registry.timeout: a look-up needs some time")),
            "{errs:?}"
        );
        assert!(
            errs.iter()
                .any(|e| e.starts_with("policy.yaml: registry.cacheTTL: \"soon\"")),
            "{errs:?}"
        );
        let errs = errors(&format!("{HEAD}rules:\n  image-digest-deny: enforce\n"));
        assert_eq!(
            errs,
            ["policy.yaml: rules.image-digest-deny: list the known-bad digests under `digests`"]
        );
    }

    #[test]
    fn a_byte_order_mark_is_not_content() {
        let p = Policy::parse(&format!("\u{feff}{HEAD}mode: enforce\n"), "p")
            .unwrap_or_else(|e| panic!("{e}"));
        assert_eq!(p.mode, Mode::Enforce);
    }

    #[test]
    fn duplicate_keys_are_rejected() {
        assert!(Policy::parse(&format!("{HEAD}mode: audit\nmode: enforce\n"), "p").is_err());
    }

    #[test]
    fn restricted_turns_on_restricted_rules_and_naming_one_turns_it_on() {
        let p = Policy::parse(&format!("{HEAD}profile: restricted\n"), "p").unwrap();
        assert!(p.setting(RuleId::RunAsNonRoot).active);
        let p = Policy::parse(
            &format!("{HEAD}rules:\n  privilege-escalation: warn\n  image-digest: audit\n"),
            "p",
        )
        .unwrap();
        assert!(p.setting(RuleId::PrivilegeEscalation).active);
        assert!(!p.setting(RuleId::RunAsNonRoot).active);
        assert!(p.setting(RuleId::ImageDigest).active);
    }

    #[test]
    fn forced_mode_replaces_every_mode() {
        let p = Policy::parse(
            &format!("{HEAD}namespaces:\n  - match: [kube-system]\n    mode: off\n"),
            "p",
        )
        .unwrap();
        let p = p.with_forced_mode(Mode::Enforce);
        assert_eq!(p.rule_mode(RuleId::ImageTag, None), Mode::Enforce);
        assert_eq!(
            p.rule_mode(RuleId::Privileged, p.namespace_override("kube-system")),
            Mode::Enforce
        );
    }

    #[test]
    fn expired_exemptions_warn() {
        let p = Policy::parse(
            &format!(
                "{HEAD}exemptions:\n  - name: old\n    reason: r\n    until: 2026-01-01T00:00:00Z\n"
            ),
            "p",
        )
        .unwrap();
        let w = warnings(&p, time::macros::datetime!(2026-11-22 0:00 UTC));
        assert_eq!(
            w,
            ["exemptions[0] (old): expired at 2026-01-01T00:00:00Z; it no longer applies"]
        );
    }

    #[test]
    fn change_summary_names_what_changed() {
        let old = Policy::parse(
            &format!("{HEAD}mode: enforce\nrules:\n  privileged: enforce\n  image-tag: warn\nexemptions:\n  - name: a\n    reason: r\n"),
            "old",
        )
        .unwrap();
        let new = Policy::parse(
            &format!("{HEAD}mode: audit\nrules:\n  privileged: audit\n  host-path: {{ allow: [/var/log] }}\nexemptions:\n  - name: b\n    reason: r\n"),
            "new",
        )
        .unwrap();
        assert_eq!(
            new.change_summary(&old),
            "mode enforce -> audit; rule privileged mode enforce -> audit; rule host-path added (options); \
             rule image-tag removed; exemption b added; exemption a removed"
        );
        assert_eq!(
            old.change_summary(&old),
            "no change to mode, rules or exemptions"
        );
    }
}
