//! The user's journey end to end, against a real kube-apiserver and etcd (see `tests/control_plane/mod.rs`),
//! driven with the real `helm` and `kubectl`: install, audit, the move to enforce, policy edits, the
//! failure policy, RBAC, and the README's own instructions.

mod control_plane;
mod corpus;

use std::time::Duration;

use control_plane::{Cluster, Webhook, rules_of, wait_for};
use serde_json::{Value, json};

const RELEASE: &str = "vigil";
const NAMESPACE: &str = "vigil";
const CHART: &str = "charts/vigil";

/// Every kind Vigil covers through a pod template (and Pod itself).
const KINDS: &[(&str, &str, &str)] = &[
    ("Pod", "v1", "pods"),
    ("Deployment", "apps/v1", "deployments"),
    ("ReplicaSet", "apps/v1", "replicasets"),
    ("StatefulSet", "apps/v1", "statefulsets"),
    ("DaemonSet", "apps/v1", "daemonsets"),
    ("Job", "batch/v1", "jobs"),
    ("CronJob", "batch/v1", "cronjobs"),
    ("ReplicationController", "v1", "replicationcontrollers"),
    ("PodTemplate", "v1", "podtemplates"),
];

/// `helm install` of the chart as the README does it, with extra arguments.
fn install(cluster: &Cluster, args: &[&str]) {
    let mut all = vec![
        "install",
        RELEASE,
        CHART,
        "--namespace",
        NAMESPACE,
        "--create-namespace",
    ];
    all.extend_from_slice(args);
    cluster.helm(&all).ok();
}

fn upgrade(cluster: &Cluster, args: &[&str]) {
    let mut all = vec![
        "upgrade",
        RELEASE,
        CHART,
        "--namespace",
        NAMESPACE,
        "--reuse-values",
    ];
    all.extend_from_slice(args);
    cluster.helm(&all).ok();
}

/// A container that escapes to the host in three ways, from a registry nobody trusts.
fn escaping_pod_spec() -> Value {
    json!({
        "hostPID": true,
        "containers": [{
            "name": "app",
            "image": "registry.evil.example/tools/miner:1.0",
            "securityContext": {"privileged": true},
            "volumeMounts": [{"name": "host", "mountPath": "/host"}]
        }],
        "volumes": [{"name": "host", "hostPath": {"path": "/"}}]
    })
}

fn clean_pod_spec(image: &str) -> Value {
    json!({"containers": [{"name": "app", "image": image}]})
}

/// An object of `kind` named `name` whose pods have `spec`.
fn workload(kind: &str, api_version: &str, namespace: &str, name: &str, spec: Value) -> Value {
    let labels = json!({"app": name});
    let mut pod_spec = spec;
    if matches!(kind, "Job" | "CronJob") {
        pod_spec["restartPolicy"] = json!("Never");
    }
    let template = json!({"metadata": {"labels": labels}, "spec": pod_spec});
    let metadata = json!({"name": name, "namespace": namespace, "labels": labels});
    let body = match kind {
        "Pod" => json!({"spec": template["spec"]}),
        "PodTemplate" => json!({"template": template}),
        "Deployment" | "ReplicaSet" | "DaemonSet" => {
            json!({"spec": {"selector": {"matchLabels": labels}, "template": template}})
        }
        "StatefulSet" => {
            json!({"spec": {"serviceName": name, "selector": {"matchLabels": labels}, "template": template}})
        }
        "ReplicationController" => json!({"spec": {"selector": labels, "template": template}}),
        "Job" => json!({"spec": {"template": template}}),
        "CronJob" => {
            json!({"spec": {"schedule": "0 * * * *", "jobTemplate": {"spec": {"template": template}}}})
        }
        other => panic!("not a covered kind: {other}"),
    };
    let mut object = json!({"apiVersion": api_version, "kind": kind, "metadata": metadata});
    for (k, v) in body.as_object().unwrap() {
        object[k] = v.clone();
    }
    object
}

/// `kubectl apply -f -` of one object; what kubectl printed.
fn apply(cluster: &Cluster, object: &Value, extra: &[&str]) -> control_plane::Out {
    let mut args = vec!["apply", "-f", "-"];
    args.extend_from_slice(extra);
    cluster.kubectl_stdin(&args, &object.to_string())
}

