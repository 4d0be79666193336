//! `ephemeral-containers`: `kubectl debug` injects a container into a running pod, past the image and
//! rollout controls the pod was created under.
//!
//! Restricted fields:
//! - `spec.ephemeralContainers[*]`
//!
//! Allowed values: none. Under `updates: new-violations` only an ephemeral container the old pod lacked
//! counts as new, so a pod that was debugged once is not re-judged on every later update.

use super::{
    Check, CheckContext, DefaultMode, Finding, PodView, Rule, RuleId, RuleProfile, Severity,
};
use crate::policy::Mode;
use crate::workload::ContainerList;

pub const RULE: Rule = Rule {
    id: RuleId::EphemeralContainers,
    severity: Severity::Medium,
    techniques: &["T1610"],
    profile: RuleProfile::Baseline,
    default_mode: DefaultMode::Fixed(Mode::Audit),
    description: "an ephemeral container is added to a running pod (kubectl debug)",
    about_image: false,
    check: Check::Pod(check),
};

fn check(pod: &PodView<'_>, _: &CheckContext<'_>, out: &mut Vec<Finding>) {
    for (i, c) in pod
        .iter()
        .filter(|(_, c)| c.list == ContainerList::Ephemeral)
    {
        let image = c.container.image.as_deref().unwrap_or("(none)");
        let mut finding = pod.container_finding(
            RuleId::EphemeralContainers,
            i,
            "name",
            "ephemeral",
            format!(
                "ephemeral container {:?} (image {image}) is added to the pod",
                c.name()
            ),
        );
        // The finding is about the whole container, not its name field.
        finding.field.truncate(finding.field.len() - ".name".len());
        out.push(finding);
    }
}

#[cfg(test)]
mod tests {
    use super::super::testing::*;
    use super::*;

    #[test]
    fn fails_on_each_ephemeral_container() {
        let f = findings(
            RuleId::EphemeralContainers,
            r#"{"containers":[{"name":"app"}],"ephemeralContainers":[{"name":"debugger-x","image":"busybox"}]}"#,
        );
        assert_eq!(fields(&f), ["spec.ephemeralContainers[0]"]);
        assert_eq!(
            f[0].message,
            r#"ephemeral container "debugger-x" (image busybox) is added to the pod"#
        );
    }

    #[test]
    fn passes_without_ephemeral_containers() {
        assert!(
            findings(
                RuleId::EphemeralContainers,
                r#"{"containers":[{"name":"app"}]}"#
            )
            .is_empty()
        );
    }
}
