//! AdmissionReview in, decision, AdmissionReview out. No rule logic lives here.
//!
//! Decoding is lenient where the API server may add fields in a new release, and strict where a field
//! decides the outcome. A body that is not a readable review is a `ReviewError` (an HTTP 4xx). A readable
//! review whose object does not decode is denied in-band, never turned into an HTTP error, because an HTTP
//! error hands the decision to the webhook's failurePolicy, which may be Ignore.

mod fast;

use std::borrow::Cow;
use std::collections::BTreeMap;

use base64::Engine as _;
use serde::{Deserialize, Serialize};
use serde_json::value::RawValue;
use time::OffsetDateTime;

use crate::alert::{self, AlertRecord, ObjectRef, UserRef};
use crate::connect::{Connect, ConnectKind};
use crate::engine::{self, Decision, Operation, Violation};
use crate::image::ImageRef;
use crate::policy::Policy;
use crate::policy::edit;
use crate::registry::RegistryFacts;
use crate::rules::RuleId;
use crate::workload::{DecodeError, Workload, WorkloadKind};

/// The only AdmissionReview version Vigil speaks.
pub const API_VERSION: &str = "admission.k8s.io/v1";

/// Why a body is not a readable AdmissionReview. Each maps to an HTTP 400 and a metrics reason.
#[derive(Debug, thiserror::Error)]
pub enum ReviewError {
    #[error("body is not JSON: {0}")]
    NotJson(String),
    #[error("body is not an AdmissionReview: {0}")]
    NotReview(String),
    #[error("apiVersion {0:?} is not supported; send admission.k8s.io/v1")]
    WrongApiVersion(String),
    #[error("kind {0:?} is not AdmissionReview")]
    WrongKind(String),
    #[error("AdmissionReview has no request")]
    NoRequest,
    #[error("AdmissionReview request has no uid")]
    NoUid,
}

impl ReviewError {
    /// The `reason` label of `vigil_bad_requests_total`.
    pub fn reason(&self) -> &'static str {
        match self {
            ReviewError::NotJson(_) => "not-json",
            ReviewError::NotReview(_) => "not-admission-review",
            ReviewError::WrongApiVersion(_) => "wrong-api-version",
            ReviewError::WrongKind(_) => "wrong-kind",
            ReviewError::NoRequest => "no-request",
            ReviewError::NoUid => "no-uid",
        }
    }
}

#[derive(Debug, Deserialize)]
#[serde(rename_all = "camelCase")]
struct Envelope<'a> {
    #[serde(borrow, default)]
    api_version: Option<Cow<'a, str>>,
    #[serde(borrow, default)]
    kind: Option<Cow<'a, str>>,
    #[serde(borrow, default)]
    request: Option<RequestEnvelope<'a>>,
}

#[derive(Debug, Deserialize, Default)]
struct GroupVersionKind<'a> {
    #[serde(borrow, default)]
    group: Cow<'a, str>,
    #[serde(borrow, default)]
    kind: Cow<'a, str>,
}

#[derive(Debug, Deserialize, Default)]
struct UserInfo {
    #[serde(default)]
    username: Option<String>,
    #[serde(default)]
    groups: Option<Vec<String>>,
}

/// An object in a review: raw JSON (read as its kind later), or already decoded on the way (the fast path).
// Two per review at most, moved once: boxing the decoded one would only add an allocation.
#[derive(Debug)]
#[allow(clippy::large_enum_variant)]
enum ObjectValue<'a> {
    Raw(&'a RawValue),
    Decoded(Result<Workload, DecodeError>),
}

impl<'de: 'a, 'a> Deserialize<'de> for ObjectValue<'a> {
    fn deserialize<D: serde::Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        <&'a RawValue>::deserialize(d).map(ObjectValue::Raw)
    }
}

#[derive(Debug, Deserialize, Default)]
#[serde(rename_all = "camelCase")]
struct RequestEnvelope<'a> {
    #[serde(borrow, default)]
    uid: Option<Cow<'a, str>>,
    #[serde(borrow, default)]
    kind: Option<GroupVersionKind<'a>>,
    #[serde(borrow, default)]
    sub_resource: Option<Cow<'a, str>>,
    #[serde(borrow, default)]
    name: Option<Cow<'a, str>>,
    #[serde(borrow, default)]
    namespace: Option<Cow<'a, str>>,
    #[serde(borrow, default)]
    operation: Option<Cow<'a, str>>,
    #[serde(default)]
    user_info: Option<UserInfo>,
    #[serde(borrow, default)]
    object: Option<ObjectValue<'a>>,
    #[serde(borrow, default)]
    old_object: Option<ObjectValue<'a>>,
    #[serde(default)]
    dry_run: Option<bool>,
    /// CreateOptions, UpdateOptions, PatchOptions or DeleteOptions; read only for policy edits.
    #[serde(borrow, default)]
    options: Option<&'a RawValue>,
}

impl RequestEnvelope<'_> {
    /// Who sent the request, as the alert records it.
    fn user(&self) -> UserRef {
        let user = self.user_info.as_ref();
        UserRef {
            username: user.and_then(|u| u.username.clone()).unwrap_or_default(),
            groups: user.and_then(|u| u.groups.clone()).unwrap_or_default(),
        }
    }
}

fn check_envelope(api_version: Option<&str>, kind: Option<&str>) -> Result<(), ReviewError> {
    match api_version {
        Some(API_VERSION) => {}
        other => {
            return Err(ReviewError::WrongApiVersion(
                other.unwrap_or_default().to_owned(),
            ));
        }
    }
    match kind {
        Some("AdmissionReview") => Ok(()),
        other => Err(ReviewError::WrongKind(other.unwrap_or_default().to_owned())),
    }
}

/// The namespace and name of the ConfigMap that holds the policy (`--policy-configmap`).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ConfigMapRef {
    pub namespace: String,
    pub name: String,
}

impl Default for ConfigMapRef {
    fn default() -> Self {
        ConfigMapRef {
            namespace: "vigil".to_owned(),
            name: "vigil-policy".to_owned(),
        }
    }
}

