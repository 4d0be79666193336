//! The alert record, the warnings and the denial message made from a decision.

use std::collections::BTreeMap;

use serde::{Deserialize, Serialize};
use time::OffsetDateTime;
use time::format_description::well_known::{Iso8601, iso8601};

use crate::engine::{Decision, Violation};
use crate::rules::image_signature::SignedImage;

/// The record's schema id.
pub const SCHEMA: &str = "vigil.dev/alert/v1";
/// The most characters one warning may have.
pub const MAX_WARNING_CHARS: usize = 120;
/// The most bytes all warnings together may have.
pub const MAX_WARNINGS_BYTES: usize = 4096;
/// The annotation `/mutate` maintains.
pub const ANNOTATION: &str = "vigil.dev/alert";

/// The object an alert is about.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct ObjectRef {
    pub api_version: String,
    pub kind: String,
    pub namespace: String,
    pub name: String,
}

impl ObjectRef {
    /// `Kind namespace/name`, the start of every denial message.
    pub fn describe(&self) -> String {
        format!("{} {}/{}", self.kind, self.namespace, self.name)
    }
}

/// Who sent the request.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct UserRef {
    pub username: String,
    pub groups: Vec<String>,
}

/// One alert: a request with violations, as a SIEM reads it.
#[derive(Debug, Clone, Serialize)]
#[serde(rename_all = "camelCase")]
pub struct AlertRecord<'a> {
    pub schema: &'static str,
    pub time: String,
    pub uid: &'a str,
    pub decision: &'static str,
    pub dry_run: bool,
    pub operation: &'a str,
    pub object: &'a ObjectRef,
    pub user: &'a UserRef,
    /// The first `MAX_RECORD_VIOLATIONS` violations.
    pub violations: &'a [Violation],
    /// How many violations were left out of `violations`, when there were more.
    #[serde(skip_serializing_if = "is_zero")]
    pub omitted: usize,
    /// The images a trusted key verified (`image-signature`), each with the key's name.
    #[serde(skip_serializing_if = "<[_]>::is_empty")]
    pub signatures: &'a [SignedImage],
}

/// The most violations one alert record lists; the rest are counted in `omitted`. A pod with 10,000
/// privileged containers must not make a record of megabytes that log pipelines and the API server's audit
/// annotations would choke on.
pub const MAX_RECORD_VIOLATIONS: usize = 100;

/// The violations a record lists, and how many it leaves out.
pub fn bounded(violations: &[Violation]) -> (&[Violation], usize) {
    let shown = violations.len().min(MAX_RECORD_VIOLATIONS);
    (&violations[..shown], violations.len() - shown)
}

/// For `skip_serializing_if`: a count of zero is left out.
pub(crate) fn is_zero(n: &usize) -> bool {
    *n == 0
}

/// The most characters of a name or an image an alert carries.
pub const MAX_TEXT_CHARS: usize = 256;
/// The most characters of a message an alert carries: room for a long registry name and two digests.
pub const MAX_MESSAGE_CHARS: usize = 1024;

/// Shortens text that comes from an object (a container name, an image) to `MAX_TEXT_CHARS`.
pub fn clip(text: &str) -> String {
    truncate_chars(text, MAX_TEXT_CHARS)
}

/// Shortens a message, which may quote text from the object, to `MAX_MESSAGE_CHARS`.
pub fn clip_message(text: &str) -> String {
    truncate_chars(text, MAX_MESSAGE_CHARS)
}

/// RFC 3339 with milliseconds, in UTC: `2026-11-22T15:04:05.123Z`.
pub fn format_time(t: OffsetDateTime) -> String {
    const FORMAT: iso8601::EncodedConfig = iso8601::Config::DEFAULT
        .set_time_precision(iso8601::TimePrecision::Second {
            decimal_digits: std::num::NonZeroU8::new(3),
        })
        .encode();
    t.to_offset(time::UtcOffset::UTC)
        .format(&Iso8601::<FORMAT>)
        .unwrap_or_else(|_| t.unix_timestamp().to_string())
}

impl AlertRecord<'_> {
    /// The record as one compact JSON line.
    pub fn to_json(&self) -> String {
        // A record is a few hundred bytes plus about two hundred per violation; sizing the buffer once
        // saves the copies of growing it from empty.
        let mut out = Vec::with_capacity(512 + 256 * self.violations.len());
        serde_json::to_writer(&mut out, self).expect("an alert record always serializes");
        String::from_utf8(out).expect("serde_json writes UTF-8")
    }
}

/// The decision's word in the record.
pub fn decision_word(decision: &Decision) -> &'static str {
    if decision.allowed {
        "allowed"
    } else {
        "denied"
    }
}

/// Shortens `text` to at most `max` characters, marking the cut with `…`.
fn truncate_chars(text: &str, max: usize) -> String {
    if text.chars().count() <= max {
        return text.to_owned();
    }
    let mut out: String = text.chars().take(max - 1).collect();
    out.push('…');
    out
}

