//! The bodies of the fuzz targets: each feeds one input to a parser of hostile input and checks what must
//! hold whatever the input.
//!
//! The same functions replay `tests/data/fuzz-regressions/` in the normal test suite (through
//! `#[path]` in `tests/fuzz_regressions.rs`), so a crash found by the fuzzer stays fixed. This file may
//! use only what both the fuzz crate and the main crate's tests have: `vigil`, `serde_json` and `time`.
//! Every call into an API that is about to change sits in one small helper below.

use std::sync::OnceLock;

use serde_json::Value;
use time::OffsetDateTime;

use vigil::admission::{self, ConfigMapRef, Endpoint, Reviewed};
use vigil::engine::{self, Decision, Operation};
use vigil::image::{ImageRef, RegistryPattern, reference};
use vigil::manifest;
use vigil::policy::Policy;
use vigil::workload::{Workload, WorkloadKind};

/// The policy every review is judged under: enforce, baseline, and a registry allow list.
pub const ENFORCE_POLICY: &str = "\
apiVersion: vigil.dev/v1alpha1
kind: Policy
mode: enforce
profile: baseline
rules:
  image-registry:
    mode: enforce
    allow: [\"registry.corp.example\", \"ghcr.io/corp/*\"]
";

/// The registry allow list of [`ENFORCE_POLICY`].
pub const ALLOW: [&str; 2] = ["registry.corp.example", "ghcr.io/corp/*"];

/// A fixed request time, so that a run is repeatable.
pub fn now() -> OffsetDateTime {
    OffsetDateTime::from_unix_timestamp(1_795_000_000).expect("a valid timestamp")
}

/// The parsed [`ENFORCE_POLICY`].
pub fn enforce_policy() -> &'static Policy {
    static POLICY: OnceLock<Policy> = OnceLock::new();
    POLICY.get_or_init(|| Policy::parse(ENFORCE_POLICY, "fuzz-policy.yaml").expect("valid policy"))
}

fn allow_patterns() -> &'static [RegistryPattern] {
    static ALLOWED: OnceLock<Vec<RegistryPattern>> = OnceLock::new();
    ALLOWED.get_or_init(|| {
        ALLOW
            .iter()
            .map(|p| RegistryPattern::parse(p).expect("valid pattern"))
            .collect()
    })
}

/// The one call into the review path.
fn call_review(
    policy: &Policy,
    body: &[u8],
    endpoint: Endpoint,
) -> Result<Reviewed, admission::ReviewError> {
    admission::review(policy, body, now(), endpoint, &ConfigMapRef::default())
}

/// The one call into the engine.
fn call_evaluate(policy: &Policy, object: &Workload) -> Decision {
    engine::evaluate(
        policy,
        object,
        &engine::Context {
            operation: Operation::Create,
            namespace: "team-a",
            username: "mallory",
            groups: &[],
            time: now(),
            old_object: None,
            owner: None,
            registry: None,
        },
    )
}

// ---------------------------------------------------------------------------------------------
// review: the AdmissionReview decoder and the whole review path
// ---------------------------------------------------------------------------------------------