impl std::str::FromStr for ConfigMapRef {
    type Err = String;

    fn from_str(s: &str) -> Result<Self, Self::Err> {
        match s.split_once('/') {
            Some((ns, name)) if !ns.is_empty() && !name.is_empty() && !name.contains('/') => {
                Ok(ConfigMapRef {
                    namespace: ns.to_owned(),
                    name: name.to_owned(),
                })
            }
            _ => Err(format!(
                "{s:?} is not NAMESPACE/NAME, e.g. vigil/vigil-policy"
            )),
        }
    }
}

impl std::fmt::Display for ConfigMapRef {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "{}/{}", self.namespace, self.name)
    }
}

/// Which webhook endpoint is answering.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Endpoint {
    Validate,
    Mutate,
}

/// A summary of a review for metrics and logs: never the object itself.
#[derive(Debug, Clone, Default)]
pub struct ReviewSummary {
    pub uid: String,
    /// The covered kind, or `other` for a kind Vigil does not cover.
    pub kind: &'static str,
    pub operation: &'static str,
    pub namespace: String,
    pub name: String,
    /// `allowed`, `denied`, or `skipped` for a request admitted without evaluation.
    pub decision: &'static str,
    pub violations: Vec<(&'static str, &'static str)>,
    pub exemptions: Vec<String>,
}

/// A review's answer: the AdmissionReview response body, and the alert line when there are violations.
#[derive(Debug, Clone)]
pub struct Reviewed {
    pub body: Vec<u8>,
    pub alert: Option<String>,
    pub summary: ReviewSummary,
}

#[cfg(test)]
#[derive(Serialize)]
#[serde(rename_all = "camelCase")]
struct ReviewOut<'a> {
    api_version: &'static str,
    kind: &'static str,
    response: ResponseOut<'a>,
}

#[derive(Serialize)]
struct Status {
    code: u16,
    message: String,
    reason: &'static str,
    status: &'static str,
}

#[derive(Serialize)]
#[serde(rename_all = "camelCase")]
struct ResponseOut<'a> {
    uid: &'a str,
    allowed: bool,
    #[serde(skip_serializing_if = "Option::is_none")]
    status: Option<Status>,
    #[serde(skip_serializing_if = "Vec::is_empty")]
    warnings: Vec<String>,
    #[serde(skip_serializing_if = "Option::is_none")]
    audit_annotations: Option<BTreeMap<&'static str, String>>,
    #[serde(skip_serializing_if = "Option::is_none")]
    patch_type: Option<&'static str>,
    #[serde(skip_serializing_if = "Option::is_none")]
    patch: Option<String>,
}

impl<'a> ResponseOut<'a> {
    fn allow(uid: &'a str) -> Self {
        ResponseOut {
            uid,
            allowed: true,
            status: None,
            warnings: Vec::new(),
            audit_annotations: None,
            patch_type: None,
            patch: None,
        }
    }

    fn deny(uid: &'a str, code: u16, reason: &'static str, message: String) -> Self {
        ResponseOut {
            allowed: false,
            status: Some(Status {
                code,
                message,
                reason,
                status: "Failure",
            }),
            ..ResponseOut::allow(uid)
        }
    }

    /// The AdmissionReview that carries this response, as serde would write `ReviewOut` (the tests hold it
    /// to that), but with each string escaped a run at a time by `json::quote_into`: the alert record in
    /// the audit annotations is long and full of quotes.
    fn into_body(self) -> Vec<u8> {
        use crate::json::quote_into;
        let carried = self.status.as_ref().map_or(0, |s| s.message.len())
            + self.warnings.iter().map(String::len).sum::<usize>()
            + self
                .audit_annotations
                .iter()
                .flatten()
                .map(|(_, v)| v.len())
                .sum::<usize>()
            + self.patch.as_ref().map_or(0, String::len);
        let mut out = String::with_capacity(256 + carried + carried / 4);
        out.push_str("{\"apiVersion\":");
        quote_into(&mut out, API_VERSION);
        out.push_str(",\"kind\":\"AdmissionReview\",\"response\":{\"uid\":");
        quote_into(&mut out, self.uid);
        out.push_str(if self.allowed {
            ",\"allowed\":true"
        } else {
            ",\"allowed\":false"
        });
        if let Some(status) = &self.status {
            out.push_str(",\"status\":{\"code\":");
            out.push_str(&status.code.to_string());
            out.push_str(",\"message\":");
            quote_into(&mut out, &status.message);
            out.push_str(",\"reason\":");
            quote_into(&mut out, status.reason);
            out.push_str(",\"status\":");
            quote_into(&mut out, status.status);
            out.push('}');
        }
        if !self.warnings.is_empty() {
            out.push_str(",\"warnings\":[");
            for (i, warning) in self.warnings.iter().enumerate() {
                if i > 0 {
                    out.push(',');
                }
                quote_into(&mut out, warning);
            }
            out.push(']');
        }
        if let Some(annotations) = &self.audit_annotations {
            out.push_str(",\"auditAnnotations\":");
            out.push('{');
            for (i, (key, value)) in annotations.iter().enumerate() {
                if i > 0 {
                    out.push(',');
                }
                quote_into(&mut out, key);
                out.push(':');
                quote_into(&mut out, value);
            }
            out.push('}');
        }
        if let Some(patch_type) = self.patch_type {
            out.push_str(",\"patchType\":");
            quote_into(&mut out, patch_type);
        }
        if let Some(patch) = &self.patch {
            out.push_str(",\"patch\":");
            quote_into(&mut out, patch);
        }
        out.push_str("}}");
        out.into_bytes()
    }
}

/// A review that needs evaluation: decoded, waiting for registry facts if the policy needs any.
pub struct Pending<'a> {
    policy: &'a Policy,
    endpoint: Endpoint,
    request: RequestEnvelope<'a>,
    uid: String,
    now: OffsetDateTime,
    operation: Operation,
    kind: WorkloadKind,
    object: Workload,
    old_object: Option<Workload>,
    summary: ReviewSummary,
}