/// The failurePolicy of each webhook of the validating configuration, by webhook name.
fn failure_policies(cluster: &Cluster) -> Vec<(String, String)> {
    let config = cluster
        .kubectl(&[
            "get",
            "validatingwebhookconfiguration",
            RELEASE,
            "-o",
            "json",
        ])
        .json();
    config["webhooks"]
        .as_array()
        .unwrap()
        .iter()
        .map(|w| {
            (
                w["name"].as_str().unwrap().to_string(),
                w["failurePolicy"].as_str().unwrap().to_string(),
            )
        })
        .collect()
}

fn failure_policy_of(cluster: &Cluster, webhook: &str) -> String {
    failure_policies(cluster)
        .into_iter()
        .find(|(name, _)| name == webhook)
        .unwrap_or_else(|| panic!("no webhook {webhook}"))
        .1
}

/// Every key of `want` is in `got` with an equal value, recursively; lists compare element by element.
/// The API server adds defaults the chart leaves out, so a read-back is a superset of what was rendered.
fn assert_superset(want: &Value, got: &Value, at: &str) {
    match (want, got) {
        (Value::Object(w), Value::Object(g)) => {
            for (k, v) in w {
                let child = format!("{at}.{k}");
                let got = g
                    .get(k)
                    .unwrap_or_else(|| panic!("{child}: missing in the read-back"));
                assert_superset(v, got, &child);
            }
        }
        (Value::Array(w), Value::Array(g)) => {
            assert_eq!(w.len(), g.len(), "{at}: length");
            for (i, (w, g)) in w.iter().zip(g).enumerate() {
                assert_superset(w, g, &format!("{at}[{i}]"));
            }
        }
        _ => assert_eq!(want, got, "{at}"),
    }
}

/// The documents of `helm get manifest`, as JSON.
fn release_manifest(cluster: &Cluster) -> Vec<Value> {
    let text = cluster
        .helm(&["get", "manifest", RELEASE, "--namespace", NAMESPACE])
        .ok()
        .to_string();
    text.split("\n---")
        .filter_map(|doc| serde_yaml_ng::from_str::<Value>(doc).ok())
        .filter(|v| v.is_object())
        .collect()
}

/// Every object of the release exists in the API server, and the webhook configurations read back equal to
/// what helm rendered (plus the API server's defaults).
fn assert_release_accepted(cluster: &Cluster) -> usize {
    let docs = release_manifest(cluster);
    assert!(!docs.is_empty());
    for doc in &docs {
        let kind = doc["kind"].as_str().unwrap();
        let name = doc["metadata"]["name"].as_str().unwrap();
        let mut args = vec!["get", kind, name, "-o", "json"];
        let ns;
        if let Some(n) = doc["metadata"]["namespace"].as_str() {
            ns = n.to_string();
            args.extend(["-n", &ns]);
        }
        let live = cluster.kubectl(&args).json();
        if kind.ends_with("WebhookConfiguration") {
            assert_superset(
                &doc["webhooks"],
                &live["webhooks"],
                &format!("{kind}/{name}.webhooks"),
            );
        }
    }
    docs.len()
}

