//! `image-tag`: a mutable tag means the code that runs can change without any change to the workload.
//!
//! Restricted fields:
//! - `spec.containers[*].image`, `spec.initContainers[*].image`, `spec.ephemeralContainers[*].image`
//!
//! Allowed values: a reference with a digest, or with a tag other than `latest`. Invalid references are
//! left to `image-registry`.

use super::{
    Check, CheckContext, DefaultMode, Finding, PodView, Rule, RuleId, RuleProfile, Severity,
};
use crate::policy::Mode;

pub const RULE: Rule = Rule {
    id: RuleId::ImageTag,
    severity: Severity::Low,
    techniques: &["T1525", "T1204.003"],
    profile: RuleProfile::Baseline,
    default_mode: DefaultMode::Fixed(Mode::Warn),
    description: "an image tagged :latest, or with neither tag nor digest",
    about_image: true,
    check: Check::Pod(check),
};

fn check(pod: &PodView<'_>, _: &CheckContext<'_>, out: &mut Vec<Finding>) {
    for (i, c) in pod.iter() {
        let Some(Ok(image)) = &c.image else {
            continue;
        };
        if image.digest().is_some() {
            continue;
        }
        let message = match image.tag() {
            None => format!(
                "container {:?} image {image} has no tag or digest (means :latest)",
                c.name()
            ),
            Some("latest") => format!(
                "container {:?} image {image} uses the mutable tag :latest",
                c.name()
            ),
            Some(_) => continue,
        };
        out.push(pod.container_finding(RuleId::ImageTag, i, "image", "tag", message));
    }
}

#[cfg(test)]
mod tests {
    use super::super::testing::*;
    use super::*;

    #[test]
    fn fails_on_latest_or_untagged() {
        let f = findings(
            RuleId::ImageTag,
            r#"{"containers":[{"name":"a","image":"nginx"},{"name":"b","image":"nginx:latest"},
                {"name":"c","image":"nginx:1.27"},
                {"name":"d","image":"nginx:latest@sha256:0123456789abcdef0123456789abcdef0123456789abcdef0123456789abcdef"},
                {"name":"e","image":"NOT VALID"}]}"#,
        );
        assert_eq!(
            fields(&f),
            ["spec.containers[0].image", "spec.containers[1].image"]
        );
        assert_eq!(
            f[0].message,
            r#"container "a" image docker.io/library/nginx:latest has no tag or digest (means :latest)"#
        );
    }

    #[test]
    fn passes_on_pinned_tag() {
        assert!(
            findings(
                RuleId::ImageTag,
                r#"{"containers":[{"name":"a","image":"ghcr.io/x/y:v1"}]}"#
            )
            .is_empty()
        );
    }
}
