//! Properties that must hold for every input, checked on generated ones (proptest): image normalization is
//! idempotent, a registry pattern never matches outside its registry, an exemption never adds a violation,
//! every answered review echoes its uid, and YAML flow nesting is measured exactly before parsing.
//!
//! Case counts are modest so that the suite stays fast; `PROPTEST_CASES=10000 cargo test --test properties`
//! runs more. A failure prints the smallest input proptest could shrink it to, and proptest saves its seed in
//! `tests/properties.proptest-regressions`: commit that file with the fix.

use std::collections::BTreeSet;
use std::net::Ipv6Addr;

use proptest::prelude::*;
use proptest::sample::{select, subsequence};
use serde_json::{Value, json};
use time::OffsetDateTime;

use vigil::admission::{self, ConfigMapRef, Endpoint, ReviewError, Reviewed};
use vigil::engine::{self, Decision, Operation};
use vigil::image::{ImageRef, RegistryPattern};
use vigil::policy::Policy;
use vigil::workload::{Workload, WorkloadKind};

/// The request time of every property.
fn now() -> OffsetDateTime {
    OffsetDateTime::from_unix_timestamp(1_795_000_000).unwrap()
}

/// The one call into the review path.
fn review(policy: &Policy, body: &[u8], endpoint: Endpoint) -> Result<Reviewed, ReviewError> {
    admission::review(policy, body, now(), endpoint, &ConfigMapRef::default())
}

/// Who sends a request to the engine.
#[derive(Debug, Clone)]
struct Who {
    namespace: String,
    username: String,
    groups: Vec<String>,
}

/// The one call into the engine.
fn evaluate(policy: &Policy, object: &Workload, who: &Who) -> Decision {
    engine::evaluate(
        policy,
        object,
        &engine::Context {
            operation: Operation::Create,
            namespace: &who.namespace,
            username: &who.username,
            groups: &who.groups,
            time: now(),
            old_object: None,
            owner: None,
            registry: None,
        },
    )
}

fn config(cases: u32) -> ProptestConfig {
    ProptestConfig {
        cases,
        ..ProptestConfig::default()
    }
}

// ---------------------------------------------------------------------------------------------
// Image references
// ---------------------------------------------------------------------------------------------

/// Hosts drawn from few labels, so that generated patterns and images often share or nearly share one.
fn host() -> impl Strategy<Value = String> {
    prop_oneof![
        6 => prop::collection::vec(select(&["a", "b", "corp", "ghcr", "io", "example", "evil", "docker", "index", "x-1"][..]), 1..4)
            .prop_map(|labels| labels.join(".")),
        1 => Just("localhost".to_owned()),
        1 => Just("[::1]".to_owned()),
        1 => Just("[0:0::1]".to_owned()),
        1 => Just("[fd00::1]".to_owned()),
    ]
}

fn port() -> impl Strategy<Value = Option<String>> {
    prop::option::weighted(
        0.3,
        select(&["443", "0443", "5000", "05000", "5001", "0"][..]).prop_map(str::to_owned),
    )
}

fn path_component() -> impl Strategy<Value = String> {
    prop_oneof![
        select(
            &[
                "corp",
                "app",
                "library",
                "nginx",
                "team",
                "x",
                "corporate",
                "a.b",
                "a_b",
                "a__b",
                "a--b"
            ][..]
        )
        .prop_map(str::to_owned),
        "[a-z0-9]{1,6}",
    ]
}

fn repo_path() -> impl Strategy<Value = String> {
    prop::collection::vec(path_component(), 1..4).prop_map(|c| c.join("/"))
}

/// Flips the case of some characters: the domain compares case-insensitively.
fn shout(s: &str, mask: u64) -> String {
    s.chars()
        .enumerate()
        .map(|(i, c)| {
            if mask >> (i % 64) & 1 == 1 {
                c.to_ascii_uppercase()
            } else {
                c
            }
        })
        .collect()
}

