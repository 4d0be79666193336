//! `policy-change`: an edit of the policy ConfigMap itself. Weakening the policy and then acting is an
//! attack in two steps (T1562.001), so every accepted CREATE, UPDATE or DELETE of the policy ConfigMap is
//! recorded in the same alert stream, and an edit whose policy does not validate is denied.
//!
//! Restricted fields:
//! - `data["policy.yaml"]` of the ConfigMap named by `--policy-configmap`
//!
//! This rule judges no pod, so its check finds nothing; the admission module records it. It cannot be
//! configured, turned off or exempted.

use super::{
    Check, CheckContext, DefaultMode, Finding, PodView, Rule, RuleId, RuleProfile, Severity,
};
use crate::policy::Mode;

pub const RULE: Rule = Rule {
    id: RuleId::PolicyChange,
    severity: Severity::High,
    techniques: &["T1562.001"],
    profile: RuleProfile::PolicyEdits,
    default_mode: DefaultMode::Fixed(Mode::Audit),
    description: "an edit of the policy ConfigMap (recorded always; an invalid policy is denied)",
    about_image: false,
    check: Check::Pod(check),
};

fn check(_: &PodView<'_>, _: &CheckContext<'_>, _: &mut Vec<Finding>) {}
