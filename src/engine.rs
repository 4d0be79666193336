//! The decision: runs the active rules over an object, resolves each finding's mode, and decides.

use std::collections::HashSet;

use serde::Serialize;
use time::OffsetDateTime;

use crate::alert;
use crate::connect::Connect;
use crate::policy::{LOOKUP_RULES, Mode, Policy, Requester, Updates};
use crate::registry::RegistryFacts;
use crate::rules::image_signature::SignedImage;
use crate::rules::{self, CheckContext, Finding, PodView, RuleId, Severity};
use crate::workload::Workload;

/// The admission operation.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
#[serde(rename_all = "UPPERCASE")]
pub enum Operation {
    Create,
    Update,
    Delete,
    Connect,
}

impl Operation {
    /// The operation as the API server spells it.
    pub fn as_str(self) -> &'static str {
        match self {
            Operation::Create => "CREATE",
            Operation::Update => "UPDATE",
            Operation::Delete => "DELETE",
            Operation::Connect => "CONNECT",
        }
    }

    /// Parses the API server's spelling.
    pub fn parse(s: &str) -> Option<Operation> {
        match s {
            "CREATE" => Some(Operation::Create),
            "UPDATE" => Some(Operation::Update),
            "DELETE" => Some(Operation::Delete),
            "CONNECT" => Some(Operation::Connect),
            _ => None,
        }
    }
}

/// Everything the engine needs besides the object: who sent it, where, when, and what it is compared with.
///
/// Each reader fills it in its own way: the webhook from the AdmissionReview, `vigil check` with the user
/// named on the command line, `vigil audit` with no user at all (exemptions that name users, groups or
/// service accounts cannot match what nobody requested).
#[derive(Debug, Clone, Copy)]
pub struct Context<'a> {
    pub operation: Operation,
    pub namespace: &'a str,
    pub username: &'a str,
    pub groups: &'a [String],
    pub time: OffsetDateTime,
    /// UPDATE: the object before the change. Under `updates: new-violations` the violations it already had
    /// are marked `existing` and never deny.
    pub old_object: Option<&'a Workload>,
    /// The controller the object was made from (a Pod's ReplicaSet, say), when the object is judged through
    /// it: the violations the owner's pod template has too belong to the owner's judgement and are left out,
    /// so that only what the object adds (a debug container, an image changed in place) is its own.
    pub owner: Option<&'a Workload>,
    /// What the registries said about the object's images, when look-ups were made.
    pub registry: Option<&'a RegistryFacts>,
}

/// A CONNECT into a running pod to judge: what it asks for, who sent it, where, and when.
#[derive(Debug, Clone, Copy)]
pub struct ConnectRequest<'a> {
    pub namespace: &'a str,
    pub username: &'a str,
    pub groups: &'a [String],
    pub time: OffsetDateTime,
    pub connect: &'a Connect,
}

impl<'a> Context<'a> {
    /// A CREATE in `namespace` at `time` by nobody in particular, compared with nothing.
    pub fn create(namespace: &'a str, time: OffsetDateTime) -> Context<'a> {
        Context {
            operation: Operation::Create,
            namespace,
            username: "",
            groups: &[],
            time,
            old_object: None,
            owner: None,
            registry: None,
        }
    }
}

/// A finding with its resolved mode: one entry of the alert record.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct Violation {
    pub rule: RuleId,
    pub mode: Mode,
    pub severity: Severity,
    pub techniques: &'static [&'static str],
    pub container: Option<String>,
    pub image: Option<String>,
    pub field: String,
    pub message: String,
    /// The exemption that silenced this violation.
    pub exemption: Option<String>,
    /// The old object already had this violation (UPDATE under `updates: new-violations`).
    #[serde(skip_serializing_if = "std::ops::Not::not")]
    pub existing: bool,
}

impl Violation {
    /// Whether this violation denies the request: enforced, not exempted, and not already there before.
    pub fn denies(&self) -> bool {
        self.mode == Mode::Enforce && self.exemption.is_none() && !self.existing
    }

