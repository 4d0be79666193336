//! Judging an edit of the policy ConfigMap: is the new policy valid, may this writer change it, and what did
//! the edit change.
//!
//! The chart annotates the ConfigMap with who keeps the policy (`vigil.dev/policy-source`) and which
//! failurePolicy it gave the workloads webhook (`vigil.dev/failure-policy`). Under `helm`, an edit of
//! `policy.yaml` by anyone but Helm is refused: Helm 4 applies server-side, so such an edit would make the
//! release's next upgrade fail on a field conflict (or, with older tools, be overwritten unannounced).

use std::collections::BTreeSet;

use super::{Mode, Policy};
use crate::engine::Operation;

/// The most validation errors quoted in a denial; `kubectl` shows the whole message, so keep it readable.
const QUOTED_ERRORS: usize = 8;

/// Who keeps the policy, as the chart records it (`policyConfigMap.source`).
pub const SOURCE_ANNOTATION: &str = "vigil.dev/policy-source";
/// The failurePolicy the chart gave the workloads webhook when it last wrote the ConfigMap.
pub const FAILURE_POLICY_ANNOTATION: &str = "vigil.dev/failure-policy";
/// Present when that failurePolicy was set by the value `webhook.failurePolicy`, not worked out from the policy.
pub const FAILURE_POLICY_PINNED_ANNOTATION: &str = "vigil.dev/failure-policy-pinned";
/// The label that names the Helm release.
pub const RELEASE_LABEL: &str = "app.kubernetes.io/instance";
/// The field manager Helm writes with.
pub const HELM_FIELD_MANAGER: &str = "helm";

/// Stands for the chart reference in suggested commands: Vigil cannot know where the release came from.
const CHART: &str = "<chart>";

/// The policy text of the ConfigMap's `policy.yaml`, or why there is none.
pub type PolicyText<'a> = Result<&'a str, &'static str>;

/// What an edit of the policy ConfigMap means.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum EditJudgement {
    /// Admitted. `summary` says what changed in one line; `warnings` go back to the client.
    Accepted {
        summary: String,
        warnings: Vec<String>,
    },
    /// The new policy does not validate; `errors` are the validation errors with their paths.
    Rejected { errors: Vec<String> },
    /// The writer may not change `policy.yaml`: `summary` says what the edit would have changed, `reason`
    /// why it is refused and what to run instead.
    Refused { summary: String, reason: String },
}

impl EditJudgement {
    /// The mode the edit is recorded with: audit for an admitted edit, enforce for a denied one.
    pub fn mode(&self) -> Mode {
        match self {
            EditJudgement::Accepted { .. } => Mode::Audit,
            EditJudgement::Rejected { .. } | EditJudgement::Refused { .. } => Mode::Enforce,
        }
    }

    /// One line for the alert record.
    pub fn message(&self) -> String {
        match self {
            EditJudgement::Accepted { summary, .. } => summary.clone(),
            EditJudgement::Rejected { errors } => format!(
                "rejected an invalid policy ({} error{}): {}",
                errors.len(),
                if errors.len() == 1 { "" } else { "s" },
                errors.first().map(String::as_str).unwrap_or_default()
            ),
            EditJudgement::Refused { summary, .. } => {
                format!("refused, the policy is kept in Helm values: {summary}")
            }
        }
    }

    /// The warnings for the client: only an admitted edit has any.
    pub fn warnings(&self) -> &[String] {
        match self {
            EditJudgement::Accepted { warnings, .. } => warnings,
            _ => &[],
        }
    }

    /// The denial message for a rejected or refused edit.
    pub fn denial(&self, what: &str) -> Option<String> {
        let errors = match self {
            EditJudgement::Accepted { .. } => return None,
            EditJudgement::Refused { reason, .. } => return Some(format!("{what}: {reason}")),
            EditJudgement::Rejected { errors } => errors,
        };
        let mut shown: Vec<&str> = errors
            .iter()
            .take(QUOTED_ERRORS)
            .map(String::as_str)
            .collect();
        let more = errors.len().saturating_sub(QUOTED_ERRORS);
        let tail = if more > 0 {
            format!("; and {more} more")
        } else {
            String::new()
        };
        shown.dedup();
        Some(format!(
            "{what}: policy.yaml is not a valid policy, and the policy in force stays as it was: {}{tail}",
            shown.join("; ")
        ))
    }
}

