//! `image-digest-deny`: a known-bad image, by digest, from an IoC feed the platform team pastes in. A tag
//! can be renamed; the digest of the content cannot.
//!
//! Restricted fields:
//! - `spec.containers[*].image` (and `initContainers`, `ephemeralContainers`)
//!
//! Allowed values: an image whose own digest, resolved platform-manifest digest and index digest are all
//! outside `digests`. A digest named in the pod spec is judged without any look-up. When the registry
//! cannot answer, `onError` decides.

use super::{
    Check, CheckContext, DefaultMode, Finding, PodView, Rule, RuleId, RuleProfile, Severity,
};
use crate::registry::Lookup;

pub const RULE: Rule = Rule {
    id: RuleId::ImageDigestDeny,
    severity: Severity::Critical,
    techniques: &["T1204.003", "T1525"],
    profile: RuleProfile::Configured,
    default_mode: DefaultMode::Policy,
    description: "an image whose digest (index or platform manifest) is on the deny list",
    about_image: true,
    check: Check::Pod(check),
};

fn check(pod: &PodView<'_>, cx: &CheckContext<'_>, out: &mut Vec<Finding>) {
    let denied = |d: &str| {
        cx.options
            .denied_digests
            .iter()
            .any(|x| x.eq_ignore_ascii_case(d))
    };
    for (i, c) in pod.iter() {
        let Some(Ok(image)) = &c.image else {
            continue;
        };
        let hit = match image.digest().filter(|d| denied(d)) {
            Some(d) => Some(d.to_owned()),
            None => match cx.lookup(c) {
                Lookup::Found(facts) => [Some(&facts.digest), facts.index_digest.as_ref()]
                    .into_iter()
                    .flatten()
                    .find(|d| denied(d))
                    .cloned(),
                Lookup::NotFound(_) => None,
                Lookup::Unverified(why) => {
                    out.push(cx.unverified(pod, RuleId::ImageDigestDeny, i, &why));
                    None
                }
            },
        };
        if let Some(digest) = hit {
            out.push(pod.container_finding(
                RuleId::ImageDigestDeny,
                i,
                "image",
                "image",
                format!(
                    "container {:?} image {image} resolves to the denied digest {digest}",
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
    use crate::policy::RuleOptions;

    const BAD: &str = "sha256:0000000000000000000000000000000000000000000000000000000000000bad";

    #[test]
    fn a_denied_digest_fails_by_tag_or_by_name() {
        let options = RuleOptions {
            denied_digests: vec![BAD.to_owned()],
            ..Default::default()
        };
        let spec = format!(
            r#"{{"containers":[{{"name":"a","image":"r.example/app:1"}},{{"name":"b","image":"r.example/app@{BAD}"}},{{"name":"c","image":"r.example/ok:1"}}]}}"#
        );
        let facts = found(&[
            ("r.example/app:1", BAD, "1000"),
            ("r.example/ok:1", "sha256:aa", "1000"),
        ]);
        let f = findings_with_facts(RuleId::ImageDigestDeny, &spec, &options, &facts);
        assert_eq!(
            fields(&f),
            ["spec.containers[0].image", "spec.containers[1].image"]
        );
        assert!(f[0].message.contains(BAD));
    }

    #[test]
    fn passes_outside_the_list() {
        let options = RuleOptions {
            denied_digests: vec![BAD.to_owned()],
            ..Default::default()
        };
        let facts = found(&[("r.example/ok:1", "sha256:aa", "1000")]);
        let spec = r#"{"containers":[{"name":"c","image":"r.example/ok:1"}]}"#;
        assert!(findings_with_facts(RuleId::ImageDigestDeny, spec, &options, &facts).is_empty());
    }
}
