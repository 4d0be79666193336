//! The engine's cost on one typical Deployment (an AdmissionReview recorded from a real kube-apiserver), under a policy
//! with registry rules: evaluation of the parsed object, and the whole review from bytes to response bytes.

use std::hint::black_box;

use criterion::{Criterion, criterion_group, criterion_main};
use time::OffsetDateTime;
use vigil::admission::{self, ConfigMapRef, Endpoint};
use vigil::engine::{self, Operation};
use vigil::policy::Policy;
use vigil::workload::{Workload, WorkloadKind};

const REVIEW: &str =
    include_str!("../tests/data/reviews/deployment-create.kube-apiserver-1.36.json");
/// A 23 KiB Pod with 10 containers, as `bench/bench.py` generates it.
const POD10: &str = include_str!("data/review-pod-10-containers.json");

const POLICY: &str = r#"
apiVersion: vigil.dev/v1alpha1
kind: Policy
mode: enforce
profile: restricted
rules:
  image-tag: warn
  image-registry:
    allow: ["registry.corp.example", "ghcr.io/corp/*", "docker.io/library/*", "quay.io/prometheus/*"]
    deny: ["*.evil.example", "docker.io/evil/*"]
exemptions:
  - name: sre
    reason: break-glass
    namespaces: ["debug-*"]
    groups: ["sre"]
"#;

fn benches(c: &mut Criterion) {
    let policy = Policy::parse(POLICY, "bench").expect("bench policy");
    let review: serde_json::Value = serde_json::from_str(REVIEW).unwrap();
    let object = serde_json::to_string(&review["request"]["object"]).unwrap();
    let workload = Workload::from_json(WorkloadKind::Deployment, &object).unwrap();
    let groups = vec![
        "system:masters".to_owned(),
        "system:authenticated".to_owned(),
    ];
    let now = OffsetDateTime::now_utc();
    let configmap = ConfigMapRef::default();

    c.bench_function("evaluate parsed deployment", |b| {
        b.iter(|| {
            let context = engine::Context {
                operation: Operation::Create,
                namespace: "default",
                username: "minikube-user",
                groups: &groups,
                time: now,
                old_object: None,
                owner: None,
                registry: None,
            };
            black_box(engine::evaluate(&policy, black_box(&workload), &context))
        })
    });
    c.bench_function("decode deployment object", |b| {
        b.iter(|| {
            black_box(Workload::from_json(WorkloadKind::Deployment, black_box(&object)).unwrap())
        })
    });
    c.bench_function("review deployment admissionreview", |b| {
        b.iter(|| {
            black_box(
                admission::review(
                    &policy,
                    black_box(REVIEW.as_bytes()),
                    now,
                    Endpoint::Validate,
                    &configmap,
                )
                .unwrap(),
            )
        })
    });
    c.bench_function("review 10-container pod admissionreview", |b| {
        b.iter(|| {
            black_box(
                admission::review(
                    &policy,
                    black_box(POD10.as_bytes()),
                    now,
                    Endpoint::Validate,
                    &configmap,
                )
                .unwrap(),
            )
        })
    });
}

criterion_group!(engine_benches, benches);
criterion_main!(engine_benches);
