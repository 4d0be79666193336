//! The Helm chart, the plain manifests, the certificate script and the Dockerfile, checked with the real tools:
//! helm 4 and kubernetes-validate (installed into `.cache/` by `scripts/test-deps.sh`), openssl, curl, and
//! the vigil binary itself.
//!
//! `VIGIL_BLESS=1 cargo test --test helm` rewrites the generated files (`manifests/` and the values table in
//! `charts/vigil/README.md`) instead of failing when they are stale.

use std::collections::{BTreeMap, BTreeSet};
use std::io::{Read, Write};
use std::net::{SocketAddr, TcpListener, TcpStream};
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Output, Stdio};
use std::time::{Duration, Instant};

use serde::Deserialize;
use serde_json::{Value, json};

const RELEASE: &str = "vigil";
const NAMESPACE: &str = "vigil";

// ---------------------------------------------------------------------------------------------------------
// Tools and rendering

fn root() -> &'static Path {
    Path::new(env!("CARGO_MANIFEST_DIR"))
}

fn chart() -> PathBuf {
    root().join("charts/vigil")
}

/// A tool that `scripts/test-deps.sh` installs under `.cache/`; a missing one fails the test, never skips it.
fn cached_tool(rel: &str) -> PathBuf {
    let path = root().join(".cache").join(rel);
    if !path.is_file() {
        panic!(
            "{} is missing: run `make test`, which installs the test tools with scripts/test-deps.sh",
            path.display()
        );
    }
    path
}

fn helm() -> Command {
    let mut cmd = Command::new(cached_tool("bin/helm"));
    // Keep helm away from the user's kubeconfig, cache and plugins.
    let home = std::env::temp_dir().join("vigil-helm-test-home");
    cmd.env("HELM_CACHE_HOME", home.join("cache"))
        .env("HELM_CONFIG_HOME", home.join("config"))
        .env("HELM_DATA_HOME", home.join("data"))
        .env("KUBECONFIG", home.join("no-kubeconfig"));
    cmd
}

/// A tool the system provides (test-deps.sh installs it from Debian when it is missing).
fn system_tool(name: &str) -> Command {
    let found = std::env::var_os("PATH")
        .map(|paths| std::env::split_paths(&paths).any(|dir| dir.join(name).is_file()))
        .unwrap_or(false);
    if !found {
        panic!(
            "{name} is not on PATH: run `make test`, which installs it with scripts/test-deps.sh"
        );
    }
    Command::new(name)
}

fn vigil() -> Command {
    Command::new(env!("CARGO_BIN_EXE_vigil"))
}

fn run(cmd: &mut Command) -> Output {
    cmd.output()
        .unwrap_or_else(|e| panic!("cannot run {cmd:?}: {e}"))
}

fn run_ok(cmd: &mut Command) -> String {
    let out = run(cmd);
    if !out.status.success() {
        panic!(
            "{cmd:?} failed ({}):\n{}\n{}",
            out.status,
            String::from_utf8_lossy(&out.stdout),
            String::from_utf8_lossy(&out.stderr)
        );
    }
    String::from_utf8(out.stdout).expect("UTF-8 output")
}

fn run_with_stdin(cmd: &mut Command, input: &str) -> Output {
    let mut child = cmd
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap_or_else(|e| panic!("cannot run {cmd:?}: {e}"));
    child
        .stdin
        .take()
        .unwrap()
        .write_all(input.as_bytes())
        .unwrap();
    child.wait_with_output().unwrap()
}

fn template_command(args: &[&str]) -> Command {
    let mut cmd = helm();
    cmd.arg("template")
        .arg(RELEASE)
        .arg(chart())
        .args(["--namespace", NAMESPACE])
        .args(args);
    cmd
}

/// `helm template` with these extra arguments; panics with helm's message when it fails.
fn render(args: &[&str]) -> String {
    run_ok(&mut template_command(args))
}

/// `helm template` that must fail: its error output.
fn render_error(args: &[&str]) -> String {
    let out = run(&mut template_command(args));
    assert!(
        !out.status.success(),
        "helm template {args:?} should have failed, but rendered:\n{}",
        String::from_utf8_lossy(&out.stdout)
    );
    String::from_utf8_lossy(&out.stderr).into_owned()
}

fn data(rel: &str) -> String {
    root()
        .join("tests/data/helm")
        .join(rel)
        .display()
        .to_string()
}

/// The YAML documents of a render, as JSON values.
fn documents(yaml: &str) -> Vec<Value> {
    serde_yaml_ng::Deserializer::from_str(yaml)
        .map(|doc| Value::deserialize(doc).expect("rendered YAML parses"))
        .filter(|v| !v.is_null())
        .collect()
}

fn of_kind<'a>(docs: &'a [Value], kind: &str) -> Vec<&'a Value> {
    docs.iter().filter(|d| d["kind"] == kind).collect()
}

fn one<'a>(docs: &'a [Value], kind: &str) -> &'a Value {
    let found = of_kind(docs, kind);
    assert_eq!(found.len(), 1, "expected one {kind}, found {}", found.len());
    found[0]
}

fn strings(v: &Value) -> Vec<String> {
    v.as_array()
        .unwrap_or(&Vec::new())
        .iter()
        .map(|s| s.as_str().unwrap_or_default().to_owned())
        .collect()
}

/// The policy ConfigMap: the one ConfigMap that holds `policy.yaml` (the dashboard's is another).
fn policy_configmap(docs: &[Value]) -> &Value {
    let found: Vec<&Value> = of_kind(docs, "ConfigMap")
        .into_iter()
        .filter(|c| c["data"]["policy.yaml"].is_string())
        .collect();
    assert_eq!(found.len(), 1, "expected one policy ConfigMap");
    found[0]
}

/// The `policy.yaml` of the rendered policy ConfigMap.
fn rendered_policy(docs: &[Value]) -> String {
    policy_configmap(docs)["data"]["policy.yaml"]
        .as_str()
        .expect("the ConfigMap holds policy.yaml")
        .to_owned()
}

/// The one object of `kind` named `name`.
fn named<'a>(docs: &'a [Value], kind: &str, name: &str) -> &'a Value {
    let found: Vec<&Value> = of_kind(docs, kind)
        .into_iter()
        .filter(|d| d["metadata"]["name"] == name)
        .collect();
    assert_eq!(found.len(), 1, "expected one {kind} {name}");
    found[0]
}

fn b64decode(text: &str) -> Vec<u8> {
    use base64::Engine;
    base64::engine::general_purpose::STANDARD
        .decode(text.trim())
        .unwrap_or_else(|e| panic!("not base64 ({e}): {text}"))
}

fn blessing() -> bool {
    std::env::var_os("VIGIL_BLESS").is_some()
}

/// The scenarios the Done-when list names, plus the other certificate modes and a values file that turns
/// nearly everything on.
fn scenarios() -> Vec<(&'static str, Vec<String>)> {
    let s = |args: &[&str]| args.iter().map(|a| a.to_string()).collect::<Vec<_>>();
    vec![
        ("defaults", s(&[])),
        ("enforce", s(&["--set", "policy.mode=enforce"])),
        ("cert-manager", s(&["--set", "certs.mode=cert-manager"])),
        (
            "secret",
            s(&[
                "--set",
                "certs.mode=secret",
                "--set",
                "certs.secret.caBundle=LS0tLS1CRUdJTiBDRVJUSUZJQ0FURS0tLS0tCg==",
            ]),
        ),
        ("annotate off", s(&["--set", "annotate.enabled=false"])),
        (
            "NetworkPolicy on",
            s(&["--set", "networkPolicy.enabled=true"]),
        ),
        (
            "ServiceMonitor on",
            s(&[
                "--set",
                "metrics.serviceMonitor.enabled=true",
                "--api-versions",
                "monitoring.coreos.com/v1/ServiceMonitor",
            ]),
        ),
        ("rich policy", s(&["-f", &data("values-policy.yaml")])),
        (
            "policy kept in the cluster",
            s(&["--set", "policyConfigMap.source=cluster"]),
        ),
        (
            "everything",
            s(&[
                "-f",
                &data("values-everything.yaml"),
                "--api-versions",
                "monitoring.coreos.com/v1/ServiceMonitor",
                "--api-versions",
                "monitoring.coreos.com/v1/PrometheusRule",
            ]),
        ),
    ]
}

fn render_scenario(args: &[String]) -> String {
    let args: Vec<&str> = args.iter().map(String::as_str).collect();
    render(&args)
}

// ---------------------------------------------------------------------------------------------------------
// helm lint and the Kubernetes schemas

#[test]
fn lint_is_strictly_clean_with_defaults_and_every_certs_mode() {
    let modes: [&[&str]; 4] = [
        &[],
        &["--set", "certs.mode=cert-manager"],
        &[
            "--set",
            "certs.mode=cert-manager",
            "--set",
            "certs.certManager.issuerRef.name=corp-ca",
        ],
        &[
            "--set",
            "certs.mode=secret",
            "--set",
            "certs.secret.caBundle=LS0tLS1CRUdJTiBDRVJUSUZJQ0FURS0tLS0tCg==",
        ],
    ];
    for args in modes {
        let out = run_ok(
            helm()
                .args(["lint", "--strict", "--namespace", NAMESPACE])
                .arg(chart())
                .args(args),
        );
        assert!(out.contains("0 chart(s) failed"), "{args:?}: {out}");
        assert!(
            !out.contains("[WARNING]") && !out.contains("[ERROR]"),
            "{args:?}: {out}"
        );
    }
}

/// Runs kubernetes-validate (strict: unknown fields are errors) against the oldest Kubernetes the chart
/// supports and the newest the validator knows, then checks the custom resources against the hand-written
/// schemas in tests/data/helm/crd-schemas.json. Returns the validator's failures.
fn validate(name: &str, yaml: &str) -> Vec<String> {
    let dir = tempfile::tempdir().unwrap();
    let file = dir.path().join("render.yaml");
    std::fs::write(&file, yaml).unwrap();
    let out = run(Command::new(cached_tool("venv/bin/kubernetes-validate"))
        .args(["--strict", "-k", "1.34.0", "-k", "1.37.0"])
        .arg(&file));
    let text = String::from_utf8_lossy(&out.stdout).into_owned();
    let mut failures: Vec<String> = text
        .lines()
        .filter(|l| l.starts_with("ERROR") || l.starts_with("FATAL"))
        .map(|l| format!("{name}: {l}"))
        .collect();
    // kubernetes-validate knows only built-in kinds; any other kind must be one the CRD schemas cover.
    for line in text.lines().filter(|l| l.starts_with("WARN")) {
        let custom = [
            "kind Certificate ",
            "kind Issuer ",
            "kind ServiceMonitor ",
            "kind PrometheusRule ",
        ];
        if !custom.iter().any(|k| line.contains(k)) {
            failures.push(format!("{name}: {line}"));
        }
    }
    if !out.status.success() && failures.is_empty() {
        failures.push(format!(
            "{name}: kubernetes-validate failed: {text}{}",
            String::from_utf8_lossy(&out.stderr)
        ));
    }
    let custom = run(Command::new(cached_tool("venv/bin/python"))
        .arg(data("validate_crds.py"))
        .arg(data("crd-schemas.json"))
        .arg(&file));
    let custom_text = String::from_utf8_lossy(&custom.stdout);
    failures.extend(
        custom_text
            .lines()
            .filter(|l| l.starts_with("ERROR"))
            .map(|l| format!("{name}: {l}")),
    );
    if !custom.status.success() && failures.is_empty() {
        failures.push(format!(
            "{name}: validate_crds.py failed: {custom_text}{}",
            String::from_utf8_lossy(&custom.stderr)
        ));
    }
    failures
}

#[test]
fn the_validator_catches_what_it_should() {
    // A control: a wrong type and an unknown field must both be reported, or the checks below prove nothing.
    let bad_deployment = "apiVersion: apps/v1\nkind: Deployment\nmetadata: {name: x}\nspec:\n  replicas: two\n  \
         selector: {matchLabels: {a: b}}\n  template: {metadata: {labels: {a: b}}, spec: {containers: [{name: c, image: i}]}}\n";
    assert!(!validate("control", bad_deployment).is_empty());
    let unknown_field = "apiVersion: v1\nkind: Service\nmetadata: {name: x}\nspec:\n  ports: [{port: 1}]\n  bogus: 1\n";
    assert!(!validate("control", unknown_field).is_empty());
    let bad_certificate = "apiVersion: cert-manager.io/v1\nkind: Certificate\nmetadata: {name: x, namespace: y}\n\
         spec: {secretName: s, issuerRef: {name: i}, privateKey: {algorithm: DSA}}\n";
    assert!(!validate("control", bad_certificate).is_empty());
    let unknown_kind = "apiVersion: example.com/v1\nkind: Widget\nmetadata: {name: x}\n";
    assert!(!validate("control", unknown_kind).is_empty());
}

