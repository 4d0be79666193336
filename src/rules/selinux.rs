//! `selinux`: a custom SELinux type, user or role can lift the confinement the runtime gives containers.
//!
//! Restricted fields:
//! - `spec.securityContext.seLinuxOptions.{type,user,role}`
//! - `spec.containers[*].securityContext.seLinuxOptions.{type,user,role}` (and the other lists)
//!
//! Allowed values: `type` undefined, empty, `container_t`, `container_init_t`, `container_kvm_t` or
//! `container_engine_t`; `user` and `role` undefined or empty. `level` is not restricted.

use super::{
    Check, CheckContext, DefaultMode, Finding, PodView, Rule, RuleId, RuleProfile, Severity,
};
use crate::workload::SeLinuxOptions;

pub const RULE: Rule = Rule {
    id: RuleId::SeLinux,
    severity: Severity::Medium,
    techniques: &["T1611"],
    profile: RuleProfile::Baseline,
    default_mode: DefaultMode::Policy,
    description: "an SELinux type outside the container types, or any SELinux user or role",
    about_image: false,
    check: Check::Pod(check),
};

const ALLOWED_TYPES: &[&str] = &[
    "",
    "container_t",
    "container_init_t",
    "container_kvm_t",
    "container_engine_t",
];

/// The offending parts of one `seLinuxOptions`: (field, value).
fn offending(options: &SeLinuxOptions) -> impl Iterator<Item = (&'static str, &str)> {
    let ty = options
        .type_
        .as_deref()
        .filter(|t| !ALLOWED_TYPES.contains(t))
        .map(|t| ("type", t));
    let user = options
        .user
        .as_deref()
        .filter(|u| !u.is_empty())
        .map(|u| ("user", u));
    let role = options
        .role
        .as_deref()
        .filter(|r| !r.is_empty())
        .map(|r| ("role", r));
    [ty, user, role].into_iter().flatten()
}

fn check(pod: &PodView<'_>, _: &CheckContext<'_>, out: &mut Vec<Finding>) {
    if let Some(options) = pod
        .workload
        .spec
        .security_context
        .as_ref()
        .and_then(|s| s.se_linux_options.as_ref())
    {
        for (field, value) in offending(options) {
            out.push(pod.pod_finding(
                RuleId::SeLinux,
                &format!("securityContext.seLinuxOptions.{field}"),
                field,
                format!("the pod sets SELinux {field} {value:?}"),
            ));
        }
    }
    for (i, c) in pod.iter() {
        let Some(options) = c
            .container
            .security_context
            .as_ref()
            .and_then(|s| s.se_linux_options.as_ref())
        else {
            continue;
        };
        for (field, value) in offending(options) {
            out.push(pod.container_finding(
                RuleId::SeLinux,
                i,
                &format!("securityContext.seLinuxOptions.{field}"),
                field,
                format!("container {:?} sets SELinux {field} {value:?}", c.name()),
            ));
        }
    }
}

#[cfg(test)]
mod tests {
    use super::super::testing::*;
    use super::*;

    #[test]
    fn fails_on_type_user_role() {
        let f = findings(
            RuleId::SeLinux,
            r#"{"securityContext":{"seLinuxOptions":{"user":"u","role":"r"}},
                "containers":[{"name":"a","securityContext":{"seLinuxOptions":{"type":"spc_t"}}}]}"#,
        );
        assert_eq!(
            fields(&f),
            [
                "spec.securityContext.seLinuxOptions.user",
                "spec.securityContext.seLinuxOptions.role",
                "spec.containers[0].securityContext.seLinuxOptions.type",
            ]
        );
        assert_eq!(f[2].message, r#"container "a" sets SELinux type "spc_t""#);
    }

    #[test]
    fn passes_on_container_types_and_levels() {
        let f = findings(
            RuleId::SeLinux,
            r#"{"securityContext":{"seLinuxOptions":{"type":"container_t","level":"s0:c1"}},
                "containers":[{"name":"a","securityContext":{"seLinuxOptions":{"type":"container_engine_t","user":""}}}]}"#,
        );
        assert!(f.is_empty());
    }
}
