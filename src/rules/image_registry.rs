//! `image-registry`: images must come from the registries the platform team trusts.
//!
//! Restricted fields:
//! - `spec.containers[*].image`, `spec.initContainers[*].image`, `spec.ephemeralContainers[*].image`
//!
//! Allowed values: a valid reference whose normalized name matches a pattern in `allow` (when `allow` is
//! given) and matches no pattern in `deny`. Deny wins. An invalid reference, or a container without an
//! image, is always a violation. A `deny` pattern that names no port matches the host on any port, so that
//! `evil.example:443/x` cannot dodge `deny: [evil.example]`.

use super::{
    Check, CheckContext, DefaultMode, Finding, PodView, Rule, RuleId, RuleProfile, Severity,
};

pub const RULE: Rule = Rule {
    id: RuleId::ImageRegistry,
    severity: Severity::High,
    techniques: &["T1204.003", "T1525", "T1610"],
    profile: RuleProfile::Configured,
    default_mode: DefaultMode::Policy,
    description: "an image from a registry outside `allow`, or inside `deny`, or an invalid reference",
    about_image: true,
    check: Check::Pod(check),
};

fn check(pod: &PodView<'_>, cx: &CheckContext<'_>, out: &mut Vec<Finding>) {
    let (allow, deny) = (&cx.options.registry_allow, &cx.options.registry_deny);
    for (i, c) in pod.iter() {
        let message = match &c.image {
            None => format!("container {:?} names no image", c.name()),
            Some(Err(e)) => format!(
                "container {:?} image {:?} is not a valid reference: {e}",
                c.name(),
                c.container.image.as_deref().unwrap_or_default()
            ),
            Some(Ok(image)) => {
                if let Some(pattern) = deny.iter().find(|p| p.matches_any_port(image)) {
                    format!(
                        "container {:?} image {image} is from a denied registry ({pattern})",
                        c.name()
                    )
                } else if allow
                    .as_ref()
                    .is_some_and(|a| !a.iter().any(|p| p.matches(image)))
                {
                    format!(
                        "container {:?} image {image} is not from an allowed registry",
                        c.name()
                    )
                } else {
                    continue;
                }
            }
        };
        out.push(pod.container_finding(RuleId::ImageRegistry, i, "image", "image", message));
    }
}

#[cfg(test)]
mod tests {
    use super::super::testing::*;
    use super::*;
    use crate::image::RegistryPattern;
    use crate::policy::{Profile, RuleOptions};

    fn options(allow: Option<&[&str]>, deny: &[&str]) -> RuleOptions {
        let parse = |list: &[&str]| {
            list.iter()
                .map(|p| RegistryPattern::parse(p).unwrap())
                .collect::<Vec<_>>()
        };
        RuleOptions {
            registry_allow: allow.map(parse),
            registry_deny: parse(deny),
            ..Default::default()
        }
    }

    fn images(images: &[&str]) -> String {
        let c: Vec<String> = images
            .iter()
            .enumerate()
            .map(|(i, img)| format!(r#"{{"name":"c{i}","image":{img:?}}}"#))
            .collect();
        format!(r#"{{"containers":[{}]}}"#, c.join(","))
    }

    #[test]
    fn allow_list_admits_only_its_registries() {
        let opts = options(
            Some(&[
                "registry.corp.example",
                "ghcr.io/corp/*",
                "docker.io/library/*",
            ]),
            &[],
        );
        let spec = images(&[
            "registry.corp.example/team/app:1",
            "ghcr.io/corp/tool@sha256:0123456789abcdef0123456789abcdef0123456789abcdef0123456789abcdef",
            "nginx:1.27",
            "registry.corp.example.evil.io/app",
            "ghcr.io/corporate/x",
            "registry.corp.example:5000/app",
            "quay.io/x/y",
        ]);
        let f = findings_with(RuleId::ImageRegistry, &spec, Profile::Baseline, &opts);
        assert_eq!(
            fields(&f),
            [
                "spec.containers[3].image",
                "spec.containers[4].image",
                "spec.containers[5].image",
                "spec.containers[6].image",
            ]
        );
        assert_eq!(
            f[0].message,
            r#"container "c3" image registry.corp.example.evil.io/app:latest is not from an allowed registry"#
        );
    }

    #[test]
    fn deny_wins_and_ignores_ports() {
        let opts = options(Some(&["*.evil.example", "ghcr.io"]), &["*.evil.example"]);
        let spec = images(&["a.evil.example/x", "a.evil.example:443/x", "ghcr.io/ok/app"]);
        let f = findings_with(RuleId::ImageRegistry, &spec, Profile::Baseline, &opts);
        assert_eq!(
            fields(&f),
            ["spec.containers[0].image", "spec.containers[1].image"]
        );
        assert!(
            f[1].message.contains("denied registry (*.evil.example)"),
            "{}",
            f[1].message
        );
    }

    #[test]
    fn empty_allow_list_allows_nothing() {
        let opts = options(Some(&[]), &[]);
        let f = findings_with(
            RuleId::ImageRegistry,
            &images(&["nginx"]),
            Profile::Baseline,
            &opts,
        );
        assert_eq!(f.len(), 1);
    }

    #[test]
    fn invalid_or_missing_image_is_a_violation() {
        let opts = options(None, &["evil.example"]);
        let spec = r#"{"containers":[{"name":"a","image":"docker.io/library/../x"},{"name":"b"},
            {"name":"c","image":"ɡhcr.io/corp/x"},{"name":"d","image":"nginx"}]}"#;
        let f = findings_with(RuleId::ImageRegistry, spec, Profile::Baseline, &opts);
        assert_eq!(
            fields(&f),
            [
                "spec.containers[0].image",
                "spec.containers[1].image",
                "spec.containers[2].image"
            ]
        );
        assert!(
            f[0].message.contains("is not a valid reference"),
            "{}",
            f[0].message
        );
        assert_eq!(f[1].message, r#"container "b" names no image"#);
    }
}