/// Target `review`: any body, through `/validate` and `/mutate`.
///
/// Whatever the body: no panic; an answer is a well-formed AdmissionReview response that echoes the
/// request's uid; `/validate` never admits a CREATE of a covered kind whose object has a privileged
/// container, a host namespace, or an image outside the allow list; `/mutate` never denies.
pub fn review(data: &[u8]) {
    // The fast reader never reads a body otherwise than serde does.
    if let Err(e) = vigil::admission::decoders_agree(data) {
        panic!("{e}");
    }
    let policy = enforce_policy();
    let request: Option<Value> = serde_json::from_slice(data).ok();
    for endpoint in [Endpoint::Validate, Endpoint::Mutate] {
        let Ok(reviewed) = call_review(policy, data, endpoint) else {
            continue;
        };
        let response: Value =
            serde_json::from_slice(&reviewed.body).expect("the response body is JSON");
        assert_eq!(response["apiVersion"], "admission.k8s.io/v1");
        assert_eq!(response["kind"], "AdmissionReview");
        let r = &response["response"];
        let uid = r["uid"].as_str().expect("the response has a uid");
        assert!(!uid.is_empty(), "the response uid is empty");
        assert_eq!(uid, reviewed.summary.uid, "the summary names the uid");
        let allowed = r["allowed"].as_bool().expect("allowed is a bool");
        if let Some(request) = &request {
            match request["request"]["uid"].as_str() {
                Some(sent) => assert_eq!(uid, sent, "the response echoes the uid"),
                None => panic!("answered a review whose uid is not a string"),
            }
        }
        if let Some(alert) = &reviewed.alert {
            let record: Value = serde_json::from_str(alert).expect("the alert line is JSON");
            assert_eq!(record["uid"], uid, "the alert names the uid");
        }
        match endpoint {
            Endpoint::Mutate => assert!(allowed, "/mutate never denies"),
            Endpoint::Validate if allowed => {
                if let Some(request) = &request
                    && let Some(why) = must_deny(request)
                {
                    panic!("admitted a review that must be denied: {why}");
                }
            }
            Endpoint::Validate => {
                let code = r["status"]["code"].as_u64();
                assert!(
                    matches!(code, Some(400 | 403)),
                    "a denial has code 400 or 403: {r}"
                );
            }
        }
    }
}

/// Why a review must be denied under [`ENFORCE_POLICY`], judged from the generic JSON tree rather than
/// Vigil's typed decoder, so that the two must agree: `None` when it need not be.
pub fn must_deny(review: &Value) -> Option<String> {
    let request = review.get("request")?;
    let gvk = request.get("kind")?;
    let group = match gvk.get("group") {
        None | Some(Value::Null) => "",
        Some(g) => g.as_str()?,
    };
    let kind = WorkloadKind::from_group_kind(group, gvk.get("kind")?.as_str()?)?;
    if request.get("operation")?.as_str()? != "CREATE" {
        return None;
    }
    match request.get("subResource") {
        None | Some(Value::Null) => {}
        Some(Value::String(s)) if s.is_empty() => {}
        Some(Value::String(s)) if s == "ephemeralcontainers" && kind == WorkloadKind::Pod => {}
        Some(_) => return None,
    }
    must_deny_object(kind, request.get("object")?)
}

/// Why an object of a covered kind must be denied under [`ENFORCE_POLICY`], read from the JSON tree.
pub fn must_deny_object(kind: WorkloadKind, object: &Value) -> Option<String> {
    let mut spec = object;
    for key in kind.spec_path().split('.') {
        spec = spec.get(key)?;
    }
    for field in ["hostNetwork", "hostPID", "hostIPC"] {
        if spec.get(field) == Some(&Value::Bool(true)) {
            return Some(format!("{field}: true"));
        }
    }
    for list in ["initContainers", "containers", "ephemeralContainers"] {
        let Some(containers) = spec.get(list).and_then(Value::as_array) else {
            continue;
        };
        for (i, c) in containers.iter().enumerate() {
            let privileged = c
                .get("securityContext")
                .and_then(|s| s.get("privileged"))
                .and_then(Value::as_bool);
            if privileged == Some(true) {
                return Some(format!("{list}[{i}] is privileged"));
            }
            match c.get("image").and_then(Value::as_str) {
                Some(image) if image_allowed(image) => {}
                Some(image) => return Some(format!("{list}[{i}] image {image:?} is not allowed")),
                None => return Some(format!("{list}[{i}] names no image")),
            }
        }
    }
    None
}

/// Whether an image reference is valid and inside [`ALLOW`].
pub fn image_allowed(image: &str) -> bool {
    ImageRef::parse(image).is_ok_and(|r| allow_patterns().iter().any(|p| p.matches(&r)))
}

