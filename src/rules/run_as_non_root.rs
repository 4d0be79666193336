//! `run-as-non-root`: a container running as root is one kernel bug away from root on the host.
//!
//! Restricted fields:
//! - `spec.securityContext.runAsNonRoot`, `spec.securityContext.runAsUser`
//! - `spec.containers[*].securityContext.runAsNonRoot`, `.runAsUser` (and the other lists)
//!
//! Allowed values: every container has `runAsNonRoot: true`, its own or the pod's, and nothing sets it to
//! `false`; no `runAsUser` is 0. A pod in its own user namespace (`spec.hostUsers: false`) is exempt, as
//! in Pod Security since 1.35: root inside it is not root on the host.

use super::{
    Check, CheckContext, DefaultMode, Finding, PodView, Rule, RuleId, RuleProfile, Severity,
};

pub const RULE: Rule = Rule {
    id: RuleId::RunAsNonRoot,
    severity: Severity::Medium,
    techniques: &["T1611"],
    profile: RuleProfile::Restricted,
    default_mode: DefaultMode::Policy,
    description: "a container may run as root (runAsNonRoot not true, or runAsUser: 0)",
    about_image: false,
    check: Check::Pod(check),
};

fn check(pod: &PodView<'_>, _: &CheckContext<'_>, out: &mut Vec<Finding>) {
    let spec = &pod.workload.spec;
    if spec.host_users == Some(false) {
        return;
    }
    let pod_sc = spec.security_context.as_ref();
    let pod_non_root = pod_sc.and_then(|s| s.run_as_non_root);
    if pod_non_root == Some(false) {
        out.push(pod.pod_finding(
            RuleId::RunAsNonRoot,
            "securityContext.runAsNonRoot",
            "runAsNonRoot",
            "the pod sets runAsNonRoot: false".to_owned(),
        ));
    }
    if pod_sc.and_then(|s| s.run_as_user) == Some(0) {
        out.push(pod.pod_finding(
            RuleId::RunAsNonRoot,
            "securityContext.runAsUser",
            "runAsUser",
            "the pod sets runAsUser: 0 (root)".to_owned(),
        ));
    }
    for (i, c) in pod.iter() {
        let sc = c.container.security_context.as_ref();
        let message = match sc.and_then(|s| s.run_as_non_root) {
            Some(false) => Some(format!("container {:?} sets runAsNonRoot: false", c.name())),
            None if pod_non_root != Some(true) => Some(format!(
                "container {:?} does not set runAsNonRoot: true, and neither does the pod",
                c.name()
            )),
            _ => None,
        };
        if let Some(message) = message {
            out.push(pod.container_finding(
                RuleId::RunAsNonRoot,
                i,
                "securityContext.runAsNonRoot",
                "runAsNonRoot",
                message,
            ));
        }
        if sc.and_then(|s| s.run_as_user) == Some(0) {
            out.push(pod.container_finding(
                RuleId::RunAsNonRoot,
                i,
                "securityContext.runAsUser",
                "runAsUser",
                format!("container {:?} sets runAsUser: 0 (root)", c.name()),
            ));
        }
    }
}

#[cfg(test)]
mod tests {
    use super::super::testing::*;
    use super::*;

    #[test]
    fn container_false_beats_pod_true() {
        let f = restricted(
            RuleId::RunAsNonRoot,
            r#"{"securityContext":{"runAsNonRoot":true},"containers":[{"name":"a"},
                {"name":"b","securityContext":{"runAsNonRoot":false}}]}"#,
        );
        assert_eq!(
            fields(&f),
            ["spec.containers[1].securityContext.runAsNonRoot"]
        );
    }

    #[test]
    fn unset_everywhere_fails_per_container() {
        let f = restricted(
            RuleId::RunAsNonRoot,
            r#"{"containers":[{"name":"a"}],"initContainers":[{"name":"i"}]}"#,
        );
        assert_eq!(
            fields(&f),
            [
                "spec.initContainers[0].securityContext.runAsNonRoot",
                "spec.containers[0].securityContext.runAsNonRoot"
            ]
        );
    }

    #[test]
    fn run_as_user_zero_fails_even_with_non_root() {
        let f = restricted(
            RuleId::RunAsNonRoot,
            r#"{"securityContext":{"runAsNonRoot":true,"runAsUser":0},"containers":[{"name":"a","securityContext":{"runAsUser":0}}]}"#,
        );
        assert_eq!(
            fields(&f),
            [
                "spec.securityContext.runAsUser",
                "spec.containers[0].securityContext.runAsUser"
            ]
        );
    }

    #[test]
    fn passes_with_pod_or_container_true() {
        let spec = r#"{"containers":[{"name":"a","securityContext":{"runAsNonRoot":true,"runAsUser":1000}}]}"#;
        assert!(restricted(RuleId::RunAsNonRoot, spec).is_empty());
        let spec = r#"{"securityContext":{"runAsNonRoot":true},"containers":[{"name":"a"}]}"#;
        assert!(restricted(RuleId::RunAsNonRoot, spec).is_empty());
    }

    #[test]
    fn user_namespaces_are_exempt() {
        let spec =
            r#"{"hostUsers":false,"securityContext":{"runAsUser":0},"containers":[{"name":"a"}]}"#;
        assert!(restricted(RuleId::RunAsNonRoot, spec).is_empty());
    }
}
