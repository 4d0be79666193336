//! `apparmor`: an unconfined AppArmor profile removes the mandatory access control around a container.
//!
//! Restricted fields:
//! - `spec.securityContext.appArmorProfile.type`
//! - `spec.containers[*].securityContext.appArmorProfile.type` (and `initContainers`, `ephemeralContainers`)
//! - `metadata.annotations["container.apparmor.security.beta.kubernetes.io/*"]` (the pod's, or the template's)
//!
//! Allowed values: a profile field that is set must be `RuntimeDefault` or `Localhost`; an annotation must
//! be empty, `runtime/default` or `localhost/*`.

use super::{
    Check, CheckContext, DefaultMode, Finding, PodView, Rule, RuleId, RuleProfile, Severity,
};

pub const RULE: Rule = Rule {
    id: RuleId::AppArmor,
    severity: Severity::Medium,
    techniques: &["T1611"],
    profile: RuleProfile::Baseline,
    default_mode: DefaultMode::Policy,
    description: "an AppArmor profile other than RuntimeDefault or Localhost (field or annotation)",
    about_image: false,
    check: Check::Pod(check),
};

const ANNOTATION_PREFIX: &str = "container.apparmor.security.beta.kubernetes.io/";

fn check(pod: &PodView<'_>, _: &CheckContext<'_>, out: &mut Vec<Finding>) {
    let spec = &pod.workload.spec;
    if let Some(p) = spec
        .security_context
        .as_ref()
        .and_then(|s| s.app_armor_profile.as_ref())
        .filter(|p| !p.confines())
    {
        out.push(pod.pod_finding(
            RuleId::AppArmor,
            "securityContext.appArmorProfile.type",
            "appArmorProfile",
            format!(
                "the pod sets AppArmor profile {:?}",
                p.type_.as_deref().unwrap_or_default()
            ),
        ));
    }
    for (i, c) in pod.iter() {
        let profile = c
            .container
            .security_context
            .as_ref()
            .and_then(|s| s.app_armor_profile.as_ref());
        if let Some(p) = profile.filter(|p| !p.confines()) {
            out.push(pod.container_finding(
                RuleId::AppArmor,
                i,
                "securityContext.appArmorProfile.type",
                "appArmorProfile",
                format!(
                    "container {:?} sets AppArmor profile {:?}",
                    c.name(),
                    p.type_.as_deref().unwrap_or_default()
                ),
            ));
        }
    }
    let Some(annotations) = &pod.workload.pod_metadata().annotations else {
        return;
    };
    for (key, value) in annotations.with_prefix(ANNOTATION_PREFIX) {
        let name = &key[ANNOTATION_PREFIX.len()..];
        if value.is_empty() || value == "runtime/default" || value.starts_with("localhost/") {
            continue;
        }
        let container = pod.iter().find(|(_, c)| c.name() == name).map(|(i, _)| i);
        out.push(pod.annotation_finding(
            RuleId::AppArmor,
            key,
            container,
            format!("annotation sets AppArmor profile {value:?} for container {name:?}"),
        ));
    }
}

#[cfg(test)]
mod tests {
    use super::super::testing::*;
    use super::*;
    use crate::policy::Profile;
    use crate::workload::WorkloadKind;

    #[test]
    fn unconfined_annotation_fails_on_a_template() {
        let object = r#"{"spec":{"template":{"metadata":{"annotations":{
            "container.apparmor.security.beta.kubernetes.io/app":"unconfined",
            "container.apparmor.security.beta.kubernetes.io/side":"localhost/custom",
            "container.apparmor.security.beta.kubernetes.io/z":"runtime/default",
            "other":"unconfined"}},
            "spec":{"containers":[{"name":"app"},{"name":"side"}]}}}}"#;
        let f = findings_for(
            RuleId::AppArmor,
            object,
            WorkloadKind::Deployment,
            Profile::Baseline,
            &Default::default(),
        );
        assert_eq!(
            fields(&f),
            [
                "spec.template.metadata.annotations[container.apparmor.security.beta.kubernetes.io/app]"
            ]
        );
        assert_eq!(f[0].container, Some(0));
    }

    #[test]
    fn profile_fields_must_be_runtime_default_or_localhost() {
        let f = findings(
            RuleId::AppArmor,
            r#"{"securityContext":{"appArmorProfile":{"type":"Unconfined"}},"containers":[
                {"name":"a","securityContext":{"appArmorProfile":{}}},
                {"name":"b","securityContext":{"appArmorProfile":{"type":"Localhost"}}}]}"#,
        );
        assert_eq!(
            fields(&f),
            [
                "spec.securityContext.appArmorProfile.type",
                "spec.containers[0].securityContext.appArmorProfile.type"
            ]
        );
    }

    #[test]
    fn passes_without_profiles() {
        assert!(findings(RuleId::AppArmor, r#"{"containers":[{"name":"a"}]}"#).is_empty());
    }
}