#[test]
fn every_scenario_renders_manifests_that_pass_the_kubernetes_schemas() {
    let mut failures = Vec::new();
    for (name, args) in scenarios() {
        let yaml = render_scenario(&args);
        let docs = documents(&yaml);
        assert!(docs.len() >= 6, "{name}: only {} documents", docs.len());
        failures.extend(validate(name, &yaml));
    }
    assert!(failures.is_empty(), "{}", failures.join("\n"));
}

#[test]
fn optional_resources_follow_their_switches() {
    let kinds = |args: &[&str]| -> BTreeSet<String> {
        documents(&render(args))
            .iter()
            .map(|d| d["kind"].as_str().unwrap().to_owned())
            .collect()
    };
    let defaults = kinds(&[]);
    for kind in [
        "ServiceAccount",
        "ConfigMap",
        "Secret",
        "Service",
        "Deployment",
        "PodDisruptionBudget",
        "ValidatingWebhookConfiguration",
        "MutatingWebhookConfiguration",
    ] {
        assert!(
            defaults.contains(kind),
            "defaults lack {kind}: {defaults:?}"
        );
    }
    for kind in ["NetworkPolicy", "ServiceMonitor", "Certificate", "Issuer"] {
        assert!(!defaults.contains(kind), "defaults render {kind}");
    }
    // The webhook calls no API; only the audit has RBAC, and without the audit there is none.
    for kind in [
        "Role",
        "ClusterRole",
        "RoleBinding",
        "ClusterRoleBinding",
        "CronJob",
    ] {
        assert!(defaults.contains(kind), "defaults lack {kind}");
        assert!(
            !kinds(&["--set", "audit.enabled=false"]).contains(kind),
            "{kind}"
        );
    }
    // The observability pieces are opt-in; the PrometheusRule also needs its API.
    assert!(!defaults.contains("PrometheusRule"));
    let rule = ["--set", "metrics.prometheusRule.enabled=true"];
    assert!(!kinds(&rule).contains("PrometheusRule"));
    let with_api = [
        &rule[..],
        &["--api-versions", "monitoring.coreos.com/v1/PrometheusRule"],
    ]
    .concat();
    assert!(kinds(&with_api).contains("PrometheusRule"));
    let dashboard = documents(&render(&["--set", "metrics.grafanaDashboard.enabled=true"]));
    assert_eq!(of_kind(&dashboard, "ConfigMap").len(), 2);
    assert!(!kinds(&["--set", "annotate.enabled=false"]).contains("MutatingWebhookConfiguration"));
    assert!(kinds(&["--set", "networkPolicy.enabled=true"]).contains("NetworkPolicy"));
    // The ServiceMonitor needs its API: without it nothing is rendered (and NOTES.txt says so).
    assert!(!kinds(&["--set", "metrics.serviceMonitor.enabled=true"]).contains("ServiceMonitor"));
    assert!(
        kinds(&[
            "--set",
            "metrics.serviceMonitor.enabled=true",
            "--api-versions",
            "monitoring.coreos.com/v1/ServiceMonitor"
        ])
        .contains("ServiceMonitor")
    );
    assert!(!kinds(&["--set", "replicaCount=1"]).contains("PodDisruptionBudget"));
    // Without the webhook's ServiceAccount, the audit's is the only one.
    let accounts = documents(&render(&["--set", "serviceAccount.create=false"]));
    assert_eq!(
        one(&accounts, "ServiceAccount")["metadata"]["name"],
        "vigil-audit"
    );
    let cert_manager = kinds(&["--set", "certs.mode=cert-manager"]);
    assert!(cert_manager.contains("Certificate") && cert_manager.contains("Issuer"));
    assert!(
        !cert_manager.contains("Secret"),
        "cert-manager writes the Secret itself"
    );
    // With an issuerRef, only the serving Certificate is made, by that issuer.
    let docs = documents(&render(&[
        "--set",
        "certs.mode=cert-manager",
        "--set",
        "certs.certManager.issuerRef.name=corp-ca",
        "--set",
        "certs.certManager.issuerRef.kind=ClusterIssuer",
    ]));
    assert!(of_kind(&docs, "Issuer").is_empty());
    let certificate = one(&docs, "Certificate");
    assert_eq!(certificate["spec"]["issuerRef"]["name"], "corp-ca");
    assert_eq!(certificate["spec"]["issuerRef"]["kind"], "ClusterIssuer");
}

// ---------------------------------------------------------------------------------------------------------
// The webhook configurations

/// Whether a Kubernetes label selector matches these labels.
fn selector_matches(selector: &Value, labels: &BTreeMap<&str, &str>) -> bool {
    if selector.is_null() {
        return true;
    }
    if let Some(match_labels) = selector["matchLabels"].as_object() {
        for (k, v) in match_labels {
            if labels.get(k.as_str()).copied() != v.as_str() {
                return false;
            }
        }
    }
    for expr in selector["matchExpressions"]
        .as_array()
        .unwrap_or(&Vec::new())
    {
        let key = expr["key"].as_str().unwrap();
        let values = strings(&expr["values"]);
        let value = labels.get(key);
        let ok = match expr["operator"].as_str().unwrap() {
            "In" => value.is_some_and(|v| values.iter().any(|x| x == v)),
            "NotIn" => !value.is_some_and(|v| values.iter().any(|x| x == v)),
            "Exists" => value.is_some(),
            "DoesNotExist" => value.is_none(),
            other => panic!("unknown operator {other}"),
        };
        if !ok {
            return false;
        }
    }
    true
}

fn covers(webhook: &Value, group: &str, resource: &str, operation: &str) -> bool {
    webhook["rules"].as_array().unwrap().iter().any(|rule| {
        strings(&rule["apiGroups"]).iter().any(|g| g == group)
            && strings(&rule["resources"]).iter().any(|r| r == resource)
            && strings(&rule["operations"]).iter().any(|o| o == operation)
    })
}

/// The webhook entries that a pod in a namespace with these labels would be sent to.
fn pod_webhooks<'a>(config: &'a Value, labels: &BTreeMap<&str, &str>) -> Vec<&'a Value> {
    config["webhooks"]
        .as_array()
        .unwrap()
        .iter()
        .filter(|w| covers(w, "", "pods", "CREATE"))
        .filter(|w| selector_matches(&w["namespaceSelector"], labels))
        .collect()
}

fn namespace_labels(name: &str) -> BTreeMap<&str, &str> {
    BTreeMap::from([("kubernetes.io/metadata.name", name)])
}

const WORKLOADS: &[(&str, &str)] = &[
    ("", "pods"),
    ("", "pods/ephemeralcontainers"),
    ("", "replicationcontrollers"),
    ("", "podtemplates"),
    ("apps", "deployments"),
    ("apps", "replicasets"),
    ("apps", "statefulsets"),
    ("apps", "daemonsets"),
    ("batch", "jobs"),
    ("batch", "cronjobs"),
];

/// The pod subresources whose CONNECT the validating webhook judges (`pod-exec`, `port-forward`).
const CONNECT_SUBRESOURCES: [&str; 3] = ["pods/exec", "pods/attach", "pods/portforward"];

#[test]
fn validating_webhook_covers_every_workload_and_fails_open_where_it_could_deadlock() {
    for (scenario, args, expected) in [
        ("audit", vec![], "Ignore"),
        ("enforce", vec!["--set", "policy.mode=enforce"], "Fail"),
    ] {
        let docs = documents(&render(&args));
        let config = one(&docs, "ValidatingWebhookConfiguration");
        let service = one(&docs, "Service");
        let webhooks = config["webhooks"].as_array().unwrap();
        let names: Vec<&str> = webhooks
            .iter()
            .map(|w| w["name"].as_str().unwrap())
            .collect();
        assert_eq!(
            names,
            [
                "workloads.vigil.dev",
                "system-workloads.vigil.dev",
                "policy.vigil.dev"
            ]
        );
        for w in webhooks {
            let name = &w["name"];
            assert_eq!(w["sideEffects"], "None", "{name}");
            assert_eq!(w["admissionReviewVersions"], json!(["v1"]), "{name}");
            assert_eq!(w["matchPolicy"], "Equivalent", "{name}");
            let timeout = w["timeoutSeconds"].as_i64().expect("timeoutSeconds is set");
            assert!(
                (1..=5).contains(&timeout),
                "{name}: timeoutSeconds {timeout}"
            );
            let target = &w["clientConfig"]["service"];
            assert_eq!(target["name"], service["metadata"]["name"], "{name}");
            assert_eq!(target["namespace"], NAMESPACE, "{name}");
            assert_eq!(target["path"], "/validate", "{name}");
            assert_eq!(target["port"], 443, "{name}");
            assert!(!w["clientConfig"]["caBundle"].as_str().unwrap().is_empty());
        }
        // The Service's 443 reaches the container's TLS port.
        let port = &service["spec"]["ports"][0];
        assert_eq!(
            (port["port"].clone(), port["targetPort"].clone()),
            (json!(443), json!("https"))
        );

        // Both workload entries cover every pod-bearing kind, CREATE and UPDATE, with the ephemeral
        // containers subresource listed explicitly.
        for w in &webhooks[..2] {
            for (group, resource) in WORKLOADS {
                for op in ["CREATE", "UPDATE"] {
                    assert!(
                        covers(w, group, resource, op),
                        "{}: {resource} {op}",
                        w["name"]
                    );
                }
            }
        }

        // Both also judge what is run inside running pods: CONNECT on exec, attach and port-forward, with
        // the same failurePolicy as the workloads of their namespaces.
        for w in &webhooks[..2] {
            for resource in CONNECT_SUBRESOURCES {
                assert!(
                    covers(w, "", resource, "CONNECT"),
                    "{}: {resource}",
                    w["name"]
                );
            }
        }
        assert!(!covers(&webhooks[2], "", "pods/exec", "CONNECT"));

        // No blind spot and no deadlock: every namespace reaches exactly one workload entry; the system
        // namespaces and Vigil's own reach only a fail-open one.
        for ns in ["kube-system", NAMESPACE] {
            let matched = pod_webhooks(config, &namespace_labels(ns));
            assert_eq!(matched.len(), 1, "{scenario}: {ns}");
            assert_eq!(matched[0]["failurePolicy"], "Ignore", "{scenario}: {ns}");
        }
        for ns in ["default", "team-a", "kube-public"] {
            let matched = pod_webhooks(config, &namespace_labels(ns));
            assert_eq!(matched.len(), 1, "{scenario}: {ns}");
            assert_eq!(matched[0]["failurePolicy"], expected, "{scenario}: {ns}");
        }
        // The opt-out label is off: a namespace carrying it is still watched.
        let mut labelled = namespace_labels("team-a");
        labelled.insert("vigil.dev/ignore", "true");
        assert_eq!(pod_webhooks(config, &labelled).len(), 1);

        // The policy ConfigMap's own edits, including DELETE, matched by its label, in Vigil's namespace.
        let policy_hook = &webhooks[2];
        for op in ["CREATE", "UPDATE", "DELETE"] {
            assert!(covers(policy_hook, "", "configmaps", op), "{op}");
        }
        assert!(!covers(policy_hook, "", "pods", "CREATE"));
        assert_eq!(policy_hook["failurePolicy"], "Ignore");
        let configmap = policy_configmap(&docs);
        let cm_labels: BTreeMap<&str, &str> = configmap["metadata"]["labels"]
            .as_object()
            .unwrap()
            .iter()
            .map(|(k, v)| (k.as_str(), v.as_str().unwrap()))
            .collect();
        assert!(selector_matches(&policy_hook["objectSelector"], &cm_labels));
        assert!(!selector_matches(
            &policy_hook["objectSelector"],
            &BTreeMap::new()
        ));
        assert!(selector_matches(
            &policy_hook["namespaceSelector"],
            &namespace_labels(NAMESPACE)
        ));
        assert!(!selector_matches(
            &policy_hook["namespaceSelector"],
            &namespace_labels("team-a")
        ));
    }
}