/// What Vigil reads from one side of an edit, the ConfigMap before or after it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ConfigMapState<'a> {
    /// `policy.yaml`.
    pub policy: PolicyText<'a>,
    /// `vigil.dev/policy-source`.
    pub source: Option<&'a str>,
    /// `vigil.dev/failure-policy`.
    pub failure_policy: Option<&'a str>,
    /// Whether `vigil.dev/failure-policy-pinned` is there.
    pub failure_policy_pinned: bool,
    /// The release, from the `app.kubernetes.io/instance` label.
    pub release: Option<&'a str>,
    /// The field managers that own `data.policy.yaml`, from `metadata.managedFields`.
    pub policy_owners: Vec<&'a str>,
}

impl<'a> ConfigMapState<'a> {
    /// A ConfigMap with this `policy.yaml` and nothing else that Vigil reads.
    pub fn with_policy(policy: PolicyText<'a>) -> Self {
        ConfigMapState {
            policy,
            source: None,
            failure_policy: None,
            failure_policy_pinned: false,
            release: None,
            policy_owners: Vec::new(),
        }
    }
}

/// An edit of the policy ConfigMap, as the API server describes it.
#[derive(Debug, Clone)]
pub struct Edit<'a> {
    pub operation: Operation,
    /// `options.fieldManager`: set by the client for CREATE, UPDATE and PATCH; DELETE has none.
    pub field_manager: Option<&'a str>,
    /// The ConfigMap's namespace, where the release lives too.
    pub namespace: &'a str,
    /// The ConfigMap as it was; absent on CREATE.
    pub old: Option<&'a ConfigMapState<'a>>,
    /// The ConfigMap as it would be; absent on DELETE.
    pub new: Option<&'a ConfigMapState<'a>>,
}

impl Edit<'_> {
    /// The release named on the ConfigMap, or a placeholder.
    fn release(&self) -> &str {
        self.old
            .and_then(|o| o.release)
            .or(self.new.and_then(|n| n.release))
            .unwrap_or("<release>")
    }

    fn by_helm(&self) -> bool {
        self.field_manager == Some(HELM_FIELD_MANAGER)
    }
}

/// Judges an edit of the policy ConfigMap.
pub fn judge(edit: &Edit<'_>) -> EditJudgement {
    let old_text = edit.old.map(|o| o.policy);
    if edit.operation == Operation::Delete {
        let judgement = judge_delete(old_text);
        return match edit.old.and_then(|o| o.release) {
            // Helm sends no field manager with a DELETE, and `helm uninstall` deletes the ConfigMap: a
            // DELETE is admitted and recorded whoever sends it, with what brings the policy back.
            Some(release) => with_warnings(
                judgement,
                vec![format!(
                    "Vigil keeps the policy it last loaded; helm upgrade {release} {CHART} -n {} --reuse-values writes the values' policy again",
                    edit.namespace
                )],
            ),
            None => judgement,
        };
    }
    let new_text = edit
        .new
        .map(|n| n.policy)
        .unwrap_or(Err("the request has no object"));
    if let Some(refusal) = helm_guard(edit, old_text, new_text) {
        return refusal;
    }
    let judgement = judge_write(old_text, new_text);
    let warnings = failure_policy_warnings(edit, old_text, new_text);
    with_warnings(judgement, warnings)
}

fn with_warnings(judgement: EditJudgement, extra: Vec<String>) -> EditJudgement {
    match judgement {
        EditJudgement::Accepted {
            summary,
            mut warnings,
        } => {
            warnings.extend(extra);
            EditJudgement::Accepted { summary, warnings }
        }
        other => other,
    }
}

