//! A rolling restart under load, against the real API server: two Vigil processes behind a real L4 balancer
//! (Debian's HAProxy in TCP mode, standing in for kube-proxy on the Service's ClusterIP:443, with the
//! readiness probe deciding which backends get new connections, as the endpoints controller would), restarted
//! one at a time with SIGTERM while a client creates pods in an enforced namespace without pause. Under
//! `failurePolicy: Fail` a review lost on a closing connection would be a failed create; none may fail.

mod control_plane;
mod corpus;

use std::net::SocketAddr;
use std::process::{Child, Command, Stdio};
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};
use std::time::{Duration, Instant};

use control_plane::{Cluster, Webhook, free_port, wait_for};
use serde_json::json;

const RELEASE: &str = "vigil";
const NAMESPACE: &str = "vigil";
const ENFORCED: &str = "team-a";
/// Pods per `kubectl create`: one kubectl process sends them one after another.
const BATCH: usize = 10;

struct Haproxy {
    child: Child,
    _dir: tempfile::TempDir,
}

impl Drop for Haproxy {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

/// HAProxy on `front` (the ClusterIP:443) in TCP mode, balancing new connections over `backends`, each
/// taken out while its `/readyz` fails. Established connections stay where they are, as with kube-proxy.
fn haproxy(front: &str, backends: &[(SocketAddr, SocketAddr)]) -> Haproxy {
    let haproxy = which("haproxy").expect("haproxy; scripts/test-deps.sh installs it from Debian");
    let dir = tempfile::tempdir().unwrap();
    let mut config = format!(
        "global\n  maxconn 4096\ndefaults\n  mode tcp\n  timeout connect 2s\n  timeout client 10m\n  timeout server 10m\n\
         frontend webhook\n  bind {front}\n  default_backend vigil\n\
         backend vigil\n  balance roundrobin\n  option httpchk GET /readyz\n  http-check expect status 200\n"
    );
    for (i, (addr, metrics)) in backends.iter().enumerate() {
        config.push_str(&format!(
            "  server vigil-{i} {addr} check port {} addr {} inter 200ms fall 1 rise 1\n",
            metrics.port(),
            metrics.ip()
        ));
    }
    let path = dir.path().join("haproxy.cfg");
    std::fs::write(&path, &config).unwrap();
    let check = Command::new(&haproxy)
        .arg("-c")
        .arg("-f")
        .arg(&path)
        .output()
        .unwrap();
    assert!(
        check.status.success(),
        "{config}\n{}",
        String::from_utf8_lossy(&check.stderr)
    );
    let child = Command::new(&haproxy)
        .arg("-db")
        .arg("-f")
        .arg(&path)
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .spawn()
        .unwrap();
    Haproxy { child, _dir: dir }
}

fn which(name: &str) -> Option<std::path::PathBuf> {
    std::env::var_os("PATH")?
        .to_str()?
        .split(':')
        .chain(["/usr/sbin", "/sbin"])
        .map(|d| std::path::Path::new(d).join(name))
        .find(|p| p.is_file())
}

/// Reviews a Vigil process has answered so far.
fn answered(webhook: &Webhook) -> f64 {
    webhook
        .metrics_text()
        .lines()
        .filter(|l| l.starts_with("vigil_admission_requests_total{"))
        .filter_map(|l| l.rsplit(' ').next()?.parse::<f64>().ok())
        .sum()
}

#[test]
fn a_rolling_restart_behind_a_balancer_fails_no_create() {
    let cluster = Cluster::start();
    cluster
        .helm(&[
            "install",
            RELEASE,
            "charts/vigil",
            "--namespace",
            NAMESPACE,
            "--create-namespace",
            "--set",
            "policy.mode=enforce",
        ])
        .ok();
    cluster.namespace(ENFORCED);
    assert_eq!(
        cluster.failure_policy(RELEASE, "workloads.vigil.dev"),
        "Fail"
    );

    // Two replicas on loopback ports of their own; the balancer holds the Service's ClusterIP:443.
    let mut replicas: Vec<Webhook> = (0..2)
        .map(|_| Webhook::prepare(&cluster, NAMESPACE, RELEASE))
        .collect();
    let front = replicas[0].addr.clone();
    for w in &mut replicas {
        w.listen_on(SocketAddr::from(([127, 0, 0, 1], free_port())));
    }
    for w in &mut replicas {
        w.spawn();
    }
    let backends: Vec<_> = replicas
        .iter()
        .map(|w| (w.addr.parse().unwrap(), w.metrics))
        .collect();
    let _balancer = haproxy(&front, &backends);
    wait_for("HAProxy on the ClusterIP", Duration::from_secs(10), || {
        std::net::TcpStream::connect(&front).ok()
    });

    // A refused create proves the webhook is in the path: enforce denies a privileged pod.
    let privileged = json!({"apiVersion": "v1", "kind": "Pod",
        "metadata": {"name": "privileged", "namespace": ENFORCED},
        "spec": {"containers": [{"name": "app", "image": "nginx:1.27", "securityContext": {"privileged": true}}]}});
    let denied = cluster.kubectl_stdin(&["create", "-f", "-"], &privileged.to_string());
    assert!(denied.err().contains("vigil"), "{}", denied.stderr);

    // The client: creates without pause, BATCH pods per kubectl, until told to stop.
    let stop = Arc::new(AtomicBool::new(false));
    let creator = {
        let stop = stop.clone();
        let kubectl = cluster.kubectl_command("admin");
        let (program, envs, args): (Vec<_>, Vec<_>, Vec<_>) = (
            vec![kubectl.get_program().to_owned()],
            kubectl
                .get_envs()
                .filter_map(|(k, v)| Some((k.to_owned(), v?.to_owned())))
                .collect(),
            kubectl.get_args().map(|a| a.to_owned()).collect(),
        );
        std::thread::spawn(move || {
            let (mut created, mut failed, mut errors) = (0usize, 0usize, Vec::new());
            let mut n = 0;
            while !stop.load(Ordering::Acquire) {
                let items: Vec<_> = (0..BATCH)
                    .map(|i| {
                        json!({"apiVersion": "v1", "kind": "Pod",
                            "metadata": {"name": format!("rollout-{}", n + i), "namespace": ENFORCED},
                            "spec": {"containers": [{"name": "app", "image": "nginx:1.27"}]}})
                    })
                    .collect();
                n += BATCH;
                let list = json!({"apiVersion": "v1", "kind": "List", "items": items});
                let mut cmd = Command::new(&program[0]);
                cmd.envs(envs.iter().map(|(k, v)| (k, v))).args(&args);
                let out =
                    control_plane::run(cmd.args(["create", "-f", "-"]), Some(&list.to_string()));
                let ok = out
                    .stdout
                    .lines()
                    .filter(|l| l.ends_with(" created"))
                    .count();
                created += ok;
                failed += BATCH - ok;
                if ok < BATCH {
                    errors.push(out.stderr.clone());
                }
            }
            (created, failed, errors)
        })
    };

    std::thread::sleep(Duration::from_secs(3));
    let started = Instant::now();
    let mut timings = Vec::new();
    for (i, replica) in replicas.iter_mut().enumerate() {
        let served = answered(replica);
        let t = Instant::now();
        replica.stop();
        let stopped = t.elapsed();
        let t = Instant::now();
        replica.spawn();
        let ready = t.elapsed();
        // Back in the balancer (its check every 200 ms) before the next replica goes.
        std::thread::sleep(Duration::from_secs(2));
        eprintln!(
            "rollout: replica {i} had answered {served} reviews; SIGTERM to exit {stopped:?}, start to ready {ready:?}"
        );
        timings.push((served, stopped, ready));
    }
    std::thread::sleep(Duration::from_secs(3));
    stop.store(true, Ordering::Release);
    let (created, failed, errors) = creator.join().unwrap();
    let after: Vec<f64> = replicas.iter().map(answered).collect();
    eprintln!(
        "rollout: {created} pods created, {failed} failed, during a rolling restart of 2 replicas that took {:?} \
         (per replica: reviews answered before SIGTERM, SIGTERM to exit, start to ready: {timings:?}); \
         reviews answered since its restart by each replica: {after:?}",
        started.elapsed()
    );
    assert_eq!(failed, 0, "failed creates:\n{}", errors.join("\n"));
    assert!(created >= 50, "the client kept creating: {created}");
    // Each replica was serving the client's reviews when it got SIGTERM, so its connections were live.
    assert!(
        timings.iter().all(|(served, _, _)| *served > 0.0),
        "each replica was serving when it was restarted: {timings:?}"
    );
}
