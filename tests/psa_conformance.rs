//! Conformance with Kubernetes Pod Security Admission: every fixture of v1.37 (the corpus `psa/`) must be
//! denied or admitted exactly as PSA decides, under the conformance policy of DESIGN.md.

mod corpus;

use std::io::Write;

use serde::Deserialize;
use time::OffsetDateTime;
use vigil::cli::check_objects;
use vigil::manifest::read_objects;
use vigil::policy::Policy;

#[derive(Deserialize)]
struct Fixture {
    file: String,
    level: String,
    expected: String,
}

fn conformance_policy(level: &str) -> Policy {
    let text = format!(
        "apiVersion: vigil.dev/v1alpha1\nkind: Policy\nmode: enforce\nprofile: {level}\nrules:\n  \
         ephemeral-containers: off\n  image-registry: off\n  image-tag: off\n  image-digest: off\n  secret-in-env: off\n"
    );
    Policy::parse(&text, "conformance policy").expect("the conformance policy is valid")
}

#[test]
fn agrees_with_pod_security_admission() {
    let Some(root) = corpus::corpus("psa_conformance::agrees_with_pod_security_admission", "psa")
    else {
        return;
    };
    let index = std::fs::read_to_string(root.join("index.jsonl")).expect("index.jsonl");
    let now = OffsetDateTime::now_utc();
    let (mut agree, mut disagree) = (0, Vec::new());
    for line in index.lines().filter(|l| !l.trim().is_empty()) {
        let fixture: Fixture = serde_json::from_str(line).expect("index line");
        let text = std::fs::read_to_string(root.join(&fixture.file)).expect("fixture file");
        let (objects, errors) = read_objects(&fixture.file, &text);
        assert!(errors.is_empty(), "{}: {errors:?}", fixture.file);
        assert_eq!(objects.len(), 1, "{}: one pod per fixture", fixture.file);
        let results = check_objects(
            &conformance_policy(&fixture.level),
            &objects,
            "",
            &[],
            now,
            None,
        );
        assert_eq!(results.len(), 1, "{}: the pod is evaluated", fixture.file);
        let denied = results[0].decision == "denied";
        let want_denied = fixture.expected == "fail";
        if denied == want_denied {
            agree += 1;
        } else {
            let rules: Vec<_> = results[0]
                .violations
                .iter()
                .map(|v| format!("{}: {}", v.rule, v.message))
                .collect();
            disagree.push(format!(
                "{} ({}): expected {}, got {} {rules:?}",
                fixture.file, fixture.level, fixture.expected, results[0].decision
            ));
        }
    }
    let total = agree + disagree.len();
    // Written straight to stderr so that the figure shows even when the harness captures output.
    let _ = writeln!(
        std::io::stderr(),
        "PSA v1.37 conformance: {agree}/{total} fixtures agree"
    );
    assert_eq!(total, 148, "the fixture set has 148 pods");
    assert!(
        disagree.is_empty(),
        "disagreements:\n{}",
        disagree.join("\n")
    );
}
