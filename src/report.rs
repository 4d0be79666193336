//! How judged objects read: the lines `check` and `audit` print, and the policy reports they write.
//!
//! One report per namespace, in either of the two report APIs: `wgpolicyk8s.io/v1alpha2` PolicyReport (what
//! Kyverno, Kubewarden and Policy Reporter read) or its successor, `openreports.io/v1alpha1` Report. A
//! report holds one result per violation; objects without any count in `summary.pass`. A report is bounded
//! in size, so that a namespace full of violations still makes an object the API server stores: past
//! [`MAX_RESULTS_BYTES`] results are counted in the summary but left out of the list, and the report says
//! how many in the annotation [`OMITTED_ANNOTATION`].

use std::collections::BTreeMap;
use std::fmt::Write as _;

use serde::Serialize;
use time::OffsetDateTime;

use crate::alert::ObjectRef;
use crate::engine::Violation;
use crate::policy::Mode;

/// The name of the report Vigil keeps in each namespace.
pub const REPORT_NAME: &str = "vigil";
/// The `source` of every result.
pub const SOURCE: &str = "vigil";
/// The most bytes of results (as JSON) one report carries; etcd stores objects of up to 1.5 MiB.
pub const MAX_RESULTS_BYTES: usize = 1024 * 1024;
/// The annotation that counts the results left out of a report past [`MAX_RESULTS_BYTES`].
pub const OMITTED_ANNOTATION: &str = "vigil.dev/omitted-results";

/// The text `check` and `audit` print for one object with violations: a heading line, then one line per
/// violation.
pub fn text_lines(heading: &str, decision: &str, violations: &[Violation]) -> String {
    let mut out = format!("{heading}: {decision}\n");
    for v in violations {
        let _ = write!(
            out,
            "  {} {} {}: {} [{}]",
            v.mode,
            v.severity.as_str(),
            v.rule,
            v.message,
            v.field
        );
        if let Some(e) = &v.exemption {
            let _ = write!(out, " (exempted by {e})");
        }
        out.push('\n');
    }
    out
}

/// Which report API to write.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default, clap::ValueEnum)]
pub enum ReportApi {
    /// `wgpolicyk8s.io/v1alpha2` PolicyReport.
    #[default]
    Wgpolicyk8s,
    /// `openreports.io/v1alpha1` Report.
    Openreports,
}

impl ReportApi {
    /// The API group.
    pub fn group(self) -> &'static str {
        match self {
            ReportApi::Wgpolicyk8s => "wgpolicyk8s.io",
            ReportApi::Openreports => "openreports.io",
        }
    }

    /// The API version within the group.
    pub fn version(self) -> &'static str {
        match self {
            ReportApi::Wgpolicyk8s => "v1alpha2",
            ReportApi::Openreports => "v1alpha1",
        }
    }

    /// `group/version`.
    pub fn api_version(self) -> &'static str {
        match self {
            ReportApi::Wgpolicyk8s => "wgpolicyk8s.io/v1alpha2",
            ReportApi::Openreports => "openreports.io/v1alpha1",
        }
    }

    /// The kind of the namespaced report.
    pub fn kind(self) -> &'static str {
        match self {
            ReportApi::Wgpolicyk8s => "PolicyReport",
            ReportApi::Openreports => "Report",
        }
    }

    /// The resource name in URLs and RBAC rules.
    pub fn plural(self) -> &'static str {
        match self {
            ReportApi::Wgpolicyk8s => "policyreports",
            ReportApi::Openreports => "reports",
        }
    }

    /// Where the CRD comes from, for the error that says it is missing.
    pub fn crd_source(self) -> &'static str {
        match self {
            ReportApi::Wgpolicyk8s => {
                "the PolicyReport CRD of kubernetes-sigs/wg-policy-prototypes (policyreports.wgpolicyk8s.io), as Kyverno and Policy Reporter install it"
            }
            ReportApi::Openreports => {
                "the Report CRD of openreports/reports-api (reports.openreports.io)"
            }
        }
    }
}

/// The `result` of a violation: `skip` when exempted, `fail` when enforced, `warn` otherwise.
pub fn result_word(v: &Violation) -> &'static str {
    match (&v.exemption, v.mode) {
        (Some(_), _) => "skip",
        (None, Mode::Enforce) => "fail",
        (None, _) => "warn",
    }
}

/// A report, ready to be serialized and written.
#[derive(Debug, Clone, Serialize)]
#[serde(rename_all = "camelCase")]
pub struct Report {
    pub api_version: &'static str,
    pub kind: &'static str,
    pub metadata: ReportMetadata,
    /// The report-level source, which only OpenReports has.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub source: Option<&'static str>,
    pub summary: Summary,
    pub results: Vec<ReportResult>,
}