/// The `warnings` of the response: one per warning violation, each at most 120 characters, 4 KiB in all.
pub fn warnings(decision: &Decision) -> Vec<String> {
    let lines: Vec<String> = decision
        .violations
        .iter()
        .filter(|v| v.warns())
        .map(|v| {
            let prefix = if v.existing { " (already present)" } else { "" };
            truncate_chars(
                &format!("{}{prefix}: {}", v.rule, v.message),
                MAX_WARNING_CHARS,
            )
        })
        .collect();
    let mut out = Vec::new();
    let mut used = 0;
    for (i, line) in lines.iter().enumerate() {
        let rest = lines.len() - i - 1;
        // Keep room for the line that says how many were left out.
        let reserve = if rest > 0 { 64 } else { 0 };
        if used + line.len() + reserve > MAX_WARNINGS_BYTES {
            out.push(format!(
                "vigil: {} more violations not shown",
                lines.len() - i
            ));
            return out;
        }
        used += line.len();
        out.push(line.clone());
    }
    out
}

/// The denial message: the object, then each enforced violation with its field.
pub fn denial_message(object: &ObjectRef, decision: &Decision) -> String {
    const SHOWN: usize = 10;
    let enforced: Vec<&Violation> = decision.enforced().collect();
    let mut msg = format!("{} denied by vigil: ", object.describe());
    for (i, v) in enforced.iter().take(SHOWN).enumerate() {
        if i > 0 {
            msg.push_str("; ");
        }
        msg.push_str(&format!("[{}] {} ({})", v.rule, v.message, v.field));
    }
    if enforced.len() > SHOWN {
        msg.push_str(&format!("; and {} more", enforced.len() - SHOWN));
    }
    msg
}

/// The `auditAnnotations` of the response: the compact record under `alert`, and the rule ids under
/// `violations`.
pub fn audit_annotations(
    record_json: &str,
    violations: &[Violation],
) -> BTreeMap<&'static str, String> {
    let mut ids: Vec<&str> = Vec::new();
    for v in violations {
        if !ids.contains(&v.rule.as_str()) {
            ids.push(v.rule.as_str());
        }
    }
    BTreeMap::from([
        ("alert", record_json.to_owned()),
        ("violations", ids.join(",")),
    ])
}

/// The `signatures` audit annotation: the images a trusted key verified, with the key, as compact JSON.
/// A review without violations has no alert record; the API server's audit log still says which key let
/// each signed image in.
pub fn signatures_annotation(signatures: &[SignedImage]) -> String {
    serde_json::to_string(signatures).expect("signed images always serialize")
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::policy::Mode;
    use crate::rules::{RuleId, Severity};

    fn violation(rule: RuleId, mode: Mode, message: &str) -> Violation {
        Violation {
            rule,
            mode,
            severity: Severity::High,
            techniques: rule.rule().techniques,
            container: Some("app".into()),
            image: None,
            field: "spec.containers[0].image".into(),
            message: message.into(),
            exemption: None,
            existing: false,
        }
    }

    #[test]
    fn warnings_are_short_and_bounded() {
        let long = "x".repeat(500);
        let decision = Decision {
            violations: (0..100)
                .map(|_| violation(RuleId::ImageTag, Mode::Warn, &long))
                .collect(),
            allowed: true,
            ..Default::default()
        };
        let w = warnings(&decision);
        assert!(
            w.iter().all(|l| l.chars().count() <= MAX_WARNING_CHARS),
            "{w:?}"
        );
        assert!(w.iter().map(String::len).sum::<usize>() <= MAX_WARNINGS_BYTES);
        assert!(
            w.last().unwrap().ends_with("more violations not shown"),
            "{w:?}"
        );
        assert!(!w[0].starts_with("Warning"));
    }

    #[test]
    fn only_warn_mode_violations_warn() {
        let mut exempted = violation(RuleId::Privileged, Mode::Warn, "exempted");
        exempted.exemption = Some("e".into());
        let decision = Decision {
            violations: vec![
                violation(RuleId::ImageTag, Mode::Warn, "tag"),
                violation(RuleId::HostPath, Mode::Audit, "quiet"),
                violation(RuleId::Privileged, Mode::Enforce, "denies"),
                exempted,
            ],
            allowed: false,
            ..Default::default()
        };
        assert_eq!(warnings(&decision), ["image-tag: tag"]);
    }

    #[test]
    fn denial_message_starts_with_the_object() {
        let object = ObjectRef {
            api_version: "apps/v1".into(),
            kind: "Deployment".into(),
            namespace: "team-a".into(),
            name: "web".into(),
        };
        let decision = Decision {
            violations: vec![violation(
                RuleId::Privileged,
                Mode::Enforce,
                "container \"app\" runs privileged",
            )],
            allowed: false,
            ..Default::default()
        };
        assert_eq!(
            denial_message(&object, &decision),
            "Deployment team-a/web denied by vigil: [privileged] container \"app\" runs privileged (spec.containers[0].image)"
        );
    }

    #[test]
    fn time_has_milliseconds_in_utc() {
        let t = OffsetDateTime::from_unix_timestamp_nanos(1_795_446_245_123_456_789).unwrap();
        assert_eq!(format_time(t), "2026-11-23T15:04:05.123Z");
    }
}
