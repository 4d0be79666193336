//! `image-signature`: an image the platform team wants signed must carry a cosign signature by one of its
//! keys. A registry allow-list trusts a name; a compromised registry serves whatever it wants under it.
//!
//! Restricted fields:
//! - `spec.containers[*].image` (and `initContainers`, `ephemeralContainers`), for images that match the
//!   rule's `images` patterns (every image when `images` is absent)
//!
//! Allowed values: an image whose digest (the one its reference resolves to at admission, the index digest
//! for a multi-platform image) carries, in the image's own repository, a cosign signature by one of `keys`
//! that names that digest and that repository (the `.sig` tag, or a Sigstore bundle referrer). When the
//! registry cannot answer, `onError` decides. Needs registry look-ups; off unless the policy configures it.

use serde::Serialize;

use super::{
    Check, CheckContext, DefaultMode, Finding, PodView, Rule, RuleId, RuleProfile, Severity,
};
use crate::signature::{SignatureCheck, SignatureForm};

pub const RULE: Rule = Rule {
    id: RuleId::ImageSignature,
    severity: Severity::High,
    techniques: &["T1195.002", "T1525", "T1204.003"],
    profile: RuleProfile::Configured,
    default_mode: DefaultMode::Policy,
    description: "an image matching `images` without a valid cosign signature by one of `keys`",
    about_image: true,
    check: Check::Pod(check),
};

/// An image a trusted key verified: what the alert record lists under `signatures`.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct SignedImage {
    pub container: String,
    pub image: String,
    /// The digest the signature names (the one the reference resolved to).
    pub digest: String,
    /// The name of the policy key that verified it.
    pub key: String,
    pub form: SignatureForm,
}

fn covered<'a>(
    pod: &'a PodView<'_>,
    cx: &'a CheckContext<'_>,
) -> impl Iterator<Item = (usize, &'a super::ContainerView<'a>)> + 'a {
    let policy = cx.options.signature.as_deref();
    pod.iter().filter(move |(_, c)| match (&c.image, policy) {
        (Some(Ok(image)), Some(policy)) => policy.covers(image),
        _ => false,
    })
}

fn check(pod: &PodView<'_>, cx: &CheckContext<'_>, out: &mut Vec<Finding>) {
    for (i, c) in covered(pod, cx) {
        let image = c.image_display().unwrap_or_default();
        let name = c.name();
        let message = match cx.signature(c) {
            SignatureCheck::Verified { .. } => continue,
            SignatureCheck::Unverified(why) => {
                out.push(cx.unverified(pod, RuleId::ImageSignature, i, &why));
                continue;
            }
            SignatureCheck::Unsigned { digest } => format!(
                "container {name:?} image {image} is not signed: no cosign signature for {digest} in its repository"
            ),
            SignatureCheck::Untrusted { digest, why } if digest.is_empty() => {
                format!("container {name:?} image {image} is not signed by a trusted key: {why}")
            }
            SignatureCheck::Untrusted { digest, why } => format!(
                "container {name:?} image {image} ({digest}) has no signature by a trusted key: {why}"
            ),
            SignatureCheck::OtherDigest {
                digest,
                named,
                key,
                form,
            } => format!(
                "container {name:?} image {image} resolves to {digest}, but the signature by key {key:?} in {form} is for another digest, {named} (a moved tag or a copied signature)"
            ),
            SignatureCheck::OtherRepository {
                digest,
                named,
                key,
                form,
            } => format!(
                "container {name:?} image {image} ({digest}) carries a signature by key {key:?} in {form} for another repository, {named} (a copied signature)"
            ),
        };
        out.push(pod.container_finding(RuleId::ImageSignature, i, "image", "signature", message));
    }
}

/// The images of `pod` that a trusted key verified, for the alert record.
pub fn verified(pod: &PodView<'_>, cx: &CheckContext<'_>) -> Vec<SignedImage> {
    covered(pod, cx)
        .filter_map(|(_, c)| match cx.signature(c) {
            SignatureCheck::Verified { key, form, digest } => Some(SignedImage {
                container: crate::alert::clip(c.name()),
                image: crate::alert::clip(c.image_display().unwrap_or_default()),
                digest,
                key,
                form,
            }),
            _ => None,
        })
        .collect()
}

#[cfg(test)]
mod tests {
    use super::super::testing::*;
    use super::*;
    use crate::policy::{OnError, RuleOptions, SignaturePolicy};
    use crate::registry::RegistryFacts;
    use std::sync::Arc;

    const DIGEST: &str = "sha256:1111111111111111111111111111111111111111111111111111111111111111";

    fn options(images: Option<&[&str]>) -> RuleOptions {
        RuleOptions {
            signature: Some(Arc::new(SignaturePolicy {
                images: images.map(|p| {
                    p.iter()
                        .map(|p| crate::image::RegistryPattern::parse(p).unwrap())
                        .collect()
                }),
                keys: Vec::new(),
                keyset: String::new(),
            })),
            ..Default::default()
        }
    }

