//! `seccomp`: without a seccomp profile every system call reaches the host kernel.
//!
//! Restricted fields:
//! - `spec.securityContext.seccompProfile.type`
//! - `spec.containers[*].securityContext.seccompProfile.type` (and `initContainers`, `ephemeralContainers`)
//!
//! Allowed values: a profile that is set must be `RuntimeDefault` or `Localhost` (`Unconfined` is not).
//! Under `restricted`, every container must also have one, its own or the pod's; Windows pods are exempt
//! from that requirement, as in Pod Security.

use super::{
    Check, CheckContext, DefaultMode, Finding, PodView, Rule, RuleId, RuleProfile, Severity,
};
use crate::policy::Profile;
use crate::workload::SecurityProfile;

pub const RULE: Rule = Rule {
    id: RuleId::Seccomp,
    severity: Severity::Medium,
    techniques: &["T1611"],
    profile: RuleProfile::Baseline,
    default_mode: DefaultMode::Policy,
    description: "seccomp Unconfined; under restricted, no RuntimeDefault or Localhost profile",
    about_image: false,
    check: Check::Pod(check),
};

fn check(pod: &PodView<'_>, cx: &CheckContext<'_>, out: &mut Vec<Finding>) {
    let require = cx.profile == Profile::Restricted && !pod.is_windows();
    let pod_profile = pod
        .workload
        .spec
        .security_context
        .as_ref()
        .and_then(|s| s.seccomp_profile.as_ref());
    if let Some(profile) = pod_profile.filter(|p| !p.confines()) {
        out.push(pod.pod_finding(
            RuleId::Seccomp,
            "securityContext.seccompProfile.type",
            "seccomp",
            format!(
                "the pod sets seccomp profile {:?}",
                profile.type_.as_deref().unwrap_or_default()
            ),
        ));
    }
    let pod_ok = pod_profile.is_some_and(SecurityProfile::confines);
    for (i, c) in pod.iter() {
        let profile = c
            .container
            .security_context
            .as_ref()
            .and_then(|s| s.seccomp_profile.as_ref());
        let message = match profile {
            Some(p) if !p.confines() => format!(
                "container {:?} sets seccomp profile {:?}",
                c.name(),
                p.type_.as_deref().unwrap_or_default()
            ),
            None if require && !pod_ok => format!(
                "container {:?} has no seccomp profile (set RuntimeDefault or Localhost on it or the pod)",
                c.name()
            ),
            _ => continue,
        };
        out.push(pod.container_finding(
            RuleId::Seccomp,
            i,
            "securityContext.seccompProfile.type",
            "seccomp",
            message,
        ));
    }
}

#[cfg(test)]
mod tests {
    use super::super::testing::*;
    use super::*;

    #[test]
    fn unconfined_fails_at_either_level() {
        let f = findings(
            RuleId::Seccomp,
            r#"{"securityContext":{"seccompProfile":{"type":"Unconfined"}},
                "containers":[{"name":"a","securityContext":{"seccompProfile":{"type":"Unconfined"}}},{"name":"b"}]}"#,
        );
        assert_eq!(
            fields(&f),
            [
                "spec.securityContext.seccompProfile.type",
                "spec.containers[0].securityContext.seccompProfile.type"
            ]
        );
    }

    #[test]
    fn baseline_passes_without_profile() {
        assert!(findings(RuleId::Seccomp, r#"{"containers":[{"name":"a"}]}"#).is_empty());
    }

    #[test]
    fn restricted_needs_a_profile_per_container() {
        let spec = r#"{"containers":[{"name":"a","securityContext":{"seccompProfile":{"type":"RuntimeDefault"}}},{"name":"b"}]}"#;
        assert_eq!(
            fields(&restricted(RuleId::Seccomp, spec)),
            ["spec.containers[1].securityContext.seccompProfile.type"]
        );
        let spec = r#"{"securityContext":{"seccompProfile":{"type":"Localhost"}},"containers":[{"name":"a"}]}"#;
        assert!(restricted(RuleId::Seccomp, spec).is_empty());
        let spec = r#"{"os":{"name":"windows"},"containers":[{"name":"a"}]}"#;
        assert!(restricted(RuleId::Seccomp, spec).is_empty());
    }
}
