//! `image-resolvable`: the image must exist in its registry. A typo-squatted or deleted image, or one only
//! an attacker's node can pull, does not resolve.
//!
//! Restricted fields:
//! - `spec.containers[*].image` (and `initContainers`, `ephemeralContainers`)
//!
//! Allowed values: a reference that resolves to a manifest in its registry. When the registry cannot
//! answer, `onError` decides: `allow` (default) records the image as not verified, `deny` treats it as a
//! violation. Needs registry look-ups; off unless the policy turns it on.

use super::{
    Check, CheckContext, DefaultMode, Finding, PodView, Rule, RuleId, RuleProfile, Severity,
};
use crate::registry::Lookup;

pub const RULE: Rule = Rule {
    id: RuleId::ImageResolvable,
    severity: Severity::High,
    techniques: &["T1204.003", "T1525"],
    profile: RuleProfile::Configured,
    default_mode: DefaultMode::Policy,
    description: "an image that does not resolve to a manifest in its registry (registry look-up)",
    about_image: true,
    check: Check::Pod(check),
};

fn check(pod: &PodView<'_>, cx: &CheckContext<'_>, out: &mut Vec<Finding>) {
    for (i, c) in pod.iter() {
        let Some(Ok(image)) = &c.image else {
            continue;
        };
        match cx.lookup(c) {
            Lookup::Found(_) => {}
            Lookup::NotFound(why) => out.push(pod.container_finding(
                RuleId::ImageResolvable,
                i,
                "image",
                "image",
                format!(
                    "container {:?} image {image} does not resolve in its registry: {why}",
                    c.name()
                ),
            )),
            Lookup::Unverified(why) => {
                out.push(cx.unverified(pod, RuleId::ImageResolvable, i, &why))
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::super::testing::*;
    use super::*;
    use crate::policy::{OnError, RuleOptions};

    const SPEC: &str = r#"{"containers":[{"name":"a","image":"r.example/app:1"},{"name":"b","image":"r.example/gone:1"},{"name":"c","image":"r.example/x:1"}]}"#;

    fn facts() -> crate::registry::RegistryFacts {
        let mut facts = found(&[("r.example/app:1", "sha256:aa", "1000")]);
        facts.insert(
            "r.example/gone:1",
            Lookup::NotFound("manifest unknown".into()),
        );
        facts.insert(
            "r.example/x:1",
            Lookup::Unverified("connection refused".into()),
        );
        facts
    }

    #[test]
    fn missing_images_fail_unverified_ones_are_recorded() {
        let f = findings_with_facts(
            RuleId::ImageResolvable,
            SPEC,
            &RuleOptions::default(),
            &facts(),
        );
        assert_eq!(
            fields(&f),
            ["spec.containers[1].image", "spec.containers[2].image"]
        );
        assert!(
            f[0].message
                .contains("does not resolve in its registry: manifest unknown"),
            "{}",
            f[0].message
        );
        assert_eq!(f[0].max_mode, None);
        assert!(
            f[1].message.contains("not verified: connection refused"),
            "{}",
            f[1].message
        );
        assert_eq!(
            f[1].max_mode,
            Some(crate::policy::Mode::Audit),
            "onError allow records only"
        );
    }

    #[test]
    fn on_error_deny_lets_unverified_images_deny() {
        let options = RuleOptions {
            lookup_on_error: vec![(RuleId::ImageResolvable, OnError::Deny)],
            ..Default::default()
        };
        let f = findings_with_facts(RuleId::ImageResolvable, SPEC, &options, &facts());
        assert_eq!(f[1].max_mode, None);
    }

    #[test]
    fn passes_when_resolved() {
        let spec = r#"{"containers":[{"name":"a","image":"r.example/app:1"}]}"#;
        assert!(
            findings_with_facts(
                RuleId::ImageResolvable,
                spec,
                &RuleOptions::default(),
                &facts()
            )
            .is_empty()
        );
    }
}