/// A read review: answered already, or waiting for evaluation.
// It lives for one call and is matched at once; boxing the large variant would only add an allocation
// to every evaluated review.
#[allow(clippy::large_enum_variant)]
pub enum Prepared<'a> {
    Answered(Reviewed),
    Evaluate(Pending<'a>),
}

/// Reads a review body and answers it under `policy` at time `now`, without registry look-ups.
/// `policy_configmap` names the ConfigMap whose edits are validated and recorded.
pub fn review(
    policy: &Policy,
    body: &[u8],
    now: OffsetDateTime,
    endpoint: Endpoint,
    policy_configmap: &ConfigMapRef,
) -> Result<Reviewed, ReviewError> {
    Ok(
        match prepare(policy, body, now, endpoint, policy_configmap)? {
            Prepared::Answered(reviewed) => reviewed,
            Prepared::Evaluate(pending) => pending.finish(None),
        },
    )
}

/// Reads a review body: answers what needs no evaluation (DELETE, subresources, other kinds, unreadable
/// objects, policy edits) and decodes the rest for evaluation.
pub fn prepare<'a>(
    policy: &'a Policy,
    body: &'a [u8],
    now: OffsetDateTime,
    endpoint: Endpoint,
    policy_configmap: &ConfigMapRef,
) -> Result<Prepared<'a>, ReviewError> {
    // JSON is UTF-8; checking the whole body once is cheaper than checking each string as it is read.
    let text = std::str::from_utf8(body)
        .map_err(|e| ReviewError::NotJson(format!("the body is not UTF-8: {e}")))?;
    let envelope: Envelope<'_> = match fast::envelope(text) {
        Some(envelope) => envelope,
        None => match serde_json::from_str(text) {
            Ok(e) => e,
            Err(e) => return readable_but_broken(body, e, endpoint).map(Prepared::Answered),
        },
    };
    check_envelope(envelope.api_version.as_deref(), envelope.kind.as_deref())?;
    let request = envelope.request.ok_or(ReviewError::NoRequest)?;
    let uid = match request.uid.as_deref() {
        Some(uid) if !uid.is_empty() => uid.to_owned(),
        _ => return Err(ReviewError::NoUid),
    };
    Ok(read_request(
        policy,
        request,
        uid,
        now,
        endpoint,
        policy_configmap,
    ))
}

