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

fn failure_policy_of(cluster: &Cluster, webhook: &str) -> String {
    cluster.failure_policy(RELEASE, webhook)
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

/// The API server reaches the release's Vigil over the certificate it was installed with: a Pod created in
/// team-a is recorded. Then the release is uninstalled.
fn served_then_uninstalled(cluster: &Cluster, pod: &str) {
    let mut webhook = Webhook::start(cluster, NAMESPACE, RELEASE);
    let object = workload("Pod", "v1", "team-a", pod, escaping_pod_spec());
    apply(cluster, &object, &[]).ok();
    webhook.alert_for("Pod", "team-a", pod, "CREATE");
    webhook.stop();
    cluster
        .helm(&["uninstall", RELEASE, "--namespace", NAMESPACE])
        .ok();
}

#[test]
fn helm_install_in_each_certificate_mode_is_accepted_as_rendered() {
    let cluster = Cluster::start();
    let crds = corpus::corpus(
        "cluster::helm_install_in_each_certificate_mode_is_accepted_as_rendered",
        "crds",
    )
    .expect("the CRDs of cert-manager and the Prometheus Operator (corpus crds/)");
    cluster.install_crds(
        &crds,
        &[
            "cert-manager.io_certificates.yaml",
            "cert-manager.io_issuers.yaml",
            "cert-manager.io_clusterissuers.yaml",
            "cert-manager.io_certificaterequests.yaml",
            "monitoring.coreos.com_servicemonitors.yaml",
        ],
    );

    // certs.mode=helm, the default: the chart makes the CA and the certificate.
    install(&cluster, &[]);
    let objects = assert_release_accepted(&cluster);
    eprintln!("cluster: certs.mode=helm: {objects} objects accepted");
    cluster.namespace("team-a");
    served_then_uninstalled(&cluster, "probe");

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
    served_then_uninstalled(&cluster, "probe-2");

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
    let policy = live_policy(&cluster);
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

/// The README's rollout steps: the block that enforces in one namespace, and the command for the cluster.
const ENFORCE_TEAM_A: &str = "cat > policy-values.yaml";
const ENFORCE_ALL: &str =
    "helm upgrade vigil charts/vigil -n vigil --reuse-values --set policy.mode=enforce";

/// Runs shell commands as a user would type them: helm and kubectl from `.cache/bin` first on the PATH,
/// the cluster's kubeconfig, in a working directory of the test's own that shows the project's `charts/`,
/// `manifests/` and `certs/` (so that files the commands write stay out of the checkout).
fn shell(cluster: &Cluster, line: &str) -> control_plane::Out {
    let work = cluster.dir.path().join("work");
    if !work.exists() {
        std::fs::create_dir(&work).unwrap();
        for dir in ["charts", "manifests", "certs"] {
            std::os::unix::fs::symlink(control_plane::root().join(dir), work.join(dir)).unwrap();
        }
    }
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
        .current_dir(&work);
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
    let blocks = readme_blocks("## Install with Helm");
    shell(&cluster, &block_starting(&blocks, ENFORCE_TEAM_A)).ok();
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

/// A raw port-forward upgrade, as kubectl would send it to a running pod (kubectl itself refuses a pod that
/// is not Running before it asks the API server): the HTTP status and body.
fn port_forward(cluster: &Cluster, user: &str, namespace: &str, pod: &str) -> (String, String) {
    let token = control_plane::USERS
        .iter()
        .find(|(name, _, _)| *name == user)
        .unwrap()
        .1;
    let out = control_plane::run(
        std::process::Command::new("curl").args([
            "-sk",
            "-o",
            "-",
            "-w",
            "\n%{http_code}",
            "-X",
            "POST",
            "-H",
            &format!("Authorization: Bearer {token}"),
            "-H",
            "Connection: Upgrade",
            "-H",
            "Upgrade: SPDY/3.1",
            "-H",
            "X-Stream-Protocol-Version: portforward.k8s.io",
            &format!(
                "{}/api/v1/namespaces/{namespace}/pods/{pod}/portforward?ports=5432",
                cluster.url
            ),
        ]),
        None,
    );
    let text = out.ok().to_string();
    let (body, status) = text.rsplit_once('\n').unwrap();
    (status.to_string(), body.to_string())
}

#[test]
fn exec_attach_and_port_forward_are_recorded_then_refused_and_exempted_by_group() {
    let cluster = Cluster::start();
    install(&cluster, &[]);
    let webhook = Webhook::start(&cluster, NAMESPACE, RELEASE);
    cluster.namespace("prod-a");
    apply(
        &cluster,
        &workload(
            "Pod",
            "v1",
            "prod-a",
            "db",
            clean_pod_spec("docker.io/library/postgres:17"),
        ),
        &[],
    )
    .ok();
    // dev and the SRE may exec, attach and port-forward in prod-a (RBAC allows it; Vigil decides).
    cluster
        .kubectl(&[
            "-n",
            "prod-a",
            "create",
            "role",
            "debugger",
            "--verb=get,list,create",
            "--resource=pods,pods/exec,pods/attach,pods/portforward",
        ])
        .ok();
    for (binding, subject) in [
        ("dev-debugger", "--user=dev"),
        ("sre-debugger", "--group=sre"),
    ] {
        cluster
            .kubectl(&[
                "-n",
                "prod-a",
                "create",
                "rolebinding",
                binding,
                "--role=debugger",
                subject,
            ])
            .ok();
    }
    let exec = |user: &str| {
        cluster.kubectl_as(
            user,
            &[
                "-n",
                "prod-a",
                "exec",
                "db",
                "--",
                "sh",
                "-c",
                "cat /var/run/secrets/kubernetes.io/serviceaccount/token",
            ],
        )
    };
    let attach = |user: &str| {
        cluster.kubectl_as(
            user,
            &["-n", "prod-a", "attach", "db", "--pod-running-timeout=2s"],
        )
    };

    // Audit, the default: each is admitted by Vigil and recorded with who ran what. (The API server then
    // finds no node for the Pending pod; that error is its own, not Vigil's.)
    let seen = webhook.alerts().len();
    let out = exec("dev");
    assert!(!out.stderr.contains("admission webhook"), "{}", out.stderr);
    let alert = webhook.alert_since(seen, "Pod", "prod-a", "db", "CONNECT");
    assert_eq!(alert["user"]["username"], "dev");
    assert!(
        rules_of(&alert).contains(&"pod-exec".to_string()),
        "{alert}"
    );
    assert!(
        alert
            .to_string()
            .contains("cat /var/run/secrets/kubernetes.io/serviceaccount/token"),
        "{alert}"
    );
    let seen = webhook.alerts().len();
    let (status, body) = port_forward(&cluster, "dev", "prod-a", "db");
    assert!(!body.contains("admission webhook"), "{status} {body}");
    // kubectl exec may send two CONNECTs (WebSocket first, then SPDY), and the record of the second can
    // land after `seen`: wait for the port-forward record itself.
    let alert = wait_for("the port-forward alert", Duration::from_secs(5), || {
        webhook.alerts().into_iter().skip(seen).find(|a| {
            a["object"]["name"] == "db"
                && a["operation"] == "CONNECT"
                && rules_of(a).contains(&"port-forward".to_string())
        })
    });
    assert!(alert.to_string().contains("5432"), "{alert}");

    // Enforce, with an exemption for the SRE group in prod-*.
    upgrade(
        &cluster,
        &[
            "--set",
            "policy.rules.pod-exec=enforce",
            "--set",
            "policy.rules.port-forward=enforce",
            "--set-json",
            r#"policy.exemptions=[{"name":"sre-exec","reason":"on-call debugging","rules":["pod-exec","port-forward"],"groups":["sre"],"namespaces":["prod-*"]}]"#,
        ],
    );
    webhook.sync_policy(&cluster);
    let refused = denied(&exec("dev"));
    eprintln!("cluster: kubectl exec under enforce: {refused}");
    assert!(
        refused.contains("admission webhook \"workloads.vigil.dev\" denied the request"),
        "{refused}"
    );
    assert!(refused.contains("[pod-exec]"), "{refused}");
    let refused = denied(&attach("dev"));
    eprintln!("cluster: kubectl attach under enforce: {refused}");
    assert!(refused.contains("[pod-exec]"), "{refused}");
    let (status, body) = port_forward(&cluster, "dev", "prod-a", "db");
    eprintln!("cluster: port-forward under enforce: HTTP {status} {body}");
    assert_eq!(status, "403", "{body}");
    assert!(body.contains("[port-forward]"), "{body}");

    // The SRE is exempted: Vigil admits and records the exemption.
    let out = exec("sre-alice");
    assert!(!out.stderr.contains("admission webhook"), "{}", out.stderr);
    let alert = webhook.alert_by("sre-alice", "Pod", "prod-a", "db", "CONNECT");
    assert_eq!(alert["violations"][0]["exemption"], "sre-exec", "{alert}");
    let (_, body) = port_forward(&cluster, "sre-alice", "prod-a", "db");
    assert!(!body.contains("admission webhook"), "{body}");
}

/// The policy.yaml of the policy ConfigMap as it is in the API server.
fn live_policy(cluster: &Cluster) -> String {
    cluster
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
        .to_string()
}

/// Waits for the newest policy-change alert after `seen` alerts.
fn policy_change_after(webhook: &Webhook, seen: usize) -> Value {
    wait_for("a policy-change alert", Duration::from_secs(5), || {
        webhook
            .alerts()
            .into_iter()
            .skip(seen)
            .find(|a| rules_of(a).contains(&"policy-change".to_string()))
    })
}

#[test]
fn policy_edits_are_judged_at_apply_and_edit_time_as_the_readme_tells_it() {
    let cluster = Cluster::start();
    install(&cluster, &[]);
    let webhook = Webhook::start(&cluster, NAMESPACE, RELEASE);
    let blocks = readme_blocks("## Install with Helm");
    let original = live_policy(&cluster);

    // Kept in the values (the default): a kubectl edit of policy.yaml is refused, with what to run instead.
    let seen = webhook.alerts().len();
    let out = shell(
        &cluster,
        &block_starting(&blocks, "kubectl -n vigil get configmap vigil-policy"),
    );
    let refused = out.err();
    eprintln!(
        "cluster: kubectl apply of the policy under source=helm: {}",
        refused.trim()
    );
    assert!(
        refused.contains(r#"admission webhook "policy.vigil.dev" denied the request"#),
        "{refused}"
    );
    assert!(
        refused.contains("the policy is kept in the values of Helm release \"vigil\""),
        "{refused}"
    );
    assert!(refused.contains("--set policy.mode=enforce"), "{refused}");
    assert_eq!(
        live_policy(&cluster),
        original,
        "the refused edit changed nothing"
    );
    let alert = policy_change_after(&webhook, seen);
    assert_eq!(alert["decision"], "denied");
    assert_eq!(alert["user"]["username"], "admin");

    // A change through Helm goes through, and is recorded with the user who ran helm.
    let seen = webhook.alerts().len();
    upgrade(&cluster, &["--set", "policy.rules.host-path=warn"]);
    let alert = policy_change_after(&webhook, seen);
    assert_eq!(alert["decision"], "allowed", "{alert}");
    assert_eq!(alert["user"]["username"], "admin");
    assert!(alert.to_string().contains("host-path"), "{alert}");

    // Kept in the cluster: kubectl edits go through, and helm upgrades keep them.
    let seen = webhook.alerts().len();
    let out = shell(
        &cluster,
        &block_starting(
            &blocks,
            "helm upgrade vigil charts/vigil -n vigil --reuse-values --set policyConfigMap.source=cluster",
        ),
    );
    out.ok();
    eprintln!(
        "cluster: the cluster-source edit printed: {}",
        out.stderr.trim()
    );
    assert!(
        out.stderr.contains("Warning: enforce is now on (mode), but the workloads webhook still has failurePolicy Ignore"),
        "{}",
        out.stderr
    );
    assert!(
        live_policy(&cluster).contains("mode: enforce"),
        "the edit survived the helm upgrade"
    );
    assert_eq!(
        failure_policy_of(&cluster, "workloads.vigil.dev"),
        "Fail",
        "worked out from the live policy"
    );
    let alert = policy_change_after(&webhook, seen);
    assert_eq!(alert["user"]["username"], "admin");
    webhook.sync_policy(&cluster);

    // A typo is refused at `kubectl apply` and at `kubectl edit` by the real API server, and changes nothing.
    let before = live_policy(&cluster);
    let typo = json!({"apiVersion": "v1", "kind": "ConfigMap",
        "metadata": {"name": "vigil-policy", "namespace": NAMESPACE},
        "data": {"policy.yaml": before.replace("mode: enforce", "mode: enforced")}});
    let refused = denied(&apply(&cluster, &typo, &[]));
    eprintln!("cluster: a typo at kubectl apply: {refused}");
    assert!(
        refused.contains("policy.yaml is not a valid policy"),
        "{refused}"
    );
    assert!(refused.contains("enforced"), "{refused}");
    let mut edit = cluster.kubectl_command("admin");
    edit.env("KUBE_EDITOR", "sed -i -e 's/mode: enforce/mode: enforced/'")
        .args(["-n", NAMESPACE, "edit", "configmap", "vigil-policy"]);
    let out = control_plane::run(&mut edit, None);
    let refused = out.err();
    eprintln!("cluster: a typo at kubectl edit: {}", refused.trim());
    assert!(
        refused.contains("policy.yaml is not a valid policy"),
        "{refused}"
    );
    assert_eq!(live_policy(&cluster), before, "the ConfigMap is unchanged");
}

#[test]
fn kubectl_debug_is_refused_but_for_the_exempted_group_as_the_readme_tells_it() {
    let cluster = Cluster::start();
    install(&cluster, &[]);
    let webhook = Webhook::start(&cluster, NAMESPACE, RELEASE);
    let blocks = readme_blocks("## Rules");
    shell(
        &cluster,
        &block_starting(&blocks, "cat > sre-debug-values.yaml"),
    )
    .ok();
    webhook.sync_policy(&cluster);
    let steps = block_starting(&blocks, "kubectl create namespace team-a");
    let steps: Vec<&str> = steps.lines().collect();
    assert_eq!(steps.len(), 6, "{steps:?}");
    shell(&cluster, steps[0]).ok();
    // What the controller-manager would do in a real cluster: the namespace's default ServiceAccount.
    cluster
        .kubectl(&["-n", "team-a", "create", "serviceaccount", "default"])
        .ok();
    for step in &steps[1..4] {
        shell(&cluster, step).ok();
    }
    let refused = shell(&cluster, steps[4]);
    let refused = refused.err();
    eprintln!(
        "cluster: kubectl debug --profile=general, not in sre: {}",
        refused.trim()
    );
    assert!(
        refused.contains("denied by vigil: [capabilities]"),
        "{refused}"
    );
    assert!(refused.contains("[ephemeral-containers]"), "{refused}");
    shell(&cluster, steps[5]).ok();
    let alert = webhook.alert_by("alice", "Pod", "team-a", "web", "UPDATE");
    for v in alert["violations"].as_array().unwrap() {
        if v["rule"] == "capabilities" || v["rule"] == "ephemeral-containers" {
            assert_eq!(v["exemption"], "sre-debug", "{v}");
        }
    }
}