// ---------------------------------------------------------------------------------------------
// workload: the typed object decoder, against the generic JSON tree
// ---------------------------------------------------------------------------------------------

/// Target `workload`: the first byte picks a covered kind, the rest is the object's JSON.
///
/// No panic; and when both Vigil's typed decoder and the generic JSON tree read the object, they see
/// the same containers, images, privileged flags and host namespaces.
pub fn workload(data: &[u8]) {
    let Some((&selector, json)) = data.split_first() else {
        return;
    };
    let kind = WorkloadKind::ALL[usize::from(selector) % WorkloadKind::ALL.len()];
    let Ok(text) = std::str::from_utf8(json) else {
        return;
    };
    let Ok(decoded) = Workload::from_json(kind, text) else {
        return;
    };
    let decision = call_evaluate(enforce_policy(), &decoded);
    // The typed decoder skips a key it does not know without validating all of it (a lone surrogate
    // escape, say), where the generic tree refuses the whole text; then there is nothing to compare.
    let Ok(tree) = serde_json::from_str::<Value>(text) else {
        return;
    };
    let mut spec = &tree;
    for key in kind.spec_path().split('.') {
        spec = &spec[key];
    }
    for (list, typed) in [
        ("initContainers", &decoded.spec.init_containers),
        ("containers", &decoded.spec.containers),
        ("ephemeralContainers", &decoded.spec.ephemeral_containers),
    ] {
        let generic = spec[list].as_array().map_or(&[][..], Vec::as_slice);
        assert_eq!(typed.len(), generic.len(), "{list}: container count");
        for (t, g) in typed.iter().zip(generic) {
            assert_eq!(t.image.as_deref(), g["image"].as_str(), "{list}: image");
            let privileged = t.security_context.as_ref().and_then(|s| s.privileged);
            assert_eq!(
                privileged,
                g["securityContext"]["privileged"].as_bool(),
                "{list}: privileged"
            );
        }
    }
    assert_eq!(decoded.spec.host_pid, spec["hostPID"].as_bool(), "hostPID");
    assert_eq!(
        decoded.spec.host_network,
        spec["hostNetwork"].as_bool(),
        "hostNetwork"
    );
    if let Some(why) = must_deny_object(kind, &tree) {
        assert!(
            !decision.allowed,
            "the engine admitted an object that {why}"
        );
    }
}

// ---------------------------------------------------------------------------------------------
// policy: the policy document parser
// ---------------------------------------------------------------------------------------------

/// Target `policy`: any text as a policy document.
///
/// No panic; a policy that parses parses the same way twice, summarises, and judges objects.
pub fn policy(data: &[u8]) {
    let Ok(text) = std::str::from_utf8(data) else {
        return;
    };
    let parsed = match Policy::parse(text, "policy.yaml") {
        Ok(p) => p,
        Err(e) => {
            let message = e.to_string();
            assert!(!message.is_empty(), "an error says something");
            return;
        }
    };
    let again = Policy::parse(text, "policy.yaml").expect("parsing is deterministic");
    assert_eq!(parsed.hash, again.hash);
    let _ = parsed.summary();
    let _ = parsed.change_summary(enforce_policy());
    let _ = vigil::policy::warnings(&parsed, now());
    for (kind, object) in sample_objects() {
        let decision = call_evaluate(&parsed, object);
        assert_eq!(
            decision.allowed,
            !decision.violations.iter().any(|v| v.denies()),
            "{kind}: allowed iff nothing denies"
        );
    }
}