/// Under `policy-source: helm` (read from the OLD object, so that dropping the annotation in the same
/// edit changes nothing), an UPDATE that changes `policy.yaml` is refused unless Helm makes it, or the
/// field manager that already owns `policy.yaml` (a tool that installed the release through Helm's
/// library, such as Flux's helm-controller or Argo CD, writes under its own name).
fn helm_guard(
    edit: &Edit<'_>,
    old_text: Option<PolicyText<'_>>,
    new_text: PolicyText<'_>,
) -> Option<EditJudgement> {
    let old = edit.old?;
    if edit.operation != Operation::Update || old.source != Some("helm") {
        return None;
    }
    if old_text == Some(new_text) || edit.by_helm() {
        return None;
    }
    if let Some(manager) = edit.field_manager
        && old.policy_owners.contains(&manager)
    {
        return None;
    }
    let summary = match judge_write(old_text, new_text) {
        EditJudgement::Accepted { summary, .. } => summary,
        _ => "policy.yaml replaced by an invalid policy".to_owned(),
    };
    let (release, ns) = (edit.release(), edit.namespace);
    let writer = match edit.field_manager {
        Some(manager) if !manager.is_empty() => format!("this edit (field manager {manager:?})"),
        _ => "this edit (no field manager)".to_owned(),
    };
    let values = set_args(old_text, new_text)
        .map(|args| format!("{args} (or -f <values file>)"))
        .unwrap_or_else(|| "-f <values file>".to_owned());
    let reason = format!(
        "refused: the policy is kept in the values of Helm release {release:?} (policyConfigMap.source=helm), \
         and {writer} would make its next helm upgrade fail on a field conflict. The policy in force stays as \
         it was; the edit would have made: {summary}. Change the values instead: \
         helm upgrade {release} {CHART} -n {ns} --reuse-values {values}. \
         To keep the policy in the cluster and edit it there: \
         helm upgrade {release} {CHART} -n {ns} --reuse-values --set policyConfigMap.source=cluster"
    );
    Some(EditJudgement::Refused { summary, reason })
}

/// `--set` arguments that make the same change through the chart's values, when the edit changed only
/// modes that single values can set.
fn set_args(old: Option<PolicyText<'_>>, new: PolicyText<'_>) -> Option<String> {
    let old = Policy::parse(old?.ok()?, "old policy.yaml").ok()?;
    let new = Policy::parse(new.ok()?, "policy.yaml").ok()?;
    let changes = new.mode_changes(&old);
    if changes.is_empty() {
        return None;
    }
    Some(
        changes
            .iter()
            .map(|(path, mode)| format!("--set policy.{path}={mode}"))
            .collect::<Vec<_>>()
            .join(" "),
    )
}

/// Warnings when an admitted edit turns on enforcement somewhere while the workloads webhook fails open.
/// The failurePolicy is the one the chart recorded on the old ConfigMap; on CREATE, and when Helm writes
/// (it renders the webhook in the same upgrade), the new one's.
fn failure_policy_warnings(
    edit: &Edit<'_>,
    old_text: Option<PolicyText<'_>>,
    new_text: PolicyText<'_>,
) -> Vec<String> {
    let recorded = match (edit.old, edit.new) {
        (Some(_), Some(new)) if edit.by_helm() => new,
        (Some(old), _) => old,
        (None, Some(new)) => new,
        (None, None) => return Vec::new(),
    };
    if recorded.failure_policy != Some("Ignore") {
        return Vec::new();
    }
    let Ok(new) = new_text.map(|t| Policy::parse(t, "policy.yaml")) else {
        return Vec::new();
    };
    let Ok(new) = new else {
        return Vec::new();
    };
    let before: BTreeSet<String> = old_text
        .and_then(|t| t.ok())
        .and_then(|t| Policy::parse(t, "old policy.yaml").ok())
        .map(|p| p.enforced_places())
        .unwrap_or_default();
    let turned_on: Vec<String> = new.enforced_places().difference(&before).cloned().collect();
    if turned_on.is_empty() {
        return Vec::new();
    }
    let (release, ns) = (edit.release(), edit.namespace);
    let upgrade = format!("helm upgrade {release} {CHART} -n {ns} --reuse-values");
    if recorded.failure_policy_pinned {
        vec![
            format!(
                "enforce is now on ({}), but webhook.failurePolicy keeps the workloads webhook at Ignore",
                turned_on.join(", ")
            ),
            "while Vigil is unreachable, what this policy denies is admitted unchecked".to_owned(),
            format!("to fail closed instead, run: {upgrade} --set webhook.failurePolicy=Fail"),
        ]
    } else {
        vec![
            format!(
                "enforce is now on ({}), but the workloads webhook still has failurePolicy Ignore",
                turned_on.join(", ")
            ),
            "while Vigil is unreachable, what this policy denies is admitted unchecked".to_owned(),
            format!("to fail closed, run: {upgrade}"),
        ]
    }
}

