//! `host-path`: a hostPath volume mounts part of the node's filesystem into the pod.
//!
//! Restricted fields:
//! - `spec.volumes[*].hostPath`
//!
//! Allowed values: undefined, and paths at or below a prefix in the rule's `allow` option. The path is
//! normalized first (`//`, `.` and `..` resolved), so `/var/log/../../etc` is judged as `/etc`.
//!
//! Severity is critical for credential and runtime-socket paths, for anything below them, and for any
//! ancestor of them (mounting `/var` exposes `/var/lib/kubelet`).

use super::{
    Check, CheckContext, DefaultMode, Finding, PodView, Rule, RuleId, RuleProfile, Severity,
};

pub const RULE: Rule = Rule {
    id: RuleId::HostPath,
    severity: Severity::High,
    techniques: &["T1611", "T1552.001"],
    profile: RuleProfile::Baseline,
    default_mode: DefaultMode::Policy,
    description: "a hostPath volume; critical for /, credential paths and container-runtime sockets",
    about_image: false,
    check: Check::Pod(check),
};

/// Host paths whose exposure hands over the node or its credentials.
pub const CRITICAL_PATHS: &[&str] = &[
    "/etc",
    "/root",
    "/home",
    "/proc",
    "/sys",
    "/dev",
    "/boot",
    "/var/lib/kubelet",
    "/etc/kubernetes",
    "/var/run/secrets",
    "/run/secrets",
    "/var/lib/docker",
    "/var/lib/containerd",
    "/var/run/docker.sock",
    "/run/docker.sock",
    "/var/run/containerd",
    "/run/containerd",
    "/var/run/crio",
    "/run/crio",
    "/var/run/cri-dockerd.sock",
    "/run/cri-dockerd.sock",
];

/// Resolves `//`, `.` and `..` in an absolute path. Returns `None` for a path that is not absolute.
pub fn normalize(path: &str) -> Option<String> {
    if !path.starts_with('/') {
        return None;
    }
    let mut parts: Vec<&str> = Vec::new();
    for part in path.split('/') {
        match part {
            "" | "." => {}
            ".." => {
                parts.pop();
            }
            other => parts.push(other),
        }
    }
    Some(format!("/{}", parts.join("/")))
}

/// Whether `path` is `prefix` or lies below it, at a `/` boundary. Both must be normalized.
fn at_or_below(path: &str, prefix: &str) -> bool {
    prefix == "/"
        || path == prefix
        || (path.starts_with(prefix) && path.as_bytes().get(prefix.len()) == Some(&b'/'))
}

/// Whether a normalized host path is critical: a sensitive path, something below one, or an ancestor of one.
pub fn is_critical(path: &str) -> bool {
    CRITICAL_PATHS
        .iter()
        .any(|c| at_or_below(path, c) || at_or_below(c, path))
}

fn check(pod: &PodView<'_>, cx: &CheckContext<'_>, out: &mut Vec<Finding>) {
    for (v, volume) in pod.workload.spec.volumes.iter().enumerate() {
        let Some(raw) = &volume.host_path else {
            continue;
        };
        // A relative path is not valid in Kubernetes; judge it as the worst case.
        let path = normalize(raw).unwrap_or_else(|| "/".to_owned());
        if cx
            .options
            .host_path_allow
            .iter()
            .any(|p| at_or_below(&path, p))
        {
            continue;
        }
        let critical = is_critical(&path);
        let shown = if &path == raw {
            format!("{path:?}")
        } else {
            format!("{raw:?} (that is, {path:?})")
        };
        let message = format!(
            "volume {:?} mounts host path {shown}{}",
            volume.name,
            if critical {
                ", which exposes the node's credentials or runtime"
            } else {
                ""
            }
        );
        let finding = pod.pod_finding(
            RuleId::HostPath,
            &format!("volumes[{v}].hostPath.path"),
            path,
            message,
        );
        out.push(if critical {
            finding.with_severity(Severity::Critical)
        } else {
            finding
        });
    }
}

#[cfg(test)]
mod tests {
    use super::super::testing::*;
    use super::*;
    use crate::policy::{Profile, RuleOptions};
    use rstest::rstest;

    fn volumes(paths: &[&str]) -> String {
        let vols: Vec<String> = paths
            .iter()
            .enumerate()
            .map(|(i, p)| format!(r#"{{"name":"v{i}","hostPath":{{"path":{p:?}}}}}"#))
            .collect();
        format!(
            r#"{{"containers":[],"volumes":[{{"name":"e","emptyDir":{{}}}},{}]}}"#,
            vols.join(",")
        )
    }

    #[rstest]
    #[case::root("/", Severity::Critical)]
    #[case::etc("/etc", Severity::Critical)]
    #[case::etc_file("/etc/shadow", Severity::Critical)]
    #[case::kubelet("/var/lib/kubelet/pods", Severity::Critical)]
    #[case::var_ancestor("/var", Severity::Critical)]
    #[case::docker_sock("/var/run/docker.sock", Severity::Critical)]
    #[case::containerd_sock("/run/containerd/containerd.sock", Severity::Critical)]
    #[case::crio_sock("/var/run/crio/crio.sock", Severity::Critical)]
    #[case::dot_dot_escape("/var/log/../../etc", Severity::Critical)]
    #[case::double_slash("//etc//kubernetes/", Severity::Critical)]
    #[case::var_log("/var/log", Severity::High)]
    #[case::etcetera_is_not_etc("/etcetera", Severity::High)]
    #[case::data("/data/cache", Severity::High)]
    fn fails_with_graded_severity(#[case] path: &str, #[case] severity: Severity) {
        let f = findings(RuleId::HostPath, &volumes(&[path]));
        assert_eq!(fields(&f), ["spec.volumes[1].hostPath.path"]);
        assert_eq!(f[0].severity, severity, "{path}");
    }

    #[test]
    fn allow_prefixes_stop_at_slash_boundaries() {
        let options = RuleOptions {
            host_path_allow: vec!["/var/log".to_owned()],
            ..Default::default()
        };
        let spec = volumes(&[
            "/var/log",
            "/var/log/pods",
            "/var/logs",
            "/var/log/../run/docker.sock",
        ]);
        let f = findings_with(RuleId::HostPath, &spec, Profile::Baseline, &options);
        assert_eq!(
            fields(&f),
            [
                "spec.volumes[3].hostPath.path",
                "spec.volumes[4].hostPath.path"
            ]
        );
        assert_eq!(f[1].severity, Severity::Critical);
        assert!(
            f[1].message
                .contains(r#"(that is, "/var/run/docker.sock")"#),
            "{}",
            f[1].message
        );
    }

    #[test]
    fn passes_without_host_path() {
        assert!(findings(RuleId::HostPath, &volumes(&[])[..].replace(",]", "]")).is_empty());
    }

    #[test]
    fn normalizes() {
        assert_eq!(normalize("/a/./b/../c/").as_deref(), Some("/a/c"));
        assert_eq!(normalize("/../..").as_deref(), Some("/"));
        assert_eq!(normalize("relative"), None);
    }
}
