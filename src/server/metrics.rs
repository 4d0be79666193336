//! Prometheus metrics: what was asked, what was decided, how long it took, and what is in force.

use std::sync::atomic::AtomicU64;

use prometheus_client::encoding::EncodeLabelSet;
use prometheus_client::metrics::counter::Counter;
use prometheus_client::metrics::family::Family;
use prometheus_client::metrics::gauge::Gauge;
use prometheus_client::metrics::histogram::Histogram;
use prometheus_client::registry::{Registry, Unit};

use std::sync::Arc;

use crate::admission::ReviewSummary;
use crate::registry::LookupMetrics;

#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
pub struct RequestLabels {
    pub kind: &'static str,
    pub operation: &'static str,
    pub decision: &'static str,
}

#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
pub struct ViolationLabels {
    pub rule: &'static str,
    pub mode: &'static str,
}

#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
pub struct ExemptionLabels {
    pub exemption: String,
}

#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
pub struct ReasonLabels {
    pub reason: &'static str,
}

#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
pub struct HashLabels {
    pub hash: String,
}

#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
pub struct ResultLabels {
    pub result: &'static str,
}

/// Every metric Vigil exports.
pub struct Metrics {
    registry: Registry,
    pub requests: Family<RequestLabels, Counter>,
    pub duration: Histogram,
    pub violations: Family<ViolationLabels, Counter>,
    pub exemptions: Family<ExemptionLabels, Counter>,
    pub bad_requests: Family<ReasonLabels, Counter>,
    pub policy_info: Family<HashLabels, Gauge>,
    pub policy_reloads: Family<ResultLabels, Counter>,
    pub cert_reloads: Family<ResultLabels, Counter>,
    pub cert_expiry: Gauge<f64, AtomicU64>,
    pub registry_lookups: Arc<LookupMetrics>,
}

/// Histogram buckets from 50 µs to 1 s.
pub const DURATION_BUCKETS: [f64; 14] = [
    0.00005, 0.0001, 0.00025, 0.0005, 0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0,
];

impl Default for Metrics {
    fn default() -> Self {
        Self::new()
    }
}

impl Metrics {
    /// Creates and registers every metric.
    pub fn new() -> Metrics {
        let mut registry = Registry::with_prefix("vigil");
        let requests = Family::<RequestLabels, Counter>::default();
        let duration = Histogram::new(DURATION_BUCKETS);
        let violations = Family::<ViolationLabels, Counter>::default();
        let exemptions = Family::<ExemptionLabels, Counter>::default();
        let bad_requests = Family::<ReasonLabels, Counter>::default();
        let policy_info = Family::<HashLabels, Gauge>::default();
        let policy_reloads = Family::<ResultLabels, Counter>::default();
        let cert_reloads = Family::<ResultLabels, Counter>::default();
        let cert_expiry = Gauge::<f64, AtomicU64>::default();
        registry.register(
            "admission_requests",
            "Admission reviews answered, by kind, operation and decision",
            requests.clone(),
        );
        registry.register_with_unit(
            "admission_duration",
            "Time to answer an admission review, from body read to response",
            Unit::Seconds,
            duration.clone(),
        );
        registry.register(
            "violations",
            "Violations recorded, by rule and mode",
            violations.clone(),
        );
        registry.register(
            "exemptions_applied",
            "Violations silenced by an exemption, by exemption name",
            exemptions.clone(),
        );
        registry.register(
            "bad_requests",
            "Requests that were not readable admission reviews, by reason",
            bad_requests.clone(),
        );
        registry.register(
            "policy_info",
            "The policy in force, by the hash of its text",
            policy_info.clone(),
        );
        registry.register(
            "policy_reloads",
            "Policy reload attempts, by result",
            policy_reloads.clone(),
        );
        registry.register(
            "certificate_reloads",
            "Serving certificate reload attempts, by result",
            cert_reloads.clone(),
        );
        registry.register(
            "certificate_expiry_timestamp_seconds",
            "Expiry (notAfter) of the serving certificate in force, as a Unix timestamp",
            cert_expiry.clone(),
        );
        // Both results exist from the start, at 0: a counter that appears at 1 with the first error has no
        // increase Prometheus can see, and an alert on it would never fire.
        for result in ["success", "error"] {
            let _ = policy_reloads.get_or_create(&ResultLabels { result });
            let _ = cert_reloads.get_or_create(&ResultLabels { result });
        }
        let registry_lookups = Arc::new(LookupMetrics::default());
        registry_lookups.register(&mut registry);
        Metrics {
            registry,
            requests,
            duration,
            violations,
            exemptions,
            bad_requests,
            policy_info,
            policy_reloads,
            cert_reloads,
            cert_expiry,
            registry_lookups,
        }
    }