/// Image references: mostly from the grammar (with and without a domain, tag, digest), some arbitrary.
fn image_text() -> impl Strategy<Value = String> {
    let tag = prop::option::of("[A-Za-z0-9_][A-Za-z0-9_.-]{0,12}");
    let digest = prop::option::weighted(0.2, "[0-9a-f]{64}");
    let grammar = (
        prop::option::of((host(), port(), any::<u64>())),
        repo_path(),
        tag,
        digest,
    )
        .prop_map(|(domain, path, tag, digest)| {
            let mut s = String::new();
            if let Some((host, port, mask)) = domain {
                s.push_str(&shout(&host, mask & 0xF0F0));
                if let Some(p) = port {
                    s.push(':');
                    s.push_str(&p);
                }
                s.push('/');
            }
            s.push_str(&path);
            if let Some(t) = tag {
                s.push(':');
                s.push_str(&t);
            }
            if let Some(d) = digest {
                s.push_str("@sha256:");
                s.push_str(&d);
            }
            s
        });
    prop_oneof![
        8 => grammar,
        1 => "[a-zA-Z0-9./:@_\\[\\]-]{0,40}",
        1 => any::<String>(),
    ]
}

/// Registry patterns: `DOMAIN`, `*.DOMAIN`, `DOMAIN/PATH`, `DOMAIN/PATH/*`, with ports.
fn pattern_text() -> impl Strategy<Value = String> {
    (
        any::<bool>(),
        host(),
        port(),
        prop::option::of((repo_path(), any::<bool>())),
        any::<u64>(),
    )
        .prop_map(|(wildcard, host, port, path, mask)| {
            let mut s = String::new();
            if wildcard && !host.starts_with('[') {
                s.push_str("*.");
            }
            s.push_str(&shout(&host, mask));
            if let Some(p) = port {
                s.push(':');
                s.push_str(&p);
            }
            if let Some((path, below)) = path {
                s.push('/');
                s.push_str(&path);
                if below {
                    s.push_str("/*");
                }
            }
            s
        })
}