/// Judges a CREATE or UPDATE on the policy alone: `new` is the new ConfigMap's `policy.yaml`, `old` the
/// old one's, if any.
pub fn judge_write(old: Option<PolicyText<'_>>, new: PolicyText<'_>) -> EditJudgement {
    let text = match new {
        Ok(text) => text,
        Err(why) => {
            return EditJudgement::Rejected {
                errors: vec![format!("policy.yaml: {why}")],
            };
        }
    };
    let policy = match Policy::parse(text, "policy.yaml") {
        Ok(p) => p,
        Err(e) => {
            return EditJudgement::Rejected {
                errors: e
                    .errors
                    .iter()
                    .map(|fe| format!("policy.yaml: {fe}"))
                    .collect(),
            };
        }
    };
    let old = old
        .and_then(|o| o.ok())
        .map(|t| Policy::parse(t, "old policy.yaml"));
    let summary = match old {
        None => format!("created: {}", policy.summary()),
        Some(Err(_)) => format!("replaced an invalid policy with: {}", policy.summary()),
        Some(Ok(old)) if old.hash == policy.hash => "no change to the policy text".to_owned(),
        Some(Ok(old)) => policy.change_summary(&old),
    };
    EditJudgement::Accepted {
        summary,
        warnings: Vec::new(),
    }
}

