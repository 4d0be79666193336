//! The offline commands, run as the real binary: check, review, policy validate/default, rules.

mod corpus;

use std::io::Write;
use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};

use serde_json::{Value, json};

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

/// The three CONNECT reviews recorded from a real kube-apiserver: `kubectl exec p -- sh -c '...'`,
/// `kubectl attach p`, and a port-forward to ports 80 and 5432, all by user `admin` in namespace `ex`.
const EXEC: &str = "reviews/pod-exec-connect.kube-apiserver-1.36.json";
const ATTACH: &str = "reviews/pod-attach-connect.kube-apiserver-1.36.json";
const PORT_FORWARD: &str = "reviews/pod-portforward-connect.kube-apiserver-1.36.json";

/// `vigil review [--policy POLICY] FILE`: the response, and the alert record it carries.
fn review_file(policy: Option<&str>, rel: &str) -> (Value, Option<Value>) {
    let dir = tempfile::tempdir().unwrap();
    let path = data(rel).display().to_string();
    let run = match policy {
        Some(text) => {
            let policy = temp_file(&dir, "policy.yaml", text);
            vigil(&["review", "--policy", &policy, &path], None)
        }
        None => vigil(&["review", &path], None),
    };
    assert_eq!(run.code, 0, "{rel}: {}", run.stderr);
    let response: Value = serde_json::from_str(&run.stdout).unwrap();
    let alert = response["response"]["auditAnnotations"]["alert"]
        .as_str()
        .map(|a| serde_json::from_str(a).unwrap());
    (response["response"].clone(), alert)
}

#[test]
fn review_records_exec_attach_and_port_forward_under_the_default_policy() {
    for (rel, rule, container, message) in [
        (
            EXEC,
            "pod-exec",
            json!("p"),
            r#"exec into container "p" (stdin: no, tty: no): sh -c 'cat /var/run/secrets/kubernetes.io/serviceaccount/token'"#,
        ),
        (
            ATTACH,
            "pod-exec",
            json!("p"),
            r#"attach to container "p" (stdin: no, tty: no)"#,
        ),
        (
            PORT_FORWARD,
            "port-forward",
            Value::Null,
            "port-forward to ports 80, 5432",
        ),
    ] {
        let (response, alert) = review_file(None, rel);
        assert_eq!(response["allowed"], true, "{rel}: audit admits");
        assert!(response.get("warnings").is_none(), "{rel}: audit is quiet");
        assert_eq!(response["auditAnnotations"]["violations"], rule, "{rel}");
        let alert = alert.unwrap_or_else(|| panic!("{rel}: every CONNECT is recorded"));
        assert_eq!(alert["operation"], "CONNECT");
        assert_eq!(alert["decision"], "allowed");
        assert_eq!(
            alert["object"],
            json!({"apiVersion": "v1", "kind": "Pod", "namespace": "ex", "name": "p"})
        );
        assert_eq!(
            alert["user"],
            json!({"username": "admin", "groups": ["system:masters", "system:authenticated"]})
        );
        let violations = alert["violations"].as_array().unwrap();
        assert_eq!(violations.len(), 1, "{rel}: {violations:?}");
        let v = &violations[0];
        assert_eq!(v["rule"], rule);
        assert_eq!(v["mode"], "audit");
        assert_eq!(v["container"], container, "{rel}");
        assert_eq!(v["image"], Value::Null);
        assert_eq!(v["message"], message, "{rel}");
    }
}