    /// Whether this violation is returned to the user as a warning: a `warn`, or an enforced violation that
    /// the old object already had and so does not deny.
    pub fn warns(&self) -> bool {
        self.exemption.is_none()
            && (self.mode == Mode::Warn || (self.mode == Mode::Enforce && self.existing))
    }
}

/// The engine's answer.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Decision {
    /// Every violation that is not `off`, in catalogue order of the rules.
    pub violations: Vec<Violation>,
    pub allowed: bool,
    /// The images whose signature a trusted key verified (`image-signature`), with the key.
    pub signatures: Vec<SignedImage>,
}

impl Decision {
    /// The violations that deny the request.
    pub fn enforced(&self) -> impl Iterator<Item = &Violation> {
        self.violations.iter().filter(|v| v.denies())
    }
}

/// What makes two findings "the same" across an UPDATE: rule, container name, the image for image rules,
/// and the rule's own subject (a capability, a path, a pod-level field). The container's position is not
/// part of it, so reordering containers does not make old findings look new.
type FindingKey<'a> = (RuleId, &'a str, Option<&'a str>, &'a str);

fn finding_key<'a>(pod: &'a PodView<'_>, finding: &'a Finding) -> FindingKey<'a> {
    let container = finding.container.map(|i| &pod.containers[i]);
    let image = if finding.rule.rule().about_image {
        container.and_then(|c| c.image_display())
    } else {
        None
    };
    (
        finding.rule,
        container.map_or("", |c| c.name()),
        image,
        finding.subject.as_ref(),
    )
}

/// Runs the active rules. The registry rules judge the registries' answers of now, not the object, so they
/// are left out when judging the old object of an UPDATE (`registry` is `None` there).
fn findings(
    policy: &Policy,
    pod: &PodView<'_>,
    registry: Option<&RegistryFacts>,
    with_lookups: bool,
) -> Vec<Finding> {
    let cx = CheckContext {
        profile: policy.profile,
        options: &policy.options,
        registry,
    };
    let mut out = Vec::new();
    for rule in policy.active_rules() {
        if !with_lookups && LOOKUP_RULES.contains(&rule) {
            continue;
        }
        rules::run(rule, pod, &cx, &mut out);
    }
    out
}

/// A finding's mode: the namespace override, the rule's or the policy's, capped by the finding's own limit;
/// `None` when the rule is off.
fn resolved_mode(
    policy: &Policy,
    finding: &Finding,
    namespace_override: Option<Mode>,
) -> Option<Mode> {
    let mode = policy.rule_mode(finding.rule, namespace_override);
    (mode != Mode::Off).then(|| finding.max_mode.map_or(mode, |cap| mode.min(cap)))
}