/// Judges a DELETE of the policy ConfigMap on the policy alone: always admitted, always recorded.
pub fn judge_delete(old: Option<PolicyText<'_>>) -> EditJudgement {
    let was = match old {
        Some(Ok(text)) => match Policy::parse(text, "policy.yaml") {
            Ok(p) => p.summary(),
            Err(_) => "an invalid policy".to_owned(),
        },
        _ => "unknown".to_owned(),
    };
    EditJudgement::Accepted {
        summary: format!(
            "deleted the policy ConfigMap (was: {was}); the last policy loaded stays in force"
        ),
        warnings: Vec::new(),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const OLD: &str = "apiVersion: vigil.dev/v1alpha1\nkind: Policy\nmode: enforce\n";
    const WEAKER: &str = "apiVersion: vigil.dev/v1alpha1\nkind: Policy\nmode: audit\nexemptions:\n  - name: me\n    reason: trust me\n";

    #[test]
    fn weakening_is_summarised() {
        assert_eq!(
            judge_write(Some(Ok(OLD)), Ok(WEAKER)),
            EditJudgement::Accepted {
                summary: "mode enforce -> audit; exemption me added".to_owned(),
                warnings: Vec::new(),
            }
        );
        let created = judge_write(None, Ok(OLD));
        assert!(
            created.message().starts_with("created: mode enforce"),
            "{created:?}"
        );
    }

    #[test]
    fn invalid_policies_are_rejected_with_paths() {
        let j = judge_write(
            Some(Ok(OLD)),
            Ok(
                "apiVersion: vigil.dev/v1alpha1\nkind: Policy\nmode: enforced\nrules:\n  nope: off\n",
            ),
        );
        let denial = j.denial("ConfigMap vigil/vigil-policy").unwrap();
        assert!(
            denial.starts_with("ConfigMap vigil/vigil-policy: policy.yaml is not a valid policy"),
            "{denial}"
        );
        assert!(
            denial.contains("policy.yaml: mode: unknown variant `enforced`"),
            "{denial}"
        );
        assert!(
            denial.contains("policy.yaml: rules.nope: unknown rule id"),
            "{denial}"
        );
        assert_eq!(j.mode(), Mode::Enforce);
        let missing = judge_write(None, Err("the ConfigMap has no policy.yaml"));
        assert!(missing.denial("x").unwrap().contains("no policy.yaml"));
    }

    #[test]
    fn deletes_are_recorded() {
        let j = judge_delete(Some(Ok(OLD)));
        assert!(
            j.message()
                .starts_with("deleted the policy ConfigMap (was: mode enforce"),
            "{j:?}"
        );
        assert_eq!(j.denial("x"), None);
    }
    const AUDIT: &str = "apiVersion: vigil.dev/v1alpha1\nkind: Policy\nmode: audit\n";
    const ENFORCE: &str = OLD;

    /// The policy ConfigMap as the chart writes it under `source`, with `policy` and the failurePolicy
    /// it recorded, owned by Helm.
    fn chart_state<'a>(
        source: &'a str,
        policy: &'a str,
        failure_policy: &'a str,
    ) -> ConfigMapState<'a> {
        ConfigMapState {
            source: Some(source),
            failure_policy: Some(failure_policy),
            release: Some("vigil"),
            policy_owners: vec!["helm"],
            ..ConfigMapState::with_policy(Ok(policy))
        }
    }

    fn update<'a>(
        field_manager: Option<&'a str>,
        old: &'a ConfigMapState<'a>,
        new: &'a ConfigMapState<'a>,
    ) -> Edit<'a> {
        Edit {
            operation: Operation::Update,
            field_manager,
            namespace: "vigil",
            old: Some(old),
            new: Some(new),
        }
    }

    #[rstest::rstest]
    #[case::helm_itself(Some("helm"), true)]
    #[case::kubectl_apply(Some("kubectl-client-side-apply"), false)]
    #[case::kubectl_edit(Some("kubectl-edit"), false)]
    #[case::kubectl_server_side_apply(Some("kubectl"), false)]
    #[case::no_field_manager(None, false)]
    // A tool that installed the release with Helm's library writes under its own name, and owns the key.
    #[case::the_owner_of_policy_yaml(Some("helm-controller"), true)]
    fn under_source_helm_only_helm_changes_the_policy(
        #[case] field_manager: Option<&str>,
        #[case] admitted: bool,
    ) {
        let mut old = chart_state("helm", AUDIT, "Ignore");
        old.policy_owners.push("helm-controller");
        let new = chart_state("helm", ENFORCE, "Fail");
        let j = judge(&update(field_manager, &old, &new));
        assert_eq!(j.denial("x").is_none(), admitted, "{j:?}");
        if !admitted {
            assert_eq!(j.mode(), Mode::Enforce);
            assert_eq!(
                j.message(),
                "refused, the policy is kept in Helm values: mode audit -> enforce"
            );
        }
    }

    #[test]
    fn the_refusal_names_the_release_and_what_to_run() {
        let old = chart_state("helm", AUDIT, "Ignore");
        let new = chart_state("helm", ENFORCE, "Ignore");
        let j = judge(&update(Some("kubectl-client-side-apply"), &old, &new));
        assert_eq!(
            j.denial("ConfigMap vigil/vigil-policy").unwrap(),
            "ConfigMap vigil/vigil-policy: refused: the policy is kept in the values of Helm release \"vigil\" \
             (policyConfigMap.source=helm), and this edit (field manager \"kubectl-client-side-apply\") would \
             make its next helm upgrade fail on a field conflict. The policy in force stays as it was; the edit \
             would have made: mode audit -> enforce. Change the values instead: helm upgrade vigil <chart> -n \
             vigil --reuse-values --set policy.mode=enforce (or -f <values file>). To keep the policy in the \
             cluster and edit it there: helm upgrade vigil <chart> -n vigil --reuse-values --set \
             policyConfigMap.source=cluster"
        );
        assert!(j.warnings().is_empty());

        // A change that no single value makes: the values file.
        let exempting = format!("{AUDIT}exemptions:\n  - name: me\n    reason: trust me\n");
        let new = chart_state("helm", &exempting, "Ignore");
        let denial = judge(&update(Some("kubectl-edit"), &old, &new))
            .denial("x")
            .unwrap();
        assert!(
            denial.contains("exemption me added. Change the values instead: helm upgrade vigil <chart> -n vigil --reuse-values -f <values file>."),
            "{denial}"
        );
        // Rule modes map to their values too, and an invalid policy is refused all the same.
        let rule = format!("{AUDIT}rules:\n  privileged: enforce\n  image-tag: off\n");
        let new = chart_state("helm", &rule, "Ignore");
        let denial = judge(&update(None, &old, &new)).denial("x").unwrap();
        assert!(denial.contains("this edit (no field manager)"), "{denial}");
        assert!(
            denial.contains(
                "--reuse-values --set policy.rules.privileged=enforce --set policy.rules.image-tag=off (or -f"
            ),
            "{denial}"
        );
        let new = chart_state("helm", "mode: [", "Ignore");
        let j = judge(&update(Some("kubectl-edit"), &old, &new));
        assert!(
            j.denial("x")
                .unwrap()
                .contains("would have made: policy.yaml replaced by an invalid policy"),
            "{j:?}"
        );
    }

    #[test]
    fn the_old_object_decides_who_keeps_the_policy() {
        // Dropping the annotation (or switching it to cluster) in the same edit does not escape the check.
        let old = chart_state("helm", AUDIT, "Ignore");
        for source in [None, Some("cluster")] {
            let new = ConfigMapState {
                source,
                ..chart_state("helm", ENFORCE, "Ignore")
            };
            let j = judge(&update(Some("kubectl-client-side-apply"), &old, &new));
            assert!(
                matches!(j, EditJudgement::Refused { .. }),
                "{source:?}: {j:?}"
            );
        }
        // Under source=cluster, or on a ConfigMap the chart did not write, anyone may edit it.
        for old in [
            chart_state("cluster", AUDIT, "Fail"),
            ConfigMapState::with_policy(Ok(AUDIT)),
        ] {
            let new = chart_state("helm", ENFORCE, "Fail");
            let j = judge(&update(Some("kubectl-client-side-apply"), &old, &new));
            assert_eq!(
                j,
                EditJudgement::Accepted {
                    summary: "mode audit -> enforce".to_owned(),
                    warnings: Vec::new()
                }
            );
        }
        // Going back to source=helm through Helm itself is Helm's edit.
        let old = chart_state("cluster", AUDIT, "Ignore");
        let new = chart_state("helm", ENFORCE, "Fail");
        assert!(
            judge(&update(Some("helm"), &old, &new))
                .denial("x")
                .is_none()
        );
    }

    #[test]
    fn edits_that_leave_policy_yaml_alone_are_admitted_under_source_helm() {
        // Labels, annotations and other keys are not the policy: kubectl label and annotate go through.
        let old = chart_state("helm", AUDIT, "Ignore");
        let new = ConfigMapState {
            source: None,
            release: Some("other"),
            ..chart_state("helm", AUDIT, "Fail")
        };
        let j = judge(&update(Some("kubectl-label"), &old, &new));
        assert_eq!(
            j,
            EditJudgement::Accepted {
                summary: "no change to the policy text".to_owned(),
                warnings: Vec::new()
            }
        );
    }

    #[test]
    fn deletes_are_admitted_and_say_what_brings_the_policy_back() {
        // `helm uninstall` deletes the ConfigMap, and a DELETE carries no field manager: DELETE is never refused.
        let old = chart_state("helm", ENFORCE, "Fail");
        let j = judge(&Edit {
            operation: Operation::Delete,
            field_manager: None,
            namespace: "vigil",
            old: Some(&old),
            new: None,
        });
        assert!(j.denial("x").is_none());
        assert!(
            j.message().starts_with("deleted the policy ConfigMap"),
            "{j:?}"
        );
        assert_eq!(
            j.warnings(),
            [
                "Vigil keeps the policy it last loaded; helm upgrade vigil <chart> -n vigil --reuse-values writes the values' policy again"
            ]
        );
    }

    #[rstest::rstest]
    #[case::policy_mode(ENFORCE, "mode")]
    #[case::a_rule(
        "apiVersion: vigil.dev/v1alpha1\nkind: Policy\nrules:\n  privileged: {mode: enforce}\n",
        "rules.privileged"
    )]
    #[case::a_namespace(
        "apiVersion: vigil.dev/v1alpha1\nkind: Policy\nnamespaces:\n  - match: [team-a, team-b]\n    mode: enforce\n",
        "namespaces[team-a,team-b]"
    )]
    fn turning_enforce_on_while_the_webhook_fails_open_warns(
        #[case] policy: &str,
        #[case] place: &str,
    ) {
        let old = chart_state("cluster", AUDIT, "Ignore");
        let new = chart_state("cluster", policy, "Ignore");
        let j = judge(&update(Some("kubectl-client-side-apply"), &old, &new));
        assert!(j.denial("x").is_none());
        assert_eq!(
            j.warnings(),
            [
                format!(
                    "enforce is now on ({place}), but the workloads webhook still has failurePolicy Ignore"
                ),
                "while Vigil is unreachable, what this policy denies is admitted unchecked"
                    .to_owned(),
                "to fail closed, run: helm upgrade vigil <chart> -n vigil --reuse-values"
                    .to_owned(),
            ]
        );
        for w in j.warnings() {
            assert!(w.chars().count() <= 120, "{w}");
        }
        // A kubectl edit cannot silence it by rewriting the annotation: the old object's counts.
        let lying = ConfigMapState {
            failure_policy: Some("Fail"),
            ..new.clone()
        };
        assert_eq!(
            judge(&update(Some("kubectl-edit"), &old, &lying)).warnings(),
            j.warnings()
        );
    }

    #[test]
    fn the_failure_policy_warning_needs_enforce_turned_on_and_an_open_webhook() {
        let audit_ignore = chart_state("cluster", AUDIT, "Ignore");
        let enforce_ignore = chart_state("cluster", ENFORCE, "Ignore");
        let enforce_fail = chart_state("cluster", ENFORCE, "Fail");
        let exempting = format!("{ENFORCE}exemptions:\n  - name: me\n    reason: trust me\n");
        let enforce_more = chart_state("cluster", &exempting, "Ignore");
        let silent = [
            // The webhook already fails closed.
            (&chart_state("cluster", AUDIT, "Fail"), &enforce_fail, None),
            // Enforce was already on there: told when it was turned on.
            (&enforce_ignore, &enforce_more, None),
            // Nothing enforces.
            (
                &audit_ignore,
                &chart_state("cluster", AUDIT, "Ignore"),
                None,
            ),
            // Helm renders the webhook in the same upgrade: the new annotation counts.
            (&audit_ignore, &enforce_fail, Some("helm")),
        ];
        for (old, new, manager) in silent {
            let j = judge(&update(manager.or(Some("kubectl-edit")), old, new));
            assert!(j.warnings().is_empty(), "{j:?}");
        }
        // On CREATE the new object's annotation counts.
        let created = judge(&Edit {
            operation: Operation::Create,
            field_manager: Some("kubectl-create"),
            namespace: "vigil",
            old: None,
            new: Some(&enforce_ignore),
        });
        assert_eq!(created.warnings().len(), 3, "{created:?}");
        // A failurePolicy pinned by webhook.failurePolicy says which value to change.
        let pinned_old = ConfigMapState {
            failure_policy_pinned: true,
            ..audit_ignore.clone()
        };
        let j = judge(&update(Some("kubectl-edit"), &pinned_old, &enforce_ignore));
        assert_eq!(
            j.warnings().last().unwrap(),
            "to fail closed instead, run: helm upgrade vigil <chart> -n vigil --reuse-values --set webhook.failurePolicy=Fail"
        );
        assert!(
            j.warnings()[0].contains("webhook.failurePolicy keeps"),
            "{j:?}"
        );
    }
}