#[test]
fn helm_install_in_each_certificate_mode_is_accepted_as_rendered() {
    let cluster = Cluster::start();
    let crds = corpus::corpus(
        "cluster::helm_install_in_each_certificate_mode_is_accepted_as_rendered",
        "crds",
    )
    .expect("the CRDs of cert-manager and the Prometheus Operator (corpus crds/)");
    for crd in [
        "cert-manager.io_certificates.yaml",
        "cert-manager.io_issuers.yaml",
        "cert-manager.io_clusterissuers.yaml",
        "cert-manager.io_certificaterequests.yaml",
        "monitoring.coreos.com_servicemonitors.yaml",
    ] {
        cluster
            .kubectl(&[
                "apply",
                "--server-side",
                "-f",
                crds.join(crd).to_str().unwrap(),
            ])
            .ok();
    }
    cluster
        .kubectl(&[
            "wait",
            "--for=condition=Established",
            "crd",
            "--all",
            "--timeout=30s",
        ])
        .ok();

    // certs.mode=helm, the default: the chart makes the CA and the certificate.
    install(&cluster, &[]);
    let objects = assert_release_accepted(&cluster);
    eprintln!("cluster: certs.mode=helm: {objects} objects accepted");
    let mut webhook = Webhook::start(&cluster, NAMESPACE, RELEASE);
    cluster.namespace("team-a");
    apply(
        &cluster,
        &workload("Pod", "v1", "team-a", "probe", escaping_pod_spec()),
        &[],
    )
    .ok();
    webhook.alert_for("Pod", "team-a", "probe", "CREATE");
    webhook.stop();
    cluster
        .helm(&["uninstall", RELEASE, "--namespace", NAMESPACE])
        .ok();

    // certs.mode=secret: an existing Secret made by certs/gen-certs.sh, and its CA bundle.
    let certs = cluster.dir.path().join("certs");
    let script = control_plane::run(
        std::process::Command::new(control_plane::root().join("certs/gen-certs.sh"))
            .args(["--service", RELEASE, "--namespace", NAMESPACE, "--out"])
            .arg(&certs),
        None,
    );
    let ca_bundle = script.ok().trim().to_string();
    cluster
        .kubectl(&[
            "-n",
            NAMESPACE,
            "create",
            "secret",
            "tls",
            "vigil-tls",
            "--cert",
            certs.join("tls.crt").to_str().unwrap(),
            "--key",
            certs.join("tls.key").to_str().unwrap(),
        ])
        .ok();
    install(
        &cluster,
        &[
            "--set",
            "certs.mode=secret",
            "--set",
            &format!("certs.secret.caBundle={ca_bundle}"),
        ],
    );
    let objects = assert_release_accepted(&cluster);
    eprintln!("cluster: certs.mode=secret: {objects} objects accepted");
    let mut webhook = Webhook::start(&cluster, NAMESPACE, RELEASE);
    apply(
        &cluster,
        &workload("Pod", "v1", "team-a", "probe-2", escaping_pod_spec()),
        &[],
    )
    .ok();
    webhook.alert_for("Pod", "team-a", "probe-2", "CREATE");
    webhook.stop();
    cluster
        .helm(&["uninstall", RELEASE, "--namespace", NAMESPACE])
        .ok();

    // certs.mode=cert-manager, with every optional object the chart has: accepted by the real CRDs even
    // though no cert-manager runs here to issue the certificate.
    install(&cluster, &["-f", "tests/data/helm/values-everything.yaml"]);
    let objects = assert_release_accepted(&cluster);
    eprintln!("cluster: certs.mode=cert-manager with every option: {objects} objects accepted");
}

#[test]
fn audit_mode_admits_every_covered_kind_and_records_it_three_ways() {
    let cluster = Cluster::start();
    install(
        &cluster,
        &[
            "--set-json",
            r#"policy.rules.image-registry={"allow":["docker.io/library/*","registry.k8s.io/*"]}"#,
        ],
    );
    let webhook = Webhook::start(&cluster, NAMESPACE, RELEASE);
    cluster.namespace("team-a");
    for (kind, api_version, resource) in KINDS {
        let name = format!("escape-{}", kind.to_lowercase());
        let object = workload(kind, api_version, "team-a", &name, escaping_pod_spec());
        let out = apply(&cluster, &object, &[]);
        out.ok();
        // stdout: the alert record, with every way out that the object tries.
        let alert = webhook.alert_for(kind, "team-a", &name, "CREATE");
        assert_eq!(alert["decision"], "allowed", "{alert}");
        assert_eq!(alert["user"]["username"], "admin");
        let rules = rules_of(&alert);
        for rule in [
            "privileged",
            "host-namespaces",
            "host-path",
            "image-registry",
        ] {
            assert!(
                rules.iter().any(|r| r == rule),
                "{kind}: {rule} missing from {rules:?}"
            );
        }
        // The API server's audit log: the same record under the webhook's name.
        let annotations = wait_for("the audit event", Duration::from_secs(10), || {
            cluster
                .audit_annotations("create", resource, "team-a", &name)
                .into_iter()
                .find(|a| a.get("workloads.vigil.dev/alert").is_some())
        });
        let logged: Value =
            serde_json::from_str(annotations["workloads.vigil.dev/alert"].as_str().unwrap())
                .unwrap();
        assert_eq!(rules_of(&logged), rules, "{kind}: the audit log's record");
        assert!(
            annotations["workloads.vigil.dev/violations"]
                .as_str()
                .unwrap()
                .contains("privileged"),
            "{annotations}"
        );
        // The object itself, through the mutating webhook.
        let stored = cluster
            .kubectl(&["-n", "team-a", "get", resource, &name, "-o", "json"])
            .json();
        let annotation: Value = serde_json::from_str(
            stored["metadata"]["annotations"]["vigil.dev/alert"]
                .as_str()
                .unwrap_or_else(|| {
                    panic!(
                        "{kind}: no vigil.dev/alert annotation: {}",
                        stored["metadata"]
                    )
                }),
        )
        .unwrap();
        assert_eq!(
            rules_of(&annotation),
            rules,
            "{kind}: the object's annotation"
        );
        eprintln!(
            "cluster: audit: {kind} admitted, recorded on stdout, in the audit log and on the object: {rules:?}"
        );
    }
}