/// The report's metadata.
#[derive(Debug, Clone, Serialize)]
pub struct ReportMetadata {
    pub name: &'static str,
    pub namespace: String,
    pub labels: BTreeMap<&'static str, &'static str>,
    #[serde(skip_serializing_if = "BTreeMap::is_empty")]
    pub annotations: BTreeMap<&'static str, String>,
}

/// Counts: objects without violations in `pass`, violations by result in the rest.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize)]
pub struct Summary {
    pub pass: usize,
    pub fail: usize,
    pub warn: usize,
    pub error: usize,
    pub skip: usize,
}

/// One result: one violation of one object.
#[derive(Debug, Clone, Serialize)]
pub struct ReportResult {
    pub source: &'static str,
    pub policy: String,
    pub rule: String,
    pub result: &'static str,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub severity: Option<&'static str>,
    pub message: String,
    pub scored: bool,
    pub timestamp: Timestamp,
    pub resources: Vec<ResourceRef>,
    pub properties: BTreeMap<&'static str, String>,
}

/// The time of a result, as protobuf's Timestamp.
#[derive(Debug, Clone, Copy, Serialize)]
pub struct Timestamp {
    pub seconds: i64,
    pub nanos: i32,
}

/// The object a result is about.
#[derive(Debug, Clone, Serialize)]
#[serde(rename_all = "camelCase")]
pub struct ResourceRef {
    pub api_version: String,
    pub kind: String,
    pub namespace: String,
    pub name: String,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub uid: Option<String>,
}

impl ResourceRef {
    fn of(object: &ObjectRef, uid: Option<&str>) -> ResourceRef {
        ResourceRef {
            api_version: object.api_version.clone(),
            kind: object.kind.clone(),
            namespace: object.namespace.clone(),
            name: object.name.clone(),
            uid: uid.map(str::to_owned),
        }
    }
}

/// Builds one namespace's report, object by object, within [`MAX_RESULTS_BYTES`].
#[derive(Debug)]
pub struct ReportBuilder {
    report: Report,
    policy: String,
    timestamp: Timestamp,
    bytes: usize,
    omitted: usize,
}

impl ReportBuilder {
    /// An empty report for `namespace`; `policy` names the policy in every result (the ConfigMap's
    /// `NAMESPACE/NAME`, or the file's name).
    pub fn new(
        api: ReportApi,
        namespace: &str,
        policy: &str,
        now: OffsetDateTime,
    ) -> ReportBuilder {
        ReportBuilder {
            report: Report {
                api_version: api.api_version(),
                kind: api.kind(),
                metadata: ReportMetadata {
                    name: REPORT_NAME,
                    namespace: namespace.to_owned(),
                    labels: BTreeMap::from([("app.kubernetes.io/managed-by", "vigil")]),
                    annotations: BTreeMap::new(),
                },
                source: (api == ReportApi::Openreports).then_some(SOURCE),
                summary: Summary::default(),
                results: Vec::new(),
            },
            policy: policy.to_owned(),
            timestamp: Timestamp {
                seconds: now.unix_timestamp(),
                nanos: 0,
            },
            bytes: 0,
            omitted: 0,
        }
    }