/// Judges one decoded object in its context under a policy: the one entry point of the engine, shared by
/// the webhook, `vigil check` and `vigil audit`.
pub fn evaluate(policy: &Policy, object: &Workload, context: &Context<'_>) -> Decision {
    let pod = PodView::new(object);
    let found = findings(policy, &pod, context.registry, true);
    let signatures = signed_images(policy, &pod, context);
    if found.is_empty() {
        return Decision {
            violations: Vec::new(),
            allowed: true,
            signatures,
        };
    }

    let namespace_override = policy.namespace_override(context.namespace);
    let who = Requester {
        namespace: context.namespace,
        username: context.username,
        groups: context.groups,
        time: context.time,
    };
    let exemptions: Vec<_> = policy
        .exemptions
        .iter()
        .filter(|e| e.applies_to(&who))
        .collect();

    let old_pod = match (context.operation, policy.updates, context.old_object) {
        (Operation::Update, Updates::NewViolations, Some(old)) => Some(PodView::new(old)),
        _ => None,
    };
    let old_findings = old_pod
        .as_ref()
        .map(|old| findings(policy, old, None, false));
    let old_keys: HashSet<FindingKey<'_>> = match (&old_pod, &old_findings) {
        (Some(old), Some(found)) => found.iter().map(|f| finding_key(old, f)).collect(),
        _ => HashSet::new(),
    };
    // The owner's findings are judged with the owner. The registry rules are left out of both sides: the
    // owner is not looked up, and an image the object shares with its template is the template's anyway.
    let owner_pod = context.owner.map(PodView::new);
    let owner_findings = owner_pod
        .as_ref()
        .map(|owner| findings(policy, owner, None, false));
    let owner_keys: HashSet<FindingKey<'_>> = match (&owner_pod, &owner_findings) {
        (Some(owner), Some(found)) => found.iter().map(|f| finding_key(owner, f)).collect(),
        _ => HashSet::new(),
    };
    let found: Vec<Finding> = if owner_keys.is_empty() {
        found
    } else {
        found
            .into_iter()
            .filter(|f| !owner_keys.contains(&finding_key(&pod, f)))
            .collect()
    };

    let mut violations = Vec::with_capacity(found.len());
    for finding in found {
        let Some(mode) = resolved_mode(policy, &finding, namespace_override) else {
            continue;
        };
        let container = finding.container.map(|i| &pod.containers[i]);
        let exemption = exemptions.iter().find(|e| {
            e.covers_rule(finding.rule)
                && match container {
                    Some(c) => e.matches_images(std::iter::once(
                        c.image.as_ref().and_then(|r| r.as_ref().ok()),
                    )),
                    None => e.matches_images(
                        pod.containers
                            .iter()
                            .map(|c| c.image.as_ref().and_then(|r| r.as_ref().ok())),
                    ),
                }
        });
        let existing = !old_keys.is_empty() && old_keys.contains(&finding_key(&pod, &finding));
        violations.push(Violation {
            rule: finding.rule,
            mode,
            severity: finding.severity,
            techniques: finding.rule.rule().techniques,
            container: container.map(|c| alert::clip(c.name())),
            image: container.and_then(|c| c.image_display()).map(alert::clip),
            field: finding.field,
            message: alert::clip_message(&finding.message),
            exemption: exemption.map(|e| e.name.clone()),
            existing,
        });
    }
    let allowed = !violations.iter().any(Violation::denies);
    Decision {
        violations,
        allowed,
        signatures,
    }
}

/// Evaluates a CONNECT (exec, attach, port-forward) under a policy. Only the rules about CONNECT run;
/// there is no old object. Exemptions match as for any request, except that an exemption with an `images`
/// selector never applies: the pod spec is not in a CONNECT review, so no image can be shown to match
/// (fail closed).
pub fn evaluate_connect(policy: &Policy, request: &ConnectRequest<'_>) -> Decision {
    let mut found = Vec::new();
    for rule in policy.active_rules() {
        rules::run_connect(rule, request.connect, &mut found);
    }
    let namespace_override = policy.namespace_override(request.namespace);
    let who = Requester {
        namespace: request.namespace,
        username: request.username,
        groups: request.groups,
        time: request.time,
    };
    let container = request.connect.container.as_deref().map(alert::clip);
    let mut violations = Vec::with_capacity(found.len());
    for finding in found {
        let Some(mode) = resolved_mode(policy, &finding, namespace_override) else {
            continue;
        };
        let exemption = policy
            .exemptions
            .iter()
            .find(|e| e.covers_rule(finding.rule) && !e.selects_images() && e.applies_to(&who));
        violations.push(Violation {
            rule: finding.rule,
            mode,
            severity: finding.severity,
            techniques: finding.rule.rule().techniques,
            container: container.clone(),
            image: None,
            field: finding.field,
            message: alert::clip_message(&finding.message),
            exemption: exemption.map(|e| e.name.clone()),
            existing: false,
        });
    }
    let allowed = !violations.iter().any(Violation::denies);
    Decision {
        violations,
        allowed,
        signatures: Vec::new(),
    }
}