/// Reads `body` both ways, the fast reader (`admission::fast`) and the serde `Envelope`, for the tests that
/// hold the two to the same answers. `Ok(true)`: the fast reader read it, and serde reads the same;
/// `Ok(false)`: the fast reader gave up, so serde alone decides; `Err`: they differ, which is a bug.
#[doc(hidden)]
pub fn decoders_agree(body: &[u8]) -> Result<bool, String> {
    /// Decodes the objects serde keeps as text, as `read_request` does.
    fn settled(mut envelope: Envelope<'_>) -> Envelope<'_> {
        if let Some(request) = envelope.request.as_mut() {
            let kind = request
                .kind
                .as_ref()
                .and_then(|k| WorkloadKind::from_group_kind(&k.group, &k.kind));
            for object in [&mut request.object, &mut request.old_object] {
                if let (Some(kind), Some(ObjectValue::Raw(raw))) = (kind, &object) {
                    *object = Some(ObjectValue::Decoded(Workload::from_json(kind, raw.get())));
                }
            }
        }
        envelope
    }
    let Ok(text) = std::str::from_utf8(body) else {
        return Ok(false);
    };
    let Some(fast) = fast::envelope(text) else {
        return Ok(false);
    };
    let reference: Envelope<'_> = serde_json::from_str(text)
        .map_err(|e| format!("the fast reader read a body that serde refuses: {e}"))?;
    let (fast, reference) = (
        format!("{:?}", settled(fast)),
        format!("{:?}", settled(reference)),
    );
    if fast == reference {
        Ok(true)
    } else {
        Err(format!(
            "the two readers differ\nfast:  {fast}\nserde: {reference}"
        ))
    }
}

/// A body that failed the typed decode: if the envelope and the uid can still be read, the review is
/// answered in-band, with a denial from `/validate` (and an unchanged object from `/mutate`, which never
/// denies); otherwise it is not a readable review.
fn readable_but_broken(
    body: &[u8],
    error: serde_json::Error,
    endpoint: Endpoint,
) -> Result<Reviewed, ReviewError> {
    if error.is_syntax() || error.is_eof() {
        return Err(ReviewError::NotJson(error.to_string()));
    }
    // The least a body must hold to be answered in-band: the envelope and a uid. Read leniently (for
    // duplicate keys, the last one), since this only decides how to refuse.
    let value: serde_json::Value =
        serde_json::from_slice(body).map_err(|e| ReviewError::NotReview(e.to_string()))?;
    fn text(v: Option<&serde_json::Value>) -> Option<&str> {
        v.and_then(serde_json::Value::as_str)
    }
    check_envelope(text(value.get("apiVersion")), text(value.get("kind")))?;
    let request = value
        .get("request")
        .filter(|r| !r.is_null())
        .ok_or(ReviewError::NoRequest)?;
    let uid = text(request.get("uid"))
        .filter(|u| !u.is_empty())
        .ok_or(ReviewError::NoUid)?;
    let (body, decision) = match endpoint {
        Endpoint::Validate => (
            ResponseOut::deny(
                uid,
                400,
                "BadRequest",
                format!("vigil could not read the request: {error}"),
            )
            .into_body(),
            "denied",
        ),
        Endpoint::Mutate => (ResponseOut::allow(uid).into_body(), "skipped"),
    };
    Ok(Reviewed {
        body,
        alert: None,
        summary: ReviewSummary {
            uid: uid.to_owned(),
            kind: "other",
            operation: "",
            decision,
            ..ReviewSummary::default()
        },
    })
}

fn read_request<'a>(
    policy: &'a Policy,
    request: RequestEnvelope<'a>,
    uid: String,
    now: OffsetDateTime,
    endpoint: Endpoint,
    policy_configmap: &ConfigMapRef,
) -> Prepared<'a> {
    let gvk = request.kind.as_ref();
    let kind = gvk.and_then(|k| WorkloadKind::from_group_kind(&k.group, &k.kind));
    let operation = request.operation.as_deref().and_then(Operation::parse);
    let mut summary = ReviewSummary {
        uid: uid.clone(),
        kind: kind.map_or("other", WorkloadKind::as_str),
        operation: operation.map_or("", Operation::as_str),
        namespace: request.namespace.as_deref().unwrap_or_default().to_owned(),
        name: request.name.as_deref().unwrap_or_default().to_owned(),
        decision: "skipped",
        ..ReviewSummary::default()
    };
    let skip = |summary: ReviewSummary| {
        Prepared::Answered(Reviewed {
            body: ResponseOut::allow(&uid).into_body(),
            alert: None,
            summary,
        })
    };
    let deny_unreadable = |mut summary: ReviewSummary, message: String| {
        let body = match endpoint {
            // The mutating webhook only annotates; the validating one denies.
            Endpoint::Mutate => ResponseOut::allow(&uid).into_body(),
            Endpoint::Validate => {
                summary.decision = "denied";
                ResponseOut::deny(&uid, 400, "BadRequest", message).into_body()
            }
        };
        Prepared::Answered(Reviewed {
            body,
            alert: None,
            summary,
        })
    };

    // CONNECT is routed by its subresource, whatever the kind says: exec, attach and port-forward are
    // judged, any other CONNECT (a proxy, say) is admitted at once. An operation Vigil cannot read on one of
    // those subresources is denied, as it is for the covered kinds.
    let connect_kind = request
        .sub_resource
        .as_deref()
        .and_then(ConnectKind::from_subresource);
    if operation.is_none()
        && let Some(connect_kind) = connect_kind
    {
        summary.kind = connect_kind.options_kind();
        let op = request.operation.as_deref().unwrap_or_default();
        return deny_unreadable(
            summary,
            format!("vigil could not read the request: unknown operation {op:?}"),
        );
    }
    if operation == Some(Operation::Connect) {
        let Some(connect_kind) = connect_kind else {
            return skip(summary);
        };
        summary.kind = connect_kind.options_kind();
        if endpoint == Endpoint::Mutate {
            // Nothing to annotate: a CONNECT stores no object.
            return skip(summary);
        }
        let connect = match &request.object {
            Some(ObjectValue::Raw(raw)) => {
                Connect::from_json(connect_kind, raw.get()).map_err(|e| {
                    format!(
                        "vigil could not read the {}: object.{e}",
                        connect_kind.options_kind()
                    )
                })
            }
            Some(ObjectValue::Decoded(_)) => Err(format!(
                "vigil could not read the request: a CONNECT on {connect_kind} carries a {}, not a {}",
                gvk.map_or("", |k| k.kind.as_ref()),
                connect_kind.options_kind()
            )),
            None => Err(format!(
                "vigil could not read the request: a CONNECT on {connect_kind} has no object"
            )),
        };
        return match connect {
            Ok(connect) => Prepared::Answered(connect_review(
                policy, &request, &uid, &connect, now, summary,
            )),
            Err(message) => deny_unreadable(summary, message),
        };
    }
    if gvk.is_some_and(|k| is_core_group(&k.group) && k.kind.eq_ignore_ascii_case("ConfigMap")) {
        summary.kind = "ConfigMap";
        let is_policy = request.namespace.as_deref() == Some(&policy_configmap.namespace)
            && request.name.as_deref() == Some(&policy_configmap.name);
        // Other ConfigMaps are admitted at once, without reading them.
        return match (is_policy, endpoint, operation) {
            (
                true,
                Endpoint::Validate,
                Some(op @ (Operation::Create | Operation::Update | Operation::Delete)),
            ) => Prepared::Answered(policy_edit(
                &request,
                &uid,
                op,
                now,
                policy_configmap,
                summary,
            )),
            _ => skip(summary),
        };
    }
    if gvk.is_some_and(|k| is_workload_list(&k.group, &k.kind)) {
        // The API server sends objects one by one, never a List; a List here would carry pods past the
        // rules if it were admitted unread.
        return deny_unreadable(
            summary,
            "vigil does not admit List objects: the API server admits each item on its own"
                .to_owned(),
        );
    }
    let Some(kind) = kind else {
        return skip(summary);
    };
    let operation = match operation {
        Some(op @ (Operation::Create | Operation::Update)) => op,
        // CONNECT was answered above.
        Some(Operation::Delete | Operation::Connect) => return skip(summary),
        None => {
            let op = request.operation.as_deref().unwrap_or_default();
            return deny_unreadable(
                summary,
                format!("vigil could not read the request: unknown operation {op:?}"),
            );
        }
    };
    match request.sub_resource.as_deref() {
        None | Some("") => {}
        Some("ephemeralcontainers") if kind == WorkloadKind::Pod => {}
        Some(_) => return skip(summary),
    }
    let mut request = request;
    let decoded = match request.object.take() {
        None => {
            return deny_unreadable(
                summary,
                format!(
                    "vigil could not read the request: {kind} {} has no object",
                    operation.as_str()
                ),
            );
        }
        Some(ObjectValue::Decoded(result)) => result,
        Some(ObjectValue::Raw(raw)) => Workload::from_json(kind, raw.get()),
    };
    let object = match decoded {
        Ok(w) => w,
        Err(e) => {
            return deny_unreadable(
                summary,
                format!("vigil could not read the {kind}: object.{e}"),
            );
        }
    };
    // An old object that does not decode is treated as absent: every violation then counts as new.
    let old_object = match request.old_object.take() {
        Some(ObjectValue::Decoded(result)) => result.ok(),
        Some(ObjectValue::Raw(raw)) => Workload::from_json(kind, raw.get()).ok(),
        None => None,
    };
    Prepared::Evaluate(Pending {
        policy,
        endpoint,
        request,
        uid,
        now,
        operation,
        kind,
        object,
        old_object,
        summary,
    })
}

