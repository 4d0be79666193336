//! The offline commands, run as the real binary: check, review, policy validate/default, rules.

mod corpus;

use std::io::Write;
use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};

use serde_json::Value;

struct Run {
    code: i32,
    stdout: String,
    stderr: String,
}

fn vigil(args: &[&str], stdin: Option<&str>) -> Run {
    let mut child = Command::new(env!("CARGO_BIN_EXE_vigil"))
        .args(args)
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .expect("vigil starts");
    {
        let mut input = child.stdin.take().expect("stdin");
        if let Some(text) = stdin {
            input.write_all(text.as_bytes()).expect("write stdin");
        }
    }
    let out = child.wait_with_output().expect("vigil runs");
    Run {
        code: out.status.code().expect("exit code"),
        stdout: String::from_utf8(out.stdout).expect("utf-8 stdout"),
        stderr: String::from_utf8(out.stderr).expect("utf-8 stderr"),
    }
}

fn data(rel: &str) -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR"))
        .join("tests/data")
        .join(rel)
}

fn temp_file(dir: &tempfile::TempDir, name: &str, text: &str) -> String {
    let path = dir.path().join(name);
    std::fs::write(&path, text).expect("write temp file");
    path.display().to_string()
}

const PRIVILEGED_DEPLOYMENT: &str = r#"
apiVersion: apps/v1
kind: Deployment
metadata: {name: web, namespace: team-a}
spec:
  template:
    spec:
      containers:
      - name: app
        image: nginx:1.27
        securityContext: {privileged: true}
"#;

const ENFORCE: &str = "apiVersion: vigil.dev/v1alpha1\nkind: Policy\nmode: enforce\n";

#[test]
fn check_exit_codes_follow_the_decision() {
    let dir = tempfile::tempdir().unwrap();
    let manifest = temp_file(&dir, "deploy.yaml", PRIVILEGED_DEPLOYMENT);
    let policy = temp_file(&dir, "policy.yaml", ENFORCE);

    let audit = vigil(&["check", &manifest], None);
    assert_eq!(audit.code, 0, "audit admits: {}", audit.stderr);
    assert!(
        audit.stdout.contains("Deployment team-a/web: allowed"),
        "{}",
        audit.stdout
    );
    assert!(
        audit.stdout.contains("audit critical privileged"),
        "{}",
        audit.stdout
    );

    let enforce = vigil(&["check", "--policy", &policy, &manifest], None);
    assert_eq!(enforce.code, 1, "{}", enforce.stdout);
    assert!(
        enforce.stdout.contains("Deployment team-a/web: denied"),
        "{}",
        enforce.stdout
    );
    assert!(
        enforce
            .stdout
            .contains(&format!("{manifest}: document 1 (line 2)")),
        "results name the file and document: {}",
        enforce.stdout
    );

    let forced = vigil(&["check", "--mode", "enforce", &manifest], None);
    assert_eq!(
        forced.code, 1,
        "--mode enforce shows what enforcing would block"
    );

    let bad_mode = vigil(&["check", "--mode", "block", &manifest], None);
    assert_eq!(bad_mode.code, 2);
}

#[test]
fn check_reads_stdin_lists_and_directories() {
    let piped = vigil(
        &["check", "--mode", "enforce", "-"],
        Some(PRIVILEGED_DEPLOYMENT),
    );
    assert_eq!(piped.code, 1);
    assert!(
        piped.stdout.contains("(stdin): document 1"),
        "{}",
        piped.stdout
    );

    let list = r#"{"apiVersion":"v1","kind":"List","items":[{"apiVersion":"batch/v1","kind":"CronJob",
        "metadata":{"name":"c","namespace":"n"},"spec":{"schedule":"* * * * *","jobTemplate":{"spec":{"template":
        {"spec":{"containers":[{"name":"x","image":"busybox:1","securityContext":{"privileged":true}}]}}}}}}]}"#;
    let run = vigil(
        &["check", "--mode", "enforce", "--output", "json", "-"],
        Some(list),
    );
    assert_eq!(run.code, 1);
    let results: Value = serde_json::from_str(&run.stdout).unwrap();
    assert_eq!(results[0]["origin"]["item"], "items[0]");
    assert_eq!(
        results[0]["violations"][0]["field"],
        "spec.jobTemplate.spec.template.spec.containers[0].securityContext.privileged"
    );

    let dir = tempfile::tempdir().unwrap();
    std::fs::create_dir(dir.path().join("nested")).unwrap();
    std::fs::write(dir.path().join("nested/deploy.yml"), PRIVILEGED_DEPLOYMENT).unwrap();
    std::fs::write(dir.path().join("notes.txt"), "not a manifest").unwrap();
    let run = vigil(
        &[
            "check",
            "--mode",
            "enforce",
            &dir.path().display().to_string(),
        ],
        None,
    );
    assert_eq!(run.code, 1, "{}", run.stderr);
    assert!(run.stdout.contains("nested/deploy.yml"), "{}", run.stdout);
}