#[test]
fn with_vigil_down_only_enforced_ordinary_namespaces_fail_closed() {
    let cluster = Cluster::start();
    install(&cluster, &[]);
    cluster.namespace("team-a");
    for ns in ["kube-system", NAMESPACE] {
        // These exist already; only their `default` ServiceAccount is missing without a controller-manager.
        cluster
            .kubectl(&["-n", ns, "create", "serviceaccount", "default"])
            .ok();
    }
    assert_eq!(failure_policy_of(&cluster, "workloads.vigil.dev"), "Ignore");

    // Audit mode and no Vigil at all: everything is admitted, as nothing would be denied anyway.
    for ns in ["team-a", "kube-system", NAMESPACE] {
        apply(
            &cluster,
            &workload("Pod", "v1", ns, "audit-down", clean_pod_spec("nginx:1.27")),
            &[],
        )
        .ok();
    }

    // Enforce, still with Vigil down: ordinary namespaces fail closed, kube-system and Vigil's own stay open.
    upgrade(&cluster, &["--set", "policy.mode=enforce"]);
    assert_eq!(failure_policy_of(&cluster, "workloads.vigil.dev"), "Fail");
    assert_eq!(
        failure_policy_of(&cluster, "system-workloads.vigil.dev"),
        "Ignore"
    );
    let refused = apply(
        &cluster,
        &workload(
            "Pod",
            "v1",
            "team-a",
            "enforce-down",
            clean_pod_spec("nginx:1.27"),
        ),
        &[],
    );
    let message = refused.err();
    assert!(
        message.contains("failed calling webhook \"workloads.vigil.dev\""),
        "{message}"
    );
    eprintln!(
        "cluster: Vigil down under enforce, team-a: {}",
        message.trim()
    );
    apply(
        &cluster,
        &workload(
            "Pod",
            "v1",
            "kube-system",
            "enforce-down",
            clean_pod_spec("nginx:1.27"),
        ),
        &[],
    )
    .ok();

    // Vigil's own restart never needs Vigil: its pod, as the Deployment would make it, is admitted.
    let deployment = cluster
        .kubectl(&["-n", NAMESPACE, "get", "deployment", RELEASE, "-o", "json"])
        .json();
    let own_pod = json!({
        "apiVersion": "v1", "kind": "Pod",
        "metadata": {"name": "vigil-restart", "namespace": NAMESPACE,
                     "labels": deployment["spec"]["template"]["metadata"]["labels"]},
        "spec": deployment["spec"]["template"]["spec"]
    });
    apply(&cluster, &own_pod, &[]).ok();

    // Back up: the same clean pod in team-a is admitted.
    let _webhook = Webhook::start(&cluster, NAMESPACE, RELEASE);
    apply(
        &cluster,
        &workload(
            "Pod",
            "v1",
            "team-a",
            "enforce-up",
            clean_pod_spec("nginx:1.27"),
        ),
        &[],
    )
    .ok();
}

