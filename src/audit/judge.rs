//! One listed object, judged as a CREATE by the webhook's engine, or through the controller that owns it.
//!
//! Nothing here talks to the cluster: the owner, when there is one, is fetched by the caller and handed in.

use k8s_openapi::apimachinery::pkg::apis::meta::v1::OwnerReference;
use serde::{Deserialize, Serialize};
use time::OffsetDateTime;

use crate::alert::ObjectRef;
use crate::engine::{self, Context, Violation};
use crate::policy::Policy;
use crate::workload::{Workload, WorkloadKind};

/// A listed object, read far enough to know what it is and what owns it.
#[derive(Debug)]
pub struct Listed<'a> {
    pub kind: WorkloadKind,
    pub object: ObjectRef,
    pub uid: Option<String>,
    /// The covered controller this object is judged through, for the kinds controllers make.
    pub owner: Option<Owner>,
    raw: &'a str,
}

/// A covered controller named by an object's `ownerReferences`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Owner {
    pub kind: WorkloadKind,
    pub name: String,
    pub uid: String,
}

impl std::fmt::Display for Owner {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "{} {}", self.kind, self.name)
    }
}

#[derive(Deserialize)]
struct Item {
    #[serde(default)]
    metadata: Option<Meta>,
}

#[derive(Deserialize)]
#[serde(rename_all = "camelCase")]
struct Meta {
    #[serde(default)]
    name: Option<String>,
    #[serde(default)]
    namespace: Option<String>,
    #[serde(default)]
    uid: Option<String>,
    #[serde(default)]
    owner_references: Option<Vec<OwnerReference>>,
}

/// Reads an object's identity and owner from its JSON, as listed in `namespace`.
pub fn read<'a>(
    kind: WorkloadKind,
    namespace: &str,
    raw: &'a str,
) -> Result<Listed<'a>, serde_json::Error> {
    let meta = serde_json::from_str::<Item>(raw)?.metadata;
    let (name, ns, uid, refs) = match meta {
        Some(m) => (m.name, m.namespace, m.uid, m.owner_references),
        None => (None, None, None, None),
    };
    // Controllers make Pods (ReplicaSets, StatefulSets, DaemonSets, Jobs, ReplicationControllers),
    // ReplicaSets (Deployments) and Jobs (CronJobs); an object of another kind is judged on its own, whoever
    // owns it.
    let judged_through_owner = matches!(
        kind,
        WorkloadKind::Pod | WorkloadKind::ReplicaSet | WorkloadKind::Job
    );
    let owner = refs
        .into_iter()
        .flatten()
        .filter(|_| judged_through_owner)
        .filter(|r| r.controller == Some(true))
        .find_map(|r| {
            let group = r.api_version.rsplit_once('/').map_or("", |(g, _)| g);
            let owner_kind = WorkloadKind::from_group_kind(group, &r.kind)?;
            let controller = !matches!(owner_kind, WorkloadKind::Pod | WorkloadKind::PodTemplate);
            (controller && !r.name.is_empty() && !r.uid.is_empty()).then_some(Owner {
                kind: owner_kind,
                name: r.name,
                uid: r.uid,
            })
        });
    Ok(Listed {
        kind,
        object: ObjectRef {
            api_version: super::cluster::api_version(kind).to_owned(),
            kind: kind.as_str().to_owned(),
            namespace: ns.unwrap_or_else(|| namespace.to_owned()),
            name: name.unwrap_or_else(|| "(unnamed)".to_owned()),
        },
        uid,
        owner,
        raw,
    })
}

/// The owner as the cluster has it: the object its reference names, decoded, when it exists under that uid.
pub fn owner_workload(owner: &Owner, text: &str) -> Option<Workload> {
    let listed = read(owner.kind, "", text).ok()?;
    if listed.uid.as_deref() != Some(owner.uid.as_str()) {
        // Another object of the same name: the one the reference meant is gone.
        return None;
    }
    Workload::from_json(owner.kind, text).ok()
}

/// The object an audit result is about.
#[derive(Debug, Clone, Serialize)]
#[serde(rename_all = "camelCase")]
pub struct AuditObject {
    #[serde(flatten)]
    pub object: ObjectRef,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub uid: Option<String>,
}