fn same_host(a: &str, b: &str) -> bool {
    let v6 = |h: &str| {
        h.strip_prefix('[')?
            .strip_suffix(']')?
            .parse::<Ipv6Addr>()
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

fn port_number(p: &str) -> &str {
    match p.trim_start_matches('0') {
        "" => "0",
        n => n,
    }
}

/// The registry a pattern names, read from its normalized text: (host, port, wildcard).
fn pattern_registry(pattern: &RegistryPattern) -> (String, Option<String>, bool) {
    let normalized = pattern.normalized();
    let domain = normalized.split('/').next().unwrap().to_owned();
    let (wildcard, domain) = match domain.strip_prefix("*.") {
        Some(rest) => (true, rest.to_owned()),
        None => (false, domain),
    };
    let from = if domain.starts_with('[') {
        domain.find(']').unwrap()
    } else {
        0
    };
    match domain[from..].find(':') {
        Some(i) => (
            domain[..from + i].to_owned(),
            Some(domain[from + i + 1..].to_owned()),
            wildcard,
        ),
        None => (domain, None, wildcard),
    }
}

proptest! {
    #![proptest_config(config(512))]

    /// parse -> to_string -> parse -> to_string gives the same string, and the same parts.
    #[test]
    fn normalizing_an_image_reference_twice_gives_the_same_result(text in image_text()) {
        if let Ok(once) = ImageRef::parse(&text) {
            let shown = once.to_string();
            let twice = ImageRef::parse(&shown);
            prop_assert!(twice.is_ok(), "{text:?} -> {shown:?} does not parse: {:?}", twice);
            let twice = twice.unwrap();
            prop_assert_eq!(twice.to_string(), shown.clone());
            prop_assert_eq!(twice.domain(), once.domain());
            prop_assert_eq!(twice.path(), once.path());
            prop_assert_eq!(twice.digest(), once.digest());
            prop_assert_eq!(twice.tag().or(Some("latest")), once.tag().or(Some("latest")));
        }
    }

    /// A pattern never matches an image of another registry: the host must be the pattern's (or, for
    /// `*.DOMAIN`, a proper subdomain of it), and the port must be the same (both absent under allow
    /// semantics; any port only for `matches_any_port` of a pattern that names none). A path pattern only
    /// matches at `/` boundaries.
    #[test]
    fn a_pattern_never_matches_a_name_outside_its_registry(
        pattern in pattern_text(),
        image in image_text(),
    ) {
        let Ok(pattern) = RegistryPattern::parse(&pattern) else { return Ok(()) };
        let Ok(image) = ImageRef::parse(&image) else { return Ok(()) };
        let (want_host, want_port, wildcard) = pattern_registry(&pattern);
        let (matches, any_port) = (pattern.matches(&image), pattern.matches_any_port(&image));
        prop_assert!(!matches || any_port, "{pattern} matches {image} but not on any port");
        if any_port {
            let host = image.host();
            if wildcard {
                let suffix = format!(".{want_host}");
                prop_assert!(
                    host.len() > suffix.len()
                        && host.to_ascii_lowercase().ends_with(&suffix.to_ascii_lowercase()),
                    "{pattern} matches {image}, whose host is not below {want_host}"
                );
            } else {
                prop_assert!(same_host(host, &want_host), "{pattern} matches {image}: host {host}");
            }
            match (&want_port, image.port()) {
                (Some(w), Some(p)) => prop_assert_eq!(port_number(w), port_number(p)),
                (Some(_), None) => prop_assert!(false, "{pattern} matches {image}, which has no port"),
                (None, Some(_)) => prop_assert!(!matches, "{pattern} allows {image} on a port it does not name"),
                (None, None) => {}
            }
        }
        if matches {
            let normalized = pattern.normalized();
            if let Some((_, path)) = normalized.split_once('/') {
                match path.strip_suffix("/*") {
                    Some(below) => prop_assert!(image.path().starts_with(&format!("{below}/")),
                        "{pattern} matches {image} outside {below}/"),
                    None => prop_assert_eq!(image.path(), path),
                }
            }
        }
    }

    /// A name built to look like the pattern's registry but outside it never matches: a longer domain, a
    /// glued prefix, another port.
    #[test]
    fn look_alike_registries_never_match(
        host in host().prop_filter("a name, not an IP", |h| !h.starts_with('[')),
        port in port(),
        path in repo_path(),
        spoof in 0..4usize,
    ) {
        let domain = match &port {
            Some(p) => format!("{host}:{p}"),
            None => host.clone(),
        };
        let Ok(pattern) = RegistryPattern::parse(&domain) else { return Ok(()) };
        let spoofed = match spoof {
            0 => format!("{host}.evil.io{}/{path}", port.as_ref().map(|p| format!(":{p}")).unwrap_or_default()),
            1 => format!("evil{domain}/{path}"),
            2 => format!("evil-{domain}/{path}"),
            _ => format!("{host}:{}/{path}", port.as_deref().map_or(8443, |p| p.parse::<u32>().unwrap() + 1)),
        };
        if let Ok(image) = ImageRef::parse(&spoofed) {
            prop_assert!(!pattern.matches(&image), "{pattern} matches {spoofed}");
        }
    }
}

// ---------------------------------------------------------------------------------------------
// Exemptions
// ---------------------------------------------------------------------------------------------

const RULES: &[&str] = &[
    "privileged",
    "host-namespaces",
    "host-ports",
    "host-path",
    "capabilities",
    "proc-mount",
    "seccomp",
    "ephemeral-containers",
    "image-registry",
    "image-tag",
    "image-digest",
    "secret-in-env",
    "run-as-non-root",
    "privilege-escalation",
];
const IMAGES: &[&str] = &[
    "registry.corp.example/app:1.0",
    "registry.corp.example/tools/debug:2",
    "ghcr.io/corp/app@sha256:e6693c20186f837fc393390135d8a598a96a833917917789d63766cab6c59582",
    "ghcr.io/corporate/x:1",
    "nginx",
    "evil.example/x:latest",
    "Not A Reference",
];
const IMAGE_PATTERNS: &[&str] = &[
    "registry.corp.example",
    "registry.corp.example/tools/*",
    "ghcr.io/corp/*",
    "docker.io/library/*",
    "*.evil.example",
];
const NAMESPACES: &[&str] = &["team-a", "debug-1", "kube-system"];
const USERS: &[&str] = &[
    "alice@corp.example",
    "bob",
    "system:serviceaccount:ops:debugger",
];
const GROUPS: &[&str] = &["sre", "dev", "system:authenticated"];

fn container() -> impl Strategy<Value = Value> {
    (
        select(IMAGES),
        prop::option::of(any::<bool>()),
        prop::option::of(subsequence(&["SYS_ADMIN", "NET_ADMIN", "CHOWN"][..], 0..3)),
        any::<bool>(),
        any::<bool>(),
        any::<bool>(),
    )
        .prop_map(|(image, privileged, caps, host_port, secret, unmasked)| {
            let mut sc = json!({});
            if let Some(p) = privileged {
                sc["privileged"] = json!(p);
            }
            if let Some(add) = caps {
                sc["capabilities"] = json!({ "add": add });
            }
            if unmasked {
                sc["procMount"] = json!("Unmasked");
            }
            let mut c = json!({"name": "c", "image": image, "securityContext": sc});
            if host_port {
                c["ports"] = json!([{"containerPort": 80, "hostPort": 8080}]);
            }
            if secret {
                c["env"] = json!([{"name": "AWS_SECRET_ACCESS_KEY",
                                   "value": "wJalrXUtnFEMI/K7MDENG/bPxRfiCYEXAMPLEKEY"}]);
            }
            c
        })
}

fn pod() -> impl Strategy<Value = Workload> {
    (
        prop::collection::vec(container(), 0..3),
        prop::collection::vec(container(), 1..3),
        prop::collection::vec(container(), 0..2),
        any::<(bool, bool)>(),
        prop::option::of(select(&["/", "/var/log", "/var/run/docker.sock"][..])),
    )
        .prop_map(
            |(init, regular, ephemeral, (host_pid, unconfined), host_path)| {
                let mut spec = json!({"initContainers": init, "containers": regular,
                                  "ephemeralContainers": ephemeral, "hostPID": host_pid});
                // Names must differ for findings to be told apart.
                for list in ["initContainers", "containers", "ephemeralContainers"] {
                    for (i, c) in spec[list].as_array_mut().unwrap().iter_mut().enumerate() {
                        c["name"] = json!(format!("{list}-{i}"));
                    }
                }
                if unconfined {
                    spec["securityContext"] = json!({"seccompProfile": {"type": "Unconfined"}});
                }
                if let Some(p) = host_path {
                    spec["volumes"] = json!([{"name": "h", "hostPath": {"path": p}}]);
                }
                let object =
                    json!({"metadata": {"name": "p", "namespace": "team-a"}, "spec": spec});
                Workload::from_json(WorkloadKind::Pod, &object.to_string()).unwrap()
            },
        )
}

fn selector(values: &'static [&'static str]) -> impl Strategy<Value = Option<Vec<String>>> {
    prop::option::weighted(
        0.4,
        subsequence(values, 1..=values.len().min(2))
            .prop_map(|v| v.into_iter().map(str::to_owned).collect()),
    )
}

/// One exemption, as YAML: any mix of selectors and a time window around the request's time.
fn exemption(name: &'static str) -> impl Strategy<Value = String> {
    (
        prop::option::of(subsequence(RULES, 1..4)),
        selector(NAMESPACES),
        selector(USERS),
        selector(GROUPS),
        selector(IMAGE_PATTERNS),
        prop::option::of(-2i64..2),
        prop::option::of(-2i64..2),
    )
        .prop_filter("from before until", |e| match (e.5, e.6) {
            (Some(from), Some(until)) => from < until,
            _ => true,
        })
        .prop_map(
            move |(rules, namespaces, users, groups, images, from, until)| {
                let list = |key: &str, values: &Option<Vec<String>>| match values {
                    Some(v) => format!("    {key}: {}\n", serde_json::to_string(v).unwrap()),
                    None => String::new(),
                };
                let time = |key: &str, days: Option<i64>| match days {
                    Some(d) => format!(
                        "    {key}: {}\n",
                        (now() + time::Duration::days(d))
                            .format(&time::format_description::well_known::Rfc3339)
                            .unwrap()
                    ),
                    None => String::new(),
                };
                let rules = rules.map(|r| r.into_iter().map(str::to_owned).collect());
                format!(
                    "  - name: {name}\n    reason: generated\n{}{}{}{}{}{}{}",
                    list("rules", &rules),
                    list("namespaces", &namespaces),
                    list("users", &users),
                    list("groups", &groups),
                    list("images", &images),
                    time("from", from),
                    time("until", until),
                )
            },
        )
}

/// A policy without the extra exemption, and the same policy with it.
fn policies() -> impl Strategy<Value = (String, String)> {
    (
        select(&["enforce", "warn", "audit"][..]),
        select(&["baseline", "restricted"][..]),
        subsequence(RULES, 0..4),
        prop::option::of(exemption("existing")),
        exemption("extra"),
    )
        .prop_map(|(mode, profile, enforced, existing, extra)| {
            let mut text = format!(
                "apiVersion: vigil.dev/v1alpha1\nkind: Policy\nmode: {mode}\nprofile: {profile}\nrules:\n  image-registry:\n    allow: [\"registry.corp.example\", \"ghcr.io/corp/*\"]\n    deny: [\"*.evil.example\"]\n"
            );
            for rule in enforced.iter().filter(|r| **r != "image-registry") {
                text.push_str(&format!("  {rule}: enforce\n"));
            }
            let without = match &existing {
                Some(e) => format!("{text}exemptions:\n{e}"),
                None => text.clone(),
            };
            let with = format!("{without}{}{extra}", if existing.is_some() { "" } else { "exemptions:\n" });
            (without, with)
        })
}

fn who() -> impl Strategy<Value = Who> {
    (select(NAMESPACES), select(USERS), subsequence(GROUPS, 0..3)).prop_map(|(ns, user, groups)| {
        Who {
            namespace: ns.to_owned(),
            username: user.to_owned(),
            groups: groups.into_iter().map(str::to_owned).collect(),
        }
    })
}

/// The violations that are not exempted: (rule, field).
fn unexempted(decision: &Decision) -> BTreeSet<(String, String)> {
    decision
        .violations
        .iter()
        .filter(|v| v.exemption.is_none())
        .map(|v| (v.rule.as_str().to_owned(), v.field.clone()))
        .collect()
}

proptest! {
    #![proptest_config(config(256))]

    /// Adding an exemption to a policy never adds a violation that is not exempted, never turns an
    /// admitted request into a denied one, and never changes which findings are recorded.
    #[test]
    fn adding_an_exemption_never_adds_a_violation(
        object in pod(),
        (without, with) in policies(),
        who in who(),
    ) {
        let p_without = Policy::parse(&without, "without.yaml");
        prop_assert!(p_without.is_ok(), "{without}\n{:?}", p_without.err());
        let p_with = Policy::parse(&with, "with.yaml");
        prop_assert!(p_with.is_ok(), "{with}\n{:?}", p_with.err());
        let before = evaluate(&p_without.unwrap(), &object, &who);
        let after = evaluate(&p_with.unwrap(), &object, &who);
        let (b, a) = (unexempted(&before), unexempted(&after));
        prop_assert!(a.is_subset(&b), "new violations {:?}\n{with}", a.difference(&b).collect::<Vec<_>>());
        prop_assert!(!before.allowed || after.allowed, "the exemption denied an admitted request\n{with}");
        let recorded = |d: &Decision| d.violations.iter().map(|v| (v.rule, v.field.clone())).collect::<Vec<_>>();
        prop_assert_eq!(recorded(&before), recorded(&after));
    }
}

// ---------------------------------------------------------------------------------------------
// Reviews echo their uid
// ---------------------------------------------------------------------------------------------

/// Arbitrary JSON, a few levels deep.
fn json_value() -> impl Strategy<Value = Value> {
    let leaf = prop_oneof![
        Just(Value::Null),
        any::<bool>().prop_map(Value::from),
        any::<i64>().prop_map(Value::from),
        any::<f64>()
            .prop_filter("finite", |f| f.is_finite())
            .prop_map(Value::from),
        ".{0,12}".prop_map(Value::from),
    ];
    leaf.prop_recursive(4, 32, 6, |inner| {
        prop_oneof![
            prop::collection::vec(inner.clone(), 0..6).prop_map(Value::from),
            prop::collection::btree_map(
                select(
                    &[
                        "spec",
                        "containers",
                        "image",
                        "securityContext",
                        "privileged",
                        "metadata",
                        "name",
                        "x"
                    ][..]
                )
                .prop_map(str::to_owned),
                inner,
                0..6
            )
            .prop_map(|m| Value::Object(m.into_iter().collect())),
        ]
    })
}

/// An object for a review: a real-looking pod or workload, or arbitrary JSON.
fn review_object() -> impl Strategy<Value = Option<Value>> {
    let pod = (select(IMAGES), any::<bool>()).prop_map(|(image, privileged)| {
        json!({"metadata": {"name": "p"}, "spec": {"containers": [
            {"name": "c", "image": image, "securityContext": {"privileged": privileged}}]}})
    });
    let templated = pod.clone().prop_map(|p| json!({"spec": {"template": p}}));
    prop::option::weighted(0.9, prop_oneof![pod, templated, json_value()])
}

fn envelope() -> impl Strategy<Value = (String, Value)> {
    let uid = prop_oneof![
        "[0-9a-f]{8}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{12}",
        ".{1,40}",
        any::<String>().prop_filter("non-empty", |s| !s.is_empty()),
    ];
    let kind = prop_oneof![
        select(
            &[
                ("", "Pod"),
                ("apps", "Deployment"),
                ("batch", "CronJob"),
                ("", "pod"),
                ("", "POD"),
                ("batch", "cronJob"),
                ("", "List"),
                ("", "ConfigMap"),
                ("apps", "Pod"),
                ("x.io", "Widget")
            ][..]
        )
        .prop_map(|(g, k)| (g.to_owned(), k.to_owned())),
        ("[a-z.]{0,8}", ".{0,12}"),
    ];
    let operation = prop_oneof![
        select(&["CREATE", "UPDATE", "DELETE", "CONNECT", "create", ""][..]).prop_map(Value::from),
        json_value(),
    ];
    let sub_resource =
        prop::option::of(select(&["", "status", "ephemeralcontainers", "scale"][..]));
    (uid, kind, operation, sub_resource, review_object(), review_object(), any::<bool>()).prop_map(
        |(uid, (group, kind), operation, sub_resource, object, old_object, dry_run)| {
            let mut request = json!({
                "uid": uid, "kind": {"group": group, "version": "v1", "kind": kind},
                "resource": {"group": group, "version": "v1", "resource": "things"},
                "name": "p", "namespace": "team-a", "operation": operation,
                "userInfo": {"username": "mallory", "groups": ["dev"]},
                "object": object, "oldObject": old_object, "dryRun": dry_run,
            });
            if let Some(s) = sub_resource {
                request["subResource"] = json!(s);
            }
            (uid, json!({"apiVersion": "admission.k8s.io/v1", "kind": "AdmissionReview", "request": request}))
        },
    )
}

proptest! {
    #![proptest_config(config(512))]

    /// A readable review, whatever its kind, operation and object, is answered in-band on both endpoints,
    /// and the answer carries the request's uid.
    #[test]
    fn every_response_echoes_the_uid((uid, body) in envelope()) {
        let policy = Policy::parse(
            "apiVersion: vigil.dev/v1alpha1\nkind: Policy\nmode: enforce\nrules:\n  image-registry:\n    allow: [\"registry.corp.example\"]\n",
            "policy.yaml",
        ).unwrap();
        let body = body.to_string();
        for endpoint in [Endpoint::Validate, Endpoint::Mutate] {
            let answered = review(&policy, body.as_bytes(), endpoint);
            prop_assert!(answered.is_ok(), "{endpoint:?}: not answered in-band: {:?}\n{body}", answered.err());
            let response: Value = serde_json::from_slice(&answered.unwrap().body).unwrap();
            prop_assert_eq!(response["response"]["uid"].as_str(), Some(uid.as_str()));
        }
    }
}

// ---------------------------------------------------------------------------------------------
// YAML flow nesting, measured before parsing
// ---------------------------------------------------------------------------------------------

/// A JSON document (JSON is YAML in flow style) nested `depth` levels, its strings full of YAML syntax.
fn nested_json() -> impl Strategy<Value = (usize, Value)> {
    (
        1usize..=2 * vigil::manifest::MAX_FLOW_DEPTH,
        prop::collection::vec(
            (r#"[\[\]{}"',:#&*!|>\\ a-z\n-]{0,8}"#, any::<bool>()),
            1..64,
        ),
    )
        .prop_map(|(depth, fillers)| {
            let mut value = json!("leaf");
            for level in 0..depth {
                let (filler, as_array) = &fillers[level % fillers.len()];
                value = if *as_array {
                    json!([filler, value])
                } else {
                    json!({ filler.as_str(): value })
                };
            }
            (depth, value)
        })
}

proptest! {
    #![proptest_config(config(128))]

    /// The pre-parse check agrees with the real depth of any JSON document, compact or pretty, however
    /// its strings are made: no deep document gets through, no shallow one is refused.
    #[test]
    fn flow_nesting_is_measured_exactly_on_json((depth, value) in nested_json()) {
        let within = depth <= vigil::manifest::MAX_FLOW_DEPTH;
        for text in [value.to_string(), serde_json::to_string_pretty(&value).unwrap()] {
            let document = format!("x: {text}\n");
            prop_assert_eq!(
                vigil::manifest::check_flow_nesting(&document).is_ok(),
                within,
                "depth {}: {}", depth, document
            );
        }
    }
}
