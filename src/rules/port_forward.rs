//! `port-forward`: `kubectl port-forward` opens a tunnel from the client to a pod's ports, past Services,
//! NetworkPolicies and ingress controls (T1572): a database port reached from a laptop.
//!
//! Restricted requests:
//! - CONNECT on `pods/portforward` (PodPortForwardOptions: `ports`)
//!
//! Allowed values: none; the catalogue default is `audit`. The message names the ports when the request
//! carries them. kubectl's SPDY port-forward names them later, in the stream, so then it says so.

use super::{Check, DefaultMode, Finding, Rule, RuleId, RuleProfile, Severity, connect_finding};
use crate::connect::{Connect, ConnectKind};
use crate::policy::Mode;

pub const RULE: Rule = Rule {
    id: RuleId::PortForward,
    severity: Severity::Medium,
    techniques: &["T1572", "T1609"],
    profile: RuleProfile::Baseline,
    default_mode: DefaultMode::Fixed(Mode::Audit),
    description: "kubectl port-forward to a pod; records the ports",
    about_image: false,
    check: Check::Connect(check),
};

/// The most ports a message lists; the rest are counted.
const SHOWN_PORTS: usize = 32;

fn check(connect: &Connect, out: &mut Vec<Finding>) {
    if connect.kind != ConnectKind::PortForward {
        return;
    }
    let ports = &connect.ports;
    let message = match ports.len() {
        0 => {
            "port-forward to the pod (the request names no ports; kubectl names them in the stream)"
                .to_owned()
        }
        n => {
            let shown: Vec<String> = ports.iter().take(SHOWN_PORTS).map(i64::to_string).collect();
            let more = match n.saturating_sub(SHOWN_PORTS) {
                0 => String::new(),
                rest => format!(" and {rest} more"),
            };
            let noun = if n == 1 { "port" } else { "ports" };
            format!("port-forward to {noun} {}{more}", shown.join(", "))
        }
    };
    out.push(connect_finding(
        RuleId::PortForward,
        connect.kind.to_string(),
        message,
    ));
}

#[cfg(test)]
mod tests {
    use super::super::testing::*;
    use super::*;
    use rstest::rstest;

    #[rstest]
    #[case::two(r#"{"ports":[80,5432]}"#, "port-forward to ports 80, 5432")]
    #[case::one(r#"{"ports":[8080]}"#, "port-forward to port 8080")]
    #[case::none(
        "{}",
        "port-forward to the pod (the request names no ports; kubectl names them in the stream)"
    )]
    fn fails_on_every_port_forward(#[case] options: &str, #[case] message: &str) {
        let f = connect_findings(RuleId::PortForward, ConnectKind::PortForward, options);
        assert_eq!(fields(&f), ["pods/portforward"]);
        assert_eq!(f[0].message, message);
    }

    #[test]
    fn many_ports_are_counted_not_listed() {
        let ports: Vec<String> = (1..=1000).map(|p| p.to_string()).collect();
        let f = connect_findings(
            RuleId::PortForward,
            ConnectKind::PortForward,
            &format!(r#"{{"ports":[{}]}}"#, ports.join(",")),
        );
        assert!(
            f[0].message.ends_with(", 32 and 968 more"),
            "{}",
            f[0].message
        );
    }

    #[test]
    fn passes_on_exec_and_pods() {
        assert!(
            connect_findings(
                RuleId::PortForward,
                ConnectKind::Exec,
                r#"{"command":["id"]}"#
            )
            .is_empty()
        );
        assert!(findings(RuleId::PortForward, r#"{"containers":[{"name":"app"}]}"#).is_empty());
    }
}