    fn facts() -> RegistryFacts {
        let mut facts = RegistryFacts::default();
        let d = || DIGEST.to_owned();
        let entries = [
            (
                "r.example/signed:1",
                SignatureCheck::Verified {
                    key: "release".into(),
                    form: SignatureForm::Bundle,
                    digest: d(),
                },
            ),
            (
                "r.example/unsigned:1",
                SignatureCheck::Unsigned { digest: d() },
            ),
            (
                "r.example/stranger:1",
                SignatureCheck::Untrusted {
                    digest: d(),
                    why: "the .sig tag holds a signature by no trusted key".into(),
                },
            ),
            (
                "r.example/moved:1",
                SignatureCheck::OtherDigest {
                    digest: d(),
                    named: "sha256:2222".into(),
                    key: "release".into(),
                    form: SignatureForm::Tag,
                },
            ),
            (
                "r.example/copied:1",
                SignatureCheck::OtherRepository {
                    digest: d(),
                    named: "r.example/signed".into(),
                    key: "release".into(),
                    form: SignatureForm::Tag,
                },
            ),
            (
                "r.example/down:1",
                SignatureCheck::Unverified("connection refused".into()),
            ),
        ];
        for (image, check) in entries {
            facts.insert_signature(image, check);
        }
        facts
    }

    fn spec(images: &[&str]) -> String {
        let containers: Vec<String> = images
            .iter()
            .enumerate()
            .map(|(i, image)| format!(r#"{{"name":"c{i}","image":"{image}"}}"#))
            .collect();
        format!(r#"{{"containers":[{}]}}"#, containers.join(","))
    }

    #[test]
    fn each_verdict_says_why() {
        let images = [
            "r.example/signed:1",
            "r.example/unsigned:1",
            "r.example/stranger:1",
            "r.example/moved:1",
            "r.example/copied:1",
            "r.example/down:1",
        ];
        let f = findings_with_facts(
            RuleId::ImageSignature,
            &spec(&images),
            &options(None),
            &facts(),
        );
        let messages: Vec<&str> = f.iter().map(|f| f.message.as_str()).collect();
        assert_eq!(f.len(), 5, "{messages:#?}");
        assert_eq!(f[0].field, "spec.containers[1].image");
        assert!(
            messages[0].contains("is not signed: no cosign signature for sha256:1111"),
            "{}",
            messages[0]
        );
        assert!(
            messages[1].contains("has no signature by a trusted key"),
            "{}",
            messages[1]
        );
        assert!(
            messages[2].contains("is for another digest, sha256:2222"),
            "{}",
            messages[2]
        );
        assert!(
            messages[3].contains("for another repository, r.example/signed"),
            "{}",
            messages[3]
        );
        assert!(
            messages[4].contains("not verified: connection refused"),
            "{}",
            messages[4]
        );
        assert_eq!(
            f[4].max_mode,
            Some(crate::policy::Mode::Audit),
            "onError allow records only"
        );
        assert!(f[..4].iter().all(|f| f.max_mode.is_none()));
    }

    #[test]
    fn on_error_deny_lets_unverified_images_deny() {
        let mut options = options(None);
        options.lookup_on_error = vec![(RuleId::ImageSignature, OnError::Deny)];
        let f = findings_with_facts(
            RuleId::ImageSignature,
            &spec(&["r.example/down:1"]),
            &options,
            &facts(),
        );
        assert_eq!(f[0].max_mode, None);
    }

    #[test]
    fn only_covered_images_are_judged() {
        let options = options(Some(&["r.example/signed", "r.example/moved"]));
        let spec = spec(&[
            "r.example/signed:1",
            "r.example/unsigned:1",
            "r.example/moved:1",
        ]);
        let f = findings_with_facts(RuleId::ImageSignature, &spec, &options, &facts());
        assert_eq!(fields(&f), ["spec.containers[2].image"]);
    }

    #[test]
    fn verified_images_name_their_key() {
        let workload = crate::workload::Workload::from_json(
            crate::workload::WorkloadKind::Pod,
            &format!(
                r#"{{"spec":{}}}"#,
                spec(&["r.example/signed:1", "r.example/unsigned:1"])
            ),
        )
        .unwrap();
        let pod = PodView::new(&workload);
        let (options, facts) = (options(None), facts());
        let cx = CheckContext {
            profile: crate::policy::Profile::Baseline,
            options: &options,
            registry: Some(&facts),
        };
        assert_eq!(
            verified(&pod, &cx),
            [SignedImage {
                container: "c0".into(),
                image: "r.example/signed:1".into(),
                digest: DIGEST.into(),
                key: "release".into(),
                form: SignatureForm::Bundle,
            }]
        );
    }
}