#[test]
fn a_deployer_cannot_weaken_the_policy() {
    let cluster = Cluster::start();
    install(&cluster, &["--set", "policy.mode=enforce"]);
    cluster.namespace("team-a");
    // dev deploys workloads in team-a, and nothing else. (The built-in `edit` role is an aggregated one,
    // empty here without the controller-manager that fills it, so the test spells its own.)
    cluster
        .kubectl(&[
            "-n",
            "team-a",
            "create",
            "role",
            "deployer",
            "--verb=get,list,watch,create,update,patch,delete",
            "--resource=deployments,replicasets,pods,configmaps,services",
        ])
        .ok();
    cluster
        .kubectl(&[
            "-n",
            "team-a",
            "create",
            "rolebinding",
            "dev-deployer",
            "--role=deployer",
            "--user=dev",
        ])
        .ok();
    let can = |verb: &str, what: &str, ns: &str| {
        cluster
            .kubectl_as("dev", &["auth", "can-i", verb, what, "-n", ns])
            .stdout
            .trim()
            .to_string()
    };
    assert_eq!(can("create", "deployments", "team-a"), "yes");
    assert_eq!(can("update", "configmaps/vigil-policy", NAMESPACE), "no");
    assert_eq!(can("delete", "configmaps/vigil-policy", NAMESPACE), "no");
    assert_eq!(
        can("delete", "validatingwebhookconfigurations/vigil", NAMESPACE),
        "no"
    );

    let _webhook = Webhook::start(&cluster, NAMESPACE, RELEASE);
    let web = workload(
        "Deployment",
        "apps/v1",
        "team-a",
        "web",
        clean_pod_spec("nginx:1.27"),
    );
    let as_dev = |args: &[&str]| cluster.kubectl_as("dev", args);
    control_plane::run(
        cluster.kubectl_command("dev").args(["apply", "-f", "-"]),
        Some(&web.to_string()),
    )
    .ok();
    as_dev(&["-n", "team-a", "get", "deployment", "web"]).ok();

    let weaker = json!({"apiVersion": "v1", "kind": "ConfigMap",
        "metadata": {"name": "vigil-policy", "namespace": NAMESPACE},
        "data": {"policy.yaml": "apiVersion: vigil.dev/v1alpha1\nkind: Policy\nmode: off\n"}});
    let out = control_plane::run(
        cluster.kubectl_command("dev").args(["apply", "-f", "-"]),
        Some(&weaker.to_string()),
    );
    assert!(out.err().contains("forbidden"), "{}", out.stderr);
    let out = as_dev(&["-n", NAMESPACE, "delete", "configmap", "vigil-policy"]);
    assert!(out.err().contains("forbidden"), "{}", out.stderr);
    let out = as_dev(&["delete", "validatingwebhookconfiguration", RELEASE]);
    assert!(out.err().contains("forbidden"), "{}", out.stderr);
    let out = as_dev(&[
        "-n",
        "team-a",
        "label",
        "namespace",
        "team-a",
        "vigil.dev/ignore=true",
    ]);
    assert!(out.err().contains("forbidden"), "{}", out.stderr);

    // The policy is still the one helm wrote, and it still denies.
    let policy = cluster
        .kubectl(&[
            "-n",
            NAMESPACE,
            "get",
            "configmap",
            "vigil-policy",
            "-o",
            "jsonpath={.data.policy\\.yaml}",
        ])
        .ok()
        .to_string();
    assert!(policy.contains("mode: enforce"), "{policy}");
    let bad = workload(
        "Deployment",
        "apps/v1",
        "team-a",
        "bad",
        escaping_pod_spec(),
    );
    let out = control_plane::run(
        cluster.kubectl_command("dev").args(["apply", "-f", "-"]),
        Some(&bad.to_string()),
    );
    assert!(
        out.err()
            .contains("admission webhook \"workloads.vigil.dev\" denied the request"),
        "{}",
        out.stderr
    );
}

/// The README's rollout commands, as the test runs them (each one must appear verbatim in the README).
const ENFORCE_TEAM_A: &str = r#"helm upgrade vigil charts/vigil -n vigil --reuse-values --set-json 'policy.namespaces=[{"match":["team-a"],"mode":"enforce"}]'"#;
const ENFORCE_ALL: &str =
    "helm upgrade vigil charts/vigil -n vigil --reuse-values --set policy.mode=enforce";

/// Runs one shell command line as a user would type it: helm and kubectl from `.cache/bin` first on the
/// PATH, the cluster's kubeconfig, and the project's root as the working directory.
fn shell(cluster: &Cluster, line: &str) -> control_plane::Out {
    let path = format!(
        "{}:{}",
        control_plane::root().join(".cache/bin").display(),
        std::env::var("PATH").unwrap_or_default()
    );
    let mut cmd = std::process::Command::new("bash");
    cmd.args(["-euo", "pipefail", "-c", line])
        .env("PATH", path)
        .env("KUBECONFIG", &cluster.kubeconfig)
        .env("HOME", cluster.dir.path())
        .env("HELM_CACHE_HOME", cluster.dir.path().join("helm/cache"))
        .env("HELM_CONFIG_HOME", cluster.dir.path().join("helm/config"))
        .env("HELM_DATA_HOME", cluster.dir.path().join("helm/data"))
        .current_dir(control_plane::root());
    control_plane::run(&mut cmd, None)
}

