//! The evasion table: attempts to get a privileged or untrusted workload past an enforce policy, each sent to
//! the real server over TLS. Every row must be denied (or, for a body that is not a readable review, refused
//! with a 4xx), must leave the server answering, and must be answered quickly.
//!
//! Times are printed (`cargo test --test evasion -- --nocapture`), not asserted: tests assert behaviour, not
//! timings. The budget is 100 ms per review in a release build (`--release` prints those figures). The only
//! bound asserted is the chart's webhook timeout, 5 s, which catches a stall even in an unoptimized build on
//! a busy machine.

mod common;

use std::time::{Duration, Instant};

use common::{Server, write};
use serde_json::{Value, json};

/// Enforce everything of baseline, and trust two registries only.
const POLICY: &str = "\
apiVersion: vigil.dev/v1alpha1
kind: Policy
mode: enforce
profile: baseline
rules:
  image-registry:
    mode: enforce
    allow: [\"registry.corp.example\", \"ghcr.io/corp/*\"]
";

/// An answer slower than this is a stall: the API server would have given up (`timeoutSeconds: 5`).
const STALL: Duration = Duration::from_secs(5);

const GOOD_IMAGE: &str = "registry.corp.example/app:1.0";

/// What a row must get.
#[derive(Debug, Clone, Copy)]
enum Expect {
    /// HTTP 200, `allowed: false`, with this `status.code` (403 for a rule, 400 for an unreadable object).
    Denied(u16),
    /// HTTP 200 and `allowed: false`, whatever the code.
    DeniedAnyCode,
    /// HTTP 200 with `allowed: false`, or a 4xx: either keeps the workload out.
    DeniedOrRefused,
}

struct Row {
    name: &'static str,
    body: Vec<u8>,
    expect: Expect,
}

fn row(name: &'static str, body: impl Into<Vec<u8>>, expect: Expect) -> Row {
    Row {
        name,
        body: body.into(),
        expect,
    }
}

/// A review envelope around `object`.
fn review_of(group: &str, kind: &str, operation: &str, object: Value) -> Value {
    json!({
        "apiVersion": "admission.k8s.io/v1",
        "kind": "AdmissionReview",
        "request": {
            "uid": "evasion-1",
            "kind": {"group": group, "version": "v1", "kind": kind},
            "resource": {"group": group, "version": "v1", "resource": "things"},
            "name": "x",
            "namespace": "team-a",
            "operation": operation,
            "userInfo": {"username": "mallory", "groups": ["system:authenticated"]},
            "object": object,
            "oldObject": null,
            "dryRun": false
        }
    })
}

fn pod_review(spec: Value) -> Value {
    review_of(
        "",
        "Pod",
        "CREATE",
        json!({"apiVersion": "v1", "kind": "Pod", "metadata": {"name": "x", "namespace": "team-a"}, "spec": spec}),
    )
}

fn container(name: &str, image: &str, privileged: bool) -> Value {
    let mut c = json!({"name": name, "image": image});
    if privileged {
        c["securityContext"] = json!({"privileged": true});
    }
    c
}

/// A pod whose only container runs `image`, unprivileged: only the registry rule can deny it.
fn image_review(image: &str) -> Value {
    pod_review(json!({"containers": [container("app", image, false)]}))
}

fn privileged_spec() -> Value {
    json!({"containers": [container("app", GOOD_IMAGE, true)]})
}

fn cronjob(spec: Value) -> Value {
    json!({"apiVersion": "batch/v1", "kind": "CronJob", "metadata": {"name": "c", "namespace": "team-a"},
           "spec": {"schedule": "* * * * *", "jobTemplate": {"spec": {"template": {"spec": spec}}}}})
}

fn body(v: &Value) -> Vec<u8> {
    v.to_string().into_bytes()
}

/// Serializes `v` and then rewrites its text: for what serde_json cannot produce (duplicate keys, escapes).
fn rewritten(v: &Value, from: &str, to: &str) -> Vec<u8> {
    let text = v.to_string();
    assert!(text.contains(from), "{from} not in the body");
    text.replacen(from, to, 1).into_bytes()
}

fn rows() -> Vec<Row> {
    use Expect::*;
    let unprivileged = json!({"containers": [{"name": "app", "image": GOOD_IMAGE, "securityContext": {"privileged": false}}]});
    let mut rows = vec![
        // Duplicate keys. The API server's Go decoder keeps the last value, but a review carrying duplicates
        // cannot come from a real API server: it decodes the object into its typed form and serialises it
        // again, so each key appears once. Vigil's decoder rejects duplicates and denies the review in-band
        // (code 400). That is at least as strict as judging the last value, whichever order they come in.
        // The same holds for the envelope's own keys (request, kind, object, operation): a reader that keeps
        // the first or the last of them silently would judge one object and let the API server store another.
        row(
            "duplicate key: privileged false then true",
            rewritten(
                &pod_review(unprivileged.clone()),
                r#""privileged":false"#,
                r#""privileged":false,"privileged":true"#,
            ),
            Denied(400),
        ),
        row(
            "duplicate key: privileged true then false",
            rewritten(
                &pod_review(unprivileged.clone()),
                r#""privileged":false"#,
                r#""privileged":true,"privileged":false"#,
            ),
            Denied(400),
        ),
        row(
            "duplicate key: a second securityContext",
            rewritten(
                &pod_review(unprivileged.clone()),
                r#""securityContext":{"privileged":false}"#,
                r#""securityContext":{"privileged":true},"securityContext":{"privileged":false}"#,
            ),
            Denied(400),
        ),
        row(
            "duplicate key: a second containers list",
            rewritten(
                &pod_review(unprivileged.clone()),
                r#""containers":["#,
                r#""containers":[{"name":"evil","image":"registry.corp.example/x:1","securityContext":{"privileged":true}}],"containers":["#,
            ),
            Denied(400),
        ),
        row(
            "duplicate key: a second spec",
            rewritten(
                &pod_review(unprivileged.clone()),
                r#""spec":{"#,
                r#""spec":{"containers":[{"name":"evil","image":"registry.corp.example/x:1","securityContext":{"privileged":true}}]},"spec":{"#,
            ),
            Denied(400),
        ),
        row(
            "duplicate key: request.kind Pod, then ConfigMap after the object",
            rewritten(
                &pod_review(privileged_spec()),
                r#""oldObject":null"#,
                r#""oldObject":null,"kind":{"group":"","version":"v1","kind":"ConfigMap"}"#,
            ),
            Denied(400),
        ),
        row(
            "duplicate key: a privileged object, then a clean one",
            rewritten(
                &pod_review(privileged_spec()),
                r#""oldObject":null"#,
                &format!(
                    r#""oldObject":null,"object":{}"#,
                    pod_review(unprivileged.clone())["request"]["object"]
                ),
            ),
            Denied(400),
        ),
        row(
            "duplicate key: operation CREATE, then DELETE",
            rewritten(
                &pod_review(privileged_spec()),
                r#""oldObject":null"#,
                r#""oldObject":null,"operation":"DELETE""#,
            ),
            Denied(400),
        ),
        row(
            "duplicate key: a second request",
            rewritten(
                &pod_review(privileged_spec()),
                r#""kind":"AdmissionReview","#,
                &format!(
                    r#""kind":"AdmissionReview","request":{},"#,
                    pod_review(unprivileged.clone())["request"]
                ),
            ),
            Denied(400),
        ),
        row(
            "escaped key: \"privil\\u0065ged\": true",
            rewritten(
                &pod_review(privileged_spec()),
                r#""privileged":true"#,
                r#""privil\u0065ged":true"#,
            ),
            Denied(403),
        ),
        row(
            "escaped kind: \"P\\u006fd\"",
            rewritten(
                &pod_review(privileged_spec()),
                r#""kind":"Pod""#,
                r#""kind":"P\u006fd""#,
            ),
            Denied(403),
        ),
        // Privileged outside `containers`.
        row(
            "privileged init container only",
            body(&pod_review(
                json!({"initContainers": [container("init", GOOD_IMAGE, true)],
                                    "containers": [container("app", GOOD_IMAGE, false)]}),
            )),
            Denied(403),
        ),
        row(
            "privileged ephemeral container only",
            body(&pod_review(
                json!({"containers": [container("app", GOOD_IMAGE, false)],
                                    "ephemeralContainers": [container("debug", GOOD_IMAGE, true)]}),
            )),
            Denied(403),
        ),
        row(
            "privileged ephemeral container through pods/ephemeralcontainers",
            {
                let mut r = pod_review(json!({"containers": [container("app", GOOD_IMAGE, false)],
                                          "ephemeralContainers": [container("debug", GOOD_IMAGE, true)]}));
                r["request"]["operation"] = json!("UPDATE");
                r["request"]["subResource"] = json!("ephemeralcontainers");
                r["request"]["oldObject"] = r["request"]["object"].clone();
                r["request"]["oldObject"]["spec"]["ephemeralContainers"] = json!([]);
                body(&r)
            },
            Denied(403),
        ),
        row(
            "privileged container in a CronJob's init containers",
            body(&review_of(
                "batch",
                "CronJob",
                "CREATE",
                cronjob(json!({
                "initContainers": [container("init", GOOD_IMAGE, true)],
                "containers": [container("app", GOOD_IMAGE, false)]})),
            )),
            Denied(403),
        ),
        row(
            "UPDATE whose old object does not decode",
            {
                let mut r = pod_review(privileged_spec());
                r["request"]["operation"] = json!("UPDATE");
                r["request"]["oldObject"] = json!({"spec": {"containers": "not a list"}});
                body(&r)
            },
            Denied(403),
        ),
        row(
            "UPDATE whose old object claims the same privileged container under another spec",
            {
                let mut r = pod_review(privileged_spec());
                r["request"]["operation"] = json!("UPDATE");
                r["request"]["oldObject"] = json!({"metadata": {"name": "x"}, "spec": {"containers": [container("other", GOOD_IMAGE, false)]}});
                body(&r)
            },
            Denied(403),
        ),
        // Case variants of kinds.
        row(
            "kind \"pod\"",
            rewritten(
                &pod_review(privileged_spec()),
                r#""kind":"Pod""#,
                r#""kind":"pod""#,
            ),
            Denied(403),
        ),
        row(
            "kind \"POD\"",
            rewritten(
                &pod_review(privileged_spec()),
                r#""kind":"Pod""#,
                r#""kind":"POD""#,
            ),
            Denied(403),
        ),
        row(
            "kind \"cronJob\"",
            body(&review_of(
                "batch",
                "cronJob",
                "CREATE",
                cronjob(privileged_spec()),
            )),
            Denied(403),
        ),
        row(
            "kind \"DEPLOYMENT\" in the legacy extensions group",
            body(&review_of(
                "extensions",
                "DEPLOYMENT",
                "CREATE",
                json!({"metadata": {"name": "d"},
                "spec": {"template": {"spec": privileged_spec()}}}),
            )),
            Denied(403),
        ),
        row(
            "operation \"create\" in lower case",
            {
                let mut r = pod_review(privileged_spec());
                r["request"]["operation"] = json!("create");
                body(&r)
            },
            Denied(400),
        ),
        // Images outside the allow list, dressed up.
        row(
            "look-alike registry: \u{0261}hcr.io (Latin script g)",
            body(&image_review("\u{0261}hcr.io/corp/x:1")),
            Denied(403),
        ),
        row(
            "look-alike registry: ghcr.i\u{043e} (Cyrillic o)",
            body(&image_review("ghcr.i\u{043e}/corp/x:1")),
            Denied(403),
        ),
        row(
            "look-alike registry: registry.corp.exampl\u{0435} (Cyrillic e)",
            body(&image_review("registry.corp.exampl\u{0435}/x:1")),
            Denied(403),
        ),
        row(
            "look-alike registry: fullwidth \u{ff47}hcr.io",
            body(&image_review("\u{ff47}hcr.io/corp/x:1")),
            Denied(403),
        ),
        row(
            "look-alike registry: punycode xn--hcr-...",
            body(&image_review("xn--hcr-8cd.io/corp/x:1")),
            Denied(403),
        ),
        row(
            "look-alike path: ghcr.io/c\u{043e}rp/x",
            body(&image_review("ghcr.io/c\u{043e}rp/x:1")),
            Denied(403),
        ),
        row(
            "zero-width space in the registry",
            body(&image_review("ghcr.io\u{200b}/corp/x:1")),
            Denied(403),
        ),
        row(
            "registry with a trailing dot",
            body(&image_review("registry.corp.example./x:1")),
            Denied(403),
        ),
        row(
            "registry as a longer domain",
            body(&image_review("registry.corp.example.evil.io/x:1")),
            Denied(403),
        ),
        row(
            "registry glued to a prefix",
            body(&image_review("evilregistry.corp.example/x:1")),
            Denied(403),
        ),
        row(
            "registry with :443",
            body(&image_review("registry.corp.example:443/x:1")),
            Denied(403),
        ),
        row(
            "registry with :0443",
            body(&image_review("registry.corp.example:0443/x:1")),
            Denied(403),
        ),
        row(
            "image docker.io/library/../x",
            body(&image_review("docker.io/library/../x")),
            Denied(403),
        ),
        row(
            "image ghcr.io/corp/../../evil/x",
            body(&image_review("ghcr.io/corp/../../evil/x")),
            Denied(403),
        ),
        row(
            "image ghcr.io/corp/./x",
            body(&image_review("ghcr.io/corp/./x")),
            Denied(403),
        ),
        row(
            "image ghcr.io/corporate/x (no / boundary)",
            body(&image_review("ghcr.io/corporate/x:1")),
            Denied(403),
        ),
        row(
            "image ghcr.io//corp/x",
            body(&image_review("ghcr.io//corp/x:1")),
            Denied(403),
        ),
        row(
            "image with userinfo: registry.corp.example@evil.io/x",
            body(&image_review("registry.corp.example@evil.io/x")),
            Denied(403),
        ),
        row(
            "image URL: https://registry.corp.example/x",
            body(&image_review("https://registry.corp.example/x:1")),
            Denied(403),
        ),
        row(
            "image with a leading space",
            body(&image_review(" registry.corp.example/x:1")),
            Denied(403),
        ),
        row(
            "image with a trailing newline",
            body(&image_review("registry.corp.example/x:1\n")),
            Denied(403),
        ),
        row(
            "image with a NUL byte",
            body(&image_review("registry.corp.example/x:1\u{0}evil.io/y")),
            Denied(403),
        ),
        row(
            "image with an upper-case digest",
            body(&image_review(
                "ghcr.io/corp/x@sha256:E6693C20186F837FC393390135D8A598A96A833917917789D63766CAB6C59582",
            )),
            Denied(403),
        ),
        row(
            "bare name (docker.io/library)",
            body(&image_review("nginx")),
            Denied(403),
        ),
        row("empty image", body(&image_review("")), Denied(403)),
        row(
            "no image at all",
            body(&pod_review(json!({"containers": [{"name": "app"}]}))),
            Denied(403),
        ),
        row(
            "image null",
            body(&pod_review(
                json!({"containers": [{"name": "app", "image": null}]}),
            )),
            Denied(403),
        ),
        // Sizes.
        row(
            "100 KB image string",
            body(&image_review(&format!(
                "registry.corp.example/{}",
                "a".repeat(100 * 1024)
            ))),
            Denied(403),
        ),
        row(
            "1 MB container name on a privileged container",
            body(&pod_review(
                json!({"containers": [container(&"n".repeat(1024 * 1024), GOOD_IMAGE, true)]}),
            )),
            Denied(403),
        ),
        row(
            "10,000 containers, the last one privileged",
            body(&pod_review(json!({"containers": (0..10_000)
                .map(|i| container(&format!("c{i}"), GOOD_IMAGE, i == 9_999))
                .collect::<Vec<_>>()}))),
            Denied(403),
        ),
        row(
            "10,000 containers, all privileged",
            body(&pod_review(json!({"containers": (0..10_000)
                .map(|i| container(&format!("c{i}"), GOOD_IMAGE, true))
                .collect::<Vec<_>>()}))),
            Denied(403),
        ),
        // serde_json stops at 128 levels: a deep body is an error, never a stack overflow. An API server never
        // sends one (it prunes unknown fields of built-in kinds), so a refusal with 400 is safe as well.
        row(
            "100,000 nested arrays in an unknown field of the object",
            rewritten(
                &pod_review(privileged_spec()),
                r#""metadata":"#,
                &format!(
                    r#""x-nested":{}{},"metadata":"#,
                    "[".repeat(100_000),
                    "]".repeat(100_000)
                ),
            ),
            DeniedOrRefused,
        ),
        row(
            "100,000 nested objects in an unknown field of the request",
            rewritten(
                &pod_review(privileged_spec()),
                r#""dryRun":"#,
                &format!(
                    r#""x-nested":{}1{},"dryRun":"#,
                    r#"{"a":"#.repeat(100_000),
                    "}".repeat(100_000)
                ),
            ),
            DeniedOrRefused,
        ),
        // Vigil skips a field it does not read without recursing, so nesting there is no error at all: the
        // privileged flag beside it is still judged.
        row(
            "200 nested arrays in an unknown field beside a privileged flag",
            rewritten(
                &pod_review(privileged_spec()),
                r#""name":"app""#,
                &format!(
                    r#""name":"app","volumeMounts":{}{}"#,
                    "[".repeat(200),
                    "]".repeat(200)
                ),
            ),
            Denied(403),
        ),
        // A field a rule reads, holding the wrong type, is an error: denied in-band, never skipped.
        row(
            "200 nested arrays in args beside a privileged flag",
            rewritten(
                &pod_review(privileged_spec()),
                r#""name":"app""#,
                &format!(
                    r#""name":"app","args":{}{}"#,
                    "[".repeat(200),
                    "]".repeat(200)
                ),
            ),
            Denied(400),
        ),
        // Wrong types.
        row(
            "number as image",
            body(&pod_review(
                json!({"containers": [{"name": "app", "image": 5}]}),
            )),
            Denied(400),
        ),
        row(
            "number as container name",
            body(&pod_review(
                json!({"containers": [{"name": 5, "image": GOOD_IMAGE,
            "securityContext": {"privileged": true}}]}),
            )),
            Denied(400),
        ),
        row(
            "string \"true\" as privileged",
            body(&pod_review(
                json!({"containers": [{"name": "app", "image": GOOD_IMAGE,
            "securityContext": {"privileged": "true"}}]}),
            )),
            Denied(400),
        ),
        row(
            "number 1 as privileged",
            body(&pod_review(
                json!({"containers": [{"name": "app", "image": GOOD_IMAGE,
            "securityContext": {"privileged": 1}}]}),
            )),
            Denied(400),
        ),
        row(
            "string \"yes\" as hostPID",
            body(&pod_review(json!({"hostPID": "yes",
            "containers": [container("app", GOOD_IMAGE, false)]}))),
            Denied(400),
        ),
        row(
            "1e400 as hostPort",
            rewritten(
                &pod_review(json!({"containers": [{"name": "app", "image": GOOD_IMAGE,
            "ports": [{"containerPort": 80, "hostPort": 1}]}]})),
                r#""hostPort":1"#,
                r#""hostPort":1e400"#,
            ),
            Denied(400),
        ),
        row(
            "object given as a JSON string",
            {
                let mut r = pod_review(privileged_spec());
                r["request"]["object"] = json!(r["request"]["object"].to_string());
                body(&r)
            },
            Denied(400),
        ),
        row(
            "containers given as an object",
            body(&pod_review(
                json!({"containers": {"app": container("app", GOOD_IMAGE, true)}}),
            )),
            Denied(400),
        ),
        row(
            "kind group null",
            {
                let mut r = pod_review(privileged_spec());
                r["request"]["kind"]["group"] = Value::Null;
                body(&r)
            },
            Denied(400),
        ),
        // Nulls.
        row("spec null", body(&pod_review(Value::Null)), Denied(400)),
        row(
            "object null on CREATE",
            {
                let mut r = pod_review(privileged_spec());
                r["request"]["object"] = Value::Null;
                body(&r)
            },
            Denied(400),
        ),
        row(
            "containers null beside a privileged init container",
            body(&pod_review(json!({"containers": null,
            "initContainers": [container("init", GOOD_IMAGE, true)]}))),
            Denied(403),
        ),
        row(
            "securityContext null beside hostPID",
            body(&pod_review(json!({"hostPID": true,
            "containers": [{"name": "app", "image": GOOD_IMAGE, "securityContext": null}]}))),
            Denied(403),
        ),
        row(
            "CronJob with jobTemplate null",
            body(&review_of(
                "batch",
                "CronJob",
                "CREATE",
                json!({"metadata": {"name": "c"}, "spec": {"jobTemplate": null}}),
            )),
            Denied(400),
        ),
        row(
            "Deployment with template null",
            body(&review_of(
                "apps",
                "Deployment",
                "CREATE",
                json!({"metadata": {"name": "d"}, "spec": {"template": null}}),
            )),
            Denied(400),
        ),
        // Bodies that are not readable reviews: refused, never admitted.
        row(
            "UTF-8 byte order mark before the body",
            [&b"\xef\xbb\xbf"[..], &body(&pod_review(privileged_spec()))].concat(),
            DeniedOrRefused,
        ),
        row(
            "two reviews back to back",
            [
                body(&pod_review(
                    json!({"containers": [container("app", GOOD_IMAGE, false)]}),
                )),
                body(&pod_review(privileged_spec())),
            ]
            .concat(),
            DeniedOrRefused,
        ),
        row(
            "body cut short",
            {
                let b = body(&pod_review(privileged_spec()));
                b[..b.len() - 5].to_vec()
            },
            DeniedOrRefused,
        ),
        row(
            "invalid UTF-8 in a string",
            {
                let text = body(&pod_review(privileged_spec()));
                let at = text
                    .windows(12)
                    .position(|w| w == br#""name":"app""#)
                    .unwrap()
                    + 11;
                [&text[..at], &b"\xff"[..], &text[at..]].concat()
            },
            DeniedOrRefused,
        ),
        // Other ways to the host, spelled to dodge an exact comparison.
        row(
            "privileged on a pod that says it runs Windows",
            body(&pod_review(json!({"os": {"name": "windows"},
            "containers": [container("app", GOOD_IMAGE, true)]}))),
            Denied(403),
        ),
        row(
            "Windows hostProcess container",
            body(&pod_review(
                json!({"containers": [{"name": "app", "image": GOOD_IMAGE,
            "securityContext": {"windowsOptions": {"hostProcess": true}}}]}),
            )),
            Denied(403),
        ),
        row(
            "capability CAP_SYS_ADMIN",
            body(&pod_review(
                json!({"containers": [{"name": "app", "image": GOOD_IMAGE,
            "securityContext": {"capabilities": {"add": ["CAP_SYS_ADMIN"]}}}]}),
            )),
            Denied(403),
        ),
        row(
            "capability sys_admin in lower case",
            body(&pod_review(
                json!({"containers": [{"name": "app", "image": GOOD_IMAGE,
            "securityContext": {"capabilities": {"add": ["sys_admin"]}}}]}),
            )),
            Denied(403),
        ),
        row(
            "hostPath \"//\"",
            body(&pod_review(
                json!({"containers": [container("app", GOOD_IMAGE, false)],
            "volumes": [{"name": "root", "hostPath": {"path": "//"}}]}),
            )),
            Denied(403),
        ),
        row(
            "hostPath /etc/../ beside an emptyDir in one volume",
            body(&pod_review(
                json!({"containers": [container("app", GOOD_IMAGE, false)],
            "volumes": [{"name": "root", "emptyDir": {}, "hostPath": {"path": "/etc/../"}}]}),
            )),
            Denied(403),
        ),
        row(
            "procMount \"unmasked\" in lower case",
            body(&pod_review(
                json!({"containers": [{"name": "app", "image": GOOD_IMAGE,
            "securityContext": {"procMount": "unmasked"}}]}),
            )),
            Denied(403),
        ),
        row(
            "hostNetwork on a Deployment's template",
            body(&review_of(
                "apps",
                "Deployment",
                "CREATE",
                json!({"metadata": {"name": "d"},
            "spec": {"template": {"spec": {"hostNetwork": true, "containers": [container("app", GOOD_IMAGE, false)]}}}}),
            )),
            Denied(403),
        ),
        row(
            "hostPort as a string",
            body(&pod_review(
                json!({"containers": [{"name": "app", "image": GOOD_IMAGE,
            "ports": [{"containerPort": 80, "hostPort": "8080"}]}]}),
            )),
            Denied(400),
        ),
    ];
    // Every covered kind, privileged.
    for (group, kind, object) in [
        (
            "apps",
            "Deployment",
            json!({"spec": {"template": {"spec": privileged_spec()}}}),
        ),
        (
            "apps",
            "StatefulSet",
            json!({"spec": {"template": {"spec": privileged_spec()}}}),
        ),
        (
            "apps",
            "DaemonSet",
            json!({"spec": {"template": {"spec": privileged_spec()}}}),
        ),
        (
            "apps",
            "ReplicaSet",
            json!({"spec": {"template": {"spec": privileged_spec()}}}),
        ),
        (
            "batch",
            "Job",
            json!({"spec": {"template": {"spec": privileged_spec()}}}),
        ),
        (
            "",
            "ReplicationController",
            json!({"spec": {"template": {"spec": privileged_spec()}}}),
        ),
        (
            "",
            "PodTemplate",
            json!({"template": {"spec": privileged_spec()}}),
        ),
    ] {
        rows.push(Row {
            name: kind,
            body: body(&review_of(group, kind, "CREATE", object)),
            expect: DeniedAnyCode,
        });
    }
    rows
}

/// A review of a `List` holding workloads. The API server never sends one (a List is split by the client),
/// but a review that holds a workload must never admit it unjudged.
fn list_rows() -> Vec<Row> {
    use Expect::*;
    let list = |items: Vec<Value>| {
        review_of(
            "",
            "List",
            "CREATE",
            json!({"apiVersion": "v1", "kind": "List", "items": items}),
        )
    };
    vec![
        row(
            "CronJob inside a List",
            body(&list(vec![cronjob(privileged_spec())])),
            DeniedAnyCode,
        ),
        row(
            "privileged Pod inside a List",
            body(&list(vec![
                json!({"apiVersion": "v1", "kind": "Pod", "metadata": {"name": "p"}, "spec": privileged_spec()}),
            ])),
            DeniedAnyCode,
        ),
        row(
            "untrusted image inside a PodList",
            {
                let mut r = list(vec![
                    json!({"apiVersion": "v1", "kind": "Pod", "metadata": {"name": "p"},
                "spec": {"containers": [container("app", "evil.example/x:1", false)]}}),
                ]);
                r["request"]["kind"]["kind"] = json!("PodList");
                body(&r)
            },
            DeniedAnyCode,
        ),
    ]
}

/// Under a deny list (no allow list), the registries denied must stay denied whatever their spelling.
/// (A deny list cannot know every alias of a registry: `registry-1.docker.io` is Docker Hub too. An allow
/// list is the robust choice; these rows cover the spellings the reference grammar itself allows.)
const DENY_POLICY: &str = "\
apiVersion: vigil.dev/v1alpha1
kind: Policy
mode: enforce
profile: baseline
rules:
  image-registry:
    mode: enforce
    deny: [\"docker.io\", \"evil.example\", \"*.evil.example\"]
";

fn deny_list_rows() -> Vec<Row> {
    use Expect::*;
    [
        ("bare name: Docker Hub", "attacker/x:1"),
        ("docker.io in upper case", "DOCKER.IO/attacker/x:1"),
        (
            "index.docker.io in upper case",
            "INDEX.DOCKER.IO/attacker/x:1",
        ),
        (
            "index.docker.io with :443",
            "index.docker.io:443/attacker/x:1",
        ),
        ("docker.io with :443", "docker.io:443/attacker/x:1"),
        ("denied registry with a port", "evil.example:8443/x:1"),
        ("denied registry in upper case", "EVIL.EXAMPLE/x:1"),
        ("subdomain of a denied registry", "a.b.evil.example/x:1"),
        ("denied registry with a trailing dot", "evil.example./x:1"),
        (
            "denied registry as an IPv6-looking host",
            "[evil.example]/x:1",
        ),
    ]
    .into_iter()
    .map(|(name, image)| row(name, body(&image_review(image)), Denied(403)))
    .collect()
}

/// The evasion policy, with exec, attach and port-forward enforced (their catalogue default is audit).
const CONNECT_POLICY: &str = "\
apiVersion: vigil.dev/v1alpha1
kind: Policy
mode: enforce
profile: baseline
rules:
  pod-exec: enforce
  port-forward: enforce
  image-registry:
    mode: enforce
    allow: [\"registry.corp.example\", \"ghcr.io/corp/*\"]
";

/// A CONNECT review on a pod subresource, shaped as the kube-apiserver sends it (see the recordings in
/// tests/data/reviews): the object is the options, `name` is the pod.
fn connect_review(subresource: &str, kind: &str, object: Value) -> Value {
    let mut r = review_of("", kind, "CONNECT", object);
    r["request"]["resource"] = json!({"group": "", "version": "v1", "resource": "pods"});
    r["request"]["subResource"] = json!(subresource);
    r["request"]["requestSubResource"] = json!(subresource);
    r["request"]["name"] = json!("web-0");
    r["request"]["options"] = Value::Null;
    r
}

fn exec_review(object: Value) -> Value {
    let mut object = object;
    object["kind"] = json!("PodExecOptions");
    object["apiVersion"] = json!("v1");
    connect_review("exec", "PodExecOptions", object)
}

fn exec_of(command: &[&str]) -> Value {
    exec_review(json!({"stdout": true, "stderr": true, "container": "app", "command": command}))
}

/// Attempts to run something inside a running pod unjudged. Every row must be judged: denied by
/// `pod-exec` or `port-forward` (403) under `CONNECT_POLICY`, or, when the review cannot be read, denied
/// in-band (400); never admitted at once, and never a crash.
fn connect_rows() -> Vec<Row> {
    use Expect::*;
    let huge_argv: Vec<String> = (0..100_000).map(|i| format!("a{i}")).collect();
    let ports: Vec<u32> = (1..=10_000).collect();
    vec![
        row(
            "exec: a command smuggled through sh -c",
            body(&exec_of(&[
                "sh",
                "-c",
                "echo ok; cat /var/run/secrets/kubernetes.io/serviceaccount/token",
            ])),
            Denied(403),
        ),
        row(
            "exec: a command base64-encoded and piped to sh",
            body(&exec_of(&[
                "/bin/sh",
                "-c",
                "echo Y2F0IC9ldGMvc2hhZG93 | base64 -d | sh",
            ])),
            Denied(403),
        ),
        row(
            "exec: a command split across arguments",
            body(&exec_of(&[
                "sh",
                "-c",
                "\"$0\" \"$1\"",
                "cat",
                "/etc/shadow",
            ])),
            Denied(403),
        ),
        row(
            "exec: a command split inside a word (c\"a\"t)",
            body(&exec_of(&["sh", "-c", "c\"a\"t /etc/shadow"])),
            Denied(403),
        ),
        row(
            "exec: newlines and control characters in the command",
            body(&exec_of(&[
                "sh",
                "-c",
                "true\n\r\u{1b}[2Kcat /etc/shadow\u{0}",
            ])),
            Denied(403),
        ),
        row(
            "exec: a credential on the command line",
            body(&exec_of(&["mysql", "-uroot", "-phunter22"])),
            Denied(403),
        ),
        row(
            "exec: through the attach subresource",
            body(&connect_review(
                "attach",
                "PodAttachOptions",
                json!({"kind": "PodAttachOptions", "apiVersion": "v1", "stdin": true, "tty": true, "container": "app"}),
            )),
            Denied(403),
        ),
        row(
            "exec: an attach whose object carries a command",
            body(&connect_review(
                "attach",
                "PodAttachOptions",
                json!({"kind": "PodAttachOptions", "stdin": true, "command": ["sh"]}),
            )),
            Denied(403),
        ),
        row(
            "exec: attach options sent on the exec subresource",
            body(&connect_review(
                "exec",
                "PodAttachOptions",
                json!({"kind": "PodAttachOptions", "stdin": true}),
            )),
            Denied(403),
        ),
        row(
            "exec: a container name that does not exist",
            body(&exec_review(
                json!({"container": "no-such-container", "command": ["id"]}),
            )),
            Denied(403),
        ),
        row(
            "exec: no container named (the default container)",
            body(&exec_review(json!({"command": ["id"]}))),
            Denied(403),
        ),
        row(
            "exec: an empty container name",
            body(&exec_review(json!({"container": "", "command": ["id"]}))),
            Denied(403),
        ),
        row(
            "exec: a container name of 100,000 characters",
            body(&exec_review(
                json!({"container": "c".repeat(100_000), "command": ["id"]}),
            )),
            Denied(403),
        ),
        row(
            "exec: a command line of 100,000 arguments",
            body(&exec_review(
                json!({"container": "app", "command": huge_argv}),
            )),
            Denied(403),
        ),
        row(
            "exec: one argument of 2 MiB",
            body(&exec_of(&["sh", "-c", &"x".repeat(2 << 20)])),
            Denied(403),
        ),
        row(
            "exec: no command at all",
            body(&exec_review(json!({"container": "app"}))),
            Denied(403),
        ),
        row(
            "exec: null command and container",
            body(&exec_review(json!({"container": null, "command": null}))),
            Denied(403),
        ),
        row(
            "exec: subResource in upper case",
            body(&{
                let mut r = exec_of(&["id"]);
                r["request"]["subResource"] = json!("EXEC");
                r
            }),
            Denied(403),
        ),
        row(
            "exec: request kind Pod instead of PodExecOptions",
            body(&{
                let mut r = exec_of(&["id"]);
                r["request"]["kind"]["kind"] = json!("Pod");
                r
            }),
            DeniedAnyCode,
        ),
        row(
            "exec: operation in lower case",
            body(&{
                let mut r = exec_of(&["id"]);
                r["request"]["operation"] = json!("connect");
                r
            }),
            Denied(400),
        ),
        row(
            "exec: no object",
            body(&{
                let mut r = exec_of(&["id"]);
                r["request"]["object"] = Value::Null;
                r
            }),
            Denied(400),
        ),
        row(
            "exec: command a string, not a list",
            body(&exec_review(
                json!({"container": "app", "command": "sh -c id"}),
            )),
            Denied(400),
        ),
        row(
            "exec: a second command key after a harmless one",
            rewritten(
                &exec_of(&["true"]),
                r#""command":["true"]"#,
                r#""command":["true"],"command":["sh","-c","cat /etc/shadow"]"#,
            ),
            Denied(400),
        ),
        row(
            "port-forward: 10,000 ports",
            body(&connect_review(
                "portforward",
                "PodPortForwardOptions",
                json!({"kind": "PodPortForwardOptions", "ports": ports}),
            )),
            Denied(403),
        ),
        row(
            "port-forward: no ports in the request (kubectl's SPDY stream names them)",
            body(&connect_review(
                "portforward",
                "PodPortForwardOptions",
                json!({"kind": "PodPortForwardOptions"}),
            )),
            Denied(403),
        ),
        row(
            "port-forward: a port that is not a number",
            body(&connect_review(
                "portforward",
                "PodPortForwardOptions",
                json!({"kind": "PodPortForwardOptions", "ports": ["5432"]}),
            )),
            Denied(400),
        ),
    ]
}

/// A review that must be admitted: the server is still answering properly.
fn clean_review() -> String {
    let mut r = image_review(GOOD_IMAGE);
    r["request"]["uid"] = json!("still-alive");
    r.to_string()
}

/// Sends every row; returns the failures. Prints each row's time.
async fn run(server: &Server, rows: Vec<Row>) -> Vec<String> {
    let mut failures = Vec::new();
    let mut times = Vec::new();
    for row in rows {
        let mut client = server.client().await;
        let started = Instant::now();
        let reply = client
            .send("POST", "/validate", Some("application/json"), &row.body)
            .await;
        let took = started.elapsed();
        times.push((row.name, took));
        eprintln!(
            "{:>8.2} ms  {:>8} B in  {:>8} B out  {:<14}  {}",
            took.as_secs_f64() * 1e3,
            row.body.len(),
            reply.as_ref().map_or(0, |r| r.body.len()),
            reply
                .as_ref()
                .map_or_else(|e| format!("error {e}"), outcome),
            row.name
        );
        let verdict = match reply {
            Err(e) => Err(format!("no answer: {e}")),
            Ok(reply) => judge(&reply, row.expect),
        };
        if let Err(why) = verdict {
            failures.push(format!("{}: {why}", row.name));
        }
        if took > STALL {
            failures.push(format!("{}: took {took:?}", row.name));
        }
        // The server still answers, and admits what it should.
        let mut probe = server.client().await;
        let alive = probe.review("/validate", &clean_review()).await;
        let alive = alive.json();
        if alive["response"]["uid"] != "still-alive" || alive["response"]["allowed"] != true {
            failures.push(format!(
                "{}: the server stopped answering properly: {alive}",
                row.name
            ));
        }
    }
    if let Some((name, slowest)) = times.iter().max_by_key(|(_, t)| *t) {
        eprintln!("slowest: {name}, {:.2} ms", slowest.as_secs_f64() * 1e3);
    }
    failures
}

/// How a reply reads, for the printed table: `denied 403`, `ADMITTED`, `HTTP 400`.
fn outcome(reply: &common::Reply) -> String {
    if reply.status != 200 {
        return format!("HTTP {}", reply.status);
    }
    let answer: Value = serde_json::from_str(&reply.body).unwrap_or_default();
    match answer["response"]["allowed"].as_bool() {
        Some(true) => "ADMITTED".to_owned(),
        Some(false) => format!("denied {}", answer["response"]["status"]["code"]),
        None => "unreadable".to_owned(),
    }
}

fn judge(reply: &common::Reply, expect: Expect) -> Result<(), String> {
    let short = |s: &str| s.chars().take(300).collect::<String>();
    if (400..500).contains(&reply.status) {
        return match expect {
            Expect::DeniedOrRefused => Ok(()),
            _ => Err(format!("HTTP {}: {}", reply.status, short(&reply.body))),
        };
    }
    if reply.status != 200 {
        return Err(format!("HTTP {}: {}", reply.status, short(&reply.body)));
    }
    let answer: Value = serde_json::from_str(&reply.body).map_err(|e| format!("not JSON: {e}"))?;
    let response = &answer["response"];
    if response["uid"] != "evasion-1" {
        return Err(format!("uid not echoed: {}", short(&response.to_string())));
    }
    if response["allowed"] != false {
        return Err(format!("ADMITTED: {}", short(&response.to_string())));
    }
    let code = response["status"]["code"].as_u64();
    match expect {
        Expect::Denied(want) if code != Some(u64::from(want)) => Err(format!(
            "denied with code {code:?}, expected {want}: {}",
            short(response["status"]["message"].as_str().unwrap_or_default())
        )),
        _ => Ok(()),
    }
}

async fn start() -> Server {
    start_with(POLICY).await
}

async fn start_with(policy: &'static str) -> Server {
    Server::start(|args, dir| args.policy = Some(write(dir, "policy.yaml", policy))).await
}

#[tokio::test]
async fn every_evasion_attempt_is_denied_quickly_and_the_server_keeps_answering() {
    let server = start().await;
    let failures = run(&server, rows()).await;
    assert!(failures.is_empty(), "{}", failures.join("\n"));
}

#[tokio::test]
async fn workloads_inside_a_list_are_not_admitted_unjudged() {
    let server = start().await;
    let failures = run(&server, list_rows()).await;
    assert!(failures.is_empty(), "{}", failures.join("\n"));
}

#[tokio::test]
async fn a_deny_list_holds_whatever_the_spelling_of_the_registry() {
    let server = start_with(DENY_POLICY).await;
    let failures = run(&server, deny_list_rows()).await;
    assert!(failures.is_empty(), "{}", failures.join("\n"));
}

#[tokio::test]
async fn what_runs_inside_pods_is_judged_whatever_its_shape() {
    let server = start_with(CONNECT_POLICY).await;
    let failures = run(&server, connect_rows()).await;
    assert!(failures.is_empty(), "{}", failures.join("\n"));
}

/// An edit of the policy ConfigMap is parsed by the webhook itself. YAML nested 20,000 flow levels deep
/// costs libyaml seconds (a megabyte of it, minutes) before any error, so it is refused before parsing, as
/// manifests are (`manifest::check_flow_nesting`); a slow policy parse would tie up the webhook.
#[tokio::test]
async fn a_deeply_nested_policy_edit_is_refused_before_parsing() {
    let server = start().await;
    let policy = format!(
        "apiVersion: vigil.dev/v1alpha1\nkind: Policy\nmode: audit\nx: {}{}\n",
        "[".repeat(20_000),
        "]".repeat(20_000)
    );
    let configmap = json!({"apiVersion": "v1", "kind": "ConfigMap",
        "metadata": {"name": "vigil-policy", "namespace": "vigil"}, "data": {"policy.yaml": policy}});
    let mut review = review_of("", "ConfigMap", "CREATE", configmap);
    review["request"]["name"] = json!("vigil-policy");
    review["request"]["namespace"] = json!("vigil");
    let mut client = server.client().await;
    let started = Instant::now();
    let reply = client.review("/validate", &review.to_string()).await;
    eprintln!("{:.2} ms", started.elapsed().as_secs_f64() * 1e3);
    let response = &reply.json()["response"];
    assert_eq!(response["allowed"], false, "{response}");
    let message = response["status"]["message"].as_str().unwrap_or_default();
    assert!(message.contains("refused before parsing"), "{message}");
}

// ------------------------------------------------------------------------------------------------
// Signature tricks: what an attacker who can write to the registry serves in a signature's place. The
// policy trusts one key for every image of the registry; the attacker never holds that key, but some rows
// have it sign odd payloads, to show that the parsing never reads more into a signature than it says.
// ------------------------------------------------------------------------------------------------

const SIMPLE_SIGNING: &str = "application/vnd.dev.cosign.simplesigning.v1+json";
const BUNDLE: &str = "application/vnd.dev.sigstore.bundle.v0.3+json";
const OCI_MANIFEST: &str = "application/vnd.oci.image.manifest.v1+json";
const OCI_INDEX: &str = "application/vnd.oci.image.index.v1+json";

fn trusted_key() -> p256::ecdsa::SigningKey {
    p256::ecdsa::SigningKey::from_slice(&[7; 32]).unwrap()
}

fn b64(data: &[u8]) -> String {
    use base64::Engine as _;
    base64::engine::general_purpose::STANDARD.encode(data)
}

/// The trusted key's signature over `message`, base64 DER, as cosign writes it.
fn trusted_signature(message: &[u8]) -> String {
    use p256::ecdsa::signature::Signer as _;
    let sig: p256::ecdsa::Signature = trusted_key().sign(message);
    b64(sig.to_der().as_bytes())
}

/// A simple-signing payload as cosign writes it.
fn simple_payload(reference: &str, digest: &str) -> String {
    format!(
        r#"{{"critical":{{"identity":{{"docker-reference":"{reference}"}},"image":{{"docker-manifest-digest":"{digest}"}},"type":"cosign container image signature"}},"optional":null}}"#
    )
}

/// A DSSE bundle signed by the trusted key over `statement`.
fn trusted_bundle(statement: &str, signatures: usize) -> Vec<u8> {
    let payload_type = "application/vnd.in-toto+json";
    let pae = format!(
        "DSSEv1 {} {payload_type} {} {statement}",
        payload_type.len(),
        statement.len()
    );
    let good = trusted_signature(pae.as_bytes());
    let mut sigs = vec![json!({"sig": b64(b"not a signature")}); signatures.saturating_sub(1)];
    sigs.push(json!({"sig": good}));
    serde_json::to_vec(&json!({"mediaType": BUNDLE, "verificationMaterial": {"publicKey": {"hint": ""}},
        "dsseEnvelope": {"payload": b64(statement.as_bytes()), "payloadType": payload_type, "signatures": sigs}}))
    .unwrap()
}

fn statement(digest: &str, predicate_type: &str) -> String {
    let hex = digest.trim_start_matches("sha256:");
    format!(
        r#"{{"_type":"https://in-toto.io/Statement/v1","subject":[{{"digest":{{"sha256":"{hex}"}}}}],"predicateType":"{predicate_type}","predicate":{{}}}}"#
    )
}

/// An OCI manifest with an empty config and `layers`, optionally a referrer of `subject`.
async fn artifact(
    registry: &common::registry::Registry,
    client: &oci_client::Client,
    repo: &str,
    layers: Vec<Value>,
    subject: Option<&str>,
) -> Vec<u8> {
    let config = registry
        .push_blob(
            client,
            repo,
            "application/vnd.oci.empty.v1+json",
            b"{}".to_vec(),
        )
        .await;
    let mut manifest =
        json!({"schemaVersion": 2, "mediaType": OCI_MANIFEST, "config": config, "layers": layers});
    if let Some(digest) = subject {
        let body = registry.manifest(client, repo, digest).await;
        manifest["subject"] =
            json!({"mediaType": OCI_MANIFEST, "digest": digest, "size": body.len()});
        manifest["artifactType"] = json!(BUNDLE);
    }
    serde_json::to_vec(&manifest).unwrap()
}

/// Lists `referrers` (digest, size) under the referrers tag of `digest`, `copies` times each.
async fn list_referrers(
    registry: &common::registry::Registry,
    client: &oci_client::Client,
    repo: &str,
    digest: &str,
    referrer: (&str, usize),
    copies: usize,
) {
    let entry = json!({"mediaType": OCI_MANIFEST, "digest": referrer.0, "size": referrer.1, "artifactType": BUNDLE});
    let index =
        json!({"schemaVersion": 2, "mediaType": OCI_INDEX, "manifests": vec![entry; copies]});
    registry
        .put_manifest(
            client,
            repo,
            &digest.replace(':', "-"),
            OCI_INDEX,
            serde_json::to_vec(&index).unwrap(),
        )
        .await;
}

/// Pushes a bundle referrer of `repo@digest` holding `bundle`; returns (referrer digest, size).
async fn push_bundle(
    registry: &common::registry::Registry,
    client: &oci_client::Client,
    repo: &str,
    digest: &str,
    bundle: Vec<u8>,
) -> (String, usize) {
    let layer = registry.push_blob(client, repo, BUNDLE, bundle).await;
    let body = artifact(registry, client, repo, vec![layer], Some(digest)).await;
    let referrer = common::registry::sha256_digest(&body);
    let size = body.len();
    registry
        .put_manifest(client, repo, &referrer, OCI_MANIFEST, body)
        .await;
    (referrer, size)
}

/// Sets up each trick in the registry and returns its row.
async fn signature_rows(
    registry: &common::registry::Registry,
    client: &oci_client::Client,
) -> Vec<Row> {
    use Expect::*;
    let host = registry.host.clone();
    let mut rows = Vec::new();
    let mut n = 0;
    let mut image = |salt: &'static str| {
        n += 1;
        let repo = format!("trick/{n}");
        let client = client.clone();
        async move {
            let digest = registry
                .push_image(&client, &repo, "v1", "1000", "amd64", salt)
                .await;
            (repo, digest)
        }
    };
    let sig_tag = |digest: &str| format!("{}.sig", digest.replace(':', "-"));
    let review = |repo: &str| body(&image_review(&format!("{host}/{repo}:v1")));

    // The `.sig` tag holds something that is not a signature.
    let (repo, digest) = image("plain image as .sig").await;
    registry
        .push_image(client, &repo, &sig_tag(&digest), "1000", "amd64", "decoy")
        .await;
    rows.push(row(
        "signature: a .sig tag that is a plain image",
        review(&repo),
        Denied(403),
    ));

    let (repo, digest) = image("index as .sig").await;
    let target = registry.manifest(client, &repo, &digest).await;
    let index = json!({"schemaVersion": 2, "mediaType": OCI_INDEX,
        "manifests": [{"mediaType": OCI_MANIFEST, "digest": digest, "size": target.len()}]});
    registry
        .put_manifest(
            client,
            &repo,
            &sig_tag(&digest),
            OCI_INDEX,
            serde_json::to_vec(&index).unwrap(),
        )
        .await;
    rows.push(row(
        "signature: a .sig tag that holds an index",
        review(&repo),
        Denied(403),
    ));

    // Huge: 10,000 signature layers (each a valid payload under a signature that does not verify).
    let (repo, digest) = image("huge .sig").await;
    let payload = simple_payload(&format!("{host}/{repo}"), &digest);
    let mut layer = registry
        .push_blob(client, &repo, SIMPLE_SIGNING, payload.into_bytes())
        .await;
    layer["annotations"] = json!({"dev.cosignproject.cosign/signature": b64(b"not a signature")});
    let body = artifact(registry, client, &repo, vec![layer; 10_000], None).await;
    let huge_repo = repo.clone();
    eprintln!("signature: a .sig manifest of {} bytes", body.len());
    registry
        .put_manifest(client, &repo, &sig_tag(&digest), OCI_MANIFEST, body)
        .await;
    rows.push(row(
        "signature: a .sig manifest with 10,000 signature layers",
        review(&repo),
        Denied(403),
    ));

    // A signature layer of 1 MiB: never read.
    let (repo, digest) = image("big layer").await;
    let payload = format!(
        "{}{}",
        simple_payload(&format!("{host}/{repo}"), &digest),
        " ".repeat(1 << 20)
    );
    let signature = trusted_signature(payload.as_bytes());
    let mut layer = registry
        .push_blob(client, &repo, SIMPLE_SIGNING, payload.into_bytes())
        .await;
    layer["annotations"] = json!({"dev.cosignproject.cosign/signature": signature});
    let big_layer = layer.clone();
    let big_repo = repo.clone();
    let body = artifact(registry, client, &repo, vec![layer], None).await;
    registry
        .put_manifest(client, &repo, &sig_tag(&digest), OCI_MANIFEST, body)
        .await;
    rows.push(row(
        "signature: a trusted signature over a 1 MiB payload",
        review(&repo),
        Denied(403),
    ));

    // The same 1 MiB layer, under a descriptor that says it is small.
    let (repo, digest) = image("lying size").await;
    registry
        .copy_blob(
            client,
            &big_repo,
            &repo,
            big_layer["digest"].as_str().unwrap(),
        )
        .await;
    let mut layer = big_layer;
    layer["size"] = json!(300);
    let body = artifact(registry, client, &repo, vec![layer], None).await;
    registry
        .put_manifest(client, &repo, &sig_tag(&digest), OCI_MANIFEST, body)
        .await;
    rows.push(row(
        "signature: a 1 MiB layer under a descriptor of 300 bytes",
        review(&repo),
        Denied(403),
    ));

    // Parser differentials over payloads the trusted key signed.
    for (name, payload_of) in [
        (
            "signature: a trusted payload naming the digest twice, another first",
            Box::new(|repo: &str, digest: &str| {
                simple_payload(repo, digest).replace(
                    r#""image":{"#,
                    r#""image":{"docker-manifest-digest":"sha256:0000000000000000000000000000000000000000000000000000000000000000","#,
                )
            }) as Box<dyn Fn(&str, &str) -> String>,
        ),
        (
            "signature: a trusted payload of another type",
            Box::new(|repo: &str, digest: &str| {
                simple_payload(repo, digest).replace(
                    "cosign container image signature",
                    "cosign container image signature ",
                )
            }),
        ),
        (
            "signature: a trusted payload naming the repository on another registry",
            Box::new(|repo: &str, digest: &str| {
                simple_payload(
                    &format!("docker.io/{}", repo.split_once('/').unwrap().1),
                    digest,
                )
            }),
        ),
    ] {
        let (repo, digest) = image(name).await;
        let payload = payload_of(&format!("{host}/{repo}"), &digest);
        let signature = trusted_signature(payload.as_bytes());
        let mut layer = registry
            .push_blob(client, &repo, SIMPLE_SIGNING, payload.into_bytes())
            .await;
        layer["annotations"] = json!({"dev.cosignproject.cosign/signature": signature});
        let body = artifact(registry, client, &repo, vec![layer], None).await;
        registry
            .put_manifest(client, &repo, &sig_tag(&digest), OCI_MANIFEST, body)
            .await;
        rows.push(row(name, review(&repo), Denied(403)));
    }

    let (repo, digest) = image("not base64").await;
    let mut layer = registry
        .push_blob(
            client,
            &repo,
            SIMPLE_SIGNING,
            simple_payload(&format!("{host}/{repo}"), &digest).into_bytes(),
        )
        .await;
    layer["annotations"] = json!({"dev.cosignproject.cosign/signature": "%%% not base64 %%%"});
    let body = artifact(registry, client, &repo, vec![layer], None).await;
    registry
        .put_manifest(client, &repo, &sig_tag(&digest), OCI_MANIFEST, body)
        .await;
    rows.push(row(
        "signature: a signature annotation that is not base64",
        review(&repo),
        Denied(403),
    ));

    // Bundles.
    let (repo, digest) = image("10,000 referrers").await;
    let referrer = push_bundle(registry, client, &repo, &digest, b"{}".to_vec()).await;
    list_referrers(
        registry,
        client,
        &repo,
        &digest,
        (&referrer.0, referrer.1),
        10_000,
    )
    .await;
    let many_referrers_repo = repo.clone();
    rows.push(row(
        "signature: a referrers tag listing 10,000 bundles",
        review(&repo),
        Denied(403),
    ));

    let (repo, digest) = image("attestation").await;
    let bundle = trusted_bundle(&statement(&digest, "https://slsa.dev/provenance/v1"), 1);
    let referrer = push_bundle(registry, client, &repo, &digest, bundle).await;
    list_referrers(
        registry,
        client,
        &repo,
        &digest,
        (&referrer.0, referrer.1),
        1,
    )
    .await;
    rows.push(row(
        "signature: a trusted bundle over an attestation, not a signature",
        review(&repo),
        Denied(403),
    ));

    let (repo, digest) = image("many dsse signatures").await;
    let other = "sha256:0000000000000000000000000000000000000000000000000000000000000000";
    let bundle = trusted_bundle(
        &statement(other, "https://sigstore.dev/cosign/sign/v1"),
        1_000,
    );
    let referrer = push_bundle(registry, client, &repo, &digest, bundle).await;
    list_referrers(
        registry,
        client,
        &repo,
        &digest,
        (&referrer.0, referrer.1),
        1,
    )
    .await;
    rows.push(row(
        "signature: a bundle with 1,000 DSSE signatures, for another digest",
        review(&repo),
        Denied(403),
    ));

    let (repo, digest) = image("manifest as referrers tag").await;
    registry
        .push_image(
            client,
            &repo,
            &digest.replace(':', "-"),
            "1000",
            "amd64",
            "decoy",
        )
        .await;
    rows.push(row(
        "signature: a referrers tag that holds an image, not an index",
        review(&repo),
        Denied(403),
    ));

    // A multi-platform image whose platform manifest is signed, and not the index the tag resolves to.
    n += 1;
    let repo = format!("trick/{n}");
    let (_index, amd64) = registry.push_index(client, &repo, "v1").await;
    let payload = simple_payload(&format!("{host}/{repo}"), &amd64);
    let signature = trusted_signature(payload.as_bytes());
    let mut layer = registry
        .push_blob(client, &repo, SIMPLE_SIGNING, payload.into_bytes())
        .await;
    layer["annotations"] = json!({"dev.cosignproject.cosign/signature": signature});
    let body = artifact(registry, client, &repo, vec![layer], None).await;
    registry
        .put_manifest(client, &repo, &sig_tag(&amd64), OCI_MANIFEST, body)
        .await;
    rows.push(row(
        "signature: the platform manifest signed, the index its tag names not",
        review(&repo),
        Denied(403),
    ));

    // The reads stay bounded, whatever the registry lists.
    rows.push(row(
        "signature: (bounds) the huge rows again, from the cache",
        review(&huge_repo),
        Denied(403),
    ));
    let _ = many_referrers_repo;
    rows
}

#[tokio::test]
async fn signature_tricks_are_denied_and_reads_stay_bounded() {
    common::install_provider();
    let registry = common::registry::Registry::start(None, None);
    let client = registry.pusher(None);
    let rows = signature_rows(&registry, &client).await;
    use p256::pkcs8::EncodePublicKey as _;
    let pem = trusted_key()
        .verifying_key()
        .to_public_key_pem(p256::pkcs8::LineEnding::LF)
        .unwrap();
    let keys: String = pem.lines().map(|l| format!("\n          {l}")).collect();
    let policy = format!(
        "apiVersion: vigil.dev/v1alpha1\nkind: Policy\nmode: enforce\nprofile: baseline\nrules:\n  image-signature:\n    mode: enforce\n    images: [\"{}/trick/*\"]\n    keys:\n      - name: trusted\n        publicKey: |{keys}\n",
        registry.host
    );
    let host = registry.host.clone();
    let server = Server::start(move |args, dir| {
        args.policy = Some(write(dir, "policy.yaml", &policy));
        args.registry.registry_plain_http = vec![host];
    })
    .await;
    let failures = run(&server, rows).await;
    assert!(failures.is_empty(), "{}", failures.join("\n"));
    tokio::time::sleep(Duration::from_millis(300)).await;
    let blob_reads = registry.gets("/blobs/sha256:");
    eprintln!("signature: {blob_reads} blob reads in all");
    let huge = registry.gets("/v2/trick/3/blobs/");
    assert!(
        huge <= 16 + 2,
        "the 10,000-layer .sig manifest made {huge} blob reads"
    );
    let referrers = registry.gets("/v2/trick/10/manifests/sha256:");
    assert!(
        referrers <= 16 + 2,
        "the 10,000 listed referrers made {referrers} manifest reads"
    );
}
