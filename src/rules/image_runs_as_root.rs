//! `image-runs-as-root`: an image built to run as root says so only in its config, not in the pod spec.
//!
//! Restricted fields:
//! - the image config's `User`, for `spec.containers[*].image` (and the other lists)
//!
//! Allowed values: a `User` that is set and is neither `0` nor `root` (group ignored); or a pod that does
//! not let the container run as root: `runAsNonRoot: true` (container, or pod when the container does not
//! say), or a non-zero `runAsUser` (container, else pod). When the registry cannot answer, `onError`
//! decides.

use super::{
    Check, CheckContext, DefaultMode, Finding, PodView, Rule, RuleId, RuleProfile, Severity,
};
use crate::registry::Lookup;
use crate::workload::Container;

pub const RULE: Rule = Rule {
    id: RuleId::ImageRunsAsRoot,
    severity: Severity::Medium,
    techniques: &["T1611", "T1610"],
    profile: RuleProfile::Configured,
    default_mode: DefaultMode::Policy,
    description: "an image whose config runs as root, in a pod that does not forbid it",
    about_image: true,
    check: Check::Pod(check),
};

/// Whether an image config's `User` means root: empty, `0` or `root`, with or without a group.
pub fn user_is_root(user: &str) -> bool {
    let name = user.split(':').next().unwrap_or_default().trim();
    name.is_empty() || name == "root" || name.parse::<u64>() == Ok(0)
}

/// Whether the pod spec keeps this container from running as root, whatever its image says.
fn pod_forbids_root(pod: &PodView<'_>, container: &Container) -> bool {
    let pod_sc = pod.workload.spec.security_context.as_ref();
    let sc = container.security_context.as_ref();
    let user = sc
        .and_then(|s| s.run_as_user)
        .or_else(|| pod_sc.and_then(|s| s.run_as_user));
    let non_root = sc
        .and_then(|s| s.run_as_non_root)
        .or_else(|| pod_sc.and_then(|s| s.run_as_non_root));
    match user {
        Some(0) => false,
        Some(_) => true,
        None => non_root == Some(true),
    }
}

fn check(pod: &PodView<'_>, cx: &CheckContext<'_>, out: &mut Vec<Finding>) {
    for (i, c) in pod.iter() {
        let Some(Ok(image)) = &c.image else {
            continue;
        };
        if pod_forbids_root(pod, c.container) {
            continue;
        }
        match cx.lookup(c) {
            Lookup::Found(facts) if user_is_root(&facts.user) => {
                let shown = if facts.user.is_empty() {
                    "no User (root)".to_owned()
                } else {
                    format!("User {:?}", facts.user)
                };
                out.push(pod.container_finding(
                    RuleId::ImageRunsAsRoot,
                    i,
                    "image",
                    "image",
                    format!(
                        "container {:?} image {image} runs as root ({shown} in its config), and the pod does not set runAsNonRoot or a non-zero runAsUser",
                        c.name()
                    ),
                ));
            }
            Lookup::Found(_) | Lookup::NotFound(_) => {}
            Lookup::Unverified(why) => {
                out.push(cx.unverified(pod, RuleId::ImageRunsAsRoot, i, &why))
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn root_images_fail_unless_the_pod_forbids_root() {
        use super::super::testing::*;
        use crate::policy::RuleOptions;
        let facts = found(&[
            ("r.example/root:1", "sha256:aa", ""),
            ("r.example/app:1", "sha256:bb", "1000"),
        ]);
        let check = |spec: &str| {
            fields(&findings_with_facts(
                RuleId::ImageRunsAsRoot,
                spec,
                &RuleOptions::default(),
                &facts,
            ))
            .len()
        };
        assert_eq!(
            check(
                r#"{"containers":[{"name":"a","image":"r.example/root:1"},{"name":"b","image":"r.example/app:1"}]}"#
            ),
            1
        );
        assert_eq!(
            check(
                r#"{"securityContext":{"runAsNonRoot":true},"containers":[{"name":"a","image":"r.example/root:1"}]}"#
            ),
            0
        );
        assert_eq!(
            check(
                r#"{"containers":[{"name":"a","image":"r.example/root:1","securityContext":{"runAsUser":1000}}]}"#
            ),
            0
        );
        assert_eq!(
            check(
                r#"{"securityContext":{"runAsUser":1000},"containers":[{"name":"a","image":"r.example/root:1","securityContext":{"runAsUser":0}}]}"#
            ),
            1,
            "an explicit runAsUser 0 on the container wins"
        );
    }

    #[test]
    fn root_users() {
        for user in ["", "0", "root", "0:0", "root:wheel", " 0 "] {
            assert!(user_is_root(user), "{user:?}");
        }
        for user in ["1000", "nobody", "65532:65532", "app"] {
            assert!(!user_is_root(user), "{user:?}");
        }
    }
}
