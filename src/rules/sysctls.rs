//! `sysctls`: a sysctl outside the namespaced safe set changes the node's kernel for every pod on it.
//!
//! Restricted fields:
//! - `spec.securityContext.sysctls[*].name`
//!
//! Allowed values: the Pod Security safe set as of 1.37, listed in `SAFE_SYSCTLS`.

use super::{
    Check, CheckContext, DefaultMode, Finding, PodView, Rule, RuleId, RuleProfile, Severity,
};

pub const RULE: Rule = Rule {
    id: RuleId::Sysctls,
    severity: Severity::Medium,
    techniques: &["T1611"],
    profile: RuleProfile::Baseline,
    default_mode: DefaultMode::Policy,
    description: "a sysctl outside the Pod Security safe set",
    about_image: false,
    check: Check::Pod(check),
};

/// The sysctls Pod Security allows at baseline (policy version 1.37).
pub const SAFE_SYSCTLS: &[&str] = &[
    "kernel.shm_rmid_forced",
    "net.ipv4.ip_local_port_range",
    "net.ipv4.tcp_syncookies",
    "net.ipv4.ping_group_range",
    "net.ipv4.ip_unprivileged_port_start",
    "net.ipv4.ip_local_reserved_ports",
    "net.ipv4.tcp_keepalive_time",
    "net.ipv4.tcp_fin_timeout",
    "net.ipv4.tcp_keepalive_intvl",
    "net.ipv4.tcp_keepalive_probes",
    "net.ipv4.tcp_rmem",
    "net.ipv4.tcp_wmem",
    "net.ipv4.tcp_slow_start_after_idle",
    "net.ipv4.tcp_notsent_lowat",
];

fn check(pod: &PodView<'_>, _: &CheckContext<'_>, out: &mut Vec<Finding>) {
    let Some(sc) = &pod.workload.spec.security_context else {
        return;
    };
    for (s, sysctl) in sc.sysctls.iter().enumerate() {
        if !SAFE_SYSCTLS.contains(&sysctl.name.as_str()) {
            out.push(pod.pod_finding(
                RuleId::Sysctls,
                &format!("securityContext.sysctls[{s}].name"),
                sysctl.name.clone(),
                format!(
                    "the pod sets sysctl {:?}, which is outside the safe set",
                    sysctl.name
                ),
            ));
        }
    }
}

#[cfg(test)]
mod tests {
    use super::super::testing::*;
    use super::*;

    #[test]
    fn fails_outside_the_safe_set() {
        let f = findings(
            RuleId::Sysctls,
            r#"{"securityContext":{"sysctls":[{"name":"net.ipv4.tcp_syncookies","value":"1"},
                {"name":"kernel.msgmax","value":"65536"}]},"containers":[]}"#,
        );
        assert_eq!(fields(&f), ["spec.securityContext.sysctls[1].name"]);
    }

    #[test]
    fn passes_on_the_1_37_additions() {
        let f = findings(
            RuleId::Sysctls,
            r#"{"securityContext":{"sysctls":[{"name":"net.ipv4.tcp_slow_start_after_idle"},
                {"name":"net.ipv4.tcp_notsent_lowat"}]},"containers":[]}"#,
        );
        assert!(f.is_empty());
    }
}