#[test]
fn review_denies_exec_and_attach_under_pod_exec_enforce_and_port_forward_under_its_own() {
    let exec_enforced = format!("{ENFORCE}rules:\n  pod-exec: enforce\n");
    for (rel, allowed) in [(EXEC, false), (ATTACH, false), (PORT_FORWARD, true)] {
        let (response, alert) = review_file(Some(&exec_enforced), rel);
        assert_eq!(response["allowed"], allowed, "{rel}");
        assert_eq!(
            alert.unwrap()["decision"],
            if allowed { "allowed" } else { "denied" }
        );
    }
    let (response, _) = review_file(Some(&exec_enforced), EXEC);
    assert_eq!(response["status"]["code"], 403);
    assert_eq!(
        response["status"]["message"],
        r#"Pod ex/p denied by vigil: [pod-exec] exec into container "p" (stdin: no, tty: no): sh -c 'cat /var/run/secrets/kubernetes.io/serviceaccount/token' (pods/exec)"#
    );
    let (response, _) = review_file(Some(&exec_enforced), ATTACH);
    assert_eq!(
        response["status"]["message"],
        r#"Pod ex/p denied by vigil: [pod-exec] attach to container "p" (stdin: no, tty: no) (pods/attach)"#
    );

    let forward_enforced = format!("{ENFORCE}rules:\n  port-forward: enforce\n");
    let (response, _) = review_file(Some(&forward_enforced), PORT_FORWARD);
    assert_eq!(response["allowed"], false);
    assert_eq!(
        response["status"]["message"],
        "Pod ex/p denied by vigil: [port-forward] port-forward to ports 80, 5432 (pods/portforward)"
    );
    let (response, _) = review_file(Some(&forward_enforced), EXEC);
    assert_eq!(
        response["allowed"], true,
        "pod-exec keeps its default, audit"
    );
}

#[test]
fn review_admits_exec_by_an_exempted_group_and_never_by_image() {
    let policy = format!(
        "{ENFORCE}rules:\n  pod-exec: enforce\n  port-forward: enforce\nexemptions:\n  - name: masters-may-exec\n    reason: cluster admins debug\n    rules: [pod-exec]\n    namespaces: [ex]\n    groups: [system:masters]\n"
    );
    let (response, alert) = review_file(Some(&policy), EXEC);
    assert_eq!(response["allowed"], true);
    let alert = alert.unwrap();
    assert_eq!(alert["violations"][0]["exemption"], "masters-may-exec");
    let (response, _) = review_file(Some(&policy), PORT_FORWARD);
    assert_eq!(
        response["allowed"], false,
        "the exemption names pod-exec only"
    );

    // The pod spec is not in a CONNECT review, so no image can be shown to match: fail closed.
    let by_image = format!(
        "{ENFORCE}rules:\n  pod-exec: enforce\nexemptions:\n  - name: debug-images\n    reason: debug tooling\n    groups: [system:masters]\n    images: [\"docker.io/library/*\"]\n"
    );
    let (response, alert) = review_file(Some(&by_image), EXEC);
    assert_eq!(response["allowed"], false);
    assert_eq!(alert.unwrap()["violations"][0]["exemption"], Value::Null);
}

/// The README's example: only the group `sre` may exec into `prod-*`; everyone may in `dev-*` and
/// `staging-*`; nobody elsewhere.
const SRE_ONLY_IN_PROD: &str = r#"apiVersion: vigil.dev/v1alpha1
kind: Policy
mode: audit
rules:
  pod-exec: enforce
exemptions:
  - name: sre-exec-prod
    reason: on-call SREs debug production
    rules: [pod-exec]
    namespaces: ["prod-*"]
    groups: ["sre"]
  - name: exec-outside-prod
    reason: teams debug their own namespaces
    rules: [pod-exec]
    namespaces: ["dev-*", "staging-*"]
"#;