#[test]
fn check_skips_what_is_not_an_object_in_directories_only() {
    let dir = tempfile::tempdir().unwrap();
    std::fs::write(dir.path().join("deploy.yaml"), PRIVILEGED_DEPLOYMENT).unwrap();
    std::fs::write(
        dir.path().join("report.json"),
        r#"[{"chart": "x", "ok": true}]"#,
    )
    .unwrap();
    std::fs::write(
        dir.path().join("values.yaml"),
        "replicaCount: 2\nimage: {tag: '1.0'}\n",
    )
    .unwrap();
    let walked = vigil(&["check", &dir.path().display().to_string()], None);
    assert_eq!(walked.code, 0, "{}", walked.stderr);
    assert!(walked.stderr.is_empty(), "{}", walked.stderr);
    assert!(
        walked.stdout.contains("2 documents in directories skipped"),
        "{}",
        walked.stdout
    );

    let named = dir.path().join("report.json").display().to_string();
    let run = vigil(&["check", &named], None);
    assert_eq!(
        run.code, 2,
        "a file named on the command line must be a manifest"
    );
    assert!(
        run.stderr
            .contains("the document is a list, not a Kubernetes object"),
        "{}",
        run.stderr
    );
}

#[test]
fn check_names_file_document_and_field_on_bad_input() {
    let dir = tempfile::tempdir().unwrap();
    let manifest = temp_file(
        &dir,
        "bad.yaml",
        "apiVersion: v1\nkind: ConfigMap\nmetadata: {name: ok}\n---\napiVersion: v1\nkind: Pod\nmetadata: {name: p}\nspec:\n  containers:\n  - name: a\n    image: 5\n    ports: [{hostPort: \"x\"}]\n",
    );
    let run = vigil(&["check", &manifest], None);
    assert_eq!(run.code, 2);
    assert!(
        run.stderr.contains(&format!(
            "{manifest}: document 2 (line 5): Pod p: field spec.containers[0].image:"
        )),
        "{}",
        run.stderr
    );

    let missing = vigil(&["check", "/no/such/file.yaml"], None);
    assert_eq!(missing.code, 2);
    assert!(
        missing.stderr.contains("/no/such/file.yaml"),
        "{}",
        missing.stderr
    );
}

#[test]
fn check_emits_one_policy_report_per_namespace() {
    let two = format!(
        "{PRIVILEGED_DEPLOYMENT}---\napiVersion: v1\nkind: Pod\nmetadata: {{name: clean, namespace: team-b}}\nspec:\n  containers: [{{name: a, image: 'nginx:1.27'}}]\n"
    );
    let run = vigil(&["check", "--output", "policyreport", "-"], Some(&two));
    assert_eq!(run.code, 0, "{}", run.stderr);
    let reports: Vec<serde_yaml_ng::Value> = serde_yaml_ng::Deserializer::from_str(&run.stdout)
        .map(|d| serde::Deserialize::deserialize(d).unwrap())
        .collect();
    assert_eq!(reports.len(), 2);
    let a = &reports[0];
    assert_eq!(a["apiVersion"].as_str(), Some("wgpolicyk8s.io/v1alpha2"));
    assert_eq!(a["kind"].as_str(), Some("PolicyReport"));
    assert_eq!(a["metadata"]["namespace"].as_str(), Some("team-a"));
    assert_eq!(a["metadata"]["name"].as_str(), Some("vigil"));
    assert_eq!(a["results"][0]["rule"].as_str(), Some("privileged"));
    // The default policy audits: a warning, not a failure.
    assert_eq!(a["results"][0]["result"].as_str(), Some("warn"));
    assert_eq!(a["results"][0]["policy"].as_str(), Some("default"));
    assert_eq!(
        a["results"][0]["resources"][0]["name"].as_str(),
        Some("web")
    );
    assert_eq!(
        a["results"][0]["properties"]["origin"].as_str(),
        Some("(stdin): document 1 (line 2)")
    );
    assert_eq!(a["summary"]["warn"].as_u64(), Some(1));
    assert_eq!(reports[1]["metadata"]["namespace"].as_str(), Some("team-b"));
    assert_eq!(reports[1]["summary"]["pass"].as_u64(), Some(1));
    assert!(reports[1]["results"].as_sequence().unwrap().is_empty());

    // Under enforce the same violation fails.
    let run = vigil(
        &[
            "check",
            "--mode",
            "enforce",
            "--output",
            "policyreport",
            "-",
        ],
        Some(&two),
    );
    assert_eq!(run.code, 1, "{}", run.stderr);
    let report: serde_yaml_ng::Value = serde_yaml_ng::from_str(
        run.stdout
            .trim_start_matches("---\n")
            .split("\n---\n")
            .next()
            .unwrap(),
    )
    .unwrap();
    assert_eq!(report["results"][0]["result"].as_str(), Some("fail"));
    assert_eq!(report["summary"]["fail"].as_u64(), Some(1));
}