/// A few decoded objects for a parsed policy to judge.
fn sample_objects() -> &'static [(&'static str, Workload)] {
    static OBJECTS: OnceLock<Vec<(&'static str, Workload)>> = OnceLock::new();
    OBJECTS.get_or_init(|| {
        let pod = |json: &str| Workload::from_json(WorkloadKind::Pod, json).expect("valid pod");
        vec![
            (
                "privileged",
                pod(
                    r#"{"metadata":{"name":"p","namespace":"team-a"},"spec":{"hostPID":true,
                    "volumes":[{"name":"root","hostPath":{"path":"/"}}],
                    "containers":[{"name":"a","image":"evil.example/x:latest",
                    "securityContext":{"privileged":true,"capabilities":{"add":["SYS_ADMIN"]}},
                    "env":[{"name":"AWS_SECRET_ACCESS_KEY","value":"wJalrXUtnFEMI/K7MDENG/bPxRfiCYEXAMPLEKEY"}]}]}}"#,
                ),
            ),
            (
                "plain",
                pod(
                    r#"{"metadata":{"name":"q"},"spec":{"containers":[{"name":"a",
                    "image":"registry.corp.example/app:1.0"}]}}"#,
                ),
            ),
        ]
    })
}

// ---------------------------------------------------------------------------------------------
// image: image references and registry patterns
// ---------------------------------------------------------------------------------------------

/// Target `image`: the input up to the first newline is an image reference, the rest a registry pattern.
///
/// No panic; normalization is idempotent; a pattern's normalized form means the same pattern; a pattern
/// only matches images of its own registry (host and port).
pub fn image(data: &[u8]) {
    let text = String::from_utf8_lossy(data);
    let (image, pattern) = text.split_once('\n').unwrap_or((&text, ""));

    // The upstream API on the same grammar.
    let _ = reference::parse(image).map(|r| (r.familiar_string().len(), r.path().len()));
    let _ = reference::parse_named(image);
    let _ = reference::parse_docker_ref(image);
    let _ = reference::parse_any_reference(image).map(|r| r.familiar_string().len());
    let _ = reference::with_name(image);

    let parsed = ImageRef::parse(image).ok();
    if let Some(r) = &parsed {
        check_normalization_is_idempotent(r);
    }
    let pat = match RegistryPattern::parse(pattern) {
        Ok(p) => p,
        Err(e) => {
            if let Some(s) = e.suggestion() {
                assert!(RegistryPattern::parse(s).is_ok(), "suggestion {s:?} parses");
            }
            return;
        }
    };
    let normalized = RegistryPattern::parse(&pat.normalized())
        .unwrap_or_else(|e| panic!("normalized pattern does not parse: {e}"));
    assert_eq!(
        normalized.normalized(),
        pat.normalized(),
        "normalizing a pattern is idempotent"
    );
    if let Some(r) = &parsed {
        assert_eq!(pat.matches(r), normalized.matches(r), "normalized: matches");
        assert_eq!(
            pat.matches_any_port(r),
            normalized.matches_any_port(r),
            "normalized: matches_any_port"
        );
        check_pattern_stays_in_its_registry(&pat, r);
    }
}

/// `parse -> to_string -> parse -> to_string` gives the same string and the same parts.
pub fn check_normalization_is_idempotent(r: &ImageRef) {
    let once = r.to_string();
    let again = ImageRef::parse(&once)
        .unwrap_or_else(|e| panic!("{once:?}: the normalized form does not parse: {e}"));
    assert_eq!(again.to_string(), once, "normalizing twice changed it");
    assert_eq!(again.domain(), r.domain(), "{once}: domain");
    assert_eq!(again.path(), r.path(), "{once}: path");
    assert_eq!(again.digest(), r.digest(), "{once}: digest");
    assert_eq!(again.name(), r.name(), "{once}: name");
}

/// Splits `host[:port]` (with `[v6]` hosts) as written in a normalized pattern or an image domain.
pub fn split_host_port(domain: &str) -> (&str, Option<&str>) {
    let from = if domain.starts_with('[') {
        domain.find(']').unwrap_or(0)
    } else {
        0
    };
    match domain[from..].find(':') {
        Some(i) => (&domain[..from + i], Some(&domain[from + i + 1..])),
        None => (domain, None),
    }
}

