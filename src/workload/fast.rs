//! The review path's decode of a workload with `json::Reader`: the same fields, defaults and `null` handling
//! as the serde types in `workload.rs`, which stay the reference (and the decoder for YAML). Anything the
//! reader gives up on is decoded by serde instead.

use std::collections::BTreeMap;

use super::*;
use crate::json::{Bail, Read, Reader, fields, list, opt, string};

fn opt_string(r: &mut Reader<'_>) -> Read<Option<String>> {
    opt(r, string)
}

/// `nullable` for a string: `null` is `""`.
fn nullable_string(r: &mut Reader<'_>) -> Read<String> {
    opt_string(r).map(Option::unwrap_or_default)
}

/// `nullable_strings`: `null` is empty, and a `null` item is `""`.
fn strings(r: &mut Reader<'_>) -> Read<Vec<String>> {
    list(r, nullable_string)
}

fn opt_bool(r: &mut Reader<'_>) -> Read<Option<bool>> {
    opt(r, Reader::bool)
}

fn metadata(r: &mut Reader<'_>) -> Read<ObjectMeta> {
    let mut m = ObjectMeta::default();
    if r.null()? {
        return Ok(m);
    }
    fields!(r, {
        "name" => m.name = opt_string(r)?,
        "generateName" => m.generate_name = opt_string(r)?,
        "namespace" => m.namespace = opt_string(r)?,
        "annotations" => m.annotations = opt(r, annotations)?,
    })?;
    Ok(m)
}

fn annotations(r: &mut Reader<'_>) -> Read<Annotations> {
    let mut kept = BTreeMap::new();
    r.object(|r, key| {
        if Annotations::is_kept(key) {
            // As in the serde decoder: null is empty, and the last of duplicate keys wins.
            kept.insert(key.to_owned(), nullable_string(r)?);
            Ok(())
        } else {
            r.skip()
        }
    })?;
    Ok(Annotations { kept })
}

fn template(r: &mut Reader<'_>) -> Read<PodTemplateSpec> {
    let mut t = PodTemplateSpec::default();
    fields!(r, {
        "metadata" => t.metadata = metadata(r)?,
        "spec" => t.spec = opt(r, pod_spec)?,
    })?;
    Ok(t)
}

fn pod_spec(r: &mut Reader<'_>) -> Read<PodSpec> {
    let mut s = PodSpec::default();
    fields!(r, {
        "hostNetwork" => s.host_network = opt_bool(r)?,
        "hostPID" => s.host_pid = opt_bool(r)?,
        "hostIPC" => s.host_ipc = opt_bool(r)?,
        "hostUsers" => s.host_users = opt_bool(r)?,
        "os" => s.os = opt(r, |r| {
            let mut os = PodOs::default();
            fields!(r, { "name" => os.name = opt_string(r)?, })?;
            Ok(os)
        })?,
        "securityContext" => s.security_context = opt(r, pod_security_context)?,
        "initContainers" => s.init_containers = list(r, container)?,
        "containers" => s.containers = list(r, container)?,
        "ephemeralContainers" => s.ephemeral_containers = list(r, container)?,
        "volumes" => s.volumes = list(r, volume)?,
    })?;
    Ok(s)
}

fn pod_security_context(r: &mut Reader<'_>) -> Read<PodSecurityContext> {
    let mut c = PodSecurityContext::default();
    fields!(r, {
        "runAsNonRoot" => c.run_as_non_root = opt_bool(r)?,
        "runAsUser" => c.run_as_user = opt(r, Reader::int)?,
        "seLinuxOptions" => c.se_linux_options = opt(r, se_linux_options)?,
        "seccompProfile" => c.seccomp_profile = opt(r, profile)?,
        "appArmorProfile" => c.app_armor_profile = opt(r, profile)?,
        "sysctls" => c.sysctls = list(r, |r| {
            let mut s = Sysctl::default();
            fields!(r, { "name" => s.name = nullable_string(r)?, })?;
            Ok(s)
        })?,
        "windowsOptions" => c.windows_options = opt(r, windows_options)?,
    })?;
    Ok(c)
}

fn container(r: &mut Reader<'_>) -> Read<Container> {
    let mut c = Container::default();
    fields!(r, {
        "name" => c.name = nullable_string(r)?,
        "image" => c.image = opt_string(r)?,
        "command" => c.command = strings(r)?,
        "args" => c.args = strings(r)?,
        "securityContext" => c.security_context = opt(r, security_context)?,
        "ports" => c.ports = list(r, |r| {
            let mut p = ContainerPort::default();
            fields!(r, { "hostPort" => p.host_port = opt(r, Reader::int)?, })?;
            Ok(p)
        })?,
        "env" => c.env = list(r, |r| {
            let mut e = EnvVar::default();
            fields!(r, {
                "name" => e.name = nullable_string(r)?,
                "value" => e.value = opt_string(r)?,
            })?;
            Ok(e)
        })?,
        "livenessProbe" => c.liveness_probe = opt(r, handler)?,
        "readinessProbe" => c.readiness_probe = opt(r, handler)?,
        "startupProbe" => c.startup_probe = opt(r, handler)?,
        "lifecycle" => c.lifecycle = opt(r, |r| {
            let mut l = Lifecycle::default();
            fields!(r, {
                "postStart" => l.post_start = opt(r, handler)?,
                "preStop" => l.pre_stop = opt(r, handler)?,
            })?;
            Ok(l)
        })?,
    })?;
    Ok(c)
}

