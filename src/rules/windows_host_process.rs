//! `windows-host-process`: a Windows HostProcess container runs directly on the node, with its privileges.
//!
//! Restricted fields:
//! - `spec.securityContext.windowsOptions.hostProcess`
//! - `spec.containers[*].securityContext.windowsOptions.hostProcess`
//! - `spec.initContainers[*].securityContext.windowsOptions.hostProcess`
//! - `spec.ephemeralContainers[*].securityContext.windowsOptions.hostProcess`
//!
//! Allowed values: undefined, `false`.

use super::{
    Check, CheckContext, DefaultMode, Finding, PodView, Rule, RuleId, RuleProfile, Severity,
};

pub const RULE: Rule = Rule {
    id: RuleId::WindowsHostProcess,
    severity: Severity::Critical,
    techniques: &["T1611"],
    profile: RuleProfile::Baseline,
    default_mode: DefaultMode::Policy,
    description: "a Windows HostProcess container (windowsOptions.hostProcess: true)",
    about_image: false,
    check: Check::Pod(check),
};

fn check(pod: &PodView<'_>, _: &CheckContext<'_>, out: &mut Vec<Finding>) {
    let pod_level = pod
        .workload
        .spec
        .security_context
        .as_ref()
        .and_then(|s| s.windows_options.as_ref())
        .and_then(|w| w.host_process);
    if pod_level == Some(true) {
        out.push(pod.pod_finding(
            RuleId::WindowsHostProcess,
            "securityContext.windowsOptions.hostProcess",
            "hostProcess",
            "the pod runs as a Windows HostProcess".to_owned(),
        ));
    }
    for (i, c) in pod.iter() {
        let host_process = c
            .container
            .security_context
            .as_ref()
            .and_then(|s| s.windows_options.as_ref())
            .and_then(|w| w.host_process);
        if host_process == Some(true) {
            out.push(pod.container_finding(
                RuleId::WindowsHostProcess,
                i,
                "securityContext.windowsOptions.hostProcess",
                "hostProcess",
                format!("container {:?} runs as a Windows HostProcess", c.name()),
            ));
        }
    }
}

#[cfg(test)]
mod tests {
    use super::super::testing::*;
    use super::*;

    #[test]
    fn fails_at_pod_and_container_level() {
        let f = findings(
            RuleId::WindowsHostProcess,
            r#"{"securityContext":{"windowsOptions":{"hostProcess":true}},
                "containers":[{"name":"a","securityContext":{"windowsOptions":{"hostProcess":true}}}]}"#,
        );
        assert_eq!(
            fields(&f),
            [
                "spec.securityContext.windowsOptions.hostProcess",
                "spec.containers[0].securityContext.windowsOptions.hostProcess",
            ]
        );
    }

    #[test]
    fn passes_when_false_or_unset() {
        let f = findings(
            RuleId::WindowsHostProcess,
            r#"{"containers":[{"name":"a","securityContext":{"windowsOptions":{"hostProcess":false}}}]}"#,
        );
        assert!(f.is_empty());
    }
}