/// The core API group, as the API server writes it (`""`), or as a hand-written review might.
fn is_core_group(group: &str) -> bool {
    group.is_empty() || group.eq_ignore_ascii_case("core")
}

/// A list kind (`List`, `PodList`, `DeploymentList`, ...) of a group that holds pod-bearing kinds.
fn is_workload_list(group: &str, kind: &str) -> bool {
    let groups = ["apps", "batch", "extensions"];
    let is_list = kind
        .len()
        .checked_sub(4)
        .and_then(|start| kind.get(start..))
        .is_some_and(|tail| tail.eq_ignore_ascii_case("list"));
    is_list && (is_core_group(group) || groups.iter().any(|g| g.eq_ignore_ascii_case(group)))
}

impl Pending<'_> {
    /// The images the policy's registry rules need looked up: each container image that parses, as the pod
    /// spec writes it. Empty when no registry rule is active.
    pub fn lookups(&self) -> Vec<(String, ImageRef)> {
        if !self.policy.needs_registry() {
            return Vec::new();
        }
        crate::registry::images_for(self.policy, [&self.object])
    }

    /// The policy this review runs under.
    pub fn policy(&self) -> &Policy {
        self.policy
    }

    /// Evaluates the review, with what the registries said when look-ups were made.
    pub fn finish(self, registry: Option<&RegistryFacts>) -> Reviewed {
        let Pending {
            policy,
            endpoint,
            request,
            uid,
            now,
            operation,
            kind,
            object,
            old_object,
            mut summary,
        } = self;
        let uid = uid.as_str();
        let namespace = match summary.namespace.as_str() {
            "" => object.metadata.namespace.clone().unwrap_or_default(),
            ns => ns.to_owned(),
        };
        let user = request.user();
        let decision = engine::evaluate(
            policy,
            &object,
            &engine::Context {
                operation,
                namespace: &namespace,
                username: &user.username,
                groups: &user.groups,
                time: now,
                old_object: old_object.as_ref(),
                owner: None,
                registry,
            },
        );
        let object_ref = ObjectRef {
            api_version: api_version_of(kind),
            kind: kind.as_str().to_owned(),
            namespace,
            name: object_name(request.name.as_deref(), &object),
        };
        summarize(&mut summary, &object_ref, &decision);
        let record = alert_record(&request, uid, operation, now, &object_ref, &user, &decision);
        let body = match endpoint {
            Endpoint::Validate => validate_response(uid, &object_ref, &decision, record.as_deref()),
            Endpoint::Mutate => mutate_response(
                uid,
                &object,
                request.sub_resource.is_some(),
                &decision,
                &object_ref,
                &user,
            ),
        };
        Reviewed {
            body,
            alert: match endpoint {
                Endpoint::Validate => record,
                Endpoint::Mutate => None,
            },
            summary,
        }
    }
}

/// Fills a review's summary with what was decided.
fn summarize(summary: &mut ReviewSummary, object: &ObjectRef, decision: &Decision) {
    summary.decision = alert::decision_word(decision);
    summary.namespace = object.namespace.clone();
    summary.name = object.name.clone();
    summary.violations = decision
        .violations
        .iter()
        .map(|v| (v.rule.as_str(), v.mode.as_str()))
        .collect();
    summary.exemptions = decision
        .violations
        .iter()
        .filter_map(|v| v.exemption.clone())
        .collect();
}

/// The alert line of a decision with violations.
fn alert_record(
    request: &RequestEnvelope<'_>,
    uid: &str,
    operation: Operation,
    now: OffsetDateTime,
    object: &ObjectRef,
    user: &UserRef,
    decision: &Decision,
) -> Option<String> {
    (!decision.violations.is_empty()).then(|| {
        AlertRecord {
            schema: alert::SCHEMA,
            time: alert::format_time(now),
            uid,
            decision: alert::decision_word(decision),
            dry_run: request.dry_run.unwrap_or(false),
            operation: operation.as_str(),
            object,
            user,
            violations: alert::bounded(&decision.violations).0,
            omitted: alert::bounded(&decision.violations).1,
            signatures: &decision.signatures,
        }
        .to_json()
    })
}

/// Judges and records a CONNECT into a running pod. The alert's object is the Pod the review names.
fn connect_review(
    policy: &Policy,
    request: &RequestEnvelope<'_>,
    uid: &str,
    connect: &Connect,
    now: OffsetDateTime,
    mut summary: ReviewSummary,
) -> Reviewed {
    let user = request.user();
    let namespace = request.namespace.as_deref().unwrap_or_default();
    let decision = engine::evaluate_connect(
        policy,
        &engine::ConnectRequest {
            namespace,
            username: &user.username,
            groups: &user.groups,
            time: now,
            connect,
        },
    );
    let object = ObjectRef {
        api_version: "v1".to_owned(),
        kind: "Pod".to_owned(),
        namespace: namespace.to_owned(),
        name: match request.name.as_deref() {
            Some(name) if !name.is_empty() => alert::clip(name),
            _ => "(unnamed)".to_owned(),
        },
    };
    summarize(&mut summary, &object, &decision);
    let record = alert_record(
        request,
        uid,
        Operation::Connect,
        now,
        &object,
        &user,
        &decision,
    );
    Reviewed {
        body: validate_response(uid, &object, &decision, record.as_deref()),
        alert: record,
        summary,
    }
}

/// What Vigil reads from the policy ConfigMap: its data, and the metadata the chart writes.
#[derive(Deserialize, Default)]
struct ConfigMapObject<'a> {
    #[serde(borrow, default)]
    metadata: Option<ConfigMapMetadata<'a>>,
    #[serde(borrow, default)]
    data: Option<BTreeMap<Cow<'a, str>, Cow<'a, str>>>,
}

