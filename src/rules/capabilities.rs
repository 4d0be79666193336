//! `capabilities`: added Linux capabilities hand a container powers over the host kernel.
//!
//! Restricted fields:
//! - `spec.containers[*].securityContext.capabilities.add` (and `initContainers`, `ephemeralContainers`)
//! - under `restricted`: `spec.containers[*].securityContext.capabilities.drop` (and the other lists)
//!
//! Allowed values:
//! - `baseline`: `add` within AUDIT_WRITE, CHOWN, DAC_OVERRIDE, FOWNER, FSETID, KILL, MKNOD,
//!   NET_BIND_SERVICE, SETFCAP, SETGID, SETPCAP, SETUID, SYS_CHROOT, plus the rule's `allow` option.
//!   Names compare exactly, as Pod Security does: `chown` and `CAP_CHOWN` are not `CHOWN`.
//! - `restricted`: `add` within NET_BIND_SERVICE plus `allow`, and `drop` must contain `ALL`. Windows pods
//!   (`spec.os.name: windows`) are exempt from the `drop` requirement and judged on `add` by the baseline
//!   set, which is stricter than Pod Security's full exemption.

use super::{
    Check, CheckContext, DefaultMode, Finding, PodView, Rule, RuleId, RuleProfile, Severity,
};
use crate::policy::Profile;

pub const RULE: Rule = Rule {
    id: RuleId::Capabilities,
    severity: Severity::High,
    techniques: &["T1611"],
    profile: RuleProfile::Baseline,
    default_mode: DefaultMode::Policy,
    description: "capabilities added beyond the allowed set; under restricted, no drop of ALL",
    about_image: false,
    check: Check::Pod(check),
};

/// The capabilities Pod Security's baseline level allows a container to add.
pub const BASELINE_CAPABILITIES: &[&str] = &[
    "AUDIT_WRITE",
    "CHOWN",
    "DAC_OVERRIDE",
    "FOWNER",
    "FSETID",
    "KILL",
    "MKNOD",
    "NET_BIND_SERVICE",
    "SETFCAP",
    "SETGID",
    "SETPCAP",
    "SETUID",
    "SYS_CHROOT",
];

/// The capability Pod Security's restricted level allows a container to add.
pub const RESTRICTED_CAPABILITIES: &[&str] = &["NET_BIND_SERVICE"];

fn check(pod: &PodView<'_>, cx: &CheckContext<'_>, out: &mut Vec<Finding>) {
    let restricted = cx.profile == Profile::Restricted && !pod.is_windows();
    let allowed = if restricted {
        RESTRICTED_CAPABILITIES
    } else {
        BASELINE_CAPABILITIES
    };
    for (i, c) in pod.iter() {
        let caps = c
            .container
            .security_context
            .as_ref()
            .and_then(|s| s.capabilities.as_ref());
        if restricted && !caps.is_some_and(|caps| caps.drop.iter().any(|d| d == "ALL")) {
            out.push(pod.container_finding(
                RuleId::Capabilities,
                i,
                "securityContext.capabilities.drop",
                "drop-all",
                format!("container {:?} does not drop ALL capabilities", c.name()),
            ));
        }
        let Some(caps) = caps else {
            continue;
        };
        for (a, cap) in caps.add.iter().enumerate() {
            if allowed.contains(&cap.as_str()) || cx.options.capabilities_allow.contains(cap) {
                continue;
            }
            out.push(pod.container_finding(
                RuleId::Capabilities,
                i,
                &format!("securityContext.capabilities.add[{a}]"),
                cap.clone(),
                format!("container {:?} adds capability {cap}", c.name()),
            ));
        }
    }
}

#[cfg(test)]
mod tests {
    use super::super::testing::*;
    use super::*;
    use crate::policy::RuleOptions;

    const ADDS: &str = r#"{"containers":[{"name":"a","securityContext":{"capabilities":
        {"add":["CHOWN","NET_RAW","chown","CAP_CHOWN","NET_BIND_SERVICE"],"drop":["ALL"]}}}]}"#;

    #[test]
    fn baseline_allows_its_set_only() {
        let f = findings(RuleId::Capabilities, ADDS);
        assert_eq!(
            fields(&f),
            [
                "spec.containers[0].securityContext.capabilities.add[1]",
                "spec.containers[0].securityContext.capabilities.add[2]",
                "spec.containers[0].securityContext.capabilities.add[3]",
            ]
        );
        assert_eq!(f[0].message, r#"container "a" adds capability NET_RAW"#);
    }

    #[test]
    fn restricted_allows_net_bind_service_only_and_needs_drop_all() {
        let f = restricted(RuleId::Capabilities, ADDS);
        assert_eq!(f.len(), 4, "{f:?}");
        let f = restricted(
            RuleId::Capabilities,
            r#"{"containers":[{"name":"a","securityContext":{"capabilities":{"drop":["all"]}}},{"name":"b"}]}"#,
        );
        assert_eq!(
            fields(&f),
            [
                "spec.containers[0].securityContext.capabilities.drop",
                "spec.containers[1].securityContext.capabilities.drop",
            ]
        );
    }

    #[test]
    fn allow_option_extends_the_set() {
        let options = RuleOptions {
            capabilities_allow: vec![
                "NET_RAW".to_owned(),
                "chown".to_owned(),
                "CAP_CHOWN".to_owned(),
            ],
            ..Default::default()
        };
        assert!(findings_with(RuleId::Capabilities, ADDS, Profile::Baseline, &options).is_empty());
    }

    #[test]
    fn passes_restricted_with_drop_all() {
        let f = restricted(
            RuleId::Capabilities,
            r#"{"containers":[{"name":"a","securityContext":{"capabilities":{"drop":["ALL"],"add":["NET_BIND_SERVICE"]}}}]}"#,
        );
        assert!(f.is_empty());
    }

    #[test]
    fn windows_pods_skip_drop_all_but_not_the_add_check() {
        let spec = r#"{"os":{"name":"windows"},"containers":[{"name":"a"},
            {"name":"b","securityContext":{"capabilities":{"add":["SYS_ADMIN"]}}}]}"#;
        let f = restricted(RuleId::Capabilities, spec);
        assert_eq!(
            fields(&f),
            ["spec.containers[1].securityContext.capabilities.add[0]"]
        );
    }
}