/// The README's text, which the commands the tests run must appear in, verbatim.
fn readme() -> String {
    std::fs::read_to_string(control_plane::root().join("README.md")).unwrap()
}

#[track_caller]
fn assert_in_readme(line: &str) {
    assert!(
        readme().contains(line),
        "the README no longer shows: {line}"
    );
}

/// Creates `kind`'s object and returns what kubectl printed on stderr (warnings, or the denial).
fn denied(out: &control_plane::Out) -> String {
    out.err().trim().to_string()
}

#[test]
fn the_move_to_enforce_as_the_readme_tells_it() {
    let cluster = Cluster::start();
    install(
        &cluster,
        &[
            "--set-json",
            r#"policy.rules.image-registry={"allow":["docker.io/library/*"]}"#,
        ],
    );
    let webhook = Webhook::start(&cluster, NAMESPACE, RELEASE);
    for ns in ["team-a", "team-b"] {
        cluster.namespace(ns);
        // Already running before anything is enforced: a privileged Deployment, and a pod to debug.
        let mut legacy = escaping_pod_spec();
        legacy["containers"][0]["image"] = json!("docker.io/library/nginx:1.27");
        apply(
            &cluster,
            &workload("Deployment", "apps/v1", ns, "legacy", legacy),
            &[],
        )
        .ok();
        apply(
            &cluster,
            &workload(
                "Pod",
                "v1",
                ns,
                "target",
                clean_pod_spec("docker.io/library/nginx:1.27"),
            ),
            &[],
        )
        .ok();
    }

    // Step 1: enforce in team-a only.
    assert_in_readme(ENFORCE_TEAM_A);
    shell(&cluster, ENFORCE_TEAM_A).ok();
    webhook.sync_policy(&cluster);
    assert_eq!(failure_policy_of(&cluster, "workloads.vigil.dev"), "Fail");

    let escape =
        |ns: &str, name: &str| workload("Deployment", "apps/v1", ns, name, escaping_pod_spec());
    let message = denied(&apply(&cluster, &escape("team-a", "escape"), &[]));
    eprintln!("cluster: enforce in team-a, kubectl apply printed:\n{message}");
    assert!(
        message.contains(r#"admission webhook "workloads.vigil.dev" denied the request: Deployment team-a/escape"#),
        "{message}"
    );
    for rule in [
        "[privileged]",
        "[host-namespaces]",
        "[host-path]",
        "[image-registry]",
    ] {
        assert!(message.contains(rule), "{rule}: {message}");
    }
    let dry = denied(&apply(
        &cluster,
        &escape("team-a", "dry"),
        &["--dry-run=server"],
    ));
    assert!(
        dry.contains("denied the request: Deployment team-a/dry"),
        "{dry}"
    );
    assert!(
        cluster
            .kubectl(&["-n", "team-a", "get", "deployment", "escape"])
            .code
            != Some(0)
    );
    let dry_alert = webhook.alert_for("Deployment", "team-a", "dry", "CREATE");
    assert_eq!(dry_alert["dryRun"], true);

    // team-b still audits: admitted, and the warn rule prints its warning.
    let untagged = workload(
        "Deployment",
        "apps/v1",
        "team-b",
        "untagged",
        clean_pod_spec("nginx"),
    );
    let out = apply(&cluster, &untagged, &[]);
    out.ok();
    assert!(
        out.stderr.contains("Warning: image-tag: container \"app\""),
        "{}",
        out.stderr
    );
    eprintln!("cluster: team-b warning: {}", out.stderr.trim());
    apply(&cluster, &escape("team-b", "escape"), &[]).ok();

    // UPDATE of the privileged Deployment that already ran: what it had does not deny, anything new does.
    let k = |args: &[&str]| cluster.kubectl(args);
    k(&[
        "-n",
        "team-a",
        "scale",
        "deployment",
        "legacy",
        "--replicas=3",
    ])
    .ok();
    let restart = k(&["-n", "team-a", "rollout", "restart", "deployment", "legacy"]);
    restart.ok();
    eprintln!(
        "cluster: rollout restart of legacy: {}",
        restart.stderr.trim()
    );
    k(&[
        "-n",
        "team-a",
        "set",
        "image",
        "deployment/legacy",
        "app=docker.io/library/nginx:1.28",
    ])
    .ok();
    let moved = denied(&k(&[
        "-n",
        "team-a",
        "set",
        "image",
        "deployment/legacy",
        "app=registry.evil.example/app:1",
    ]));
    eprintln!("cluster: set image to an untrusted registry: {moved}");
    assert!(
        moved.contains("denied the request: Deployment team-a/legacy"),
        "{moved}"
    );
    assert!(moved.contains("[image-registry]"), "{moved}");
    assert!(
        !moved.contains("[privileged]"),
        "an existing violation never denies: {moved}"
    );

    // kubectl debug into team-a: the namespace override enforces ephemeral-containers too.
    let debug = |ns: &str, profile: &str| {
        k(&[
            "-n",
            ns,
            "debug",
            "target",
            "--image=docker.io/library/busybox:1.36",
            "--attach=false",
            &format!("--profile={profile}"),
        ])
    };
    let refused = denied(&debug("team-a", "general"));
    eprintln!("cluster: kubectl debug --profile=general in team-a: {refused}");
    assert!(refused.contains("[ephemeral-containers]"), "{refused}");

    // Step 2: enforce everywhere.
    assert_in_readme(ENFORCE_ALL);
    shell(&cluster, ENFORCE_ALL).ok();
    webhook.sync_policy(&cluster);
    let message = denied(&apply(&cluster, &escape("team-b", "escape-2"), &[]));
    assert!(
        message.contains("denied the request: Deployment team-b/escape-2"),
        "{message}"
    );

    // kubectl debug under `mode: enforce`: ephemeral-containers keeps its audit default, so the legacy
    // profile is admitted and recorded, and the general profile is judged like any container: SYS_PTRACE
    // is outside the baseline capabilities.
    let legacy = debug("team-b", "legacy");
    legacy.ok();
    let alert = webhook.alert_for("Pod", "team-b", "target", "UPDATE");
    assert!(
        rules_of(&alert).contains(&"ephemeral-containers".to_string()),
        "{alert}"
    );
    let general = denied(&debug("team-b", "general"));
    eprintln!("cluster: kubectl debug --profile=general under mode: enforce: {general}");
    assert!(
        general.contains("[capabilities]") && general.contains("SYS_PTRACE"),
        "{general}"
    );
}

/// The ```sh blocks of the README section whose heading is `heading`, each as one script.
fn readme_blocks(heading: &str) -> Vec<String> {
    let text = readme();
    let start = text
        .find(&format!("\n{heading}\n"))
        .unwrap_or_else(|| panic!("the README has no section {heading}"));
    let section = &text[start + heading.len() + 2..];
    let section = &section[..section.find("\n## ").unwrap_or(section.len())];
    let mut blocks = Vec::new();
    let mut lines = section.lines();
    while let Some(line) = lines.next() {
        if line.trim() == "```sh" {
            let indent = line.len() - line.trim_start().len();
            let block: Vec<&str> = lines
                .by_ref()
                .take_while(|l| l.trim() != "```")
                .map(|l| l.get(indent..).unwrap_or(l.trim()))
                .collect();
            blocks.push(block.join("\n"));
        }
    }
    blocks
}

/// The block of `blocks` that starts with `first`.
fn block_starting(blocks: &[String], first: &str) -> String {
    blocks
        .iter()
        .find(|b| b.starts_with(first))
        .unwrap_or_else(|| panic!("the README has no command block starting with {first:?}"))
        .clone()
}

/// Lines of a README block that cannot run here, said by name: there is no container engine (docker) and
/// no kubelet (no pod runs, so it has no logs).
fn runnable(block: &str) -> String {
    block
        .lines()
        .filter(|line| {
            let skip = line.starts_with("docker ") || line.starts_with("kubectl -n vigil logs");
            if skip {
                eprintln!(
                    "cluster: NOT RUN (no container engine or kubelet on this machine): {line}"
                );
            }
            !skip
        })
        .collect::<Vec<_>>()
        .join("\n")
}

#[test]
fn the_readme_helm_install_works_as_written() {
    let cluster = Cluster::start();
    cluster.namespace("team-a");
    let blocks = readme_blocks("## Install with Helm");

    // With Helm.
    let install = block_starting(&blocks, "docker build");
    shell(&cluster, &runnable(&install)).ok();
    let webhook = Webhook::start(&cluster, NAMESPACE, RELEASE);
    let deployment = cluster
        .kubectl(&[
            "-n",
            NAMESPACE,
            "get",
            "deployment",
            RELEASE,
            "-o",
            "jsonpath={.spec.template.spec.containers[0].image}",
        ])
        .ok()
        .to_string();
    assert_eq!(deployment, "registry.corp.example/vigil:0.1.0");
    apply(
        &cluster,
        &workload(
            "Deployment",
            "apps/v1",
            "team-a",
            "escape",
            escaping_pod_spec(),
        ),
        &[],
    )
    .ok();
    let alert = webhook.alert_for("Deployment", "team-a", "escape", "CREATE");
    assert_eq!(alert["decision"], "allowed", "audit mode admits: {alert}");

    // The check of what enforce would deny today, with the vigil binary on the PATH.
    let check = block_starting(&blocks, "kubectl -n vigil logs");
    let bin_dir = std::path::Path::new(env!("CARGO_BIN_EXE_vigil"))
        .parent()
        .unwrap()
        .display()
        .to_string();
    let out = shell(
        &cluster,
        &format!("export PATH=\"{bin_dir}:$PATH\"\n{}", runnable(&check)),
    );
    assert_eq!(
        out.code,
        Some(1),
        "vigil check exits 1 when enforce would deny: {}\n{}",
        out.stdout,
        out.stderr
    );
    assert!(
        out.stdout.contains("Deployment team-a/escape: denied"),
        "{}",
        out.stdout
    );

    let uninstall = "helm uninstall vigil -n vigil";
    assert_in_readme(uninstall);
    shell(&cluster, uninstall).ok();
    assert!(
        cluster
            .kubectl(&["get", "validatingwebhookconfiguration", RELEASE])
            .code
            != Some(0)
    );
}

#[test]
fn the_readme_plain_manifests_work_as_written() {
    let cluster = Cluster::start();
    cluster.namespace("team-a");
    let blocks = readme_blocks("## Install with Helm");
    // Without Helm: the plain manifests, with a certificate from certs/gen-certs.sh.
    shell(
        &cluster,
        &block_starting(&blocks, "kubectl create namespace vigil"),
    )
    .ok();
    let webhook = Webhook::start(&cluster, NAMESPACE, "vigil");
    apply(
        &cluster,
        &workload("Pod", "v1", "team-a", "escape", escaping_pod_spec()),
        &[],
    )
    .ok();
    let alert = webhook.alert_for("Pod", "team-a", "escape", "CREATE");
    assert!(
        rules_of(&alert).contains(&"privileged".to_string()),
        "{alert}"
    );
    let remove = "kubectl delete -f manifests/";
    assert_in_readme(remove);
    shell(&cluster, remove).ok();
    assert!(
        cluster
            .kubectl(&["get", "validatingwebhookconfiguration", "vigil"])
            .code
            != Some(0)
    );
}

#[test]
fn helm_upgrade_keeps_the_certificate_the_api_server_trusts() {
    let cluster = Cluster::start();
    install(&cluster, &[]);
    let ca_of = || {
        cluster
            .kubectl(&[
                "-n",
                NAMESPACE,
                "get",
                "secret",
                "vigil-tls",
                "-o",
                "jsonpath={.data.ca\\.crt}",
            ])
            .ok()
            .to_string()
    };
    let first = ca_of();
    assert!(!first.is_empty());
    let mut webhook = Webhook::start(&cluster, NAMESPACE, RELEASE);
    cluster.namespace("team-a");

    // The upgrade's `lookup` finds the Secret and keeps it, and every caBundle with it.
    upgrade(&cluster, &["--set", "policy.mode=enforce"]);
    assert_eq!(ca_of(), first, "the CA survives an upgrade");
    for kind in [
        "validatingwebhookconfiguration",
        "mutatingwebhookconfiguration",
    ] {
        let config = cluster
            .kubectl(&["get", kind, RELEASE, "-o", "json"])
            .json();
        for hook in config["webhooks"].as_array().unwrap() {
            assert_eq!(
                hook["clientConfig"]["caBundle"],
                first.as_str(),
                "{kind} {}",
                hook["name"]
            );
        }
    }
    // Vigil, restarted on the same Secret, is still trusted: the API server's call gets its denial.
    webhook.stop();
    webhook.sync(&cluster);
    webhook.spawn();
    let message = denied(&apply(
        &cluster,
        &workload("Pod", "v1", "team-a", "escape", escaping_pod_spec()),
        &[],
    ));
    assert!(
        message.contains("denied the request: Pod team-a/escape"),
        "{message}"
    );
}