#[derive(Deserialize, Default)]
#[serde(rename_all = "camelCase")]
struct ConfigMapMetadata<'a> {
    #[serde(borrow, default)]
    annotations: Option<BTreeMap<Cow<'a, str>, Cow<'a, str>>>,
    #[serde(borrow, default)]
    labels: Option<BTreeMap<Cow<'a, str>, Cow<'a, str>>>,
    #[serde(borrow, default)]
    managed_fields: Option<Vec<ManagedFieldsEntry<'a>>>,
}

#[derive(Deserialize)]
struct ManagedFieldsEntry<'a> {
    #[serde(borrow, default)]
    manager: Option<Cow<'a, str>>,
    #[serde(default, rename = "fieldsV1")]
    fields_v1: Option<serde_json::Value>,
}

#[derive(Deserialize)]
#[serde(rename_all = "camelCase")]
struct RequestOptions<'a> {
    #[serde(borrow, default)]
    field_manager: Option<Cow<'a, str>>,
}

/// A ConfigMap object of a review, decoded, or why it does not decode.
type DecodedConfigMap<'a> = Result<ConfigMapObject<'a>, &'static str>;

fn decode_configmap<'a>(object: &ObjectValue<'a>) -> DecodedConfigMap<'a> {
    match object {
        ObjectValue::Raw(raw) => {
            serde_json::from_str(raw.get()).map_err(|_| "the ConfigMap does not decode")
        }
        ObjectValue::Decoded(_) => Err("the ConfigMap does not decode"),
    }
}

/// The edit's view of a decoded ConfigMap.
fn configmap_state<'a>(cm: &'a DecodedConfigMap<'_>) -> edit::ConfigMapState<'a> {
    let cm = match cm {
        Ok(cm) => cm,
        Err(why) => return edit::ConfigMapState::with_policy(Err(why)),
    };
    let policy = cm
        .data
        .as_ref()
        .and_then(|d| d.get("policy.yaml"))
        .map(Cow::as_ref)
        .ok_or("the ConfigMap has no policy.yaml key");
    let metadata = cm.metadata.as_ref();
    let annotation = |key: &str| {
        metadata
            .and_then(|m| m.annotations.as_ref())
            .and_then(|a| a.get(key))
            .map(Cow::as_ref)
    };
    edit::ConfigMapState {
        policy,
        source: annotation(edit::SOURCE_ANNOTATION),
        failure_policy: annotation(edit::FAILURE_POLICY_ANNOTATION),
        failure_policy_pinned: annotation(edit::FAILURE_POLICY_PINNED_ANNOTATION).is_some(),
        release: metadata
            .and_then(|m| m.labels.as_ref())
            .and_then(|l| l.get(edit::RELEASE_LABEL))
            .map(Cow::as_ref),
        policy_owners: metadata
            .and_then(|m| m.managed_fields.as_ref())
            .into_iter()
            .flatten()
            .filter(|entry| {
                entry
                    .fields_v1
                    .as_ref()
                    .and_then(|f| f.get("f:data"))
                    .and_then(|d| d.get("f:policy.yaml"))
                    .is_some()
            })
            .filter_map(|entry| entry.manager.as_deref())
            .collect(),
    }
}

/// Judges and records an edit of the policy ConfigMap.
fn policy_edit(
    request: &RequestEnvelope<'_>,
    uid: &str,
    operation: Operation,
    now: OffsetDateTime,
    policy_configmap: &ConfigMapRef,
    mut summary: ReviewSummary,
) -> Reviewed {
    let old = request.old_object.as_ref().map(decode_configmap);
    let new = match operation {
        Operation::Delete => None,
        _ => Some(
            request
                .object
                .as_ref()
                .map(decode_configmap)
                .unwrap_or(Err("the request has no object")),
        ),
    };
    let (old_state, new_state) = (
        old.as_ref().map(configmap_state),
        new.as_ref().map(configmap_state),
    );
    let options = request
        .options
        .and_then(|raw| serde_json::from_str::<RequestOptions<'_>>(raw.get()).ok());
    let judgement = edit::judge(&edit::Edit {
        operation,
        field_manager: options.as_ref().and_then(|o| o.field_manager.as_deref()),
        namespace: &policy_configmap.namespace,
        old: old_state.as_ref(),
        new: new_state.as_ref(),
    });
    let rule = RuleId::PolicyChange;
    let violations = [Violation {
        rule,
        mode: judgement.mode(),
        severity: rule.rule().severity,
        techniques: rule.rule().techniques,
        container: None,
        image: None,
        field: "data[policy.yaml]".to_owned(),
        message: judgement.message(),
        exemption: None,
        existing: false,
    }];
    let object = ObjectRef {
        api_version: "v1".to_owned(),
        kind: "ConfigMap".to_owned(),
        namespace: policy_configmap.namespace.clone(),
        name: policy_configmap.name.clone(),
    };
    let user = request.user();
    let denial = judgement.denial(&object.describe());
    let decision = if denial.is_some() {
        "denied"
    } else {
        "allowed"
    };
    let record = AlertRecord {
        schema: alert::SCHEMA,
        time: alert::format_time(now),
        uid,
        decision,
        dry_run: request.dry_run.unwrap_or(false),
        operation: operation.as_str(),
        object: &object,
        user: &user,
        violations: &violations,
        omitted: 0,
        signatures: &[],
    }
    .to_json();
    let mut response = match denial {
        Some(message) => ResponseOut::deny(uid, 403, "Forbidden", message),
        None => ResponseOut::allow(uid),
    };
    response.warnings = judgement.warnings().to_vec();
    response.audit_annotations = Some(alert::audit_annotations(&record, &violations));
    summary.decision = decision;
    summary.violations = vec![(rule.as_str(), judgement.mode().as_str())];
    Reviewed {
        body: response.into_body(),
        alert: Some(record),
        summary,
    }
}

fn api_version_of(kind: WorkloadKind) -> String {
    match kind.group() {
        "" => "v1".to_owned(),
        group => format!("{group}/v1"),
    }
}

/// The object's name; a name the API server will generate shows as its prefix and `*`.
fn object_name(request_name: Option<&str>, object: &Workload) -> String {
    match request_name
        .filter(|n| !n.is_empty())
        .or(object.metadata.name.as_deref())
    {
        Some(name) if !name.is_empty() => alert::clip(name),
        _ => match object.metadata.generate_name.as_deref() {
            Some(prefix) if !prefix.is_empty() => format!("{prefix}*"),
            _ => "(unnamed)".to_owned(),
        },
    }
}

fn validate_response(
    uid: &str,
    object: &ObjectRef,
    decision: &Decision,
    record: Option<&str>,
) -> Vec<u8> {
    let mut response = if decision.allowed {
        ResponseOut::allow(uid)
    } else {
        ResponseOut::deny(
            uid,
            403,
            "Forbidden",
            alert::denial_message(object, decision),
        )
    };
    response.warnings = alert::warnings(decision);
    response.audit_annotations = record.map(|r| alert::audit_annotations(r, &decision.violations));
    if !decision.signatures.is_empty() {
        response
            .audit_annotations
            .get_or_insert_with(Default::default)
            .insert(
                "signatures",
                alert::signatures_annotation(&decision.signatures),
            );
    }
    response.into_body()
}

/// The annotation `/mutate` writes: the record without the per-request fields (uid, time, decision), so
/// that a second call on its own output finds the same value and changes nothing.
#[derive(Serialize, Deserialize, PartialEq)]
struct AnnotationRecord<'a> {
    schema: Cow<'a, str>,
    object: ObjectRef,
    user: UserRef,
    violations: Vec<AnnotatedViolation<'a>>,
    /// Violations left out past `alert::MAX_RECORD_VIOLATIONS`.
    #[serde(default, skip_serializing_if = "alert::is_zero")]
    omitted: usize,
}