#[test]
fn readme_example_lets_only_sre_exec_into_prod() {
    let readme =
        std::fs::read_to_string(Path::new(env!("CARGO_MANIFEST_DIR")).join("README.md")).unwrap();
    assert!(
        readme.contains(SRE_ONLY_IN_PROD),
        "the README shows this policy"
    );
    let dir = tempfile::tempdir().unwrap();
    let policy = temp_file(&dir, "policy.yaml", SRE_ONLY_IN_PROD);
    let recorded: Value =
        serde_json::from_str(&std::fs::read_to_string(data(EXEC)).unwrap()).unwrap();
    for (namespace, group, exemption) in [
        ("prod-web", "sre", Some("sre-exec-prod")),
        ("prod-web", "dev", None),
        ("dev-1", "dev", Some("exec-outside-prod")),
        ("team-a", "sre", None),
    ] {
        let mut review = recorded.clone();
        review["request"]["namespace"] = json!(namespace);
        review["request"]["userInfo"]["groups"] = json!([group, "system:authenticated"]);
        let run = vigil(
            &["review", "--policy", &policy, "-"],
            Some(&review.to_string()),
        );
        assert_eq!(run.code, 0, "{}", run.stderr);
        let response: Value = serde_json::from_str(&run.stdout).unwrap();
        let r = &response["response"];
        assert_eq!(
            r["allowed"],
            exemption.is_some(),
            "{namespace} {group}: {r}"
        );
        let alert: Value =
            serde_json::from_str(r["auditAnnotations"]["alert"].as_str().unwrap()).unwrap();
        assert_eq!(
            alert["violations"][0]["exemption"].as_str(),
            exemption,
            "{namespace} {group}: recorded either way"
        );
    }
}