fn same_port(a: &str, b: &str) -> bool {
    let number = |p: &str| p.trim_start_matches('0').to_owned();
    number(a) == number(b)
}

fn same_host(a: &str, b: &str) -> bool {
    let v6 = |h: &str| {
        h.strip_prefix('[')?
            .strip_suffix(']')?
            .parse::<std::net::Ipv6Addr>()
            .ok()
    };
    // index.docker.io is Docker Hub, docker.io, in any case and on any port (the one alias DESIGN names).
    let hub = |h: &str| {
        if h.eq_ignore_ascii_case("index.docker.io") {
            "docker.io".to_owned()
        } else {
            h.to_ascii_lowercase()
        }
    };
    hub(a) == hub(b) || matches!((v6(a), v6(b)), (Some(x), Some(y)) if x == y)
}

/// A match implies the image is of the pattern's registry: same host (or a proper subdomain for
/// `*.DOMAIN`), and the same port (an absent port matches only an absent one, except under
/// `matches_any_port`). `matches` implies `matches_any_port`.
pub fn check_pattern_stays_in_its_registry(pat: &RegistryPattern, r: &ImageRef) {
    let m = pat.matches(r);
    let any = pat.matches_any_port(r);
    assert!(!m || any, "{pat} vs {r}: matches but not matches_any_port");
    if !any {
        return;
    }
    let normalized = pat.normalized();
    let domain = normalized.split('/').next().unwrap_or_default();
    let (want_host, want_port) = split_host_port(domain);
    let (host, port) = (r.host(), r.port());
    match want_host.strip_prefix("*.") {
        Some(suffix) => {
            let proper = host.len() > suffix.len() + 1
                && host.is_char_boundary(host.len() - suffix.len() - 1)
                && host[host.len() - suffix.len()..].eq_ignore_ascii_case(suffix)
                && host.as_bytes()[host.len() - suffix.len() - 1] == b'.';
            assert!(
                proper,
                "{pat} matched {r}, whose host is not below {suffix}"
            );
        }
        None => assert!(
            same_host(want_host, host),
            "{pat} matched {r}, whose host is not {want_host}"
        ),
    }
    match (want_port, port) {
        (Some(w), Some(p)) => assert!(same_port(w, p), "{pat} matched {r} on another port"),
        (Some(_), None) => panic!("{pat} matched {r}, which names no port"),
        (None, Some(_)) => assert!(!m, "{pat} (allow semantics) matched {r} on a port"),
        (None, None) => {}
    }
    if m {
        // The path: the pattern's path is the image's path, or a '/'-bounded prefix of it.
        if let Some((_, path)) = normalized.split_once('/') {
            match path.strip_suffix("/*") {
                Some(below) => assert!(
                    r.path().starts_with(&format!("{below}/")),
                    "{pat} matched {r} outside {below}/"
                ),
                None => assert_eq!(r.path(), path, "{pat} matched another repository"),
            }
        }
    }
}

// ---------------------------------------------------------------------------------------------
// manifest: the manifest reader of `vigil check`
// ---------------------------------------------------------------------------------------------

/// Target `manifest`: any text as a multi-document YAML or JSON manifest.
///
/// No panic; every object and error names its document; every decoded workload can be judged.
pub fn manifest(data: &[u8]) {
    let Ok(text) = std::str::from_utf8(data) else {
        return;
    };
    let (objects, errors) = manifest::read_objects("fuzz.yaml", text);
    for object in &objects {
        assert!(object.origin.document >= 1);
        if let Some(w) = &object.workload {
            let decision = call_evaluate(enforce_policy(), w);
            if w.containers().next().is_some() && decision.allowed {
                // Every container must have an allowed image to be admitted.
                for c in w.containers() {
                    let image = c.container.image.as_deref().unwrap_or_default();
                    assert!(image_allowed(image), "admitted {image:?}");
                }
            }
        }
    }
    for e in &errors {
        assert!(e.to_string().starts_with("fuzz.yaml: "), "{e}");
    }
}