/// The parts of a violation kept in the annotation.
#[derive(Serialize, Deserialize, PartialEq)]
struct AnnotatedViolation<'a> {
    rule: Cow<'a, str>,
    mode: Cow<'a, str>,
    severity: Cow<'a, str>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    container: Option<Cow<'a, str>>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    image: Option<Cow<'a, str>>,
    field: Cow<'a, str>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    exemption: Option<Cow<'a, str>>,
}

impl<'a> From<&'a Violation> for AnnotatedViolation<'a> {
    fn from(v: &'a Violation) -> Self {
        AnnotatedViolation {
            rule: v.rule.as_str().into(),
            mode: v.mode.as_str().into(),
            severity: v.severity.as_str().into(),
            container: v.container.as_deref().map(Cow::Borrowed),
            image: v.image.as_deref().map(Cow::Borrowed),
            field: v.field.as_str().into(),
            exemption: v.exemption.as_deref().map(Cow::Borrowed),
        }
    }
}

/// Escapes a key for a JSON Pointer (RFC 6901).
fn pointer_escape(key: &str) -> String {
    key.replace('~', "~0").replace('/', "~1")
}

fn mutate_response(
    uid: &str,
    object: &Workload,
    subresource: bool,
    decision: &Decision,
    object_ref: &ObjectRef,
    user: &UserRef,
) -> Vec<u8> {
    // A subresource update cannot change metadata; there is nothing to annotate.
    if subresource {
        return ResponseOut::allow(uid).into_body();
    }
    let current = object.metadata.annotation(alert::ANNOTATION);
    let wanted = (!decision.violations.is_empty()).then(|| {
        serde_json::to_string(&AnnotationRecord {
            schema: alert::SCHEMA.into(),
            object: object_ref.clone(),
            user: user.clone(),
            violations: alert::bounded(&decision.violations)
                .0
                .iter()
                .map(AnnotatedViolation::from)
                .collect(),
            omitted: alert::bounded(&decision.violations).1,
        })
        .expect("an annotation record always serializes")
    });
    let key_path = format!(
        "/metadata/annotations/{}",
        pointer_escape(alert::ANNOTATION)
    );
    let op = match (current, &wanted) {
        (None, None) => None,
        (Some(_), None) => Some(serde_json::json!({"op": "remove", "path": key_path})),
        (Some(have), Some(want)) if same_annotation(have, want) => None,
        (Some(_), Some(want)) => {
            Some(serde_json::json!({"op": "replace", "path": key_path, "value": want}))
        }
        (None, Some(want)) if object.metadata.annotations.is_none() => Some(serde_json::json!({
            "op": "add", "path": "/metadata/annotations", "value": {alert::ANNOTATION: want}
        })),
        (None, Some(want)) => {
            Some(serde_json::json!({"op": "add", "path": key_path, "value": want}))
        }
    };
    let mut response = ResponseOut::allow(uid);
    if let Some(op) = op {
        let patch = serde_json::to_vec(&[op]).expect("a patch always serializes");
        response.patch_type = Some("JSONPatch");
        response.patch = Some(base64::engine::general_purpose::STANDARD.encode(patch));
    }
    response.into_body()
}

