//! `proc-mount`: an unmasked /proc exposes kernel interfaces that the default mask hides from containers.
//!
//! Restricted fields:
//! - `spec.containers[*].securityContext.procMount` (and `initContainers`, `ephemeralContainers`)
//!
//! Allowed values: undefined, `Default`. Under `baseline`, a pod in its own user namespace
//! (`spec.hostUsers: false`) may use any value, as in Pod Security since 1.35; `restricted` never relaxes.

use super::{
    Check, CheckContext, DefaultMode, Finding, PodView, Rule, RuleId, RuleProfile, Severity,
};
use crate::policy::Profile;

pub const RULE: Rule = Rule {
    id: RuleId::ProcMount,
    severity: Severity::High,
    techniques: &["T1611"],
    profile: RuleProfile::Baseline,
    default_mode: DefaultMode::Policy,
    description: "a container asks for an unmasked /proc (procMount other than Default)",
    about_image: false,
    check: Check::Pod(check),
};

fn check(pod: &PodView<'_>, cx: &CheckContext<'_>, out: &mut Vec<Finding>) {
    if cx.profile == Profile::Baseline && pod.workload.spec.host_users == Some(false) {
        return;
    }
    for (i, c) in pod.iter() {
        let proc_mount = c
            .container
            .security_context
            .as_ref()
            .and_then(|s| s.proc_mount.as_deref());
        if let Some(value) = proc_mount.filter(|v| *v != "Default") {
            out.push(pod.container_finding(
                RuleId::ProcMount,
                i,
                "securityContext.procMount",
                "procMount",
                format!("container {:?} sets procMount {value:?}", c.name()),
            ));
        }
    }
}

#[cfg(test)]
mod tests {
    use super::super::testing::*;
    use super::*;

    const UNMASKED: &str =
        r#"{"containers":[{"name":"a","securityContext":{"procMount":"Unmasked"}}]}"#;

    #[test]
    fn fails_on_unmasked() {
        assert_eq!(
            fields(&findings(RuleId::ProcMount, UNMASKED)),
            ["spec.containers[0].securityContext.procMount"]
        );
    }

    #[test]
    fn passes_on_default_or_unset() {
        let f = findings(
            RuleId::ProcMount,
            r#"{"containers":[{"name":"a","securityContext":{"procMount":"Default"}},{"name":"b"}]}"#,
        );
        assert!(f.is_empty());
    }

    #[test]
    fn user_namespaces_relax_baseline_only() {
        let spec = UNMASKED.replacen('{', r#"{"hostUsers":false,"#, 1);
        assert!(findings(RuleId::ProcMount, &spec).is_empty());
        assert_eq!(restricted(RuleId::ProcMount, &spec).len(), 1);
    }
}