    /// Adds one judged object: a pass without violations, one result per violation otherwise.
    /// `extra` properties (such as where `check` read the object) go into each result.
    pub fn add(
        &mut self,
        object: &ObjectRef,
        uid: Option<&str>,
        violations: &[Violation],
        extra: &[(&'static str, String)],
    ) {
        if violations.is_empty() {
            self.report.summary.pass += 1;
            return;
        }
        for v in violations {
            let result = result_word(v);
            match result {
                "skip" => self.report.summary.skip += 1,
                "warn" => self.report.summary.warn += 1,
                _ => self.report.summary.fail += 1,
            }
            let mut properties = BTreeMap::from([
                ("field", v.field.clone()),
                ("mode", v.mode.to_string()),
                ("techniques", v.techniques.join(",")),
            ]);
            if let Some(c) = &v.container {
                properties.insert("container", c.clone());
            }
            if let Some(i) = &v.image {
                properties.insert("image", i.clone());
            }
            if let Some(e) = &v.exemption {
                properties.insert("exemption", e.clone());
            }
            properties.extend(extra.iter().cloned());
            self.push(ReportResult {
                source: SOURCE,
                policy: self.policy.clone(),
                rule: v.rule.to_string(),
                result,
                severity: Some(v.severity.as_str()),
                message: v.message.clone(),
                scored: true,
                timestamp: self.timestamp,
                resources: vec![ResourceRef::of(object, uid)],
                properties,
            });
        }
    }

    /// Adds an object that could not be judged at all, as an `error` result.
    pub fn add_error(&mut self, object: &ObjectRef, uid: Option<&str>, message: &str) {
        self.report.summary.error += 1;
        self.push(ReportResult {
            source: SOURCE,
            policy: self.policy.clone(),
            rule: "decode".to_owned(),
            result: "error",
            severity: None,
            message: crate::alert::clip_message(message),
            scored: true,
            timestamp: self.timestamp,
            resources: vec![ResourceRef::of(object, uid)],
            properties: BTreeMap::new(),
        });
    }

    fn push(&mut self, result: ReportResult) {
        let size = serde_json::to_vec(&result).map_or(0, |b| b.len());
        if self.bytes + size > MAX_RESULTS_BYTES {
            self.omitted += 1;
            return;
        }
        self.bytes += size;
        self.report.results.push(result);
    }

    /// The finished report.
    pub fn finish(mut self) -> Report {
        if self.omitted > 0 {
            self.report
                .metadata
                .annotations
                .insert(OMITTED_ANNOTATION, self.omitted.to_string());
        }
        self.report
    }

    /// How many results were left out so far.
    pub fn omitted(&self) -> usize {
        self.omitted
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::rules::{RuleId, Severity};

    fn violation(rule: RuleId, mode: Mode, exemption: Option<&str>) -> Violation {
        Violation {
            rule,
            mode,
            severity: Severity::Critical,
            techniques: rule.rule().techniques,
            container: Some("app".into()),
            image: Some("docker.io/library/nginx:1.27".into()),
            field: "spec.containers[0].securityContext.privileged".into(),
            message: "container \"app\" runs privileged".into(),
            exemption: exemption.map(str::to_owned),
            existing: false,
        }
    }

    fn object(name: &str) -> ObjectRef {
        ObjectRef {
            api_version: "v1".into(),
            kind: "Pod".into(),
            namespace: "team-a".into(),
            name: name.into(),
        }
    }

    #[test]
    fn results_follow_the_mode_and_exemptions() {
        let mut b = ReportBuilder::new(
            ReportApi::Wgpolicyk8s,
            "team-a",
            "vigil/vigil-policy",
            OffsetDateTime::UNIX_EPOCH,
        );
        b.add(
            &object("p"),
            Some("uid-1"),
            &[
                violation(RuleId::Privileged, Mode::Enforce, None),
                violation(RuleId::Privileged, Mode::Audit, None),
                violation(RuleId::Privileged, Mode::Warn, None),
                violation(RuleId::Privileged, Mode::Enforce, Some("sre")),
            ],
            &[],
        );
        b.add(&object("clean"), Some("uid-2"), &[], &[]);
        let report = b.finish();
        let words: Vec<_> = report.results.iter().map(|r| r.result).collect();
        assert_eq!(words, ["fail", "warn", "warn", "skip"]);
        assert_eq!(
            report.summary,
            Summary {
                pass: 1,
                fail: 1,
                warn: 2,
                error: 0,
                skip: 1
            }
        );
        let json = serde_json::to_value(&report).unwrap();
        assert_eq!(json["apiVersion"], "wgpolicyk8s.io/v1alpha2");
        assert_eq!(json["metadata"]["name"], "vigil");
        assert!(json.get("source").is_none());
        let r = &json["results"][3];
        assert_eq!(r["policy"], "vigil/vigil-policy");
        assert_eq!(r["resources"][0]["uid"], "uid-1");
        assert_eq!(r["properties"]["exemption"], "sre");
        assert_eq!(r["properties"]["techniques"], "T1611,T1610");
    }

    #[test]
    fn reports_stay_within_their_size() {
        let mut b = ReportBuilder::new(
            ReportApi::Openreports,
            "team-a",
            "p",
            OffsetDateTime::UNIX_EPOCH,
        );
        let many = vec![violation(RuleId::Privileged, Mode::Enforce, None); 10_000];
        b.add(&object("p"), None, &many, &[]);
        assert!(b.omitted() > 0);
        let report = b.finish();
        assert_eq!(report.summary.fail, 10_000);
        assert_eq!(
            report.metadata.annotations[OMITTED_ANNOTATION],
            (10_000 - report.results.len()).to_string()
        );
        let size = serde_json::to_vec(&report).unwrap().len();
        assert!(size < MAX_RESULTS_BYTES + 4096, "{size}");
        assert_eq!(report.source, Some("vigil"));
    }
}
