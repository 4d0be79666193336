//! `volume-types`: volume types beyond the restricted set reach node storage or network filesystems
//! directly, past the storage abstractions a cluster operator controls.
//!
//! Restricted fields:
//! - `spec.volumes[*]`: the volume source
//!
//! Allowed values: `configMap`, `csi`, `downwardAPI`, `emptyDir`, `ephemeral`, `image`,
//! `persistentVolumeClaim`, `projected`, `secret`. A volume with no source is what the API server defaults
//! to `emptyDir`, and is allowed.

use super::{
    Check, CheckContext, DefaultMode, Finding, PodView, Rule, RuleId, RuleProfile, Severity,
};

pub const RULE: Rule = Rule {
    id: RuleId::VolumeTypes,
    severity: Severity::Medium,
    techniques: &["T1611"],
    profile: RuleProfile::Restricted,
    default_mode: DefaultMode::Policy,
    description: "a volume type outside the restricted list (configMap, secret, emptyDir, PVC, ...)",
    about_image: false,
    check: Check::Pod(check),
};

/// The volume sources Pod Security's restricted level allows.
pub const ALLOWED_VOLUME_TYPES: &[&str] = &[
    "configMap",
    "csi",
    "downwardAPI",
    "emptyDir",
    "ephemeral",
    "image",
    "persistentVolumeClaim",
    "projected",
    "secret",
];

fn check(pod: &PodView<'_>, _: &CheckContext<'_>, out: &mut Vec<Finding>) {
    for (v, volume) in pod.workload.spec.volumes.iter().enumerate() {
        for source in volume
            .sources
            .iter()
            .filter(|s| !ALLOWED_VOLUME_TYPES.contains(&s.as_str()))
        {
            out.push(pod.pod_finding(
                RuleId::VolumeTypes,
                &format!("volumes[{v}].{source}"),
                format!("{}:{source}", volume.name),
                format!(
                    "volume {:?} uses the restricted volume type {source}",
                    volume.name
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
    fn fails_outside_the_list() {
        let f = restricted(
            RuleId::VolumeTypes,
            r#"{"containers":[],"volumes":[{"name":"a","emptyDir":{}},{"name":"b","hostPath":{"path":"/x"}},
                {"name":"c","nfs":{"server":"s","path":"/"}},{"name":"d","gitRepo":{"repository":"r"}}]}"#,
        );
        assert_eq!(
            fields(&f),
            [
                "spec.volumes[1].hostPath",
                "spec.volumes[2].nfs",
                "spec.volumes[3].gitRepo"
            ]
        );
        assert_eq!(
            f[1].message,
            r#"volume "c" uses the restricted volume type nfs"#
        );
    }

    #[test]
    fn passes_on_allowed_and_defaulted_sources() {
        let f = restricted(
            RuleId::VolumeTypes,
            r#"{"containers":[],"volumes":[{"name":"none"},{"name":"i","image":{"reference":"x"}},
                {"name":"p","projected":{"sources":[]}},{"name":"n","nfs":null,"secret":{"secretName":"s"}}]}"#,
        );
        assert!(f.is_empty(), "{f:?}");
    }
}
