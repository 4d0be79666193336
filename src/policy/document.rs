//! The Policy document as written in `policy.yaml`: serde types that reject unknown fields.
//!
//! Each section is decoded on its own, so that one mistake does not hide the next: validation reports every
//! error it finds, each with its path.

use serde::Deserialize;
use serde::de::DeserializeOwned;
use serde_yaml_ng::Value;

use super::{FieldError, Mode, OnError, Profile, Updates};

/// The API version a policy document must declare.
pub const API_VERSION: &str = "vigil.dev/v1alpha1";
/// The kind a policy document must declare.
pub const KIND: &str = "Policy";

/// A decoded policy document, before semantic validation.
#[derive(Debug, Clone, Default)]
pub struct Document {
    pub mode: Option<Mode>,
    pub profile: Option<Profile>,
    pub updates: Option<Updates>,
    /// In the order written.
    pub rules: Vec<(String, RuleConfig)>,
    /// With each entry's position in the document, which stays right when an earlier entry fails.
    pub namespaces: Vec<(usize, NamespaceOverrideDoc)>,
    pub exemptions: Vec<(usize, ExemptionDoc)>,
    pub registry: Option<RegistryDoc>,
}

/// The `registry` section: how registry look-ups are bounded.
#[derive(Debug, Clone, Default, Deserialize, PartialEq)]
#[serde(deny_unknown_fields)]
pub struct RegistryDoc {
    #[serde(default)]
    pub timeout: Option<String>,
    #[serde(default, rename = "cacheTTL")]
    pub cache_ttl: Option<String>,
    #[serde(default, rename = "negativeCacheTTL")]
    pub negative_cache_ttl: Option<String>,
    #[serde(default, rename = "maxEntries")]
    pub max_entries: Option<usize>,
}

/// One entry of `rules`: a bare mode, or a map with a mode and the rule's options.
#[derive(Debug, Clone, Default, PartialEq)]
pub struct RuleConfig {
    pub mode: Option<Mode>,
    pub allow: Option<Vec<Value>>,
    pub deny: Option<Vec<String>>,
    /// For the registry rules: what to do when the registry cannot answer.
    pub on_error: Option<OnError>,
    /// For `image-digest-deny`: the digests to deny.
    pub digests: Option<Vec<String>>,
    /// For `image-tag-moved`: how long the first digest seen for a tag is remembered.
    pub window: Option<String>,
    /// For `image-signature`: which images must be signed (registry patterns).
    pub images: Option<Vec<String>>,
    /// For `image-signature`: the cosign public keys trusted.
    pub keys: Option<Vec<KeyDoc>>,
}

/// One trusted key of `image-signature`.
#[derive(Debug, Clone, Deserialize, PartialEq)]
#[serde(deny_unknown_fields, rename_all = "camelCase")]
pub struct KeyDoc {
    pub name: String,
    pub public_key: String,
}

