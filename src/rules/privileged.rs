//! `privileged`: a container that runs privileged has every capability and every device of the host.
//!
//! Restricted fields:
//! - `spec.containers[*].securityContext.privileged`
//! - `spec.initContainers[*].securityContext.privileged`
//! - `spec.ephemeralContainers[*].securityContext.privileged`
//!
//! Allowed values: undefined, `false`.

use super::{
    Check, CheckContext, DefaultMode, Finding, PodView, Rule, RuleId, RuleProfile, Severity,
};

pub const RULE: Rule = Rule {
    id: RuleId::Privileged,
    severity: Severity::Critical,
    techniques: &["T1611", "T1610"],
    profile: RuleProfile::Baseline,
    default_mode: DefaultMode::Policy,
    description: "a container runs privileged (securityContext.privileged: true)",
    about_image: false,
    check: Check::Pod(check),
};

fn check(pod: &PodView<'_>, _: &CheckContext<'_>, out: &mut Vec<Finding>) {
    for (i, c) in pod.iter() {
        if c.container
            .security_context
            .as_ref()
            .and_then(|s| s.privileged)
            == Some(true)
        {
            out.push(pod.container_finding(
                RuleId::Privileged,
                i,
                "securityContext.privileged",
                "privileged",
                format!("container {:?} runs privileged", c.name()),
            ));
        }
    }
}

#[cfg(test)]
mod tests {
    use super::super::testing::*;
    use super::*;
    use crate::policy::Profile;
    use crate::workload::WorkloadKind;

    #[test]
    fn fails_on_privileged_in_any_list() {
        let f = findings(
            RuleId::Privileged,
            r#"{"containers":[{"name":"a"},{"name":"b","securityContext":{"privileged":true}}],
                "initContainers":[{"name":"i","securityContext":{"privileged":true}}],
                "ephemeralContainers":[{"name":"d","securityContext":{"privileged":true}}]}"#,
        );
        assert_eq!(
            fields(&f),
            [
                "spec.initContainers[0].securityContext.privileged",
                "spec.containers[1].securityContext.privileged",
                "spec.ephemeralContainers[0].securityContext.privileged",
            ]
        );
        assert_eq!(f[1].message, r#"container "b" runs privileged"#);
        assert_eq!(f[1].severity, Severity::Critical);
    }

    #[test]
    fn passes_when_false_or_unset() {
        let f = findings(
            RuleId::Privileged,
            r#"{"containers":[{"name":"a"},{"name":"b","securityContext":{"privileged":false}}]}"#,
        );
        assert!(f.is_empty());
    }

    #[test]
    fn paths_point_into_a_cronjob() {
        let object = r#"{"spec":{"jobTemplate":{"spec":{"template":{"spec":{"initContainers":[
            {"name":"x"},{"name":"y","securityContext":{"privileged":true}}],"containers":[]}}}}}}"#;
        let f = findings_for(
            RuleId::Privileged,
            object,
            WorkloadKind::CronJob,
            Profile::Baseline,
            &Default::default(),
        );
        assert_eq!(
            fields(&f),
            ["spec.jobTemplate.spec.template.spec.initContainers[1].securityContext.privileged"]
        );
    }
}