    /// Counts one answered review.
    pub fn record_review(&self, summary: &ReviewSummary, seconds: f64) {
        self.requests
            .get_or_create(&RequestLabels {
                kind: summary.kind,
                operation: if summary.operation.is_empty() {
                    "unknown"
                } else {
                    summary.operation
                },
                decision: summary.decision,
            })
            .inc();
        self.duration.observe(seconds);
        for (rule, mode) in &summary.violations {
            self.violations
                .get_or_create(&ViolationLabels { rule, mode })
                .inc();
        }
        for exemption in &summary.exemptions {
            self.exemptions
                .get_or_create(&ExemptionLabels {
                    exemption: exemption.clone(),
                })
                .inc();
        }
    }

    /// Counts one request that was not a readable review.
    pub fn record_bad_request(&self, reason: &'static str) {
        self.bad_requests
            .get_or_create(&ReasonLabels { reason })
            .inc();
    }

    /// Shows `hash` as the policy in force.
    pub fn set_policy(&self, hash: &str) {
        self.policy_info.clear();
        self.policy_info
            .get_or_create(&HashLabels {
                hash: hash.to_owned(),
            })
            .set(1);
    }

    /// The name of every series Vigil can export: each family's name, and a histogram's `_bucket`, `_sum`
    /// and `_count`. A family shows in `/metrics` only once it has a series; this lists them all, for what
    /// reads Vigil's metrics (the chart's alerts and dashboard) to be checked against.
    pub fn exported_names() -> Vec<String> {
        let m = Metrics::new();
        m.record_review(
            &ReviewSummary {
                kind: "Pod",
                operation: "CREATE",
                decision: "allowed",
                violations: vec![("privileged", "audit")],
                exemptions: vec!["exemption".to_owned()],
                ..ReviewSummary::default()
            },
            0.0,
        );
        m.record_bad_request("not-json");
        m.set_policy("0");
        m.registry_lookups.touch_every_family();
        let mut names = Vec::new();
        for line in m.encode().lines() {
            let Some((name, kind)) = line.strip_prefix("# TYPE ").and_then(|t| t.split_once(' '))
            else {
                continue;
            };
            names.push(name.to_owned());
            if kind == "histogram" {
                names.extend(["_bucket", "_sum", "_count"].map(|s| format!("{name}{s}")));
            }
        }
        names
    }

    /// The metrics in the Prometheus text exposition format (0.0.4).
    pub fn encode(&self) -> String {
        let mut open_metrics = String::new();
        prometheus_client::encoding::text::encode(&mut open_metrics, &self.registry)
            .expect("writing to a String cannot fail");
        to_prometheus_text(&open_metrics)
    }
}

/// Rewrites prometheus-client's OpenMetrics output as the classic text format that Prometheus and
/// `promtool check metrics` read: a counter's HELP and TYPE name its `_total` series, and the `# UNIT` and
/// `# EOF` lines, which the classic format lacks, are dropped.
fn to_prometheus_text(open_metrics: &str) -> String {
    let counters: Vec<&str> = open_metrics
        .lines()
        .filter_map(|l| l.strip_prefix("# TYPE ")?.strip_suffix(" counter"))
        .collect();
    let mut out = String::with_capacity(open_metrics.len());
    for line in open_metrics.lines() {
        if line.starts_with("# UNIT ") || line == "# EOF" {
            continue;
        }
        let renamed = ["# HELP ", "# TYPE "].iter().find_map(|prefix| {
            let rest = line.strip_prefix(prefix)?;
            let (name, tail) = rest.split_once(' ')?;
            counters
                .contains(&name)
                .then(|| format!("{prefix}{name}_total {tail}"))
        });
        match renamed {
            Some(line) => out.push_str(&line),
            None => out.push_str(line),
        }
        out.push('\n');
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn counters_are_named_by_their_total_series() {
        let m = Metrics::new();
        m.record_bad_request("not-json");
        let text = m.encode();
        assert!(
            text.contains("# TYPE vigil_bad_requests_total counter\n"),
            "{text}"
        );
        assert!(
            text.contains("vigil_bad_requests_total{reason=\"not-json\"} 1\n"),
            "{text}"
        );
        assert!(
            !text.contains("# EOF") && !text.contains("# UNIT"),
            "{text}"
        );
        assert!(
            text.contains("# TYPE vigil_admission_duration_seconds histogram\n"),
            "{text}"
        );
    }

    #[test]
    fn every_family_is_listed_among_the_exported_names() {
        let names = Metrics::exported_names();
        for name in [
            "vigil_admission_requests_total",
            "vigil_admission_duration_seconds_bucket",
            "vigil_violations_total",
            "vigil_exemptions_applied_total",
            "vigil_bad_requests_total",
            "vigil_policy_info",
            "vigil_policy_reloads_total",
            "vigil_certificate_reloads_total",
            "vigil_certificate_expiry_timestamp_seconds",
            "vigil_registry_lookup_duration_seconds_bucket",
            "vigil_registry_cache_requests_total",
            "vigil_registry_errors_total",
        ] {
            assert!(names.iter().any(|n| n == name), "{name} in {names:?}");
        }
    }
}
