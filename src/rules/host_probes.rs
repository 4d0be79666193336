//! `host-probes`: a probe or lifecycle handler with a `host` makes the kubelet connect to any address it
//! names, a way to reach hosts the pod's network policy forbids.
//!
//! Restricted fields, for every container list:
//! - `livenessProbe`, `readinessProbe`, `startupProbe`: `httpGet.host`, `tcpSocket.host`
//! - `lifecycle.postStart`, `lifecycle.preStop`: `httpGet.host`, `tcpSocket.host`
//!
//! Allowed values: undefined, `""`. Loopback addresses are not allowed either.

use super::{
    Check, CheckContext, DefaultMode, Finding, PodView, Rule, RuleId, RuleProfile, Severity,
};
use crate::workload::Handler;

pub const RULE: Rule = Rule {
    id: RuleId::HostProbes,
    severity: Severity::Medium,
    techniques: &["T1046"],
    profile: RuleProfile::Baseline,
    default_mode: DefaultMode::Policy,
    description: "a probe or lifecycle handler that names a host",
    about_image: false,
    check: Check::Pod(check),
};

fn check(pod: &PodView<'_>, _: &CheckContext<'_>, out: &mut Vec<Finding>) {
    for (i, c) in pod.iter() {
        let ct = c.container;
        let lifecycle = ct.lifecycle.as_ref();
        let handlers: [(&str, Option<&Handler>); 5] = [
            ("livenessProbe", ct.liveness_probe.as_ref()),
            ("readinessProbe", ct.readiness_probe.as_ref()),
            ("startupProbe", ct.startup_probe.as_ref()),
            (
                "lifecycle.postStart",
                lifecycle.and_then(|l| l.post_start.as_ref()),
            ),
            (
                "lifecycle.preStop",
                lifecycle.and_then(|l| l.pre_stop.as_ref()),
            ),
        ];
        for (path, handler) in handlers {
            let Some(handler) = handler else {
                continue;
            };
            for (kind, field) in [
                ("httpGet", &handler.http_get),
                ("tcpSocket", &handler.tcp_socket),
            ] {
                let Some(host) = field
                    .as_ref()
                    .and_then(|f| f.host.as_deref())
                    .filter(|h| !h.is_empty())
                else {
                    continue;
                };
                let rel = format!("{path}.{kind}.host");
                out.push(pod.container_finding(
                    RuleId::HostProbes,
                    i,
                    &rel,
                    rel.clone(),
                    format!("container {:?} {path} connects to host {host:?}", c.name()),
                ));
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::super::testing::*;
    use super::*;

    #[test]
    fn fails_on_any_host() {
        let f = findings(
            RuleId::HostProbes,
            r#"{"containers":[{"name":"a","livenessProbe":{"httpGet":{"host":"127.0.0.1","port":80}},
                "lifecycle":{"preStop":{"tcpSocket":{"host":"10.0.0.1","port":22}}}}],
                "initContainers":[{"name":"i","startupProbe":{"tcpSocket":{"host":"::1","port":1}}}]}"#,
        );
        assert_eq!(
            fields(&f),
            [
                "spec.initContainers[0].startupProbe.tcpSocket.host",
                "spec.containers[0].livenessProbe.httpGet.host",
                "spec.containers[0].lifecycle.preStop.tcpSocket.host",
            ]
        );
    }

    #[test]
    fn passes_on_empty_or_unset_host() {
        let f = findings(
            RuleId::HostProbes,
            r#"{"containers":[{"name":"a","livenessProbe":{"httpGet":{"host":"","port":80}},
                "readinessProbe":{"exec":{"command":["true"]}}}]}"#,
        );
        assert!(f.is_empty());
    }
}