/// Whether an existing annotation says what Vigil would write now. The user who made the change may
/// differ from the one who made the first; the violations must not.
fn same_annotation(have: &str, want: &str) -> bool {
    match (
        serde_json::from_str::<AnnotationRecord<'_>>(have),
        serde_json::from_str::<AnnotationRecord<'_>>(want),
    ) {
        (Ok(h), Ok(w)) => {
            h.schema == w.schema
                && h.object == w.object
                && h.violations == w.violations
                && h.omitted == w.omitted
        }
        _ => false,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn enforce_policy() -> Policy {
        Policy::parse(
            "apiVersion: vigil.dev/v1alpha1\nkind: Policy\nmode: enforce\n",
            "p",
        )
        .unwrap()
    }

    /// Text that is hard to escape: quotes, backslashes, every control character, non-ASCII, and runs
    /// longer than one sixteen-byte scan.
    fn awkward_text() -> impl proptest::strategy::Strategy<Value = String> {
        use proptest::prelude::*;
        prop_oneof![
            any::<String>(),
            "[\"\\\\\u{0}-\u{1f}\u{7f}a/é😀 ]{0,40}",
            "[a-z\"]{15,70}",
        ]
    }

    proptest::proptest! {
        /// The hand-written body is byte for byte what serde_json writes for `ReviewOut`.
        #[test]
        fn a_response_body_is_what_serde_writes(
            uid in awkward_text(),
            allowed: bool,
            status in proptest::option::of((100u16..600, awkward_text())),
            warnings in proptest::collection::vec(awkward_text(), 0..3),
            annotations in proptest::option::of(proptest::collection::btree_map(
                proptest::sample::select(vec!["alert", "violations", "signatures"]),
                awkward_text(),
                0..3,
            )),
            patch in proptest::option::of(awkward_text()),
        ) {
            let response = |uid| ResponseOut {
                uid,
                allowed,
                status: status.clone().map(|(code, message)| Status {
                    code,
                    message,
                    reason: "Forbidden",
                    status: "Failure",
                }),
                warnings: warnings.clone(),
                audit_annotations: annotations.clone(),
                patch_type: patch.as_ref().map(|_| "JSONPatch"),
                patch: patch.clone(),
            };
            let serde = serde_json::to_vec(&ReviewOut {
                api_version: API_VERSION,
                kind: "AdmissionReview",
                response: response(&uid),
            })
            .unwrap();
            let ours = response(&uid).into_body();
            proptest::prop_assert_eq!(String::from_utf8_lossy(&ours), String::from_utf8_lossy(&serde));
        }
    }

    /// Keys and strings written with escapes read as their text, in the envelope, the request and the object.
    #[test]
    fn escaped_keys_and_values_read_as_their_text() {
        let body = r#"{"api\u0056ersion":"admission.k8s.io/v1","kind":"Admission\u0052eview",
            "request":{"\u0075id":"u\u0031","kind":{"group":"","version":"v1","kind":"Pod"},
            "operation":"CR\u0045ATE","namespace":"n\u0073","name":"p",
            "object":{"metadata":{"name":"p","annotations":{"vigil.dev/al\u0065rt":"x","other":"y"}},
                      "spec":{"volumes":[{"name":"v","host\u0050ath":{"path":"/etc"}}],
                              "containers":[{"name":"c","image":"nginx:1.27"}]}}}}"#;
        let policy = enforce_policy();
        let prepared = prepare(
            &policy,
            body.as_bytes(),
            OffsetDateTime::now_utc(),
            Endpoint::Validate,
            &ConfigMapRef::default(),
        )
        .unwrap();
        let Prepared::Evaluate(pending) = prepared else {
            panic!("the review was answered without evaluation");
        };
        assert_eq!(pending.uid, "u1");
        assert_eq!(pending.operation, Operation::Create);
        assert_eq!(pending.summary.namespace, "ns");
        assert_eq!(
            pending.object.metadata.annotation("vigil.dev/alert"),
            Some("x")
        );
        assert_eq!(pending.object.metadata.annotation("other"), None);
        let volume = &pending.object.spec.volumes[0];
        assert_eq!(volume.host_path.as_deref(), Some("/etc"));
        assert_eq!(volume.sources, ["hostPath"]);
    }

    /// A key given twice is refused even when one of the two is written with escapes.
    #[test]
    fn a_key_given_twice_with_and_without_escapes_is_refused() {
        let body = r#"{"apiVersion":"admission.k8s.io/v1","kind":"AdmissionReview",
            "request":{"uid":"a","kind":{"group":"","version":"v1","kind":"Pod"},"operation":"CREATE",
            "object":{"spec":{"containers":[{"name":"c","image":"nginx:1.27"}]}},"\u0075id":"b"}}"#;
        let reviewed = review(
            &enforce_policy(),
            body.as_bytes(),
            OffsetDateTime::now_utc(),
            Endpoint::Validate,
            &ConfigMapRef::default(),
        )
        .unwrap();
        assert_eq!(reviewed.summary.decision, "denied");
        let answer: serde_json::Value = serde_json::from_slice(&reviewed.body).unwrap();
        assert_eq!(answer["response"]["status"]["code"], 400);
        let message = answer["response"]["status"]["message"].as_str().unwrap();
        assert!(message.contains("duplicate field `uid`"), "{message}");
    }

    #[test]
    fn huge_objects_make_bounded_answers() {
        let long_name = "n".repeat(100_000);
        let mut containers: Vec<serde_json::Value> = (0..10_000)
            .map(|i| serde_json::json!({"name": format!("c{i}"), "image": "nginx:1.27", "securityContext": {"privileged": true}}))
            .collect();
        containers[0]["name"] = serde_json::json!(long_name);
        let body = serde_json::json!({
            "apiVersion": API_VERSION, "kind": "AdmissionReview",
            "request": {"uid": "big", "kind": {"group": "", "version": "v1", "kind": "Pod"}, "operation": "CREATE",
                        "namespace": "default", "name": long_name,
                        "object": {"metadata": {"name": "x"}, "spec": {"containers": containers}}}
        })
        .to_string();
        let policy = Policy::parse(
            "apiVersion: vigil.dev/v1alpha1\nkind: Policy\nmode: enforce\n",
            "p",
        )
        .unwrap();
        let reviewed = review(
            &policy,
            body.as_bytes(),
            OffsetDateTime::now_utc(),
            Endpoint::Validate,
            &ConfigMapRef::default(),
        )
        .unwrap();
        assert!(
            reviewed.body.len() < 200_000,
            "the answer is {} bytes",
            reviewed.body.len()
        );
        let alert = reviewed.alert.unwrap();
        assert!(
            alert.len() < 100_000,
            "the alert line is {} bytes",
            alert.len()
        );
        let record: serde_json::Value = serde_json::from_str(&alert).unwrap();
        assert_eq!(
            record["violations"].as_array().unwrap().len(),
            alert::MAX_RECORD_VIOLATIONS
        );
        assert_eq!(record["omitted"], 10_000 - alert::MAX_RECORD_VIOLATIONS);
        assert_eq!(record["decision"], "denied");
    }
}