#[test]
fn opt_out_label_and_extra_system_namespaces_keep_the_guarantees() {
    let docs = documents(&render(&["-f", &data("values-everything.yaml")]));
    let config = one(&docs, "ValidatingWebhookConfiguration");
    let hooks = config["webhooks"].as_array().unwrap();
    assert!(hooks.iter().all(|w| w["timeoutSeconds"] == 3));
    assert_eq!(hooks[2]["clientConfig"]["service"]["port"], 8443);
    for ns in ["kube-system", NAMESPACE, "cert-manager", "monitoring"] {
        let matched = pod_webhooks(config, &namespace_labels(ns));
        assert_eq!(matched.len(), 1, "{ns}");
        assert_eq!(matched[0]["failurePolicy"], "Ignore", "{ns}");
    }
    let matched = pod_webhooks(config, &namespace_labels("team-a"));
    assert_eq!(matched.len(), 1);
    assert_eq!(matched[0]["failurePolicy"], "Fail");
    // Opted out, or excluded by the extra expressions: not sent at all, by either configuration.
    let mutating = one(&docs, "MutatingWebhookConfiguration");
    for (key, value) in [
        ("corp.example/no-vigil", "yes"),
        ("corp.example/tier", "sandbox"),
    ] {
        for ns in ["team-a", "kube-system"] {
            let mut labels = namespace_labels(ns);
            labels.insert(key, value);
            if key == "corp.example/tier" && ns == "kube-system" {
                // The extra expressions narrow the ordinary entry only; system namespaces stay watched.
                assert_eq!(pod_webhooks(config, &labels).len(), 1);
                continue;
            }
            assert!(pod_webhooks(config, &labels).is_empty(), "{ns} with {key}");
            assert!(
                pod_webhooks(mutating, &labels).is_empty(),
                "{ns} with {key}"
            );
        }
    }
    // The policy ConfigMap is found by the configured label and name.
    let configmap = policy_configmap(&docs);
    assert_eq!(configmap["metadata"]["name"], "guard-rules");
    assert_eq!(
        configmap["metadata"]["labels"]["corp.example/vigil-policy"],
        "true"
    );
    assert_eq!(
        hooks[2]["objectSelector"]["matchLabels"]["corp.example/vigil-policy"],
        "true"
    );
}

#[test]
fn failure_policy_defaults_to_ignore_in_audit_and_fail_once_anything_enforces() {
    let cases: &[(&[&str], &str)] = &[
        (&[], "Ignore"),
        (&["--set", "policy.mode=warn"], "Ignore"),
        (&["--set", "policy.mode=enforce"], "Fail"),
        (&["--set", "policy.rules.privileged=enforce"], "Fail"),
        (&["--set", "policy.rules.pod-exec=enforce"], "Fail"),
        (
            &["--set", "policy.rules.image-registry.mode=enforce"],
            "Fail",
        ),
        (
            &[
                "--set",
                "policy.namespaces[0].match[0]=team-a",
                "--set",
                "policy.namespaces[0].mode=enforce",
            ],
            "Fail",
        ),
        (
            &[
                "--set",
                "policy.mode=enforce",
                "--set",
                "webhook.failurePolicy=Ignore",
            ],
            "Ignore",
        ),
        (&["--set", "webhook.failurePolicy=Fail"], "Fail"),
    ];
    for (args, expected) in cases {
        let docs = documents(&render(args));
        let hooks = &one(&docs, "ValidatingWebhookConfiguration")["webhooks"];
        assert_eq!(hooks[0]["failurePolicy"], *expected, "{args:?}");
        assert_eq!(hooks[1]["failurePolicy"], "Ignore", "{args:?}");
        assert_eq!(hooks[2]["failurePolicy"], "Ignore", "{args:?}");
        if let Some(mutating) = of_kind(&docs, "MutatingWebhookConfiguration").first() {
            assert_eq!(mutating["webhooks"][0]["failurePolicy"], "Ignore");
        }
    }
}

#[test]
fn mutating_webhook_only_annotates_and_always_fails_open() {
    let docs = documents(&render(&["--set", "policy.mode=enforce"]));
    let config = one(&docs, "MutatingWebhookConfiguration");
    let hooks = config["webhooks"].as_array().unwrap();
    assert_eq!(hooks.len(), 1);
    let hook = &hooks[0];
    assert_eq!(hook["clientConfig"]["service"]["path"], "/mutate");
    assert_eq!(hook["failurePolicy"], "Ignore");
    assert_eq!(hook["reinvocationPolicy"], "Never");
    assert_eq!(hook["sideEffects"], "None");
    assert!(hook["timeoutSeconds"].as_i64().unwrap() <= 5);
    for (group, resource) in WORKLOADS {
        // An annotation cannot be written through the ephemeralcontainers subresource.
        let expected = *resource != "pods/ephemeralcontainers";
        assert_eq!(
            covers(hook, group, resource, "CREATE"),
            expected,
            "{resource}"
        );
    }
    // A CONNECT stores no object: there is nothing to annotate.
    for resource in CONNECT_SUBRESOURCES {
        assert!(!covers(hook, "", resource, "CONNECT"), "{resource}");
    }
    for ns in ["kube-system", NAMESPACE, "team-a"] {
        assert_eq!(pod_webhooks(config, &namespace_labels(ns)).len(), 1, "{ns}");
    }
}

// ---------------------------------------------------------------------------------------------------------
// values.schema.json

#[test]
fn schema_rejects_bad_values_with_clear_messages() {
    let cases: &[(&[&str], &[&str])] = &[
        (
            &["--set", "policy.mode=block"],
            &[
                "/policy/mode",
                "value must be one of 'off', 'audit', 'warn', 'enforce'",
            ],
        ),
        (
            &["--set", "replicaCount=-1"],
            &["/replicaCount", "minimum: got -1, want 1"],
        ),
        (
            &["--set", "replicas=3"],
            &["additional properties 'replicas' not allowed"],
        ),
        (
            &["--set", "policy.rules.privilegd=enforce"],
            &["/policy/rules", "'privilegd' not allowed"],
        ),
        (
            &["--set", "policy.rules.policy-change=off"],
            &["/policy/rules", "'policy-change' not allowed"],
        ),
        (
            &["--set", "policy.profile=strict"],
            &["/policy/profile", "'baseline', 'restricted'"],
        ),
        (&["--set", "certs.mode=vault"], &["/certs/mode"]),
        (
            &["--set", "webhook.timeoutSeconds=10"],
            &["/webhook/timeoutSeconds", "maximum: got 10, want 5"],
        ),
        (
            &["--set", "webhook.failurePolicy=Deny"],
            &["/webhook/failurePolicy"],
        ),
        (&["--set", "image.digest=latest"], &["/image/digest"]),
        (&["--set", "reloadInterval=soon"], &["/reloadInterval"]),
        (
            &["--set", "policy.exemptions[0].name=x"],
            &["/policy/exemptions/0", "missing property 'reason'"],
        ),
        // Not schema errors, but caught by the templates with a message that says what to do.
        (
            &["--set", "image.tag=latest"],
            &["image.tag: \"latest\" is a mutable tag"],
        ),
        (
            &["--set", "metrics.port=8443"],
            &["metrics.port: 8443 is the webhook's TLS port"],
        ),
        (
            &["--set", "certs.mode=secret"],
            &["certs.mode=secret needs certs.secret.caBundle"],
        ),
    ];
    for (args, expected) in cases {
        let message = render_error(args);
        for part in *expected {
            assert!(
                message.contains(part),
                "{args:?}: the message lacks {part:?}:\n{message}"
            );
        }
    }
}

#[test]
fn bare_off_modes_survive_yaml_1_1() {
    // Helm reads values as YAML 1.1, where a bare `off` is false; the chart writes "off" back.
    let dir = tempfile::tempdir().unwrap();
    let values = dir.path().join("off.yaml");
    std::fs::write(
        &values,
        "policy:\n  mode: off\n  rules:\n    image-tag: off\n    capabilities: {mode: off}\n  \
         namespaces:\n    - match: [sandbox]\n      mode: off\n",
    )
    .unwrap();
    let docs = documents(&render(&["-f", values.to_str().unwrap()]));
    let policy: serde_json::Value = serde_yaml_ng::from_str(&rendered_policy(&docs)).unwrap();
    assert_eq!(policy["mode"], "off");
    assert_eq!(policy["rules"]["image-tag"], "off");
    assert_eq!(policy["rules"]["capabilities"]["mode"], "off");
    assert_eq!(policy["namespaces"][0]["mode"], "off");
    validate_policy_text(&rendered_policy(&docs));
}

// ---------------------------------------------------------------------------------------------------------
// The policy ConfigMap and the Deployment, against the real binary

fn validate_policy_text(policy: &str) {
    let dir = tempfile::tempdir().unwrap();
    let file = dir.path().join("policy.yaml");
    std::fs::write(&file, policy).unwrap();
    let out = run(vigil().args(["policy", "validate"]).arg(&file));
    assert!(
        out.status.success(),
        "vigil policy validate rejects the rendered policy:\n{policy}\n{}{}",
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    );
}

/// A YAML document as JSON, with empty lists dropped (the chart writes `namespaces: []`).
fn normalized_policy(text: &str) -> Value {
    let mut v: Value = serde_yaml_ng::from_str(text).unwrap();
    v.as_object_mut()
        .unwrap()
        .retain(|_, item| item.as_array().is_none_or(|a| !a.is_empty()));
    v
}

#[test]
fn policy_configmap_holds_a_policy_vigil_accepts() {
    // Defaults: the same policy as Vigil's built-in default.
    let docs = documents(&render(&[]));
    let policy = rendered_policy(&docs);
    validate_policy_text(&policy);
    let builtin = run_ok(vigil().args(["policy", "default"]));
    assert_eq!(normalized_policy(&policy), normalized_policy(&builtin));

    // Every part of the policy schema, including rule options and a timed exemption.
    let docs = documents(&render(&["-f", &data("values-policy.yaml")]));
    let policy = rendered_policy(&docs);
    validate_policy_text(&policy);
    let parsed: Value = serde_yaml_ng::from_str(&policy).unwrap();
    assert_eq!(parsed["rules"]["host-ports"]["allow"], json!([8080, 9100]));
    assert_eq!(parsed["exemptions"][0]["until"], "2036-12-01T00:00:00Z");
    assert_eq!(
        parsed["rules"]["image-registry"]["deny"],
        json!(["*.evil.example"])
    );
}

#[test]
fn deployment_is_restricted_and_wired_to_the_binary() {
    let docs = documents(&render(&[]));
    let deployment = one(&docs, "Deployment");
    let pod = &deployment["spec"]["template"]["spec"];
    assert_eq!(deployment["spec"]["replicas"], 2);
    assert_eq!(pod["automountServiceAccountToken"], false);
    let webhook_sa = pod["serviceAccountName"].as_str().unwrap();
    assert_eq!(
        named(&docs, "ServiceAccount", webhook_sa)["automountServiceAccountToken"],
        false
    );
    assert_eq!(pod["securityContext"]["runAsNonRoot"], true);
    assert_eq!(
        pod["securityContext"]["seccompProfile"]["type"],
        "RuntimeDefault"
    );
    assert!(pod["hostNetwork"].is_null() && pod["hostPID"].is_null());
    let containers = pod["containers"].as_array().unwrap();
    assert_eq!(containers.len(), 1);
    let c = &containers[0];
    let sc = &c["securityContext"];
    assert_eq!(sc["allowPrivilegeEscalation"], false);
    assert_eq!(sc["readOnlyRootFilesystem"], true);
    assert_eq!(sc["runAsNonRoot"], true);
    assert_eq!(sc["capabilities"]["drop"], json!(["ALL"]));
    assert!(c["resources"]["requests"]["memory"].is_string());
    assert!(c["resources"]["limits"]["memory"].is_string());

    // The image is pinned to the chart's appVersion.
    let chart_yaml: Value =
        serde_yaml_ng::from_str(&std::fs::read_to_string(chart().join("Chart.yaml")).unwrap())
            .unwrap();
    let app_version = chart_yaml["appVersion"].as_str().unwrap();
    assert!(
        c["image"]
            .as_str()
            .unwrap()
            .ends_with(&format!(":{app_version}"))
    );

    // Probes use the plain-HTTP metrics port.
    assert_eq!(c["livenessProbe"]["httpGet"]["path"], "/healthz");
    assert_eq!(c["readinessProbe"]["httpGet"]["path"], "/readyz");
    for probe in ["livenessProbe", "readinessProbe"] {
        assert_eq!(c[probe]["httpGet"]["port"], "metrics");
    }
    let port = |name: &str| {
        c["ports"]
            .as_array()
            .unwrap()
            .iter()
            .find(|p| p["name"] == name)
            .unwrap_or_else(|| panic!("no port {name}"))["containerPort"]
            .as_i64()
            .unwrap()
    };
    assert_eq!(port("https"), 8443);
    assert_eq!(port("metrics"), 9090);

    // The policy ConfigMap is mounted as a directory (kubelet's atomic ..data swap reaches the reload
    // logic only then), and the flags point into it and name it.
    let args = strings(&c["args"]);
    assert_eq!(args[0], "serve");
    let flag = |name: &str| {
        args.iter()
            .find_map(|a| a.strip_prefix(&format!("--{name}=")))
            .unwrap_or_else(|| panic!("no --{name} in {args:?}"))
            .to_owned()
    };
    let mounts = c["volumeMounts"].as_array().unwrap();
    assert!(mounts.iter().all(|m| m["subPath"].is_null()), "{mounts:?}");
    let policy_mount = mounts.iter().find(|m| m["name"] == "policy").unwrap();
    assert_eq!(
        flag("policy"),
        format!(
            "{}/policy.yaml",
            policy_mount["mountPath"].as_str().unwrap()
        )
    );
    let configmap = policy_configmap(&docs);
    let cm_name = configmap["metadata"]["name"].as_str().unwrap();
    assert_eq!(flag("policy-configmap"), format!("{NAMESPACE}/{cm_name}"));
    let volumes = pod["volumes"].as_array().unwrap();
    let policy_volume = volumes.iter().find(|v| v["name"] == "policy").unwrap();
    assert_eq!(policy_volume["configMap"]["name"], cm_name);
    assert!(policy_volume["configMap"]["items"].is_null());
    let tls_mount = mounts.iter().find(|m| m["name"] == "tls").unwrap();
    let tls_dir = tls_mount["mountPath"].as_str().unwrap();
    assert_eq!(flag("tls-cert"), format!("{tls_dir}/tls.crt"));
    assert_eq!(flag("tls-key"), format!("{tls_dir}/tls.key"));
    assert_eq!(flag("addr"), "0.0.0.0:8443");
    assert_eq!(flag("metrics-addr"), "0.0.0.0:9090");

    assert_flags_exist(&args);
    // Each duration the chart passes parses the way the binary parses it.
    for name in ["reload-interval", "shutdown-grace"] {
        assert!(
            vigil::server::parse_duration(&flag(name)).is_ok(),
            "--{name}"
        );
    }

    // Soft anti-affinity and zone spreading select Vigil's own pods.
    let selector = &deployment["spec"]["selector"]["matchLabels"];
    let preferred =
        &pod["affinity"]["podAntiAffinity"]["preferredDuringSchedulingIgnoredDuringExecution"];
    assert_eq!(
        preferred[0]["podAffinityTerm"]["labelSelector"]["matchLabels"],
        *selector
    );
    assert_eq!(
        pod["topologySpreadConstraints"][0]["labelSelector"]["matchLabels"],
        *selector
    );
    assert_eq!(
        pod["topologySpreadConstraints"][0]["whenUnsatisfiable"],
        "ScheduleAnyway"
    );
    let pdb = one(&docs, "PodDisruptionBudget");
    assert_eq!(pdb["spec"]["selector"]["matchLabels"], *selector);
    assert_eq!(pdb["spec"]["minAvailable"], 1);
    assert_eq!(one(&docs, "Service")["spec"]["selector"], *selector);
}