#[test]
fn review_never_repeats_a_credential_on_an_exec_command_line() {
    let mut review: Value =
        serde_json::from_str(&std::fs::read_to_string(data(EXEC)).unwrap()).unwrap();
    review["request"]["object"]["command"] =
        json!(["mysql", "-uroot", "-phunter22", "-e", "select 1"]);
    let run = vigil(&["review", "-"], Some(&review.to_string()));
    assert_eq!(run.code, 0, "{}", run.stderr);
    assert!(!run.stdout.contains("hunter22"), "{}", run.stdout);
    let response: Value = serde_json::from_str(&run.stdout).unwrap();
    let alert: Value = serde_json::from_str(
        response["response"]["auditAnnotations"]["alert"]
            .as_str()
            .unwrap(),
    )
    .unwrap();
    assert_eq!(
        alert["violations"][0]["message"],
        r#"exec into container "p" (stdin: no, tty: no): mysql -uroot '-p<redacted>' -e 'select 1'"#
    );
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

    assert_eq!(rules.len(), 29);
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

// ---------------------------------------------------------------------------------------------------------
// `vigil review` under a policy

/// `vigil review` of `review` under `policy`: the response.
fn review_under(policy: &str, review: &str) -> Value {
    let dir = tempfile::tempdir().unwrap();
    let policy = temp_file(&dir, "policy.yaml", policy);
    let run = vigil(&["review", "--policy", &policy, "-"], Some(review));
    assert_eq!(run.code, 0, "{}", run.stderr);
    serde_json::from_str::<Value>(&run.stdout).unwrap()["response"].clone()
}

const POLICY_HEAD: &str = "apiVersion: vigil.dev/v1alpha1\nkind: Policy\n";

// ---------------------------------------------------------------------------------------------------------
// `kubectl debug`: what each profile meets, and the exemption that lets a group debug

/// What kubectl 1.34 writes into the ephemeral container's securityContext for each `--profile`
/// (k8s.io/kubectl pkg/cmd/debug/profiles.go, the `ephemeral` case), as the README table shows it.
fn debug_profiles() -> Vec<(&'static str, &'static str, Value)> {
    vec![
        ("legacy", "no `securityContext`", Value::Null),
        (
            "general",
            "`capabilities.add: [SYS_PTRACE]`",
            serde_json::json!({"capabilities": {"add": ["SYS_PTRACE"]}}),
        ),
        ("baseline", "no `securityContext`", Value::Null),
        (
            "restricted",
            "`runAsNonRoot: true`, `capabilities.drop: [ALL]`, `allowPrivilegeEscalation: false`, `seccompProfile: RuntimeDefault`",
            serde_json::json!({"runAsNonRoot": true, "capabilities": {"drop": ["ALL"]},
                               "allowPrivilegeEscalation": false, "seccompProfile": {"type": "RuntimeDefault"}}),
        ),
        (
            "netadmin",
            "`capabilities.add: [NET_ADMIN, NET_RAW]`",
            serde_json::json!({"capabilities": {"add": ["NET_ADMIN", "NET_RAW"]}}),
        ),
        (
            "sysadmin",
            "`privileged: true`",
            serde_json::json!({"privileged": true}),
        ),
    ]
}

/// The recorded `kubectl debug --profile=legacy` review, with the debug container as `--profile` and
/// `--image=busybox:1.36` make it, sent by a user in `groups`.
fn debug_review(security_context: &Value, groups: &[&str]) -> String {
    let path = data("reviews/pod-ephemeralcontainers-update.kube-apiserver-1.36.json");
    let mut review: Value = serde_json::from_str(&std::fs::read_to_string(path).unwrap()).unwrap();
    let request = &mut review["request"];
    let debugger = &mut request["object"]["spec"]["ephemeralContainers"][0];
    assert_eq!(debugger["name"], "debugger-2lklf");
    debugger["image"] = "busybox:1.36".into();
    if !security_context.is_null() {
        debugger["securityContext"] = security_context.clone();
    }
    request["userInfo"] = serde_json::json!({"username": "alice", "groups": groups});
    review.to_string()
}

/// The debug container's violations in a response: (rule, mode, exemption).
fn debugger_violations(response: &Value) -> Vec<(String, String, Option<String>)> {
    let alert: Value =
        serde_json::from_str(response["auditAnnotations"]["alert"].as_str().unwrap()).unwrap();
    alert["violations"]
        .as_array()
        .unwrap()
        .iter()
        .filter(|v| v["container"] == "debugger-2lklf")
        .map(|v| {
            (
                v["rule"].as_str().unwrap().to_owned(),
                v["mode"].as_str().unwrap().to_owned(),
                v["exemption"].as_str().map(str::to_owned),
            )
        })
        .collect()
}

/// One cell of the README table: denied with the enforced rules, or admitted with what is recorded.
fn debug_outcome(response: &Value) -> String {
    let mut enforced: Vec<String> = Vec::new();
    let mut recorded: Vec<String> = Vec::new();
    for (rule, mode, _) in debugger_violations(response) {
        let list = if mode == "enforce" {
            &mut enforced
        } else {
            &mut recorded
        };
        if !list.contains(&rule) {
            list.push(rule);
        }
    }
    if response["allowed"] == false {
        format!("**denied**: {}", enforced.join(", "))
    } else {
        format!("admitted, recorded: {}", recorded.join(", "))
    }
}

#[test]
fn readme_kubectl_debug_table_matches_what_vigil_does() {
    let policies = [
        format!("{POLICY_HEAD}mode: audit\nrules:\n  image-tag: warn\n"),
        format!("{POLICY_HEAD}mode: enforce\n"),
        format!("{POLICY_HEAD}mode: enforce\nprofile: restricted\n"),
    ];
    let mut table = String::from(
        "| `--profile` | kubectl 1.34 sets on the debug container | default policy (`mode: audit`) | `mode: enforce` | `mode: enforce`, `profile: restricted` |\n\
         |---|---|---|---|---|\n",
    );
    for (profile, sets, context) in debug_profiles() {
        let review = debug_review(&context, &["dev"]);
        let cells: Vec<String> = policies
            .iter()
            .map(|p| debug_outcome(&review_under(p, &review)))
            .collect();
        table.push_str(&format!(
            "| `{profile}` | {sets} | {} |\n",
            cells.join(" | ")
        ));
    }
    let readme =
        std::fs::read_to_string(Path::new(env!("CARGO_MANIFEST_DIR")).join("README.md")).unwrap();
    assert!(
        readme.contains(&table),
        "README.md's kubectl debug table differs from what Vigil does; it should read:\n{table}"
    );
}

/// The README's exemption for SRE debugging, as a policy.
const SRE_DEBUG_POLICY: &str = "\
apiVersion: vigil.dev/v1alpha1
kind: Policy
mode: enforce
rules:
  ephemeral-containers: enforce
exemptions:
  - name: sre-debug
    reason: SRE debug running pods with kubectl debug --profile=general
    rules: [capabilities, ephemeral-containers]
    groups: [sre]
    images: [docker.io/library/busybox]
";

#[test]
fn a_group_exemption_lets_sre_debug_with_the_general_profile() {
    let readme =
        std::fs::read_to_string(Path::new(env!("CARGO_MANIFEST_DIR")).join("README.md")).unwrap();
    assert!(
        readme.contains(&format!(
            "cat > policy.yaml <<'EOF'\n{SRE_DEBUG_POLICY}EOF\n"
        )),
        "README.md shows the policy this test checks:\n{SRE_DEBUG_POLICY}"
    );
    let general = &debug_profiles()[1].2;

    // A member of sre gets in; both violations are recorded with the exemption's name.
    let response = review_under(SRE_DEBUG_POLICY, &debug_review(general, &["sre"]));
    assert_eq!(response["allowed"], true, "{response}");
    let exempted = debugger_violations(&response);
    assert_eq!(
        exempted,
        [
            (
                "capabilities".to_owned(),
                "enforce".to_owned(),
                Some("sre-debug".to_owned())
            ),
            (
                "ephemeral-containers".to_owned(),
                "enforce".to_owned(),
                Some("sre-debug".to_owned())
            ),
        ]
    );

    // Anyone else is refused, whatever the profile, and so is sre with another image.
    for (groups, context) in [
        (&["dev"][..], general),
        (&["dev"][..], &Value::Null),
        (&["system:masters", "system:authenticated"][..], general),
    ] {
        let response = review_under(SRE_DEBUG_POLICY, &debug_review(context, groups));
        assert_eq!(response["allowed"], false, "{groups:?}");
        let message = response["status"]["message"].as_str().unwrap();
        assert!(message.contains("ephemeral-containers"), "{message}");
    }
    let mut other_image: Value = serde_json::from_str(&debug_review(general, &["sre"])).unwrap();
    other_image["request"]["object"]["spec"]["ephemeralContainers"][0]["image"] =
        "docker.io/nicolaka/netshoot:v0.13".into();
    let response = review_under(SRE_DEBUG_POLICY, &other_image.to_string());
    assert_eq!(response["allowed"], false);
}

// ---------------------------------------------------------------------------------------------------------
// Edits of the policy ConfigMap, shaped as the API server sends them

/// The policy ConfigMap as the chart writes it under `source` with `failure_policy`, after Helm 4 applied
/// it server-side (so `helm` owns `data.policy.yaml`), holding `policy`.
fn chart_configmap(source: &str, failure_policy: &str, policy: &str) -> Value {
    serde_json::json!({
        "kind": "ConfigMap", "apiVersion": "v1",
        "metadata": {
            "name": "vigil-policy", "namespace": "vigil", "uid": "5b0c6d1e-7a43-4c0e-9a51-3f4c2c1d9e10",
            "resourceVersion": "1043", "creationTimestamp": "2026-11-22T15:04:05Z",
            "labels": {"app.kubernetes.io/instance": "vigil", "app.kubernetes.io/managed-by": "Helm",
                       "app.kubernetes.io/name": "vigil", "vigil.dev/policy": "true"},
            "annotations": {"meta.helm.sh/release-name": "vigil", "meta.helm.sh/release-namespace": "vigil",
                            "vigil.dev/policy-source": source, "vigil.dev/failure-policy": failure_policy},
            "managedFields": [{
                "manager": "helm", "operation": "Apply", "apiVersion": "v1", "time": "2026-11-22T15:04:05Z",
                "fieldsType": "FieldsV1",
                "fieldsV1": {"f:data": {"f:policy.yaml": {}},
                             "f:metadata": {"f:annotations": {"f:vigil.dev/policy-source": {}},
                                            "f:labels": {"f:vigil.dev/policy": {}}}}
            }]
        },
        "data": {"policy.yaml": policy}
    })
}

fn configmap_update(old: &Value, new: &Value, field_manager: &str) -> String {
    let resource = serde_json::json!({"group": "", "version": "v1", "resource": "configmaps"});
    serde_json::json!({
        "kind": "AdmissionReview", "apiVersion": "admission.k8s.io/v1",
        "request": {
            "uid": "0f6b7f52-9d8e-4a3c-8b1e-2c4d5e6f7a8b",
            "kind": {"group": "", "version": "v1", "kind": "ConfigMap"},
            "resource": resource, "requestKind": {"group": "", "version": "v1", "kind": "ConfigMap"},
            "requestResource": resource, "name": "vigil-policy", "namespace": "vigil", "operation": "UPDATE",
            "userInfo": {"username": "admin", "groups": ["system:masters", "system:authenticated"]},
            "object": new, "oldObject": old, "dryRun": false,
            "options": {"kind": "PatchOptions", "apiVersion": "meta.k8s.io/v1", "fieldManager": field_manager}
        }
    })
    .to_string()
}

#[test]
fn policy_kept_in_helm_values_refuses_kubectl_edits_and_names_the_helm_upgrade() {
    let audit = format!("{POLICY_HEAD}mode: audit\n");
    let enforce = format!("{POLICY_HEAD}mode: enforce\n");
    let old = chart_configmap("helm", "Ignore", &audit);
    let mut edited = old.clone();
    edited["data"]["policy.yaml"] = enforce.clone().into();
    // kubectl apply drops the annotation: the old object still decides.
    edited["metadata"]["annotations"]
        .as_object_mut()
        .unwrap()
        .remove("vigil.dev/policy-source");

    let response = review_under(
        &audit,
        &configmap_update(&old, &edited, "kubectl-client-side-apply"),
    );
    assert_eq!(response["allowed"], false);
    assert_eq!(response["status"]["code"], 403);
    let message = response["status"]["message"].as_str().unwrap();
    assert!(
        message.starts_with(
            "ConfigMap vigil/vigil-policy: refused: the policy is kept in the values of Helm release \"vigil\""
        ),
        "{message}"
    );
    assert!(
        message.contains(
            "helm upgrade vigil <chart> -n vigil --reuse-values --set policy.mode=enforce"
        ),
        "{message}"
    );
    assert!(message.chars().count() < 1024, "{message}");
    let alert: Value =
        serde_json::from_str(response["auditAnnotations"]["alert"].as_str().unwrap()).unwrap();
    assert_eq!(alert["decision"], "denied");
    assert_eq!(alert["violations"][0]["rule"], "policy-change");
    assert_eq!(alert["violations"][0]["mode"], "enforce");

    // Helm's own upgrade, which also sets the failurePolicy it rendered, goes through without a warning.
    let mut upgraded = chart_configmap("helm", "Fail", &enforce);
    upgraded["metadata"]["resourceVersion"] = "1050".into();
    let response = review_under(&audit, &configmap_update(&old, &upgraded, "helm"));
    assert_eq!(response["allowed"], true, "{response}");
    assert!(response.get("warnings").is_none(), "{response}");
}

#[test]
fn policy_kept_in_the_cluster_takes_kubectl_edits_and_warns_when_enforce_meets_an_open_webhook() {
    let audit = format!("{POLICY_HEAD}mode: audit\n");
    let old = chart_configmap("cluster", "Ignore", &audit);
    let mut edited = old.clone();
    edited["data"]["policy.yaml"] =
        format!("{POLICY_HEAD}mode: audit\nrules:\n  privileged: enforce\n").into();
    let response = review_under(
        &audit,
        &configmap_update(&old, &edited, "kubectl-client-side-apply"),
    );
    assert_eq!(response["allowed"], true, "{response}");
    assert_eq!(
        response["warnings"],
        serde_json::json!([
            "enforce is now on (rules.privileged), but the workloads webhook still has failurePolicy Ignore",
            "while Vigil is unreachable, what this policy denies is admitted unchecked",
            "to fail closed, run: helm upgrade vigil <chart> -n vigil --reuse-values"
        ])
    );
}