#[test]
fn review_answers_every_recorded_request_with_its_uid() {
    let files = corpus::review_files(&data("reviews"));
    assert_eq!(files.len(), 8, "6 recordings and 2 derived reviews");
    review_answers_with_uid(&files);
}

#[test]
fn review_answers_every_captured_request_of_the_corpus_with_its_uid() {
    let test = "cli::review_answers_every_captured_request_of_the_corpus_with_its_uid";
    let Some(files) = corpus::captured_reviews(test) else {
        return;
    };
    review_answers_with_uid(&files);
}

/// `vigil review` answers each file with a well-formed response echoing its uid; DELETE and pods/status at
/// once.
fn review_answers_with_uid(files: &[PathBuf]) {
    for path in files {
        let run = vigil(&["review", &path.display().to_string()], None);
        assert_eq!(run.code, 0, "{}: {}", path.display(), run.stderr);
        let request: Value = serde_json::from_str(&std::fs::read_to_string(path).unwrap()).unwrap();
        let response: Value =
            serde_json::from_str(&run.stdout).unwrap_or_else(|e| panic!("{}: {e}", path.display()));
        assert_eq!(response["apiVersion"], "admission.k8s.io/v1");
        assert_eq!(response["kind"], "AdmissionReview");
        assert_eq!(
            response["response"]["uid"],
            request["request"]["uid"],
            "{}",
            path.display()
        );
        assert!(response["response"]["allowed"].is_boolean());

        let at_once = request["request"]["operation"] == "DELETE"
            || request["request"]["subResource"] == "status";
        if at_once {
            assert_eq!(
                response["response"],
                serde_json::json!({"uid": request["request"]["uid"], "allowed": true}),
                "{}: DELETE and pods/status are admitted at once",
                path.display()
            );
        }
    }
}

#[test]
fn review_denies_privileged_pods_under_enforce() {
    let dir = tempfile::tempdir().unwrap();
    let policy = temp_file(&dir, "policy.yaml", ENFORCE);
    let path = data("reviews/pod-create-privileged.DERIVED.json");
    let run = vigil(
        &["review", "--policy", &policy, &path.display().to_string()],
        None,
    );
    assert_eq!(run.code, 0);
    let response: Value = serde_json::from_str(&run.stdout).unwrap();
    let r = &response["response"];
    assert_eq!(r["allowed"], false);
    assert_eq!(r["status"]["code"], 403);
    let message = r["status"]["message"].as_str().unwrap();
    assert!(message.starts_with("Pod svc-test/bad-eps "), "{message}");
    assert!(message.contains("[privileged]"), "{message}");
    let alert: Value =
        serde_json::from_str(r["auditAnnotations"]["alert"].as_str().unwrap()).unwrap();
    assert_eq!(alert["schema"], "vigil.dev/alert/v1");
    assert_eq!(alert["decision"], "denied");
    assert!(
        r["auditAnnotations"]["violations"]
            .as_str()
            .unwrap()
            .contains("privileged")
    );
}