/// The images a trusted key verified, when `image-signature` is on for the request's namespace.
fn signed_images(policy: &Policy, pod: &PodView<'_>, context: &Context<'_>) -> Vec<SignedImage> {
    let (Some(_), Some(registry)) = (policy.signature_policy(), context.registry) else {
        return Vec::new();
    };
    let namespace_override = policy.namespace_override(context.namespace);
    if policy.rule_mode(RuleId::ImageSignature, namespace_override) == Mode::Off {
        return Vec::new();
    }
    let cx = CheckContext {
        profile: policy.profile,
        options: &policy.options,
        registry: Some(registry),
    };
    rules::image_signature::verified(pod, &cx)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::workload::WorkloadKind;
    use time::macros::datetime;

    const NOW: OffsetDateTime = datetime!(2026-11-22 15:04:05 UTC);

    fn policy(extra: &str) -> Policy {
        let text = format!("apiVersion: vigil.dev/v1alpha1\nkind: Policy\nmode: enforce\n{extra}");
        Policy::parse(&text, "test").unwrap_or_else(|e| panic!("{e}"))
    }

    fn pod(containers: &str) -> Workload {
        Workload::from_json(
            WorkloadKind::Pod,
            &format!(r#"{{"spec":{{"containers":[{containers}]}}}}"#),
        )
        .unwrap()
    }

    const PRIVILEGED: &str =
        r#"{"name":"app","image":"ghcr.io/corp/app:1","securityContext":{"privileged":true}}"#;
    const PLAIN: &str = r#"{"name":"side","image":"ghcr.io/corp/side:1"}"#;

    struct Ask<'a> {
        op: Operation,
        namespace: &'a str,
        user: &'a str,
        groups: Vec<String>,
        time: OffsetDateTime,
        old: Option<Workload>,
    }

    impl Default for Ask<'_> {
        fn default() -> Self {
            Ask {
                op: Operation::Create,
                namespace: "team-a",
                user: "bob",
                groups: vec!["dev".into()],
                time: NOW,
                old: None,
            }
        }
    }

    fn decide(policy: &Policy, object: &Workload, ask: Ask<'_>) -> Decision {
        evaluate(
            policy,
            object,
            &Context {
                operation: ask.op,
                namespace: ask.namespace,
                username: ask.user,
                groups: &ask.groups,
                time: ask.time,
                old_object: ask.old.as_ref(),
                owner: None,
                registry: None,
            },
        )
    }

    fn rules_of(d: &Decision) -> Vec<(&str, Mode, Option<&str>, bool)> {
        d.violations
            .iter()
            .map(|v| (v.rule.as_str(), v.mode, v.exemption.as_deref(), v.existing))
            .collect()
    }

    #[test]
    fn enforce_denies_and_records() {
        let d = decide(&policy(""), &pod(PRIVILEGED), Ask::default());
        assert!(!d.allowed);
        assert_eq!(rules_of(&d), [("privileged", Mode::Enforce, None, false)]);
        assert_eq!(d.violations[0].container.as_deref(), Some("app"));
        assert_eq!(d.violations[0].image.as_deref(), Some("ghcr.io/corp/app:1"));
        assert_eq!(d.violations[0].techniques, ["T1611", "T1610"]);
    }

    #[test]
    fn clean_objects_are_allowed_without_violations() {
        let d = decide(&policy(""), &pod(PLAIN), Ask::default());
        assert_eq!(
            d,
            Decision {
                violations: vec![],
                allowed: true,
                signatures: vec![]
            }
        );
    }

    #[test]
    fn rule_mode_beats_policy_mode_and_fixed_defaults_apply() {
        let p = policy("rules:\n  privileged: audit\n");
        let d = decide(
            &p,
            &pod(r#"{"name":"a","image":"nginx","securityContext":{"privileged":true}}"#),
            Ask::default(),
        );
        assert!(d.allowed);
        // image-tag keeps its catalogue default (warn) under an enforce policy.
        assert_eq!(
            rules_of(&d),
            [
                ("privileged", Mode::Audit, None, false),
                ("image-tag", Mode::Warn, None, false)
            ]
        );
    }

    #[test]
    fn off_rules_record_nothing() {
        let d = decide(
            &policy("rules:\n  privileged: off\n"),
            &pod(PRIVILEGED),
            Ask::default(),
        );
        assert_eq!(
            d,
            Decision {
                violations: vec![],
                allowed: true,
                signatures: vec![]
            }
        );
    }

    #[test]
    fn namespace_overrides_take_the_first_match() {
        let p = policy(
            "rules:\n  privileged: enforce\nnamespaces:\n  - match: [kube-system, monitoring-*]\n    mode: audit\n  - match: [monitoring-prod]\n    mode: enforce\n",
        );
        for (ns, allowed) in [
            ("monitoring-prod", true),
            ("kube-system", true),
            ("team-a", false),
        ] {
            let d = decide(
                &p,
                &pod(PRIVILEGED),
                Ask {
                    namespace: ns,
                    ..Ask::default()
                },
            );
            assert_eq!(d.allowed, allowed, "{ns}");
        }
    }

    const EXEMPTION: &str = "exemptions:\n  - name: sre\n    reason: break-glass\n    rules: [privileged]\n    namespaces: [team-*]\n    users: [bob]\n    groups: [dev]\n    images: [ghcr.io/corp/*]\n    from: 2026-11-01T00:00:00Z\n    until: 2026-12-01T00:00:00Z\n";

    #[test]
    fn exemptions_win_when_every_selector_matches() {
        let d = decide(&policy(EXEMPTION), &pod(PRIVILEGED), Ask::default());
        assert!(d.allowed);
        assert_eq!(
            rules_of(&d),
            [("privileged", Mode::Enforce, Some("sre"), false)]
        );
    }

    #[test]
    fn exemptions_need_every_selector() {
        let p = policy(EXEMPTION);
        let cases: Vec<(&str, Ask<'_>)> = vec![
            (
                "namespace",
                Ask {
                    namespace: "prod",
                    ..Ask::default()
                },
            ),
            (
                "user",
                Ask {
                    user: "mallory",
                    ..Ask::default()
                },
            ),
            (
                "group",
                Ask {
                    groups: vec!["ops".into()],
                    ..Ask::default()
                },
            ),
            (
                "before the window",
                Ask {
                    time: datetime!(2026-10-31 23:59:59 UTC),
                    ..Ask::default()
                },
            ),
            (
                "at the end of the window",
                Ask {
                    time: datetime!(2026-12-01 00:00:00 UTC),
                    ..Ask::default()
                },
            ),
        ];
        for (what, ask) in cases {
            let d = decide(&p, &pod(PRIVILEGED), ask);
            assert!(!d.allowed, "{what}: the exemption must not apply");
        }
        let other_image = PRIVILEGED.replace("ghcr.io/corp/app:1", "quay.io/x/app:1");
        assert!(
            !decide(&p, &pod(&other_image), Ask::default()).allowed,
            "image outside the exemption"
        );
        let other_rule = policy(&EXEMPTION.replace("rules: [privileged]", "rules: [host-path]"));
        assert!(
            !decide(&other_rule, &pod(PRIVILEGED), Ask::default()).allowed,
            "rule not named"
        );
    }

    #[test]
    fn service_account_exemptions_match_the_username() {
        let p = policy(
            "exemptions:\n  - name: sa\n    reason: ci\n    serviceAccounts: [\"ops:debugger\"]\n",
        );
        let sa = "system:serviceaccount:ops:debugger";
        assert!(
            decide(
                &p,
                &pod(PRIVILEGED),
                Ask {
                    user: sa,
                    ..Ask::default()
                }
            )
            .allowed
        );
        assert!(!decide(&p, &pod(PRIVILEGED), Ask::default()).allowed);
    }

    #[test]
    fn pod_level_image_exemptions_need_every_image_to_match() {
        let p = policy(
            "exemptions:\n  - name: tools\n    reason: node agents\n    images: [ghcr.io/corp/*]\n",
        );
        let host_pid = |images: &[&str]| {
            let c: Vec<String> = images
                .iter()
                .enumerate()
                .map(|(i, img)| format!(r#"{{"name":"c{i}","image":"{img}"}}"#))
                .collect();
            Workload::from_json(
                WorkloadKind::Pod,
                &format!(
                    r#"{{"spec":{{"hostPID":true,"containers":[{}]}}}}"#,
                    c.join(",")
                ),
            )
            .unwrap()
        };
        assert!(
            decide(
                &p,
                &host_pid(&["ghcr.io/corp/a:1", "ghcr.io/corp/b:1"]),
                Ask::default()
            )
            .allowed
        );
        assert!(
            !decide(
                &p,
                &host_pid(&["ghcr.io/corp/a:1", "quay.io/x/b:1"]),
                Ask::default()
            )
            .allowed
        );
    }

    #[test]
    fn updates_judge_only_new_violations() {
        let p = policy("");
        let old = pod(&format!("{PLAIN},{PRIVILEGED}"));
        // Reordered containers: the privileged one is not new.
        let new = pod(&format!("{PRIVILEGED},{PLAIN}"));
        let d = decide(
            &p,
            &new,
            Ask {
                op: Operation::Update,
                old: Some(old.clone()),
                ..Ask::default()
            },
        );
        assert!(d.allowed);
        assert_eq!(rules_of(&d), [("privileged", Mode::Enforce, None, true)]);
        // A newly privileged container is new.
        let newly = pod(&format!(
            "{PRIVILEGED},{}",
            PLAIN.replace(
                r#""side","#,
                r#""side","securityContext":{"privileged":true},"#
            )
        ));
        let d = decide(
            &p,
            &newly,
            Ask {
                op: Operation::Update,
                old: Some(old.clone()),
                ..Ask::default()
            },
        );
        assert!(!d.allowed);
        assert_eq!(
            rules_of(&d),
            [
                ("privileged", Mode::Enforce, None, true),
                ("privileged", Mode::Enforce, None, false)
            ]
        );
        // Under `updates: all`, old violations deny too.
        let all = policy("updates: all\n");
        let d = decide(
            &all,
            &new,
            Ask {
                op: Operation::Update,
                old: Some(old),
                ..Ask::default()
            },
        );
        assert!(!d.allowed);
    }

    #[test]
    fn swapping_an_untrusted_image_for_another_is_new() {
        let p = policy("rules:\n  image-registry:\n    allow: [ghcr.io/corp/*]\n");
        let old = pod(r#"{"name":"app","image":"quay.io/evil/a:1"}"#);
        let same = pod(r#"{"name":"app","image":"quay.io/evil/a:1"}"#);
        let swapped = pod(r#"{"name":"app","image":"quay.io/evil/b:1"}"#);
        let update = |old: &Workload| Ask {
            op: Operation::Update,
            old: Some(old.clone()),
            ..Ask::default()
        };
        assert!(decide(&p, &same, update(&old)).allowed);
        assert!(!decide(&p, &swapped, update(&old)).allowed);
    }
    fn exec(container: Option<&str>) -> Connect {
        Connect {
            kind: crate::connect::ConnectKind::Exec,
            container: container.map(str::to_owned),
            command: vec!["sh".into()],
            stdin: true,
            tty: true,
            ports: vec![],
        }
    }

    fn decide_connect(
        policy: &Policy,
        connect: &Connect,
        namespace: &str,
        groups: &[&str],
    ) -> Decision {
        let groups: Vec<String> = groups.iter().map(|g| (*g).to_owned()).collect();
        evaluate_connect(
            policy,
            &ConnectRequest {
                namespace,
                username: "bob",
                groups: &groups,
                time: NOW,
                connect,
            },
        )
    }

    #[test]
    fn connect_is_recorded_in_audit_by_default_even_under_an_enforce_policy() {
        let d = decide_connect(&policy(""), &exec(Some("app")), "team-a", &["dev"]);
        assert!(d.allowed);
        assert_eq!(rules_of(&d), [("pod-exec", Mode::Audit, None, false)]);
        assert_eq!(d.violations[0].container.as_deref(), Some("app"));
        assert_eq!(d.violations[0].image, None);
        let d = decide_connect(&policy(""), &exec(None), "team-a", &["dev"]);
        assert_eq!(d.violations[0].container, None, "the default container");
    }

    #[test]
    fn connect_exemptions_match_requesters_but_never_images() {
        let p = policy(
            "rules:\n  pod-exec: enforce\nexemptions:\n  - name: sre-exec\n    reason: on-call\n    rules: [pod-exec]\n    namespaces: [prod-*]\n    groups: [sre]\n  - name: tools\n    reason: debug images\n    images: [ghcr.io/corp/*]\n",
        );
        let cases = [
            ("prod-web", &["sre"][..], true),
            ("prod-web", &["dev"][..], false),
            ("team-a", &["sre"][..], false),
        ];
        for (ns, groups, allowed) in cases {
            let d = decide_connect(&p, &exec(Some("app")), ns, groups);
            assert_eq!(d.allowed, allowed, "{ns} {groups:?}");
            let expected = allowed.then_some("sre-exec");
            assert_eq!(
                d.violations[0].exemption.as_deref(),
                expected,
                "{ns} {groups:?}"
            );
        }
    }

    #[test]
    fn connect_rules_follow_namespace_overrides_and_off() {
        let p = policy("namespaces:\n  - match: [locked]\n    mode: enforce\n");
        assert!(!decide_connect(&p, &exec(None), "locked", &[]).allowed);
        assert!(decide_connect(&p, &exec(None), "team-a", &[]).allowed);
        let off = policy("rules:\n  pod-exec: off\n");
        assert_eq!(
            decide_connect(&off, &exec(None), "team-a", &[]),
            Decision {
                violations: vec![],
                allowed: true,
                signatures: vec![],
            }
        );
    }

    #[test]
    fn an_object_judged_through_its_owner_keeps_only_what_it_adds() {
        let p = policy("");
        let template = |extra: &str| {
            Workload::from_json(
                WorkloadKind::ReplicaSet,
                &format!(
                    r#"{{"spec":{{"template":{{"spec":{{"hostPID":true,"containers":[{PRIVILEGED}]{extra}}}}}}}}}"#
                ),
            )
            .unwrap()
        };
        let owner = template("");
        let judged = |object: &Workload| {
            evaluate(
                &p,
                object,
                &Context {
                    owner: Some(&owner),
                    ..Context::create("team-a", NOW)
                },
            )
        };
        let same = Workload::from_json(
            WorkloadKind::Pod,
            &format!(r#"{{"spec":{{"hostPID":true,"containers":[{PRIVILEGED}]}}}}"#),
        )
        .unwrap();
        assert_eq!(
            judged(&same),
            Decision {
                violations: vec![],
                allowed: true,
                signatures: vec![],
            }
        );
        // A debug container and an image changed in place are the pod's own.
        let debugged = Workload::from_json(
            WorkloadKind::Pod,
            &format!(
                r#"{{"spec":{{"hostPID":true,"containers":[{}],
                    "ephemeralContainers":[{{"name":"debug","image":"ghcr.io/corp/debug:1","securityContext":{{"privileged":true}}}}]}}}}"#,
                PRIVILEGED.replace("ghcr.io/corp/app:1", "quay.io/x/app")
            ),
        )
        .unwrap();
        let d = judged(&debugged);
        let rules: Vec<_> = d
            .violations
            .iter()
            .map(|v| (v.rule.as_str(), v.container.as_deref()))
            .collect();
        assert_eq!(
            rules,
            [
                ("privileged", Some("debug")),
                ("ephemeral-containers", Some("debug")),
                ("image-tag", Some("app"))
            ],
            "{d:?}"
        );
        // Without an owner the pod is judged in full.
        let alone = evaluate(&p, &same, &Context::create("team-a", NOW));
        assert_eq!(alone.violations.len(), 2);
    }
}