/// One object's result.
#[derive(Debug, Clone, Serialize)]
pub struct AuditResult {
    pub object: AuditObject,
    /// `allowed` or `denied`, as the webhook would decide a CREATE of it.
    pub decision: &'static str,
    /// The owner it was judged through: its violations are only those its owner's template lacks.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub beyond: Option<String>,
    /// Why the object could not be read as its kind; the webhook denies such an object.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub error: Option<String>,
    pub violations: Vec<Violation>,
}

/// What became of one listed object.
// One at a time, matched at once: boxing the result would only add an allocation per object.
#[allow(clippy::large_enum_variant)]
#[derive(Debug)]
pub enum Outcome {
    /// Judged through its owner, and adding nothing of its own.
    ThroughOwner,
    /// Judged: with or without violations.
    Judged(AuditResult),
}

/// Judges a listed object at `now`. `owner` is its owner's workload when [`Listed::owner`] names one that
/// exists; a Pod is then judged for what it adds to its owner's template, and a ReplicaSet or Job is left
/// to its owner entirely.
pub fn judge(
    policy: &Policy,
    listed: &Listed<'_>,
    owner: Option<&Workload>,
    now: OffsetDateTime,
) -> Outcome {
    if owner.is_some() && listed.kind != WorkloadKind::Pod {
        return Outcome::ThroughOwner;
    }
    let object = AuditObject {
        object: listed.object.clone(),
        uid: listed.uid.clone(),
    };
    let workload = match Workload::from_json(listed.kind, listed.raw) {
        Ok(w) => w,
        Err(e) => {
            return Outcome::Judged(AuditResult {
                object,
                decision: "denied",
                beyond: None,
                error: Some(format!("vigil could not read the {}: {e}", listed.kind)),
                violations: Vec::new(),
            });
        }
    };
    let decision = engine::evaluate(
        policy,
        &workload,
        &Context {
            owner,
            ..Context::create(&listed.object.namespace, now)
        },
    );
    let beyond = owner.and(listed.owner.as_ref()).map(Owner::to_string);
    if beyond.is_some() && decision.violations.is_empty() {
        return Outcome::ThroughOwner;
    }
    Outcome::Judged(AuditResult {
        object,
        decision: crate::alert::decision_word(&decision),
        beyond,
        error: None,
        violations: decision.violations,
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    const NOW: OffsetDateTime = time::macros::datetime!(2026-11-22 15:04:05 UTC);

    fn policy() -> Policy {
        Policy::parse(
            "apiVersion: vigil.dev/v1alpha1\nkind: Policy\nmode: enforce\nexemptions:\n  - name: tools\n    reason: r\n    namespaces: [tools]\n  - name: ci\n    reason: r\n    users: [ci]\n",
            "p",
        )
        .unwrap()
    }

    fn pod(namespace: &str, owner: &str, extra: &str) -> String {
        format!(
            r#"{{"metadata":{{"name":"web-1","namespace":"{namespace}","uid":"u-pod","ownerReferences":[{owner}]}},
               "spec":{{"containers":[{{"name":"app","image":"ghcr.io/corp/app:1","securityContext":{{"privileged":true}}}}]{extra}}}}}"#
        )
    }

    const RS_OWNER: &str = r#"{"apiVersion":"apps/v1","kind":"ReplicaSet","name":"web","uid":"u-rs","controller":true}"#;

    fn replicaset(uid: &str) -> String {
        format!(
            r#"{{"metadata":{{"name":"web","namespace":"team-a","uid":"{uid}"}},"spec":{{"template":{{"spec":
               {{"containers":[{{"name":"app","image":"ghcr.io/corp/app:1","securityContext":{{"privileged":true}}}}]}}}}}}}}"#
        )
    }

    #[test]
    fn owners_are_covered_controllers_only() {
        let text = pod("team-a", RS_OWNER, "");
        let listed = read(WorkloadKind::Pod, "team-a", &text).unwrap();
        assert_eq!(
            listed.owner,
            Some(Owner {
                kind: WorkloadKind::ReplicaSet,
                name: "web".into(),
                uid: "u-rs".into()
            })
        );
        assert_eq!(listed.uid.as_deref(), Some("u-pod"));
        for other in [
            r#"{"apiVersion":"v1","kind":"Node","name":"n","uid":"u","controller":true}"#,
            r#"{"apiVersion":"argoproj.io/v1alpha1","kind":"Rollout","name":"r","uid":"u","controller":true}"#,
            r#"{"apiVersion":"apps/v1","kind":"ReplicaSet","name":"web","uid":"u-rs"}"#,
        ] {
            let text = pod("team-a", other, "");
            assert_eq!(
                read(WorkloadKind::Pod, "team-a", &text).unwrap().owner,
                None,
                "{other}"
            );
        }
        // A Deployment is judged on its own whoever owns it.
        let deployment = r#"{"metadata":{"name":"d","ownerReferences":[{"apiVersion":"apps/v1","kind":"Deployment","name":"x","uid":"u","controller":true}]}}"#;
        assert_eq!(
            read(WorkloadKind::Deployment, "team-a", deployment)
                .unwrap()
                .owner,
            None
        );
    }

    #[test]
    fn a_pod_adds_only_what_its_owner_lacks() {
        let policy = policy();
        let owner = owner_workload(
            &Owner {
                kind: WorkloadKind::ReplicaSet,
                name: "web".into(),
                uid: "u-rs".into(),
            },
            &replicaset("u-rs"),
        )
        .expect("the owner");
        let text = pod("team-a", RS_OWNER, "");
        let listed = read(WorkloadKind::Pod, "team-a", &text).unwrap();
        assert!(matches!(
            judge(&policy, &listed, Some(&owner), NOW),
            Outcome::ThroughOwner
        ));
        // Without its owner, it is judged in full.
        let Outcome::Judged(full) = judge(&policy, &listed, None, NOW) else {
            panic!("judged")
        };
        assert_eq!(full.decision, "denied");
        assert_eq!(full.beyond, None);
        // A debug container is its own.
        let text = pod(
            "team-a",
            RS_OWNER,
            r#","ephemeralContainers":[{"name":"dbg","image":"ghcr.io/corp/dbg:1"}]"#,
        );
        let listed = read(WorkloadKind::Pod, "team-a", &text).unwrap();
        let Outcome::Judged(own) = judge(&policy, &listed, Some(&owner), NOW) else {
            panic!("judged")
        };
        assert_eq!(own.beyond.as_deref(), Some("ReplicaSet web"));
        let rules: Vec<_> = own.violations.iter().map(|v| v.rule.as_str()).collect();
        assert_eq!(rules, ["ephemeral-containers"]);
    }

    #[test]
    fn an_owner_of_another_uid_is_gone() {
        let owner = Owner {
            kind: WorkloadKind::ReplicaSet,
            name: "web".into(),
            uid: "u-rs".into(),
        };
        assert!(owner_workload(&owner, &replicaset("u-other")).is_none());
    }

    #[test]
    fn replicasets_and_jobs_are_left_to_their_owner() {
        let policy = policy();
        let text = replicaset("u-rs");
        let listed = read(WorkloadKind::ReplicaSet, "team-a", &text).unwrap();
        let owner = Workload::from_json(WorkloadKind::ReplicaSet, &text).unwrap();
        assert!(matches!(
            judge(&policy, &listed, Some(&owner), NOW),
            Outcome::ThroughOwner
        ));
    }

    #[test]
    fn exemptions_that_need_a_requester_do_not_apply() {
        let policy = policy();
        let tools = pod("tools", "", "");
        let team = pod("team-a", "", "");
        let decide = |text: &str, ns: &str| {
            let listed = read(WorkloadKind::Pod, ns, text).unwrap();
            match judge(&policy, &listed, None, NOW) {
                Outcome::Judged(r) => r,
                Outcome::ThroughOwner => panic!("no owner"),
            }
        };
        let exempted = decide(&tools, "tools");
        assert_eq!(exempted.decision, "allowed");
        assert_eq!(exempted.violations[0].exemption.as_deref(), Some("tools"));
        let denied = decide(&team, "team-a");
        assert_eq!(denied.decision, "denied");
        assert_eq!(denied.violations[0].exemption, None, "ci names a user");
    }

    #[test]
    fn an_unreadable_object_is_denied_with_the_reason() {
        let text = r#"{"metadata":{"name":"bad","namespace":"team-a"},"spec":{"containers":[{"name":"a","image":5}]}}"#;
        let listed = read(WorkloadKind::Pod, "team-a", text).unwrap();
        let Outcome::Judged(r) = judge(&policy(), &listed, None, NOW) else {
            panic!("judged")
        };
        assert_eq!(r.decision, "denied");
        assert!(
            r.error
                .as_deref()
                .unwrap()
                .contains("spec.containers[0].image"),
            "{r:?}"
        );
    }
}