#[test]
fn review_records_kubectl_debug() {
    let path = data("reviews/pod-ephemeralcontainers-update.kube-apiserver-1.36.json");
    let run = vigil(&["review", &path.display().to_string()], None);
    let response: Value = serde_json::from_str(&run.stdout).unwrap();
    let alert: Value = serde_json::from_str(
        response["response"]["auditAnnotations"]["alert"]
            .as_str()
            .unwrap(),
    )
    .unwrap();
    let rules: Vec<&str> = alert["violations"]
        .as_array()
        .unwrap()
        .iter()
        .map(|v| v["rule"].as_str().unwrap())
        .collect();
    assert!(rules.contains(&"ephemeral-containers"), "{rules:?}");
    let debugger = &alert["violations"][rules
        .iter()
        .position(|r| *r == "ephemeral-containers")
        .unwrap()];
    assert_eq!(debugger["container"], "debugger-2lklf", "{debugger}");
    assert_eq!(debugger["field"], "spec.ephemeralContainers[0]");
}

#[test]
fn review_rejects_unreadable_input() {
    for (body, reason) in [
        ("not json", "not JSON"),
        (
            r#"{"apiVersion":"admission.k8s.io/v1beta1","kind":"AdmissionReview","request":{"uid":"x"}}"#,
            "apiVersion",
        ),
        (
            r#"{"apiVersion":"admission.k8s.io/v1","kind":"AdmissionReview"}"#,
            "no request",
        ),
        (
            r#"{"apiVersion":"admission.k8s.io/v1","kind":"AdmissionReview","request":{}}"#,
            "no uid",
        ),
    ] {
        let run = vigil(&["review", "-"], Some(body));
        assert_eq!(run.code, 2, "{body}");
        assert!(run.stderr.contains(reason), "{body}: {}", run.stderr);
    }
}

#[test]
fn policy_validate_reports_every_error() {
    let dir = tempfile::tempdir().unwrap();
    let bad = temp_file(
        &dir,
        "bad.yaml",
        "apiVersion: vigil.dev/v1alpha1\nkind: Policy\nmode: enforced\nrules:\n  image-registry:\n    allow: [\"ghcr.io/corp/**\"]\n",
    );
    let run = vigil(&["policy", "validate", &bad], None);
    assert_eq!(run.code, 2);
    let lines: Vec<&str> = run.stderr.lines().collect();
    assert_eq!(lines.len(), 2, "{}", run.stderr);
    assert!(
        lines[0].starts_with(&format!("{bad}: mode: unknown variant `enforced`")),
        "{}",
        lines[0]
    );
    assert_eq!(
        lines[1],
        format!(
            "{bad}: rules.image-registry.allow[0]: \"ghcr.io/corp/**\": '**' is not a pattern; use 'ghcr.io/corp/*'"
        )
    );

    let expired = temp_file(
        &dir,
        "expired.yaml",
        "apiVersion: vigil.dev/v1alpha1\nkind: Policy\nexemptions:\n  - name: old\n    reason: r\n    until: 2020-01-01T00:00:00Z\n",
    );
    let run = vigil(&["policy", "validate", &expired], None);
    assert_eq!(run.code, 0);
    assert!(
        run.stderr.contains("warning: exemptions[0] (old): expired"),
        "{}",
        run.stderr
    );
}

#[test]
fn policy_default_is_a_valid_policy() {
    let run = vigil(&["policy", "default"], None);
    assert_eq!(run.code, 0);
    assert!(run.stdout.contains("mode: audit"));
    let dir = tempfile::tempdir().unwrap();
    let path = temp_file(&dir, "default.yaml", &run.stdout);
    assert_eq!(vigil(&["policy", "validate", &path], None).code, 0);
}

#[test]
fn rules_lists_the_catalogue() {
    let text = vigil(&["rules"], None);
    assert_eq!(text.code, 0);
    assert!(
        text.stdout
            .lines()
            .any(|l| l.starts_with("privileged ") && l.contains("critical"))
    );
    let json: Value =
        serde_json::from_str(&vigil(&["rules", "--output", "json"], None).stdout).unwrap();
    let rules = json.as_array().unwrap();
    assert_eq!(rules.len(), 25);
    let tag = rules.iter().find(|r| r["id"] == "image-tag").unwrap();
    assert_eq!(tag["defaultMode"], "warn");
    assert_eq!(tag["profile"], "baseline");
}

#[test]
fn readme_rule_table_matches_the_catalogue() {
    let table = vigil(&["rules", "--output", "markdown"], None).stdout;
    let readme =
        std::fs::read_to_string(Path::new(env!("CARGO_MANIFEST_DIR")).join("README.md")).unwrap();
    assert!(
        readme.contains(&table),
        "README.md's rule table is out of date; regenerate it with `vigil rules --output markdown`:\n{table}"
    );
}
