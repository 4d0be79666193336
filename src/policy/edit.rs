//! Judging an edit of the policy ConfigMap: is the new policy valid, and what did the edit change.

use super::{Mode, Policy};

/// The most validation errors quoted in a denial; `kubectl` shows the whole message, so keep it readable.
const QUOTED_ERRORS: usize = 8;

/// What an edit of the policy ConfigMap means.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum EditJudgement {
    /// The new policy is valid; `summary` says what changed in one line.
    Accepted { summary: String },
    /// The new policy does not validate; `errors` are the validation errors with their paths.
    Rejected { errors: Vec<String> },
}

impl EditJudgement {
    /// The mode the edit is recorded with: audit for an accepted edit, enforce for a rejected one.
    pub fn mode(&self) -> Mode {
        match self {
            EditJudgement::Accepted { .. } => Mode::Audit,
            EditJudgement::Rejected { .. } => Mode::Enforce,
        }
    }

    /// One line for the alert record.
    pub fn message(&self) -> String {
        match self {
            EditJudgement::Accepted { summary } => summary.clone(),
            EditJudgement::Rejected { errors } => format!(
                "rejected an invalid policy ({} error{}): {}",
                errors.len(),
                if errors.len() == 1 { "" } else { "s" },
                errors.first().map(String::as_str).unwrap_or_default()
            ),
        }
    }

    /// The denial message for a rejected edit, with its validation errors.
    pub fn denial(&self, what: &str) -> Option<String> {
        let EditJudgement::Rejected { errors } = self else {
            return None;
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

/// The policy text of the ConfigMap's `policy.yaml`, or why there is none.
pub type PolicyText<'a> = Result<&'a str, &'static str>;

/// Judges a CREATE or UPDATE: `new` is the new ConfigMap's `policy.yaml`, `old` the old one's, if any.
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
    EditJudgement::Accepted { summary }
}

/// Judges a DELETE of the policy ConfigMap: always admitted, always recorded.
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
                summary: "mode enforce -> audit; exemption me added".to_owned()
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
}