/// Every flag the chart passes exists in this build of `vigil serve`.
fn assert_flags_exist(args: &[String]) {
    let help = run_ok(vigil().args(["serve", "--help"]));
    for arg in &args[1..] {
        let name = arg.split('=').next().unwrap();
        assert!(
            help.contains(&format!("{name} ")),
            "`vigil serve` has no {name}"
        );
    }
}

fn container_args(docs: &[Value]) -> Vec<String> {
    strings(&one(docs, "Deployment")["spec"]["template"]["spec"]["containers"][0]["args"])
}

#[test]
fn registry_lookups_get_their_flags_mounts_and_egress() {
    let docs = documents(&render(&["-f", &data("values-everything.yaml")]));
    let args = container_args(&docs);
    assert_flags_exist(&args);
    for expected in [
        "--registry-auth=/etc/vigil/registry-auth/.dockerconfigjson",
        "--registry-ca=/etc/vigil/registry-ca/ca.crt",
        "--registry-plain-http=registry.local:5000",
        "--client-ca=/etc/vigil/client-ca/ca.crt",
    ] {
        assert!(
            args.iter().any(|a| a == expected),
            "{expected} not in {args:?}"
        );
    }
    let pod = &one(&docs, "Deployment")["spec"]["template"]["spec"];
    let volume = |name: &str| {
        pod["volumes"]
            .as_array()
            .unwrap()
            .iter()
            .find(|v| v["name"] == name)
            .unwrap_or_else(|| panic!("no volume {name}"))
            .clone()
    };
    assert_eq!(
        volume("registry-auth")["secret"]["secretName"],
        "registry-credentials"
    );
    assert_eq!(volume("registry-ca")["configMap"]["name"], "registry-ca");
    let mounts = &pod["containers"][0]["volumeMounts"];
    for (name, path) in [
        ("registry-auth", "/etc/vigil/registry-auth"),
        ("registry-ca", "/etc/vigil/registry-ca"),
    ] {
        let mount = mounts
            .as_array()
            .unwrap()
            .iter()
            .find(|m| m["name"] == name)
            .unwrap();
        assert_eq!(mount["mountPath"], path);
        assert!(
            mount["subPath"].is_null(),
            "mounted as a directory, so that edits reach Vigil"
        );
    }
    // The defaults pass none of these.
    let defaults = container_args(&documents(&render(&[])));
    assert!(
        !defaults.iter().any(|a| a.starts_with("--registry")),
        "{defaults:?}"
    );

    // The NetworkPolicy denies all egress, until a registry rule needs DNS and HTTPS.
    let egress = |args: &[&str]| {
        let mut all = vec!["--set", "networkPolicy.enabled=true"];
        all.extend_from_slice(args);
        one(&documents(&render(&all)), "NetworkPolicy")["spec"]["egress"].clone()
    };
    assert_eq!(egress(&[]), json!([]));
    assert_eq!(
        egress(&["--set", "policy.rules.image-resolvable=off"]),
        json!([])
    );
    let lookups = json!([
        {"ports": [{"port": 53, "protocol": "UDP"}, {"port": 53, "protocol": "TCP"}]},
        {"ports": [{"port": 443, "protocol": "TCP"}]},
    ]);
    assert_eq!(
        egress(&["--set", "policy.rules.image-resolvable=enforce"]),
        lookups
    );
    assert_eq!(
        egress(&["--set", "policy.rules.image-tag-moved.window=1h"]),
        lookups
    );
    let everything = one(&docs, "NetworkPolicy")["spec"]["egress"].clone();
    assert_eq!(everything[0]["to"][0]["ipBlock"]["cidr"], "10.1.0.0/16");
}

#[test]
fn dogfood_vigil_check_in_enforce_mode_denies_nothing_in_its_own_chart() {
    let dir = tempfile::tempdir().unwrap();
    let restricted = dir.path().join("restricted.yaml");
    std::fs::write(
        &restricted,
        "apiVersion: vigil.dev/v1alpha1\nkind: Policy\nmode: enforce\nprofile: restricted\n",
    )
    .unwrap();
    for (name, args) in scenarios() {
        let yaml = render_scenario(&args);
        for policy in [None, Some(&restricted)] {
            let mut cmd = vigil();
            cmd.args(["check", "--mode", "enforce"]);
            if let Some(p) = policy {
                cmd.arg("--policy").arg(p);
            }
            let out = run_with_stdin(cmd.arg("-"), &yaml);
            let stdout = String::from_utf8_lossy(&out.stdout);
            assert!(
                out.status.success(),
                "{name} ({policy:?}): vigil check denies part of the chart:\n{stdout}{}",
                String::from_utf8_lossy(&out.stderr)
            );
            // The webhook's Deployment and the audit's CronJob.
            assert!(
                stdout.contains("2 workloads checked, 0 with violations"),
                "{name}: {stdout}"
            );
        }
    }
}

// ---------------------------------------------------------------------------------------------------------
// The audit CronJob and its RBAC

/// The rules of a Role or ClusterRole, as (apiGroup, resource, verb) triples, with resourceNames when set.
fn grants(role: &Value) -> BTreeSet<(String, String, String, Vec<String>)> {
    let mut out = BTreeSet::new();
    for rule in role["rules"].as_array().unwrap() {
        for group in strings(&rule["apiGroups"]) {
            for resource in strings(&rule["resources"]) {
                for verb in strings(&rule["verbs"]) {
                    out.insert((
                        group.clone(),
                        resource.clone(),
                        verb,
                        strings(&rule["resourceNames"]),
                    ));
                }
            }
        }
    }
    out
}

#[test]
fn audit_cronjob_runs_under_its_own_least_privilege_service_account() {
    for (scenario, args, api) in [
        ("defaults", vec![], ("wgpolicyk8s.io", "policyreports")),
        (
            "everything",
            vec!["-f".to_owned(), data("values-everything.yaml")],
            ("openreports.io", "reports"),
        ),
    ] {
        let args: Vec<&str> = args.iter().map(String::as_str).collect();
        let docs = documents(&render(&args));
        let cronjob = one(&docs, "CronJob");
        let pod = &cronjob["spec"]["jobTemplate"]["spec"]["template"]["spec"];
        let audit_sa = pod["serviceAccountName"].as_str().unwrap().to_owned();
        let deployment = one(&docs, "Deployment");
        let webhook_sa = deployment["spec"]["template"]["spec"]["serviceAccountName"]
            .as_str()
            .unwrap();
        assert_ne!(
            audit_sa, webhook_sa,
            "{scenario}: the audit's own ServiceAccount"
        );
        assert_eq!(pod["automountServiceAccountToken"], true, "{scenario}");
        assert_eq!(
            deployment["spec"]["template"]["spec"]["automountServiceAccountToken"], false,
            "{scenario}"
        );
        assert_eq!(cronjob["spec"]["concurrencyPolicy"], "Forbid");
        assert_eq!(pod["restartPolicy"], "Never");
        // The audit's pods are not the webhook's: no Service, budget or spread counts them.
        let webhook_selector = &deployment["spec"]["selector"]["matchLabels"];
        let audit_labels =
            &cronjob["spec"]["jobTemplate"]["spec"]["template"]["metadata"]["labels"];
        assert_eq!(audit_labels["app.kubernetes.io/component"], "audit");
        assert_ne!(
            audit_labels["app.kubernetes.io/component"],
            webhook_selector["app.kubernetes.io/component"]
        );

        // Every flag the CronJob passes exists in `vigil audit`, and it writes reports of the chosen API.
        let container = &pod["containers"][0];
        let cargs = strings(&container["args"]);
        assert_eq!(cargs[0], "audit");
        assert!(cargs.contains(&"--write-reports".to_owned()));
        let help = run_ok(vigil().args(["audit", "--help"]));
        for arg in &cargs[1..] {
            let name = arg.split('=').next().unwrap();
            let listed = help
                .split_whitespace()
                .any(|w| w.trim_end_matches(',') == name);
            assert!(listed, "`vigil audit` has no {name}");
        }
        let policy_cm = policy_configmap(&docs)["metadata"]["name"]
            .as_str()
            .unwrap()
            .to_owned();
        assert!(
            cargs.contains(&format!("--policy-configmap={NAMESPACE}/{policy_cm}")),
            "{cargs:?}"
        );

        // The webhook's ServiceAccount is bound to nothing; the audit's to exactly its two roles.
        let mut bound = Vec::new();
        for kind in ["RoleBinding", "ClusterRoleBinding"] {
            for binding in of_kind(&docs, kind) {
                for subject in binding["subjects"].as_array().unwrap() {
                    assert_ne!(subject["name"], webhook_sa, "{scenario}: {binding}");
                    assert_eq!(subject["name"], audit_sa.as_str(), "{scenario}");
                    assert_eq!(subject["namespace"], NAMESPACE);
                }
                bound.push((
                    binding["roleRef"]["kind"].as_str().unwrap().to_owned(),
                    binding["roleRef"]["name"].as_str().unwrap().to_owned(),
                ));
            }
        }
        assert_eq!(bound.len(), 2, "{scenario}: {bound:?}");

        // Read the covered kinds and the namespaces; write reports of one API; read one ConfigMap.
        let s = |x: &str| x.to_owned();
        let mut expected = BTreeSet::new();
        for (group, resources) in [
            ("", &["pods", "replicationcontrollers", "podtemplates"][..]),
            (
                "apps",
                &["deployments", "replicasets", "statefulsets", "daemonsets"][..],
            ),
            ("batch", &["jobs", "cronjobs"][..]),
        ] {
            for resource in resources {
                for verb in ["get", "list"] {
                    expected.insert((s(group), s(resource), s(verb), vec![]));
                }
            }
        }
        expected.insert((s(""), s("namespaces"), s("list"), vec![]));
        for verb in ["create", "patch"] {
            expected.insert((s(api.0), s(api.1), s(verb), vec![]));
        }
        assert_eq!(grants(one(&docs, "ClusterRole")), expected, "{scenario}");
        let role = one(&docs, "Role");
        assert_eq!(role["metadata"]["namespace"], NAMESPACE);
        assert_eq!(
            grants(role),
            BTreeSet::from([(s(""), s("configmaps"), s("get"), vec![policy_cm.clone()])]),
            "{scenario}"
        );
    }
    let docs = documents(&render(&["-f", &data("values-everything.yaml")]));
    let args = strings(
        &one(&docs, "CronJob")["spec"]["jobTemplate"]["spec"]["template"]["spec"]["containers"][0]
            ["args"],
    );
    for expected in [
        "--namespace=team-a",
        "--namespace=team-b",
        "--page-size=200",
        "--report-api=openreports",
    ] {
        assert!(
            args.iter().any(|a| a == expected),
            "{expected} not in {args:?}"
        );
    }
}

