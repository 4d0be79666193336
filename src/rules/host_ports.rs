//! `host-ports`: a host port exposes the container on the node's own address, past network policy.
//!
//! Restricted fields:
//! - `spec.containers[*].ports[*].hostPort`
//! - `spec.initContainers[*].ports[*].hostPort`
//! - `spec.ephemeralContainers[*].ports[*].hostPort`
//!
//! Allowed values: undefined, `0`, and the ports in the rule's `allow` option.

use super::{
    Check, CheckContext, DefaultMode, Finding, PodView, Rule, RuleId, RuleProfile, Severity,
};

pub const RULE: Rule = Rule {
    id: RuleId::HostPorts,
    severity: Severity::Medium,
    techniques: &["T1611"],
    profile: RuleProfile::Baseline,
    default_mode: DefaultMode::Policy,
    description: "a container binds a port on the node (non-zero hostPort)",
    about_image: false,
    check: Check::Pod(check),
};

fn check(pod: &PodView<'_>, cx: &CheckContext<'_>, out: &mut Vec<Finding>) {
    for (i, c) in pod.iter() {
        for (p, port) in c.container.ports.iter().enumerate() {
            let Some(host_port) = port.host_port.filter(|&hp| hp != 0) else {
                continue;
            };
            if cx.options.host_ports_allow.contains(&host_port) {
                continue;
            }
            out.push(pod.container_finding(
                RuleId::HostPorts,
                i,
                &format!("ports[{p}].hostPort"),
                host_port.to_string(),
                format!("container {:?} binds host port {host_port}", c.name()),
            ));
        }
    }
}

#[cfg(test)]
mod tests {
    use super::super::testing::*;
    use super::*;
    use crate::policy::{Profile, RuleOptions};

    const SPEC: &str = r#"{"containers":[{"name":"a","ports":[{"containerPort":80},{"hostPort":0},
        {"containerPort":443,"hostPort":8443}]}]}"#;

    #[test]
    fn fails_on_non_zero_host_port() {
        let f = findings(RuleId::HostPorts, SPEC);
        assert_eq!(fields(&f), ["spec.containers[0].ports[2].hostPort"]);
        assert_eq!(f[0].message, r#"container "a" binds host port 8443"#);
    }

    #[test]
    fn passes_on_allowed_port() {
        let options = RuleOptions {
            host_ports_allow: vec![8443],
            ..Default::default()
        };
        assert!(findings_with(RuleId::HostPorts, SPEC, Profile::Baseline, &options).is_empty());
    }
}
