//! `host-namespaces`: sharing the host's network, PID or IPC namespace breaks the pod's isolation.
//!
//! Restricted fields:
//! - `spec.hostNetwork`
//! - `spec.hostPID`
//! - `spec.hostIPC`
//!
//! Allowed values: undefined, `false`.

use super::{
    Check, CheckContext, DefaultMode, Finding, PodView, Rule, RuleId, RuleProfile, Severity,
};

pub const RULE: Rule = Rule {
    id: RuleId::HostNamespaces,
    severity: Severity::High,
    techniques: &["T1611"],
    profile: RuleProfile::Baseline,
    default_mode: DefaultMode::Policy,
    description: "the pod shares the host's network, PID or IPC namespace",
    about_image: false,
    check: Check::Pod(check),
};

fn check(pod: &PodView<'_>, _: &CheckContext<'_>, out: &mut Vec<Finding>) {
    let spec = &pod.workload.spec;
    let fields = [
        ("hostNetwork", spec.host_network, "network"),
        ("hostPID", spec.host_pid, "PID"),
        ("hostIPC", spec.host_ipc, "IPC"),
    ];
    for (field, value, what) in fields {
        if value == Some(true) {
            out.push(pod.pod_finding(
                RuleId::HostNamespaces,
                field,
                field,
                format!("the pod shares the host's {what} namespace ({field}: true)"),
            ));
        }
    }
}

#[cfg(test)]
mod tests {
    use super::super::testing::*;
    use super::*;

    #[test]
    fn fails_on_each_host_namespace() {
        let f = findings(
            RuleId::HostNamespaces,
            r#"{"hostNetwork":true,"hostPID":true,"hostIPC":true,"containers":[]}"#,
        );
        assert_eq!(
            fields(&f),
            ["spec.hostNetwork", "spec.hostPID", "spec.hostIPC"]
        );
        assert_eq!(
            f[1].message,
            "the pod shares the host's PID namespace (hostPID: true)"
        );
    }

    #[test]
    fn passes_when_false_or_unset() {
        assert!(
            findings(
                RuleId::HostNamespaces,
                r#"{"hostNetwork":false,"containers":[]}"#
            )
            .is_empty()
        );
    }
}