// ---------------------------------------------------------------------------------------------------------
// The PrometheusRule and the Grafana dashboard

/// The metric names Vigil exports, from its own registry: the families' names, with a histogram's series.
fn exported_metrics() -> BTreeSet<String> {
    vigil::server::metrics::Metrics::exported_names()
        .into_iter()
        .collect()
}

/// The `vigil_*` metric names a PromQL expression reads.
fn metrics_read(expr: &str) -> BTreeSet<String> {
    regex::Regex::new(r"\bvigil_[a-z_]+")
        .unwrap()
        .find_iter(expr)
        .map(|m| m.as_str().to_owned())
        .collect()
}

#[test]
fn prometheus_rule_passes_promtool_check_and_its_unit_tests() {
    let docs = documents(&render(&[
        "--set",
        "metrics.prometheusRule.enabled=true",
        "--api-versions",
        "monitoring.coreos.com/v1/PrometheusRule",
    ]));
    let rule = one(&docs, "PrometheusRule");
    let dir = tempfile::tempdir().unwrap();
    std::fs::write(
        dir.path().join("rules.yaml"),
        serde_yaml_ng::to_string(&rule["spec"]).unwrap(),
    )
    .unwrap();
    let checked = run_ok(
        system_tool("promtool")
            .args(["check", "rules", "rules.yaml"])
            .current_dir(dir.path()),
    );
    assert!(checked.contains("SUCCESS: 4 rules found"), "{checked}");
    std::fs::copy(
        data("prometheusrule-tests.yaml"),
        dir.path().join("tests.yaml"),
    )
    .unwrap();
    let tested = run(system_tool("promtool")
        .args(["test", "rules", "tests.yaml"])
        .current_dir(dir.path()));
    assert!(
        tested.status.success(),
        "promtool test rules failed:\n{}{}",
        String::from_utf8_lossy(&tested.stdout),
        String::from_utf8_lossy(&tested.stderr)
    );
    let alerts: Vec<&str> = rule["spec"]["groups"][0]["rules"]
        .as_array()
        .unwrap()
        .iter()
        .map(|r| r["alert"].as_str().unwrap())
        .collect();
    assert_eq!(
        alerts,
        [
            "VigilDenialsRising",
            "VigilPolicyReloadFailed",
            "VigilCertificateExpiresSoon",
            "VigilAbsent"
        ]
    );
    // Every Vigil metric an alert reads is one Vigil exports.
    let exported = exported_metrics();
    for r in rule["spec"]["groups"][0]["rules"].as_array().unwrap() {
        for name in metrics_read(r["expr"].as_str().unwrap()) {
            assert!(
                exported.contains(&name),
                "{}: {name} is not exported",
                r["alert"]
            );
        }
    }
}

#[test]
fn grafana_dashboard_is_json_that_reads_only_metrics_vigil_exports() {
    let docs = documents(&render(&["--set", "metrics.grafanaDashboard.enabled=true"]));
    let configmap = named(&docs, "ConfigMap", "vigil-dashboard");
    assert_eq!(configmap["metadata"]["labels"]["grafana_dashboard"], "1");
    let text = configmap["data"]["vigil.json"].as_str().unwrap();
    let file = std::fs::read_to_string(chart().join("dashboards/vigil.json")).unwrap();
    assert_eq!(
        text.trim_end(),
        file.trim_end(),
        "the ConfigMap carries the file"
    );
    let dashboard: Value = serde_json::from_str(text).expect("the dashboard is JSON");
    assert_eq!(dashboard["uid"], "vigil-webhook");
    let panels = dashboard["panels"].as_array().unwrap();
    let exported = exported_metrics();
    let mut read = BTreeSet::new();
    let mut ids = BTreeSet::new();
    for panel in panels {
        assert!(
            ids.insert(panel["id"].as_i64().unwrap()),
            "panel ids are unique"
        );
        assert!(panel["title"].as_str().is_some_and(|t| !t.is_empty()));
        assert_eq!(panel["datasource"]["uid"], "${datasource}");
        let targets = panel["targets"].as_array().unwrap();
        assert!(!targets.is_empty(), "{}", panel["title"]);
        for target in targets {
            let expr = target["expr"].as_str().unwrap();
            let names = metrics_read(expr);
            assert!(
                !names.is_empty(),
                "{}: {expr} reads no Vigil metric",
                panel["title"]
            );
            for name in names {
                assert!(
                    exported.contains(&name),
                    "{}: {name} is not exported",
                    panel["title"]
                );
                read.insert(name);
            }
        }
    }
    // Every family Vigil exports has a panel.
    let families: BTreeSet<&String> = exported
        .iter()
        .filter(|n| !n.ends_with("_bucket") && !n.ends_with("_sum") && !n.ends_with("_count"))
        .collect();
    for family in families {
        let shown = read.contains(family) || read.contains(&format!("{family}_bucket"));
        assert!(shown, "no panel shows {family}");
    }
    for variable in dashboard["templating"]["list"].as_array().unwrap() {
        if let Some(query) = variable["definition"].as_str() {
            for name in metrics_read(query) {
                assert!(exported.contains(&name), "{name}");
            }
        }
    }
}

// ---------------------------------------------------------------------------------------------------------
// NOTES.txt, the values documentation and the chart README

fn notes(args: &[&str]) -> String {
    let out = run_ok(
        helm()
            .args(["install", RELEASE])
            .arg(chart())
            .args(["--namespace", NAMESPACE, "--dry-run=client"])
            .args(args),
    );
    out.split_once("NOTES:")
        .expect("helm install prints NOTES")
        .1
        .to_owned()
}

#[test]
fn notes_explain_alerts_and_the_road_from_audit_to_enforce() {
    let text = notes(&[]);
    for part in [
        "policy mode     audit",
        "failurePolicy   Ignore for ordinary namespaces; always Ignore for kube-system, vigil",
        "kubectl -n vigil logs -l app.kubernetes.io/instance=vigil",
        "\"schema\":\"vigil.dev/alert/v1\"",
        "vigil_violations_total",
        "vigil check --mode enforce -",
        "exemptions:",
        "reason:",
        "mode: enforce",
        "becomes Fail",
        "policy.mode=enforce",
        "helm uninstall vigil -n vigil",
        "kubectl get policyreports.wgpolicyk8s.io -A",
        "create job --from=cronjob/vigil-audit",
        "vigil audit --mode enforce",
    ] {
        assert!(text.contains(part), "NOTES lack {part:?}:\n{text}");
    }
    // helm's client-side dry run knows no PolicyReport API: the audit would fail, and the notes say so.
    assert!(
        text.contains("WARNING: this cluster has no wgpolicyk8s.io/v1alpha2/PolicyReport API"),
        "{text}"
    );
    let text = notes(&["--set", "audit.enabled=false"]);
    assert!(
        !text.contains("WARNING") && !text.contains("vigil-audit"),
        "{text}"
    );

    let enforcing = notes(&["--set", "policy.mode=enforce", "--set", "replicaCount=1"]);
    assert!(enforcing.contains("failurePolicy   Fail for ordinary namespaces"));
    assert!(enforcing.contains("WARNING: failurePolicy is Fail with a single replica"));
    assert!(!enforcing.contains("Move from audit to enforce"));

    // Who keeps the policy, and how to change it there.
    assert!(text.contains("policy source   helm: change it with helm upgrade"));
    assert!(text.contains("helm upgrade vigil <chart> -n vigil --reuse-values -f <values file>"));
    let cluster = notes(&["--set", "policyConfigMap.source=cluster"]);
    assert!(cluster.contains("policy source   cluster: edit the ConfigMap with kubectl or GitOps"));
    assert!(cluster.contains(
        "the same keys go at the top of policy.yaml in the ConfigMap\n      vigil/vigil-policy"
    ));

    let opted = notes(&["--set", "webhook.optOutLabel.enabled=true"]);
    assert!(opted.contains("WARNING: the opt-out label is on"));
    let monitor = notes(&["--set", "metrics.serviceMonitor.enabled=true"]);
    assert!(monitor.contains("no monitoring.coreos.com/v1 ServiceMonitor"));
}

/// One key of values.yaml: its dotted path, the `# --` description if any, and whether it has a value.
struct ValuesKey {
    path: String,
    description: Option<String>,
}

/// Reads values.yaml's keys and their `# --` comments (continued by the `#` lines below them), the way
/// helm-docs does.
fn values_keys(text: &str) -> Vec<ValuesKey> {
    let key_line = regex::Regex::new(r"^( *)([A-Za-z0-9_.\-/]+):( |$)").unwrap();
    let mut keys = Vec::new();
    let mut stack: Vec<(usize, String)> = Vec::new();
    let mut comment: Option<Vec<String>> = None;
    for line in text.lines() {
        let trimmed = line.trim();
        if let Some(rest) = trimmed.strip_prefix("# --") {
            comment = Some(vec![rest.trim().to_owned()]);
            continue;
        }
        if let (Some(rest), Some(lines)) = (trimmed.strip_prefix('#'), comment.as_mut()) {
            lines.push(rest.trim().to_owned());
            continue;
        }
        if let Some(m) = key_line.captures(line) {
            let indent = m[1].len();
            while stack.last().is_some_and(|(i, _)| *i >= indent) {
                stack.pop();
            }
            stack.push((indent, m[2].to_owned()));
            let path = stack
                .iter()
                .map(|(_, k)| k.as_str())
                .collect::<Vec<_>>()
                .join(".");
            keys.push(ValuesKey {
                path,
                description: comment.take().map(|l| l.join(" ")),
            });
        }
        comment = None;
    }
    keys
}

/// The schema node of a dotted values path, following `properties`.
fn schema_node<'a>(schema: &'a Value, path: &str) -> Option<&'a Value> {
    path.split('.')
        .try_fold(schema, |node, key| node["properties"].get(key))
}

fn values_value(values: &Value, path: &str) -> Value {
    path.split('.')
        .fold(values.clone(), |node, key| node[key].clone())
}

fn type_name(node: &Value) -> String {
    if let Some(t) = node["type"].as_str() {
        return t.to_owned();
    }
    if let Some(options) = node["oneOf"].as_array() {
        let names: Vec<String> = options.iter().map(type_name).collect();
        return names.join(" or ");
    }
    if node["enum"].is_array() {
        return "string".to_owned();
    }
    "any".to_owned()
}

/// The values table of the chart README, generated from values.yaml's comments and the schema's types.
fn values_table(keys: &[ValuesKey], values: &Value, schema: &Value) -> String {
    let documented: Vec<&ValuesKey> = keys.iter().filter(|k| k.description.is_some()).collect();
    let mut table = String::from("| Key | Type | Default | Description |\n|---|---|---|---|\n");
    for key in &documented {
        let node = schema_node(schema, &key.path).unwrap();
        // A parent whose keys have rows of their own shows no default.
        let parent = documented
            .iter()
            .any(|k| k.path.starts_with(&format!("{}.", key.path)));
        let default = if parent {
            String::new()
        } else {
            let value = values_value(values, &key.path);
            format!("`{}`", serde_json::to_string(&value).unwrap())
        };
        let description = key.description.as_deref().unwrap().replace('|', "\\|");
        table.push_str(&format!(
            "| `{}` | {} | {} | {} |\n",
            key.path,
            type_name(node),
            default,
            description
        ));
    }
    table
}

/// Every entry of every `properties` map in the schema, with its path.
fn schema_properties(node: &Value, path: &str, out: &mut Vec<(String, Value)>) {
    if let Some(props) = node["properties"].as_object() {
        for (k, v) in props {
            let p = if path.is_empty() {
                k.clone()
            } else {
                format!("{path}.{k}")
            };
            out.push((p.clone(), v.clone()));
            schema_properties(v, &p, out);
        }
    }
    schema_properties_in(&node["items"], &format!("{path}[]"), out);
    for (i, option) in node["oneOf"]
        .as_array()
        .unwrap_or(&Vec::new())
        .iter()
        .enumerate()
    {
        schema_properties_in(option, &format!("{path}<{i}>"), out);
    }
}

fn schema_properties_in(node: &Value, path: &str, out: &mut Vec<(String, Value)>) {
    if node.is_object() {
        schema_properties(node, path, out);
    }
}