/// Which options a rule accepts in its map form.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum OptionShape {
    ModeOnly,
    AllowList,
    AllowAndDeny,
    /// A registry rule: `mode` and `onError`.
    Lookup,
    /// `image-digest-deny`: `mode`, `digests` and `onError`.
    DigestDeny,
    /// `image-tag-moved`: `mode`, `window` and `onError`.
    TagMoved,
    /// `image-signature`: `mode`, `images`, `keys` and `onError`.
    Signature,
    /// Not configurable at all.
    Fixed,
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct ModeOnlyDoc {
    #[serde(default)]
    mode: Option<Mode>,
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct AllowDoc {
    #[serde(default)]
    mode: Option<Mode>,
    #[serde(default)]
    allow: Option<Vec<Value>>,
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields, rename_all = "camelCase")]
struct LookupDoc {
    #[serde(default)]
    mode: Option<Mode>,
    #[serde(default)]
    on_error: Option<OnError>,
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields, rename_all = "camelCase")]
struct DigestDenyDoc {
    #[serde(default)]
    mode: Option<Mode>,
    #[serde(default)]
    digests: Option<Vec<String>>,
    #[serde(default)]
    on_error: Option<OnError>,
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields, rename_all = "camelCase")]
struct TagMovedDoc {
    #[serde(default)]
    mode: Option<Mode>,
    #[serde(default)]
    window: Option<String>,
    #[serde(default)]
    on_error: Option<OnError>,
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields, rename_all = "camelCase")]
struct SignatureDoc {
    #[serde(default)]
    mode: Option<Mode>,
    #[serde(default)]
    images: Option<Vec<String>>,
    #[serde(default)]
    keys: Option<Vec<KeyDoc>>,
    #[serde(default)]
    on_error: Option<OnError>,
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct AllowDenyDoc {
    #[serde(default)]
    mode: Option<Mode>,
    #[serde(default)]
    allow: Option<Vec<Value>>,
    #[serde(default)]
    deny: Option<Vec<String>>,
}

/// One entry of `namespaces`.
#[derive(Debug, Clone, Deserialize, PartialEq)]
#[serde(deny_unknown_fields)]
pub struct NamespaceOverrideDoc {
    #[serde(rename = "match")]
    pub match_: Vec<String>,
    pub mode: Mode,
}

/// One entry of `exemptions`.
#[derive(Debug, Clone, Deserialize, PartialEq)]
#[serde(deny_unknown_fields, rename_all = "camelCase")]
pub struct ExemptionDoc {
    pub name: String,
    pub reason: String,
    #[serde(default)]
    pub rules: Option<Vec<String>>,
    #[serde(default)]
    pub namespaces: Option<Vec<String>>,
    #[serde(default)]
    pub users: Option<Vec<String>>,
    #[serde(default)]
    pub groups: Option<Vec<String>>,
    #[serde(default)]
    pub service_accounts: Option<Vec<String>>,
    #[serde(default)]
    pub images: Option<Vec<String>>,
    #[serde(default)]
    pub from: Option<String>,
    #[serde(default)]
    pub until: Option<String>,
}

const TOP_LEVEL_FIELDS: &[&str] = &[
    "apiVersion",
    "kind",
    "mode",
    "profile",
    "updates",
    "rules",
    "namespaces",
    "exemptions",
    "registry",
];

/// Decodes `value` as `T`, recording an error at `path` when it does not fit.
fn decode<T: DeserializeOwned>(
    value: Value,
    path: &str,
    errors: &mut Vec<FieldError>,
) -> Option<T> {
    match serde_path_to_error::deserialize::<_, T>(value) {
        Ok(v) => Some(v),
        Err(e) => {
            let inner = e.path().to_string();
            let full = match inner.as_str() {
                "." => path.to_owned(),
                _ if path.is_empty() => inner,
                _ if inner.starts_with('[') => format!("{path}{inner}"),
                _ => format!("{path}.{inner}"),
            };
            errors.push(FieldError::new(full, e.into_inner().to_string()));
            None
        }
    }
}

fn key_name(key: &Value) -> String {
    match key {
        Value::String(s) => s.clone(),
        other => serde_yaml_ng::to_string(other)
            .map(|s| s.trim().to_owned())
            .unwrap_or_else(|_| "?".to_owned()),
    }
}

/// Decodes the document's YAML text into sections, collecting every structural error with its path.
///
/// `shape` tells which options each rule id accepts; `None` means the id is unknown.
///
/// A document that is not YAML, or not a mapping, gives `None`. Otherwise the sections that decoded are
/// returned with the errors of those that did not, so that semantic validation can go on to report more.
pub fn parse(
    text: &str,
    shape: impl Fn(&str) -> Option<OptionShape>,
) -> (Option<Document>, Vec<FieldError>) {
    let value: Value = match serde_yaml_ng::from_str(text) {
        Ok(v) => v,
        Err(e) => return (None, vec![FieldError::new("(document)", e.to_string())]),
    };
    let map = match value {
        Value::Mapping(map) => map,
        Value::Null => {
            let message = "the policy is empty; an empty file is never read as an empty policy";
            return (None, vec![FieldError::new("(document)", message)]);
        }
        _ => {
            let message = "a policy is a YAML mapping with apiVersion, kind, mode, ...";
            return (None, vec![FieldError::new("(document)", message)]);
        }
    };

    let mut errors = Vec::new();
    let mut doc = Document::default();
    let mut api_version = None;
    let mut kind = None;
    for (key, value) in map {
        let name = key_name(&key);
        match name.as_str() {
            "apiVersion" => api_version = decode::<String>(value, "apiVersion", &mut errors),
            "kind" => kind = decode::<String>(value, "kind", &mut errors),
            "mode" => doc.mode = decode(value, "mode", &mut errors),
            "profile" => doc.profile = decode(value, "profile", &mut errors),
            "updates" => doc.updates = decode(value, "updates", &mut errors),
            "rules" => doc.rules = parse_rules(value, &shape, &mut errors),
            "namespaces" => doc.namespaces = parse_list(value, "namespaces", &mut errors),
            "exemptions" => doc.exemptions = parse_list(value, "exemptions", &mut errors),
            "registry" => doc.registry = decode(value, "registry", &mut errors),
            _ => errors.push(FieldError::new(
                name.clone(),
                format!(
                    "unknown field `{name}`, expected one of {}",
                    TOP_LEVEL_FIELDS.join(", ")
                ),
            )),
        }
    }
    match api_version.as_deref() {
        Some(API_VERSION) => {}
        Some(other) => errors.push(FieldError::new(
            "apiVersion",
            format!("{other:?} is not supported; use {API_VERSION}"),
        )),
        None if errors.iter().any(|e| e.path == "apiVersion") => {}
        None => errors.push(FieldError::new(
            "apiVersion",
            format!("missing; use {API_VERSION}"),
        )),
    }
    match kind.as_deref() {
        Some(KIND) => {}
        Some(other) => errors.push(FieldError::new(
            "kind",
            format!("{other:?} is not a policy; use {KIND}"),
        )),
        None if errors.iter().any(|e| e.path == "kind") => {}
        None => errors.push(FieldError::new("kind", format!("missing; use {KIND}"))),
    }
    (Some(doc), errors)
}

fn parse_rules(
    value: Value,
    shape: &impl Fn(&str) -> Option<OptionShape>,
    errors: &mut Vec<FieldError>,
) -> Vec<(String, RuleConfig)> {
    let map = match value {
        Value::Mapping(map) => map,
        Value::Null => return Vec::new(),
        _ => {
            errors.push(FieldError::new(
                "rules",
                "expected a map from rule id to its mode or options",
            ));
            return Vec::new();
        }
    };
    let mut rules = Vec::new();
    for (key, value) in map {
        let id = key_name(&key);
        let path = format!("rules.{id}");
        let Some(shape) = shape(&id) else {
            errors.push(FieldError::new(
                path,
                format!("unknown rule id {id:?}; `vigil rules` lists the ids"),
            ));
            continue;
        };
        if shape == OptionShape::Fixed {
            errors.push(FieldError::new(
                path,
                format!("{id} records every edit of the policy itself and cannot be configured or turned off"),
            ));
            continue;
        }
        let config = match value {
            Value::String(_) => decode::<Mode>(value, &path, errors).map(|mode| RuleConfig {
                mode: Some(mode),
                ..RuleConfig::default()
            }),
            Value::Mapping(_) => match shape {
                OptionShape::ModeOnly | OptionShape::Fixed => {
                    decode::<ModeOnlyDoc>(value, &path, errors).map(|d| RuleConfig {
                        mode: d.mode,
                        ..RuleConfig::default()
                    })
                }
                OptionShape::AllowList => {
                    decode::<AllowDoc>(value, &path, errors).map(|d| RuleConfig {
                        mode: d.mode,
                        allow: d.allow,
                        ..RuleConfig::default()
                    })
                }
                OptionShape::AllowAndDeny => {
                    decode::<AllowDenyDoc>(value, &path, errors).map(|d| RuleConfig {
                        mode: d.mode,
                        allow: d.allow,
                        deny: d.deny,
                        ..RuleConfig::default()
                    })
                }
                OptionShape::Lookup => {
                    decode::<LookupDoc>(value, &path, errors).map(|d| RuleConfig {
                        mode: d.mode,
                        on_error: d.on_error,
                        ..RuleConfig::default()
                    })
                }
                OptionShape::DigestDeny => {
                    decode::<DigestDenyDoc>(value, &path, errors).map(|d| RuleConfig {
                        mode: d.mode,
                        digests: d.digests,
                        on_error: d.on_error,
                        ..RuleConfig::default()
                    })
                }
                OptionShape::TagMoved => {
                    decode::<TagMovedDoc>(value, &path, errors).map(|d| RuleConfig {
                        mode: d.mode,
                        window: d.window,
                        on_error: d.on_error,
                        ..RuleConfig::default()
                    })
                }
                OptionShape::Signature => {
                    decode::<SignatureDoc>(value, &path, errors).map(|d| RuleConfig {
                        mode: d.mode,
                        images: d.images,
                        keys: d.keys,
                        on_error: d.on_error,
                        ..RuleConfig::default()
                    })
                }
            },
            _ => {
                let options = match shape {
                    OptionShape::ModeOnly | OptionShape::Fixed => "",
                    OptionShape::AllowList => " and `allow`",
                    OptionShape::AllowAndDeny => ", `allow` and `deny`",
                    OptionShape::Lookup => " and `onError`",
                    OptionShape::DigestDeny => ", `digests` and `onError`",
                    OptionShape::TagMoved => ", `window` and `onError`",
                    OptionShape::Signature => ", `images`, `keys` and `onError`",
                };
                errors.push(FieldError::new(
                    path,
                    format!(
                        "expected a mode (off, audit, warn, enforce) or a map with `mode`{options}"
                    ),
                ));
                None
            }
        };
        if let Some(config) = config {
            rules.push((id, config));
        }
    }
    rules
}

fn parse_list<T: DeserializeOwned>(
    value: Value,
    path: &str,
    errors: &mut Vec<FieldError>,
) -> Vec<(usize, T)> {
    match value {
        Value::Sequence(items) => items
            .into_iter()
            .enumerate()
            .filter_map(|(i, item)| decode(item, &format!("{path}[{i}]"), errors).map(|t| (i, t)))
            .collect(),
        Value::Null => Vec::new(),
        _ => {
            errors.push(FieldError::new(path, "expected a list"));
            Vec::new()
        }
    }
}

/// Reads a list of strings from `allow`, naming the item that is not one.
pub fn allow_strings(items: &[Value], path: &str, errors: &mut Vec<FieldError>) -> Vec<String> {
    items
        .iter()
        .enumerate()
        .filter_map(|(i, v)| match v {
            Value::String(s) => Some(s.clone()),
            _ => {
                errors.push(FieldError::new(format!("{path}[{i}]"), "expected a string"));
                None
            }
        })
        .collect()
}