fn security_context(r: &mut Reader<'_>) -> Read<SecurityContext> {
    let mut c = SecurityContext::default();
    fields!(r, {
        "privileged" => c.privileged = opt_bool(r)?,
        "allowPrivilegeEscalation" => c.allow_privilege_escalation = opt_bool(r)?,
        "runAsNonRoot" => c.run_as_non_root = opt_bool(r)?,
        "runAsUser" => c.run_as_user = opt(r, Reader::int)?,
        "capabilities" => c.capabilities = opt(r, |r| {
            let mut caps = Capabilities::default();
            fields!(r, {
                "add" => caps.add = list(r, string)?,
                "drop" => caps.drop = list(r, string)?,
            })?;
            Ok(caps)
        })?,
        "procMount" => c.proc_mount = opt_string(r)?,
        "seLinuxOptions" => c.se_linux_options = opt(r, se_linux_options)?,
        "seccompProfile" => c.seccomp_profile = opt(r, profile)?,
        "appArmorProfile" => c.app_armor_profile = opt(r, profile)?,
        "windowsOptions" => c.windows_options = opt(r, windows_options)?,
    })?;
    Ok(c)
}

fn se_linux_options(r: &mut Reader<'_>) -> Read<SeLinuxOptions> {
    let mut o = SeLinuxOptions::default();
    fields!(r, {
        "type" => o.type_ = opt_string(r)?,
        "user" => o.user = opt_string(r)?,
        "role" => o.role = opt_string(r)?,
    })?;
    Ok(o)
}

fn profile(r: &mut Reader<'_>) -> Read<SecurityProfile> {
    let mut p = SecurityProfile::default();
    fields!(r, { "type" => p.type_ = opt_string(r)?, })?;
    Ok(p)
}

fn windows_options(r: &mut Reader<'_>) -> Read<WindowsOptions> {
    let mut o = WindowsOptions::default();
    fields!(r, { "hostProcess" => o.host_process = opt_bool(r)?, })?;
    Ok(o)
}

fn handler(r: &mut Reader<'_>) -> Read<Handler> {
    let host = |r: &mut Reader<'_>| {
        let mut h = HostField::default();
        fields!(r, { "host" => h.host = opt_string(r)?, })?;
        Ok(h)
    };
    let mut h = Handler::default();
    fields!(r, {
        "httpGet" => h.http_get = opt(r, host)?,
        "tcpSocket" => h.tcp_socket = opt(r, host)?,
    })?;
    Ok(h)
}

/// As `Volume`'s serde decoder: a duplicate `name` is refused; every source key that is not `null` is kept,
/// in order, duplicates included; the last `hostPath` gives the path.
fn volume(r: &mut Reader<'_>) -> Read<Volume> {
    let mut v = Volume::default();
    let mut seen_name = false;
    r.object(|r, key| {
        match key {
            "name" => {
                if std::mem::replace(&mut seen_name, true) {
                    return Err(Bail);
                }
                v.name = nullable_string(r)?;
            }
            "hostPath" => {
                let source = opt(r, |r| {
                    let mut path = String::new();
                    fields!(r, { "path" => path = nullable_string(r)?, })?;
                    Ok(path)
                })?;
                if let Some(path) = source {
                    v.host_path = Some(path);
                    v.sources.push(key.to_owned());
                }
            }
            _ => {
                if !r.null()? {
                    r.skip()?;
                    v.sources.push(key.to_owned());
                }
            }
        }
        Ok(())
    })?;
    Ok(v)
}

/// An object of `kind`, `null` giving `None`: what `WorkloadSeed` gives.
pub(crate) fn workload(
    r: &mut Reader<'_>,
    kind: WorkloadKind,
) -> Read<Option<Result<Workload, DecodeError>>> {
    if r.null()? {
        return Ok(None);
    }
    let template_spec = |r: &mut Reader<'_>| {
        let mut s = TemplateSpec { template: None };
        fields!(r, { "template" => s.template = opt(r, template)?, })?;
        Ok(s)
    };
    let mut metadata_seen = ObjectMeta::default();
    let decoded = match kind {
        WorkloadKind::Pod => {
            let mut spec = None;
            fields!(r, {
                "metadata" => metadata_seen = metadata(r)?,
                "spec" => spec = opt(r, pod_spec)?,
            })?;
            Decoded::Pod(PodObject {
                metadata: metadata_seen,
                spec,
            })
        }
        WorkloadKind::CronJob => {
            let mut spec = None;
            fields!(r, {
                "metadata" => metadata_seen = metadata(r)?,
                "spec" => spec = opt(r, |r| {
                    let mut s = CronJobSpec { job_template: None };
                    fields!(r, {
                        "jobTemplate" => s.job_template = opt(r, |r| {
                            let mut j = JobTemplate { spec: None };
                            fields!(r, { "spec" => j.spec = opt(r, template_spec)?, })?;
                            Ok(j)
                        })?,
                    })?;
                    Ok(s)
                })?,
            })?;
            Decoded::CronJob(CronJobObject {
                metadata: metadata_seen,
                spec,
            })
        }
        WorkloadKind::PodTemplate => {
            let mut template_field = None;
            fields!(r, {
                "metadata" => metadata_seen = metadata(r)?,
                "template" => template_field = opt(r, template)?,
            })?;
            Decoded::PodTemplate(PodTemplateObject {
                metadata: metadata_seen,
                template: template_field,
            })
        }
        _ => {
            let mut spec = None;
            fields!(r, {
                "metadata" => metadata_seen = metadata(r)?,
                "spec" => spec = opt(r, template_spec)?,
            })?;
            Decoded::Templated(TemplatedObject {
                metadata: metadata_seen,
                spec,
            })
        }
    };
    Ok(Some(Workload::assemble(kind, decoded)))
}