#[test]
fn values_are_documented_the_schema_is_strict_and_the_readme_table_matches() {
    let values_text = std::fs::read_to_string(chart().join("values.yaml")).unwrap();
    let values: Value = serde_yaml_ng::from_str(&values_text).unwrap();
    let schema: Value =
        serde_json::from_str(&std::fs::read_to_string(chart().join("values.schema.json")).unwrap())
            .unwrap();
    let keys = values_keys(&values_text);
    let documented: BTreeMap<&str, &str> = keys
        .iter()
        .filter_map(|k| Some((k.path.as_str(), k.description.as_deref()?)))
        .collect();
    let mut problems = Vec::new();

    // Every documented key is in the schema, with the same description.
    for (path, description) in &documented {
        match schema_node(&schema, path) {
            None => problems.push(format!(
                "{path}: in values.yaml but not in values.schema.json"
            )),
            Some(node) if node["description"].as_str() != Some(*description) => problems.push(
                format!("{path}: the schema's description differs from the `# --` comment"),
            ),
            Some(_) => {}
        }
    }
    // A key without a comment is data inside a documented key whose own keys are not documented
    // (like `policy.rules.image-tag` or `podSecurityContext.runAsUser`); otherwise it lacks its comment.
    let has_documented_children =
        |p: &str| documented.keys().any(|k| k.starts_with(&format!("{p}.")));
    for key in keys.iter().filter(|k| k.description.is_none()) {
        let documented_ancestor = key
            .path
            .match_indices('.')
            .map(|(i, _)| &key.path[..i])
            .rfind(|a| documented.contains_key(a));
        match documented_ancestor {
            Some(a) if !has_documented_children(a) => {}
            _ => problems.push(format!("{}: no `# --` comment in values.yaml", key.path)),
        }
    }
    // Every option of a documented structure has a documented default in values.yaml.
    let structures: Vec<&str> = std::iter::once("")
        .chain(
            documented
                .keys()
                .copied()
                .filter(|p| has_documented_children(p)),
        )
        .collect();
    for structure in structures {
        let node = if structure.is_empty() {
            &schema
        } else {
            schema_node(&schema, structure).unwrap()
        };
        for key in node["properties"].as_object().unwrap().keys() {
            let path = if structure.is_empty() {
                key.clone()
            } else {
                format!("{structure}.{key}")
            };
            if !documented.contains_key(path.as_str()) {
                problems.push(format!(
                    "{path}: in the schema but not documented in values.yaml"
                ));
            }
        }
    }
    // Strict: every object that lists its properties allows no others, and every property says what it is.
    let mut all = Vec::new();
    schema_properties(&schema, "", &mut all);
    assert_eq!(schema["additionalProperties"], false);
    for (path, node) in &all {
        if node["description"].as_str().is_none_or(str::is_empty) {
            problems.push(format!("{path}: no description in values.schema.json"));
        }
        if node["properties"].is_object() && node["additionalProperties"] != false {
            problems.push(format!("{path}: additionalProperties is not false"));
        }
    }
    assert!(problems.is_empty(), "{}", problems.join("\n"));

    // The chart README's table is generated from these.
    let table = values_table(&keys, &values, &schema);
    let readme_path = chart().join("README.md");
    let readme = std::fs::read_to_string(&readme_path).unwrap();
    let (start, end) = ("<!-- values:start -->\n", "<!-- values:end -->");
    let (head, rest) = readme
        .split_once(start)
        .expect("README has the start marker");
    let (current, tail) = rest.split_once(end).expect("README has the end marker");
    if current != table {
        if blessing() {
            std::fs::write(&readme_path, format!("{head}{start}{table}{end}{tail}")).unwrap();
        } else {
            panic!(
                "charts/vigil/README.md's values table is stale: run `VIGIL_BLESS=1 cargo test --test helm`"
            );
        }
    }
}

#[test]
fn schema_lists_exactly_the_rule_catalogue() {
    // Every rule id of the catalogue is configurable through values.policy.rules, except the fixed
    // policy-change record, and a misspelt id fails at `helm install` rather than in the pod.
    let schema: Value =
        serde_json::from_str(&std::fs::read_to_string(chart().join("values.schema.json")).unwrap())
            .unwrap();
    let rules: Value =
        serde_json::from_str(&run_ok(vigil().args(["rules", "--output", "json"]))).unwrap();
    let catalogue: BTreeSet<&str> = rules
        .as_array()
        .unwrap()
        .iter()
        .map(|r| r["id"].as_str().unwrap())
        .filter(|id| *id != "policy-change")
        .collect();
    let schema_rules: BTreeSet<&str> = schema_node(&schema, "policy.rules").unwrap()["properties"]
        .as_object()
        .unwrap()
        .keys()
        .map(String::as_str)
        .collect();
    let missing: Vec<_> = catalogue.difference(&schema_rules).collect();
    let unknown: Vec<_> = schema_rules.difference(&catalogue).collect();
    assert!(
        missing.is_empty() && unknown.is_empty(),
        "charts/vigil/values.schema.json's policy.rules must list exactly the rule catalogue \
         (`vigil rules`): add {missing:?} (a mode, or a map with its options), remove {unknown:?}"
    );
}

// ---------------------------------------------------------------------------------------------------------
// manifests/

fn numbered_files(dir: &Path) -> BTreeMap<String, String> {
    std::fs::read_dir(dir)
        .unwrap()
        .map(|e| e.unwrap().path())
        .filter(|p| {
            let name = p.file_name().unwrap().to_string_lossy();
            name.ends_with(".yaml") && name.as_bytes()[..2].iter().all(u8::is_ascii_digit)
        })
        .map(|p| {
            (
                p.file_name().unwrap().to_string_lossy().into_owned(),
                std::fs::read_to_string(&p).unwrap(),
            )
        })
        .collect()
}

#[test]
fn manifests_equal_the_default_render() {
    let dir = tempfile::tempdir().unwrap();
    let script = root().join("scripts/render-manifests.sh");
    run_ok(Command::new(&script).arg(dir.path()));
    let fresh = numbered_files(dir.path());
    let committed = numbered_files(&root().join("manifests"));
    if fresh != committed {
        if blessing() {
            run_ok(&mut Command::new(&script));
        } else {
            let differing: Vec<&String> = fresh
                .keys()
                .chain(committed.keys())
                .collect::<BTreeSet<_>>()
                .into_iter()
                .filter(|name| fresh.get(*name) != committed.get(*name))
                .collect();
            panic!(
                "manifests/ differs from the chart's render in {differing:?}: run scripts/render-manifests.sh"
            );
        }
    }
    // The render is the default one, except for the certificate, which comes from certs/, and the policy,
    // which is edited in the cluster: without Helm, nobody else could change it.
    let all: String = fresh.values().cloned().collect();
    let docs = documents(&all);
    assert!(of_kind(&docs, "Secret").is_empty(), "no private key in git");
    let defaults = documents(&render(&[]));
    for kind in ["Deployment", "Service", "PodDisruptionBudget"] {
        assert_eq!(one(&docs, kind), one(&defaults, kind), "{kind}");
    }
    assert_eq!(
        one(&docs, "ConfigMap"),
        one(
            &documents(&render(&["--set", "policyConfigMap.source=cluster"])),
            "ConfigMap"
        )
    );
    assert_eq!(rendered_policy(&docs), rendered_policy(&defaults));
    assert_eq!(all.matches("caBundle: ${CA_BUNDLE}").count(), 4);
}

// ---------------------------------------------------------------------------------------------------------
// Certificates: the chart's, the script's, and the real server serving them

/// A `vigil serve` process on loopback ports, stopped (by its own handle) when dropped.
struct Served {
    child: Child,
    addr: SocketAddr,
    log: PathBuf,
}

