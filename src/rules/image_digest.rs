//! `image-digest`: only a digest pins the exact image; a tag can be re-pushed.
//!
//! Restricted fields:
//! - `spec.containers[*].image`, `spec.initContainers[*].image`, `spec.ephemeralContainers[*].image`
//!
//! Allowed values: a reference with a digest (`@sha256:...`). Off unless the policy sets a mode. Invalid
//! references are left to `image-registry`.

use super::{
    Check, CheckContext, DefaultMode, Finding, PodView, Rule, RuleId, RuleProfile, Severity,
};
use crate::policy::Mode;

pub const RULE: Rule = Rule {
    id: RuleId::ImageDigest,
    severity: Severity::Low,
    techniques: &["T1525", "T1204.003"],
    profile: RuleProfile::Configured,
    default_mode: DefaultMode::Fixed(Mode::Off),
    description: "an image not pinned by digest",
    about_image: true,
    check: Check::Pod(check),
};

fn check(pod: &PodView<'_>, _: &CheckContext<'_>, out: &mut Vec<Finding>) {
    for (i, c) in pod.iter() {
        let Some(Ok(image)) = &c.image else {
            continue;
        };
        if image.digest().is_none() {
            out.push(pod.container_finding(
                RuleId::ImageDigest,
                i,
                "image",
                "digest",
                format!(
                    "container {:?} image {image} is not pinned by digest",
                    c.name()
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
    fn fails_without_digest_passes_with_one() {
        let f = findings(
            RuleId::ImageDigest,
            r#"{"containers":[{"name":"a","image":"nginx:1.27"},
                {"name":"b","image":"nginx@sha256:0123456789abcdef0123456789abcdef0123456789abcdef0123456789abcdef"}]}"#,
        );
        assert_eq!(fields(&f), ["spec.containers[0].image"]);
    }
}
