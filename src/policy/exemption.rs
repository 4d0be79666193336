//! Exemptions: named, reasoned exceptions that apply when every selector they give matches.

use time::OffsetDateTime;
use time::format_description::well_known::Rfc3339;

use super::document::ExemptionDoc;
use super::{FieldError, Glob};
use crate::image::{ImageRef, RegistryPattern};
use crate::rules::RuleId;

/// Who sent a request, where, and when: what an exemption's selectors are matched against.
#[derive(Debug, Clone, Copy)]
pub struct Requester<'a> {
    pub namespace: &'a str,
    pub username: &'a str,
    pub groups: &'a [String],
    pub time: OffsetDateTime,
}

/// A validated exemption.
#[derive(Debug, Clone)]
pub struct Exemption {
    pub name: String,
    pub reason: String,
    /// Empty means every rule.
    rules: Vec<RuleId>,
    namespaces: Option<Vec<Glob>>,
    users: Option<Vec<Glob>>,
    groups: Option<Vec<Glob>>,
    /// As whole usernames: `system:serviceaccount:NAMESPACE:NAME`.
    service_accounts: Option<Vec<Glob>>,
    images: Option<Vec<RegistryPattern>>,
    pub from: Option<OffsetDateTime>,
    pub until: Option<OffsetDateTime>,
}

/// Formats a time as RFC 3339, as policies write it.
pub fn format_time(t: OffsetDateTime) -> String {
    t.format(&Rfc3339).unwrap_or_else(|_| t.to_string())
}

fn non_empty<'a>(
    list: &'a Option<Vec<String>>,
    path: &str,
    errors: &mut Vec<FieldError>,
) -> Option<&'a [String]> {
    let list = list.as_deref()?;
    if list.is_empty() {
        errors.push(FieldError::new(
            path,
            "an empty list matches nothing, so the exemption would never apply; remove the selector to match all",
        ));
    }
    Some(list)
}

fn globs(list: Option<&[String]>) -> Option<Vec<Glob>> {
    list.map(|l| l.iter().map(|s| Glob::new(s)).collect())
}

fn parse_time(
    value: &Option<String>,
    path: String,
    errors: &mut Vec<FieldError>,
) -> Option<OffsetDateTime> {
    let text = value.as_deref()?;
    match OffsetDateTime::parse(text, &Rfc3339) {
        Ok(t) => Some(t),
        Err(e) => {
            errors.push(FieldError::new(
                path,
                format!("{text:?} is not an RFC 3339 time such as 2026-11-01T00:00:00Z ({e})"),
            ));
            None
        }
    }
}

impl Exemption {
    /// Validates one exemption document at `path`, recording every error.
    pub(super) fn compile(
        doc: &ExemptionDoc,
        path: &str,
        errors: &mut Vec<FieldError>,
    ) -> Option<Exemption> {
        let before = errors.len();
        if doc.name.trim().is_empty() {
            errors.push(FieldError::new(
                format!("{path}.name"),
                "an exemption needs a name",
            ));
        }
        if doc.reason.trim().is_empty() {
            errors.push(FieldError::new(
                format!("{path}.reason"),
                "say why the exemption exists; it is shown in every alert it silences",
            ));
        }
        let mut rules = Vec::new();
        for (i, id) in doc.rules.iter().flatten().enumerate() {
            match RuleId::parse(id) {
                Some(RuleId::PolicyChange) => errors.push(FieldError::new(
                    format!("{path}.rules[{i}]"),
                    "policy-change records edits of the policy itself and cannot be exempted",
                )),
                Some(rule) => rules.push(rule),
                None => errors.push(FieldError::new(
                    format!("{path}.rules[{i}]"),
                    format!("unknown rule id {id:?}; `vigil rules` lists the ids"),
                )),
            }
        }
        let namespaces = non_empty(&doc.namespaces, &format!("{path}.namespaces"), errors);
        let users = non_empty(&doc.users, &format!("{path}.users"), errors);
        let groups = non_empty(&doc.groups, &format!("{path}.groups"), errors);
        let sa_path = format!("{path}.serviceAccounts");
        let service_accounts = non_empty(&doc.service_accounts, &sa_path, errors).map(|list| {
            list.iter()
                .enumerate()
                .filter_map(|(i, sa)| match sa.split_once(':') {
                    Some((ns, name))
                        if !ns.is_empty() && !name.is_empty() && !name.contains(':') =>
                    {
                        Some(Glob::new(&format!("system:serviceaccount:{ns}:{name}")))
                    }
                    _ => {
                        errors.push(FieldError::new(
                            format!("{sa_path}[{i}]"),
                            format!("{sa:?} is not NAMESPACE:NAME, e.g. ops:debugger"),
                        ));
                        None
                    }
                })
                .collect::<Vec<_>>()
        });
        let images_path = format!("{path}.images");
        let images = non_empty(&doc.images, &images_path, errors)
            .map(|list| super::parse_patterns(list, &images_path, errors));
        let from = parse_time(&doc.from, format!("{path}.from"), errors);
        let until = parse_time(&doc.until, format!("{path}.until"), errors);
        if let (Some(f), Some(u)) = (from, until)
            && f >= u
        {
            errors.push(FieldError::new(
                format!("{path}.until"),
                format!("{} is not after from ({})", format_time(u), format_time(f)),
            ));
        }
        if errors.len() > before {
            return None;
        }
        Some(Exemption {
            name: doc.name.clone(),
            reason: doc.reason.clone(),
            rules,
            namespaces: globs(namespaces),
            users: globs(users),
            groups: globs(groups),
            service_accounts,
            images,
            from,
            until,
        })
    }

    /// Whether the exemption names `rule` (or names no rules at all).
    pub fn covers_rule(&self, rule: RuleId) -> bool {
        self.rules.is_empty() || self.rules.contains(&rule)
    }

    /// Whether the request-level selectors match: time window, namespaces, users, groups, service accounts.
    pub fn applies_to(&self, who: &Requester<'_>) -> bool {
        let any = |globs: &Option<Vec<Glob>>, value: &str| {
            globs
                .as_ref()
                .is_none_or(|g| g.iter().any(|g| g.matches(value)))
        };
        self.from.is_none_or(|from| who.time >= from)
            && self.until.is_none_or(|until| who.time < until)
            && any(&self.namespaces, who.namespace)
            && any(&self.users, who.username)
            && any(&self.service_accounts, who.username)
            && self.groups.as_ref().is_none_or(|g| {
                g.iter()
                    .any(|g| who.groups.iter().any(|group| g.matches(group)))
            })
    }

    /// Whether the exemption has an `images` selector. Where no image can be known (a CONNECT into a running
    /// pod), such an exemption never applies.
    pub fn selects_images(&self) -> bool {
        self.images.is_some()
    }

    /// Whether the `images` selector matches every one of `images`. A missing or unparsable image never
    /// matches. Without an `images` selector, this is always true.
    pub fn matches_images<'a>(
        &self,
        mut images: impl Iterator<Item = Option<&'a ImageRef>>,
    ) -> bool {
        let Some(patterns) = &self.images else {
            return true;
        };
        images.all(|image| image.is_some_and(|image| patterns.iter().any(|p| p.matches(image))))
    }
}