impl Drop for Served {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

fn free_port() -> u16 {
    TcpListener::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap()
        .port()
}

/// A plain HTTP GET on loopback: the status code, if the server answered.
fn http_status(addr: SocketAddr, path: &str) -> Option<u16> {
    let mut stream = TcpStream::connect_timeout(&addr, Duration::from_millis(200)).ok()?;
    stream.set_read_timeout(Some(Duration::from_secs(2))).ok()?;
    write!(
        stream,
        "GET {path} HTTP/1.1\r\nHost: localhost\r\nConnection: close\r\n\r\n"
    )
    .ok()?;
    let mut reply = String::new();
    stream.read_to_string(&mut reply).ok()?;
    reply.split_whitespace().nth(1)?.parse().ok()
}

/// Starts the real binary with this certificate pair and policy, and waits until it is ready.
fn serve(cert: &Path, key: &Path, policy: &Path) -> Served {
    let dir = cert.parent().unwrap();
    let log = dir.join("serve.log");
    let addr: SocketAddr = format!("127.0.0.1:{}", free_port()).parse().unwrap();
    let metrics: SocketAddr = format!("127.0.0.1:{}", free_port()).parse().unwrap();
    let child = vigil()
        .arg("serve")
        .arg("--tls-cert")
        .arg(cert)
        .arg("--tls-key")
        .arg(key)
        .arg("--policy")
        .arg(policy)
        .arg(format!("--addr={addr}"))
        .arg(format!("--metrics-addr={metrics}"))
        .stdout(Stdio::null())
        .stderr(std::fs::File::create(&log).unwrap())
        .spawn()
        .unwrap();
    let mut served = Served { child, addr, log };
    let deadline = Instant::now() + Duration::from_secs(20);
    loop {
        if http_status(metrics, "/readyz") == Some(200) {
            return served;
        }
        if let Ok(Some(status)) = served.child.try_wait() {
            panic!(
                "vigil serve exited ({status}):\n{}",
                std::fs::read_to_string(&served.log).unwrap_or_default()
            );
        }
        assert!(
            Instant::now() < deadline,
            "vigil serve not ready within 20 s:\n{}",
            std::fs::read_to_string(&served.log).unwrap_or_default()
        );
        std::thread::sleep(Duration::from_millis(50));
    }
}

/// The API server's view: a TLS client that trusts only `ca` and checks the name `host`, with curl and
/// with openssl s_client.
fn assert_serves_tls(served: &Served, ca: &Path, host: &str) {
    let port = served.addr.port();
    let out = run(system_tool("curl")
        .args(["--silent", "--show-error", "--fail", "--max-time", "10"])
        .arg("--cacert")
        .arg(ca)
        .arg("--resolve")
        .arg(format!("{host}:{port}:127.0.0.1"))
        .arg(format!("https://{host}:{port}/healthz")));
    assert!(
        out.status.success(),
        "curl to {host}: {}\n{}",
        String::from_utf8_lossy(&out.stderr),
        std::fs::read_to_string(&served.log).unwrap_or_default()
    );
    let out = run_with_stdin(
        system_tool("openssl")
            .args(["s_client", "-brief", "-verify_return_error"])
            .arg("-connect")
            .arg(served.addr.to_string())
            .args(["-servername", host, "-verify_hostname", host])
            .arg("-CAfile")
            .arg(ca),
        "",
    );
    let text =
        String::from_utf8_lossy(&out.stderr).into_owned() + &String::from_utf8_lossy(&out.stdout);
    assert!(out.status.success(), "openssl s_client to {host}: {text}");
    assert!(text.contains("Verification: OK"), "{text}");
    // And a name the certificate does not hold is refused.
    let out = run_with_stdin(
        system_tool("openssl")
            .args(["s_client", "-brief", "-verify_return_error"])
            .arg("-connect")
            .arg(served.addr.to_string())
            .args(["-verify_hostname", "elsewhere.example"])
            .arg("-CAfile")
            .arg(ca),
        "",
    );
    assert!(!out.status.success(), "a wrong name was accepted");
}

fn service_names() -> Vec<String> {
    vec![
        "vigil".into(),
        format!("vigil.{NAMESPACE}"),
        format!("vigil.{NAMESPACE}.svc"),
        format!("vigil.{NAMESPACE}.svc.cluster.local"),
    ]
}

/// `openssl verify` of the pair, the SANs the API server may use, and the key matching the certificate.
fn assert_valid_pair(dir: &Path) {
    let (ca, cert, key) = (dir.join("ca.crt"), dir.join("tls.crt"), dir.join("tls.key"));
    let verified = run_ok(
        system_tool("openssl")
            .arg("verify")
            .arg("-CAfile")
            .arg(&ca)
            .arg(&cert),
    );
    assert!(verified.contains(": OK"), "{verified}");
    let sans = run_ok(
        system_tool("openssl")
            .args(["x509", "-noout", "-ext", "subjectAltName", "-in"])
            .arg(&cert),
    );
    for name in service_names() {
        assert!(
            sans.contains(&format!("DNS:{name},"))
                || sans.trim_end().ends_with(&format!("DNS:{name}")),
            "{name} not in {sans}"
        );
    }
    let cert_key = run_ok(
        system_tool("openssl")
            .args(["x509", "-noout", "-pubkey", "-in"])
            .arg(&cert),
    );
    let key_key = run_ok(
        system_tool("openssl")
            .args(["pkey", "-pubout", "-in"])
            .arg(&key),
    );
    assert_eq!(cert_key, key_key, "tls.key does not match tls.crt");
}

#[test]
fn helm_mode_makes_one_pair_that_the_secret_and_every_ca_bundle_share_and_the_server_serves() {
    let docs = documents(&render(&[]));
    let secret = one(&docs, "Secret");
    assert_eq!(secret["type"], "kubernetes.io/tls");
    let ca_b64 = secret["data"]["ca.crt"].as_str().unwrap();
    for kind in [
        "ValidatingWebhookConfiguration",
        "MutatingWebhookConfiguration",
    ] {
        for hook in one(&docs, kind)["webhooks"].as_array().unwrap() {
            assert_eq!(
                hook["clientConfig"]["caBundle"], ca_b64,
                "{kind} {}",
                hook["name"]
            );
        }
    }
    let deployment = one(&docs, "Deployment");
    let tls_volume = deployment["spec"]["template"]["spec"]["volumes"]
        .as_array()
        .unwrap()
        .iter()
        .find(|v| v["name"] == "tls")
        .unwrap()
        .clone();
    assert_eq!(
        tls_volume["secret"]["secretName"],
        secret["metadata"]["name"]
    );

    let dir = tempfile::tempdir().unwrap();
    for (file, key) in [
        ("ca.crt", "ca.crt"),
        ("tls.crt", "tls.crt"),
        ("tls.key", "tls.key"),
    ] {
        std::fs::write(
            dir.path().join(file),
            b64decode(secret["data"][key].as_str().unwrap()),
        )
        .unwrap();
    }
    assert_valid_pair(dir.path());
    let policy = dir.path().join("policy.yaml");
    std::fs::write(&policy, rendered_policy(&docs)).unwrap();
    let served = serve(
        &dir.path().join("tls.crt"),
        &dir.path().join("tls.key"),
        &policy,
    );
    assert_serves_tls(
        &served,
        &dir.path().join("ca.crt"),
        &format!("vigil.{NAMESPACE}.svc"),
    );
}

#[test]
fn certs_script_makes_a_valid_pair_that_the_server_serves() {
    let tmp = tempfile::tempdir().unwrap();
    let script = root().join("certs/gen-certs.sh");
    let out = run(Command::new(&script)
        .args(["--service", "vigil", "--namespace", NAMESPACE])
        .env("TMPDIR", tmp.path()));
    let stderr = String::from_utf8_lossy(&out.stderr).into_owned();
    assert!(out.status.success(), "{stderr}");
    // Without --out, the files go to a new directory under $TMPDIR: nothing is written into the repository.
    let written: Vec<PathBuf> = std::fs::read_dir(tmp.path())
        .unwrap()
        .map(|e| e.unwrap().path())
        .collect();
    assert_eq!(written.len(), 1, "{written:?}");
    let dir = &written[0];
    assert!(stderr.contains(&dir.display().to_string()), "{stderr}");
    assert_valid_pair(dir);
    // stdout is the caBundle: base64 of the CA's PEM, on one line.
    let bundle = String::from_utf8(out.stdout).unwrap();
    assert_eq!(bundle.trim().lines().count(), 1);
    assert_eq!(
        b64decode(&bundle),
        std::fs::read(dir.join("ca.crt")).unwrap()
    );
    let key_mode = std::fs::metadata(dir.join("tls.key")).unwrap();
    assert_eq!(
        std::os::unix::fs::PermissionsExt::mode(&key_mode.permissions()) & 0o077,
        0,
        "tls.key is readable by others"
    );

    // It refuses to overwrite a pair, unless told to.
    let again = run(Command::new(&script).arg("--out").arg(dir));
    assert!(!again.status.success());
    assert!(String::from_utf8_lossy(&again.stderr).contains("--force"));

    // The real server serves it to a client that trusts only this CA.
    let policy = dir.join("policy.yaml");
    std::fs::write(&policy, run_ok(vigil().args(["policy", "default"]))).unwrap();
    let served = serve(&dir.join("tls.crt"), &dir.join("tls.key"), &policy);
    for host in service_names() {
        assert_serves_tls(&served, &dir.join("ca.crt"), &host);
    }

    // With the plain manifests: the placeholder replaced by this caBundle gives valid manifests that trust
    // exactly this CA.
    let manifests: String = numbered_files(&root().join("manifests"))
        .into_values()
        .collect();
    let filled = manifests.replace("${CA_BUNDLE}", bundle.trim());
    let failures = validate("manifests", &filled);
    assert!(failures.is_empty(), "{}", failures.join("\n"));
    for hook in one(&documents(&filled), "ValidatingWebhookConfiguration")["webhooks"]
        .as_array()
        .unwrap()
    {
        let ca = b64decode(hook["clientConfig"]["caBundle"].as_str().unwrap());
        assert_eq!(ca, std::fs::read(dir.join("ca.crt")).unwrap());
    }
    // And the Secret the manifests mount is the one the script's instructions create.
    assert!(
        stderr.contains("kubectl -n vigil create secret tls vigil-tls"),
        "{stderr}"
    );
    let docs = documents(&manifests);
    let volumes = &one(&docs, "Deployment")["spec"]["template"]["spec"]["volumes"];
    assert!(
        volumes
            .as_array()
            .unwrap()
            .iter()
            .any(|v| v["secret"]["secretName"] == "vigil-tls")
    );
}

// ---------------------------------------------------------------------------------------------------------
// `lookup`, offline: a fake API server answers helm's discovery and object reads, so that the template
// logic that depends on the live objects is checked without a cluster. tests/cluster.rs checks the same
// paths against the real API server.

/// Resources the fake API server announces: (group/version, kind, plural, namespaced).
const API_RESOURCES: &[(&str, &str, &str, bool)] = &[
    ("v1", "Secret", "secrets", true),
    ("v1", "ConfigMap", "configmaps", true),
    ("v1", "Service", "services", true),
    ("v1", "ServiceAccount", "serviceaccounts", true),
    ("apps/v1", "Deployment", "deployments", true),
    (
        "networking.k8s.io/v1",
        "NetworkPolicy",
        "networkpolicies",
        true,
    ),
    (
        "policy/v1",
        "PodDisruptionBudget",
        "poddisruptionbudgets",
        true,
    ),
    (
        "admissionregistration.k8s.io/v1",
        "ValidatingWebhookConfiguration",
        "validatingwebhookconfigurations",
        false,
    ),
    (
        "admissionregistration.k8s.io/v1",
        "MutatingWebhookConfiguration",
        "mutatingwebhookconfigurations",
        false,
    ),
    ("batch/v1", "CronJob", "cronjobs", true),
    ("rbac.authorization.k8s.io/v1", "Role", "roles", true),
    (
        "rbac.authorization.k8s.io/v1",
        "RoleBinding",
        "rolebindings",
        true,
    ),
    (
        "rbac.authorization.k8s.io/v1",
        "ClusterRole",
        "clusterroles",
        false,
    ),
    (
        "rbac.authorization.k8s.io/v1",
        "ClusterRoleBinding",
        "clusterrolebindings",
        false,
    ),
];

/// The API path of a namespaced core object in the release namespace.
fn core_object_path(plural: &str, name: &str) -> String {
    format!("/api/v1/namespaces/{NAMESPACE}/{plural}/{name}")
}

fn fake_api_answer(path: &str, objects: &[(String, Value)]) -> (u16, Value) {
    let path = path.split('?').next().unwrap_or_default();
    let not_found = json!({"kind": "Status", "apiVersion": "v1", "status": "Failure", "reason": "NotFound", "code": 404});
    let resource_list = |group_version: &str| {
        let resources: Vec<Value> = API_RESOURCES
            .iter()
            .filter(|r| r.0 == group_version)
            .map(|r| json!({"name": r.2, "singularName": "", "namespaced": r.3, "kind": r.1, "verbs": ["get", "list", "create"]}))
            .collect();
        json!({"kind": "APIResourceList", "apiVersion": "v1", "groupVersion": group_version, "resources": resources})
    };
    match path {
        "/version" => (
            200,
            json!({"major": "1", "minor": "34", "gitVersion": "v1.34.4", "platform": "linux/amd64"}),
        ),
        "/api" => (
            200,
            json!({"kind": "APIVersions", "versions": ["v1"], "serverAddressByClientCIDRs": []}),
        ),
        "/apis" => {
            let groups: BTreeSet<&str> = API_RESOURCES
                .iter()
                .filter_map(|r| r.0.split_once('/').map(|g| g.0))
                .collect();
            let groups: Vec<Value> = groups
                .iter()
                .map(|g| {
                    let version = json!({"groupVersion": format!("{g}/v1"), "version": "v1"});
                    json!({"name": g, "versions": [version.clone()], "preferredVersion": version})
                })
                .collect();
            (
                200,
                json!({"kind": "APIGroupList", "apiVersion": "v1", "groups": groups}),
            )
        }
        "/api/v1" => (200, resource_list("v1")),
        _ if path.starts_with("/apis/") && path.matches('/').count() == 3 => {
            let group_version = &path["/apis/".len()..];
            if API_RESOURCES.iter().any(|r| r.0 == group_version) {
                (200, resource_list(group_version))
            } else {
                (404, not_found)
            }
        }
        _ => match objects.iter().find(|(p, _)| p == path) {
            Some((_, object)) => (200, object.clone()),
            None => (404, not_found),
        },
    }
}

/// Starts the fake API server on a loopback port, serving `objects` by their API paths.
fn fake_api_server_with(objects: Vec<(String, Value)>) -> SocketAddr {
    let listener = TcpListener::bind("127.0.0.1:0").unwrap();
    let addr = listener.local_addr().unwrap();
    std::thread::spawn(move || {
        for stream in listener.incoming() {
            let Ok(mut stream) = stream else { continue };
            let _ = stream.set_read_timeout(Some(Duration::from_secs(5)));
            let mut request = Vec::new();
            let mut buf = [0u8; 4096];
            while !request.windows(4).any(|w| w == b"\r\n\r\n") {
                match stream.read(&mut buf) {
                    Ok(0) | Err(_) => break,
                    Ok(n) => request.extend_from_slice(&buf[..n]),
                }
            }
            let request = String::from_utf8_lossy(&request);
            let path = request.split_whitespace().nth(1).unwrap_or("/").to_owned();
            let (status, body) = fake_api_answer(&path, &objects);
            let body = body.to_string();
            let _ = write!(
                stream,
                "HTTP/1.1 {status} X\r\nContent-Type: application/json\r\nContent-Length: {}\r\nConnection: close\r\n\r\n{body}",
                body.len()
            );
        }
    });
    addr
}

/// `helm template --dry-run=server` against the fake API server (`lookup` reads from it): the output.
fn run_against(api: SocketAddr, args: &[&str]) -> Output {
    let dir = tempfile::tempdir().unwrap();
    let kubeconfig = dir.path().join("kubeconfig");
    std::fs::write(
        &kubeconfig,
        format!(
            "apiVersion: v1\nkind: Config\nclusters: [{{name: fake, cluster: {{server: \"http://{api}\"}}}}]\n\
             users: [{{name: fake, user: {{}}}}]\ncontexts: [{{name: fake, context: {{cluster: fake, user: fake}}}}]\n\
             current-context: fake\n"
        ),
    )
    .unwrap();
    let mut cmd = template_command(args);
    cmd.args(["--dry-run=server", "--disable-openapi-validation"])
        .env("KUBECONFIG", &kubeconfig);
    run(&mut cmd)
}

/// `helm template --dry-run=server` against the fake API server: the rendered documents.
fn render_against(api: SocketAddr, args: &[&str]) -> Vec<Value> {
    let out = run_against(api, args);
    assert!(
        out.status.success(),
        "helm template {args:?} against the fake API server failed:\n{}",
        String::from_utf8_lossy(&out.stderr)
    );
    documents(&String::from_utf8(out.stdout).unwrap())
}

/// `helm template --dry-run=server` against the fake API server that must fail: its error output.
fn render_error_against(api: SocketAddr, args: &[&str]) -> String {
    let out = run_against(api, args);
    assert!(
        !out.status.success(),
        "helm template {args:?} should have failed, but rendered:\n{}",
        String::from_utf8_lossy(&out.stdout)
    );
    String::from_utf8_lossy(&out.stderr).into_owned()
}

// ---------------------------------------------------------------------------------------------------------
// Who keeps the policy: policyConfigMap.source. The paths that need `lookup` render against the fake API
// server above; what only a real API server shows (server-side apply's ownership and conflicts, the keep
// policy at uninstall, the webhook seeing helm's field manager) is the end-to-end suite's.

fn sha256_hex(text: &str) -> String {
    use sha2::Digest;
    sha2::Sha256::digest(text.as_bytes())
        .iter()
        .map(|b| format!("{b:02x}"))
        .collect()
}

fn workloads_failure_policy(docs: &[Value]) -> Value {
    one(docs, "ValidatingWebhookConfiguration")["webhooks"][0]["failurePolicy"].clone()
}

#[test]
fn policy_configmap_records_who_keeps_it_and_the_failure_policy_it_rendered() {
    // (extra arguments, source, failurePolicy, pinned)
    let cases: &[(&[&str], &str, &str, bool)] = &[
        (&[], "helm", "Ignore", false),
        (&["--set", "policy.mode=enforce"], "helm", "Fail", false),
        (
            &[
                "--set",
                "policy.mode=enforce",
                "--set",
                "webhook.failurePolicy=Ignore",
            ],
            "helm",
            "Ignore",
            true,
        ),
        (
            &["--set", "policyConfigMap.source=cluster"],
            "cluster",
            "Ignore",
            false,
        ),
        // Without a cluster to look in (helm template, and the first install), source=cluster writes the
        // values' policy and works the failurePolicy out from it.
        (
            &[
                "--set",
                "policyConfigMap.source=cluster",
                "--set",
                "policy.rules.privileged=enforce",
            ],
            "cluster",
            "Fail",
            false,
        ),
    ];
    for (args, source, failure_policy, pinned) in cases {
        let mut all = args.to_vec();
        all.extend(["--set", "policyConfigMap.annotations.team=platform"]);
        let docs = documents(&render(&all));
        let configmap = one(&docs, "ConfigMap");
        let annotations = &configmap["metadata"]["annotations"];
        assert_eq!(annotations["vigil.dev/policy-source"], *source, "{args:?}");
        assert_eq!(
            annotations["vigil.dev/failure-policy"], *failure_policy,
            "{args:?}"
        );
        assert_eq!(workloads_failure_policy(&docs), *failure_policy, "{args:?}");
        assert_eq!(
            annotations.get("vigil.dev/failure-policy-pinned").is_some(),
            *pinned,
            "{args:?}"
        );
        assert_eq!(
            annotations
                .get("helm.sh/resource-policy")
                .and_then(Value::as_str),
            (*source == "cluster").then_some("keep"),
            "{args:?}"
        );
        assert_eq!(annotations["team"], "platform");
        let policy = rendered_policy(&docs);
        assert_eq!(
            annotations["vigil.dev/values-policy-sha256"],
            sha256_hex(&policy),
            "{args:?}: the recorded sha256 is the values' policy.yaml"
        );
        validate_policy_text(&policy);
    }
    // The source is one of two words.
    let message = render_error(&["--set", "policyConfigMap.source=git"]);
    assert!(
        message.contains("/policyConfigMap/source") && message.contains("'helm', 'cluster'"),
        "{message}"
    );
    let message = render_error(&["--set", "policyConfigMap.ignoreValuesPolicy=yes"]);
    assert!(
        message.contains("/policyConfigMap/ignoreValuesPolicy"),
        "{message}"
    );
}

/// The policy ConfigMap as the chart wrote it for `install_args`, as the API server returns it, with its
/// `policy.yaml` then edited in the cluster to `policy`.
fn live_policy_configmap(install_args: &[&str], policy: &str) -> Value {
    let docs = documents(&render(install_args));
    let mut configmap = one(&docs, "ConfigMap").clone();
    configmap["data"]["policy.yaml"] = policy.into();
    let annotations = configmap["metadata"]["annotations"]
        .as_object_mut()
        .unwrap();
    annotations.insert("meta.helm.sh/release-name".into(), RELEASE.into());
    annotations.insert("meta.helm.sh/release-namespace".into(), NAMESPACE.into());
    annotations.insert(
        "kubectl.kubernetes.io/last-applied-configuration".into(),
        "{}".into(),
    );
    configmap["metadata"]["resourceVersion"] = "1043".into();
    configmap
}

fn api_with_policy(configmap: Value) -> SocketAddr {
    fake_api_server_with(vec![(
        core_object_path("configmaps", "vigil-policy"),
        configmap,
    )])
}

/// Edited in the cluster: enforce, a registry rule, a bare `off`, and text that a YAML block would not keep
/// as it is (trailing blanks, quotes, a `#`, no final newline).
const CLUSTER_EDIT: &str = "apiVersion: vigil.dev/v1alpha1\nkind: Policy\nmode: enforce   \nrules:\n  \
    image-resolvable: audit\n  image-tag: off\nexemptions:\n  - name: \"ops: nightly\"\n    \
    reason: 'restores # backups, \"as agreed\"'\n    namespaces: [backup]";

#[test]
fn source_cluster_writes_the_live_policy_back_and_works_the_failure_policy_out_from_it() {
    let install = ["--set", "policyConfigMap.source=cluster"];
    validate_policy_text(CLUSTER_EDIT);
    let api = api_with_policy(live_policy_configmap(&install, CLUSTER_EDIT));

    let upgrade = [
        "--set",
        "policyConfigMap.source=cluster",
        "--set",
        "networkPolicy.enabled=true",
    ];
    let docs = render_against(api, &upgrade);
    let configmap = one(&docs, "ConfigMap");
    assert_eq!(
        configmap["data"]["policy.yaml"], CLUSTER_EDIT,
        "byte for byte, so that server-side apply sees no change"
    );
    let annotations = &configmap["metadata"]["annotations"];
    assert_eq!(annotations["vigil.dev/policy-source"], "cluster");
    assert_eq!(annotations["helm.sh/resource-policy"], "keep");
    // The live policy enforces: the webhook fails closed, and the ConfigMap says so.
    assert_eq!(workloads_failure_policy(&docs), "Fail");
    assert_eq!(annotations["vigil.dev/failure-policy"], "Fail");
    // The values' policy is unchanged since install, and stays recorded.
    let installed = documents(&render(&install));
    assert_eq!(
        annotations["vigil.dev/values-policy-sha256"],
        one(&installed, "ConfigMap")["metadata"]["annotations"]["vigil.dev/values-policy-sha256"]
    );
    // A registry rule turned on in the cluster opens DNS and HTTPS egress.
    let egress = one(&docs, "NetworkPolicy")["spec"]["egress"].clone();
    assert_ne!(egress, json!([]), "{egress}");

    // Under source=helm the same live ConfigMap is overwritten with the values' policy.
    let docs = render_against(api, &[]);
    assert_eq!(rendered_policy(&docs), rendered_policy(&installed));
    assert_eq!(workloads_failure_policy(&docs), "Ignore");
    assert_eq!(
        one(&docs, "ConfigMap")["metadata"]["annotations"]["vigil.dev/policy-source"],
        "helm"
    );
}

#[test]
fn source_cluster_never_drops_a_change_of_the_policy_values() {
    let install = ["--set", "policyConfigMap.source=cluster"];
    let api = api_with_policy(live_policy_configmap(&install, CLUSTER_EDIT));
    let changed = [
        "--set",
        "policyConfigMap.source=cluster",
        "--set",
        "policy.mode=warn",
    ];
    let message = render_error_against(api, &changed);
    let sha = one(&documents(&render(&changed)), "ConfigMap")["metadata"]["annotations"]
        ["vigil.dev/values-policy-sha256"]
        .as_str()
        .unwrap()
        .to_owned();
    for part in [
        "policyConfigMap.source=cluster: the policy values changed",
        "ConfigMap vigil/vigil-policy",
        "--set policyConfigMap.source=helm",
        "--force-conflicts",
        &format!("--set policyConfigMap.ignoreValuesPolicy={sha}"),
    ] {
        assert!(
            message.contains(part),
            "the message lacks {part:?}:\n{message}"
        );
    }

    // Acknowledged: the cluster's policy stays, and the new values are recorded as seen.
    let mut acknowledged = changed.to_vec();
    let ignore = format!("policyConfigMap.ignoreValuesPolicy={sha}");
    acknowledged.extend(["--set", &ignore]);
    let docs = render_against(api, &acknowledged);
    assert_eq!(rendered_policy(&docs), CLUSTER_EDIT);
    assert_eq!(
        one(&docs, "ConfigMap")["metadata"]["annotations"]["vigil.dev/values-policy-sha256"],
        sha.as_str()
    );

    // Back to source=helm: the values' policy is written, changed or not.
    let docs = render_against(
        api,
        &[
            "--set",
            "policyConfigMap.source=helm",
            "--set",
            "policy.mode=warn",
        ],
    );
    assert!(rendered_policy(&docs).contains("mode: warn\n"));

    // A ConfigMap written before the chart recorded the values' sha256: its policy.yaml stands for the
    // values it was written from.
    let mut older = live_policy_configmap(&install, "");
    older["metadata"]["annotations"]
        .as_object_mut()
        .unwrap()
        .remove("vigil.dev/values-policy-sha256");
    older["data"]["policy.yaml"] = rendered_policy(&documents(&render(&install))).into();
    let api = api_with_policy(older);
    render_against(api, &install);
    let message = render_error_against(api, &changed);
    assert!(message.contains("the policy values changed"), "{message}");
}

#[test]
fn source_cluster_refuses_to_guess_from_a_live_policy_that_is_not_yaml() {
    let install = ["--set", "policyConfigMap.source=cluster"];
    let api = api_with_policy(live_policy_configmap(&install, "mode: [enforce"));
    let message = render_error_against(api, &install);
    assert!(
        message.contains("policy.yaml in the ConfigMap vigil/vigil-policy is not YAML"),
        "{message}"
    );
}

// ---------------------------------------------------------------------------------------------------------
// The Dockerfile (no container engine here to build it: its structure is checked instead)

#[test]
fn dockerfile_is_multi_stage_distroless_non_root_and_ships_the_binary_only() {
    let dockerfile = std::fs::read_to_string(root().join("Dockerfile")).unwrap();
    let instructions: Vec<&str> = dockerfile
        .lines()
        .map(str::trim)
        .filter(|l| !l.is_empty() && !l.starts_with('#'))
        .collect();
    let froms: Vec<usize> = instructions
        .iter()
        .enumerate()
        .filter(|(_, l)| l.starts_with("FROM "))
        .map(|(i, _)| i)
        .collect();
    assert!(froms.len() >= 2, "not multi-stage");
    let last = &instructions[*froms.last().unwrap()..];
    assert!(last[0].contains("distroless/static"), "{}", last[0]);
    assert!(dockerfile.contains("cargo build --release --locked"));
    // The final stage copies exactly one file, the binary, and runs it as the chart's non-root user.
    let copies: Vec<&&str> = last.iter().filter(|l| l.starts_with("COPY")).collect();
    assert_eq!(copies.len(), 1, "{copies:?}");
    assert!(copies[0].starts_with("COPY --from=") && copies[0].ends_with("/usr/local/bin/vigil"));
    let values: Value =
        serde_yaml_ng::from_str(&std::fs::read_to_string(chart().join("values.yaml")).unwrap())
            .unwrap();
    let uid = &values["podSecurityContext"]["runAsUser"];
    assert!(
        last.contains(&format!("USER {uid}:{uid}").as_str()),
        "USER must match the chart's runAsUser {uid}"
    );
    assert!(last.contains(&"ENTRYPOINT [\"/usr/local/bin/vigil\"]"));

    // The build context holds what Cargo needs for the binary: the manifest, the lock file, and the sources
    // of every target the manifest declares.
    let ignore = std::fs::read_to_string(root().join(".dockerignore")).unwrap();
    let manifest: toml_lite::Manifest = toml_lite::read(&root().join("Cargo.toml"));
    let mut needed = vec![
        "Cargo.toml".to_owned(),
        "Cargo.lock".to_owned(),
        "src".to_owned(),
    ];
    needed.extend(manifest.target_dirs);
    if root().join("build.rs").exists() {
        needed.push("build.rs".to_owned());
    }
    for path in needed {
        let allowed = ignore
            .lines()
            .any(|l| l.trim() == format!("!{path}") || l.trim() == format!("!{path}/"));
        assert!(allowed, ".dockerignore does not let {path} in");
        assert!(
            instructions.iter().any(|l| l.starts_with("COPY ")
                && l.split_whitespace()
                    .any(|w| w == path || w == format!("{path}/"))),
            "the Dockerfile does not copy {path}"
        );
    }
}

/// Just enough of Cargo.toml to know which directories its declared targets live in.
mod toml_lite {
    use std::path::Path;

