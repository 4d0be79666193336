//! `privilege-escalation`: without `allowPrivilegeEscalation: false`, setuid binaries can gain privileges
//! inside the container.
//!
//! Restricted fields:
//! - `spec.containers[*].securityContext.allowPrivilegeEscalation` (and `initContainers`,
//!   `ephemeralContainers`)
//!
//! Allowed values: `false` only. Windows pods (`spec.os.name: windows`) are exempt, as in Pod Security.

use super::{
    Check, CheckContext, DefaultMode, Finding, PodView, Rule, RuleId, RuleProfile, Severity,
};

pub const RULE: Rule = Rule {
    id: RuleId::PrivilegeEscalation,
    severity: Severity::Medium,
    techniques: &["T1548", "T1611"],
    profile: RuleProfile::Restricted,
    default_mode: DefaultMode::Policy,
    description: "a container does not set allowPrivilegeEscalation: false",
    about_image: false,
    check: Check::Pod(check),
};

fn check(pod: &PodView<'_>, _: &CheckContext<'_>, out: &mut Vec<Finding>) {
    if pod.is_windows() {
        return;
    }
    for (i, c) in pod.iter() {
        let value = c
            .container
            .security_context
            .as_ref()
            .and_then(|s| s.allow_privilege_escalation);
        if value != Some(false) {
            let how = if value == Some(true) {
                "sets allowPrivilegeEscalation: true"
            } else {
                "does not set allowPrivilegeEscalation: false"
            };
            out.push(pod.container_finding(
                RuleId::PrivilegeEscalation,
                i,
                "securityContext.allowPrivilegeEscalation",
                "allowPrivilegeEscalation",
                format!("container {:?} {how}", c.name()),
            ));
        }
    }
}

#[cfg(test)]
mod tests {
    use super::super::testing::*;
    use super::*;

    #[test]
    fn fails_unless_false() {
        let f = restricted(
            RuleId::PrivilegeEscalation,
            r#"{"containers":[{"name":"a"},{"name":"b","securityContext":{"allowPrivilegeEscalation":true}},
                {"name":"c","securityContext":{"allowPrivilegeEscalation":false}}]}"#,
        );
        assert_eq!(
            fields(&f),
            [
                "spec.containers[0].securityContext.allowPrivilegeEscalation",
                "spec.containers[1].securityContext.allowPrivilegeEscalation",
            ]
        );
    }

    #[test]
    fn windows_pods_are_exempt() {
        assert!(
            restricted(
                RuleId::PrivilegeEscalation,
                r#"{"os":{"name":"windows"},"containers":[{"name":"a"}]}"#
            )
            .is_empty()
        );
    }
}
