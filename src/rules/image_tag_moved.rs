//! `image-tag-moved`: a tag that now resolves to another digest than the one this replica first saw for it,
//! within the policy's window. A re-pushed trusted tag is how a compromised registry or CI hands out new
//! code under an old name. It is an alert, not proof of compromise: tags are also re-pushed on purpose.
//!
//! Restricted fields:
//! - `spec.containers[*].image` with a tag and no digest (and `initContainers`, `ephemeralContainers`)
//!
//! Allowed values: a tag that still resolves to the first digest seen for it within `window` (default
//! 24h), or an image pinned by digest. When the registry cannot answer, `onError` decides.

use super::{
    Check, CheckContext, DefaultMode, Finding, PodView, Rule, RuleId, RuleProfile, Severity,
};
use crate::registry::Lookup;

pub const RULE: Rule = Rule {
    id: RuleId::ImageTagMoved,
    severity: Severity::Medium,
    techniques: &["T1525", "T1195.002"],
    profile: RuleProfile::Configured,
    default_mode: DefaultMode::Policy,
    description: "a tag that now resolves to a different digest than first seen (a re-pushed tag)",
    about_image: true,
    check: Check::Pod(check),
};

fn check(pod: &PodView<'_>, cx: &CheckContext<'_>, out: &mut Vec<Finding>) {
    for (i, c) in pod.iter() {
        let Some(Ok(image)) = &c.image else {
            continue;
        };
        if image.digest().is_some() {
            continue;
        }
        match cx.lookup(c) {
            Lookup::Found(facts) => {
                if let Some(first) = &facts.moved_from {
                    out.push(pod.container_finding(
                        RuleId::ImageTagMoved,
                        i,
                        "image",
                        "image",
                        format!(
                            "container {:?} image {image} now resolves to {} but first resolved to {first}: the tag was re-pushed (an alert, not proof of compromise)",
                            c.name(),
                            facts.digest
                        ),
                    ));
                }
            }
            Lookup::NotFound(_) => {}
            Lookup::Unverified(why) => out.push(cx.unverified(pod, RuleId::ImageTagMoved, i, &why)),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::super::testing::*;
    use super::*;
    use crate::policy::RuleOptions;
    use crate::registry::ImageFacts;
    use std::sync::Arc;

    #[test]
    fn a_moved_tag_fails_a_steady_one_passes() {
        let mut facts = found(&[("r.example/steady:1", "sha256:aa", "1000")]);
        facts.insert(
            "r.example/moved:1",
            Lookup::Found(Arc::new(ImageFacts {
                digest: "sha256:bb".into(),
                index_digest: None,
                user: "1000".into(),
                moved_from: Some("sha256:aa".into()),
            })),
        );
        let spec = r#"{"containers":[{"name":"a","image":"r.example/steady:1"},{"name":"b","image":"r.example/moved:1"}]}"#;
        let f = findings_with_facts(RuleId::ImageTagMoved, spec, &RuleOptions::default(), &facts);
        assert_eq!(fields(&f), ["spec.containers[1].image"]);
        assert!(
            f[0].message
                .contains("now resolves to sha256:bb but first resolved to sha256:aa"),
            "{}",
            f[0].message
        );
        assert!(f[0].message.contains("not proof of compromise"));
    }
}