    pub struct Manifest {
        /// Top-level directories of `[[bench]]`, `[[example]]`, `[[bin]]` and `[[test]]` targets.
        pub target_dirs: Vec<String>,
    }

    pub fn read(path: &Path) -> Manifest {
        let text = std::fs::read_to_string(path).unwrap();
        let mut target_dirs = Vec::new();
        let mut section = String::new();
        let mut has_path = false;
        let flush = |section: &str, has_path: bool, dirs: &mut Vec<String>| {
            let default = match section {
                "[[bench]]" => Some("benches"),
                "[[example]]" => Some("examples"),
                _ => None,
            };
            if let (false, Some(d)) = (has_path, default) {
                dirs.push(d.to_owned());
            }
        };
        for line in text.lines().map(str::trim) {
            if line.starts_with('[') {
                flush(&section, has_path, &mut target_dirs);
                section = line.to_owned();
                has_path = false;
            } else if let Some(value) = line.strip_prefix("path")
                && section.starts_with("[[")
                && section != "[[test]]"
            {
                let value = value
                    .trim_start_matches([' ', '='])
                    .trim()
                    .trim_matches('"');
                let dir = value.split('/').next().unwrap_or(value);
                target_dirs.push(dir.to_owned());
                has_path = true;
            }
        }
        flush(&section, has_path, &mut target_dirs);
        target_dirs.sort();
        target_dirs.dedup();
        Manifest { target_dirs }
    }
}
