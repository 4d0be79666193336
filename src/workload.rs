//! Pulls the metadata and the pod spec out of every covered kind, and walks every container list.
//!
//! The types here are a lean, typed view of the Kubernetes objects: only the fields a rule reads are kept,
//! everything else is skipped without being stored. A field that is present with the wrong type is a decode
//! error, so a rule never silently misses a value it was meant to judge. `null` is read the way the API
//! server's Go decoder reads it: as absent.

pub(crate) mod fast;

use std::borrow::Cow;
use std::collections::BTreeMap;
use std::fmt;

use serde::de::{self, Deserializer, IgnoredAny, MapAccess, Visitor};
use serde::{Deserialize, Serialize};

/// Reads `null` or an absent field as the type's default, as Go's decoder does for slices and maps.
fn nullable<'de, D, T>(d: D) -> Result<T, D::Error>
where
    D: Deserializer<'de>,
    T: Deserialize<'de> + Default,
{
    Ok(Option::<T>::deserialize(d)?.unwrap_or_default())
}

/// Reads a list of strings as Go's decoder does: `null` or absent is empty, and a `null` item is `""`.
pub(crate) fn nullable_strings<'de, D: Deserializer<'de>>(d: D) -> Result<Vec<String>, D::Error> {
    let items = Option::<Vec<Option<String>>>::deserialize(d)?.unwrap_or_default();
    Ok(items.into_iter().map(Option::unwrap_or_default).collect())
}

/// A string borrowed from the input when the deserializer can lend it (JSON text without escapes), and a
/// copy otherwise. serde's own `Cow<str>` always copies unless a derived field is marked `borrow`, which
/// does not reach keys or `Option`s.
pub(crate) struct Text<'de>(pub(crate) Cow<'de, str>);

impl<'de> Deserialize<'de> for Text<'de> {
    fn deserialize<D: Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        struct TextVisitor;
        impl<'de> Visitor<'de> for TextVisitor {
            type Value = Text<'de>;
            fn expecting(&self, f: &mut fmt::Formatter) -> fmt::Result {
                f.write_str("a string")
            }
            fn visit_borrowed_str<E: de::Error>(self, v: &'de str) -> Result<Text<'de>, E> {
                Ok(Text(Cow::Borrowed(v)))
            }
            fn visit_str<E: de::Error>(self, v: &str) -> Result<Text<'de>, E> {
                Ok(Text(Cow::Owned(v.to_owned())))
            }
            fn visit_string<E: de::Error>(self, v: String) -> Result<Text<'de>, E> {
                Ok(Text(Cow::Owned(v)))
            }
        }
        d.deserialize_str(TextVisitor)
    }
}

/// The pod-bearing kinds Vigil covers.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize)]
pub enum WorkloadKind {
    Pod,
    Deployment,
    ReplicaSet,
    StatefulSet,
    DaemonSet,
    Job,
    CronJob,
    ReplicationController,
    PodTemplate,
}

impl WorkloadKind {
    /// Every covered kind.
    pub const ALL: [WorkloadKind; 9] = [
        WorkloadKind::Pod,
        WorkloadKind::Deployment,
        WorkloadKind::ReplicaSet,
        WorkloadKind::StatefulSet,
        WorkloadKind::DaemonSet,
        WorkloadKind::Job,
        WorkloadKind::CronJob,
        WorkloadKind::ReplicationController,
        WorkloadKind::PodTemplate,
    ];

    /// The kind's name as Kubernetes spells it.
    pub fn as_str(self) -> &'static str {
        match self {
            WorkloadKind::Pod => "Pod",
            WorkloadKind::Deployment => "Deployment",
            WorkloadKind::ReplicaSet => "ReplicaSet",
            WorkloadKind::StatefulSet => "StatefulSet",
            WorkloadKind::DaemonSet => "DaemonSet",
            WorkloadKind::Job => "Job",
            WorkloadKind::CronJob => "CronJob",
            WorkloadKind::ReplicationController => "ReplicationController",
            WorkloadKind::PodTemplate => "PodTemplate",
        }
    }

    /// The API group the kind lives in (`""` for the core group).
    pub fn group(self) -> &'static str {
        match self {
            WorkloadKind::Pod | WorkloadKind::ReplicationController | WorkloadKind::PodTemplate => {
                ""
            }
            WorkloadKind::Deployment
            | WorkloadKind::ReplicaSet
            | WorkloadKind::StatefulSet
            | WorkloadKind::DaemonSet => "apps",
            WorkloadKind::Job | WorkloadKind::CronJob => "batch",
        }
    }

    /// Finds the covered kind for an API group and kind name.
    ///
    /// The kind compares case-insensitively, so that `POD` cannot be used to slip a pod past the rules. The
    /// legacy `extensions` group is accepted for the apps kinds it once served.
    pub fn from_group_kind(group: &str, kind: &str) -> Option<WorkloadKind> {
        let found = Self::ALL
            .into_iter()
            .find(|k| k.as_str().eq_ignore_ascii_case(kind))?;
        let group_ok = found.group() == group
            || (group == "extensions"
                && matches!(
                    found,
                    WorkloadKind::Deployment | WorkloadKind::ReplicaSet | WorkloadKind::DaemonSet
                ));
        group_ok.then_some(found)
    }

    /// The field path from the object's root to its pod spec.
    pub fn spec_path(self) -> &'static str {
        match self {
            WorkloadKind::Pod => "spec",
            WorkloadKind::CronJob => "spec.jobTemplate.spec.template.spec",
            WorkloadKind::PodTemplate => "template.spec",
            _ => "spec.template.spec",
        }
    }

    /// The field path from the object's root to the metadata that carries the pod's annotations.
    pub fn pod_metadata_path(self) -> &'static str {
        match self {
            WorkloadKind::Pod => "metadata",
            WorkloadKind::CronJob => "spec.jobTemplate.spec.template.metadata",
            WorkloadKind::PodTemplate => "template.metadata",
            _ => "spec.template.metadata",
        }
    }
}

impl fmt::Display for WorkloadKind {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

/// The object metadata Vigil reads.
#[derive(Debug, Clone, Default, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct ObjectMeta {
    #[serde(default)]
    pub name: Option<String>,
    #[serde(default)]
    pub generate_name: Option<String>,
    #[serde(default)]
    pub namespace: Option<String>,
    /// `None` when the object has no annotations map at all (JSONPatch needs to know).
    #[serde(default)]
    pub annotations: Option<Annotations>,
}

impl ObjectMeta {
    /// One annotation's value, for the annotations Vigil keeps (see `Annotations`).
    pub fn annotation(&self, key: &str) -> Option<&str> {
        self.annotations.as_ref()?.get(key)
    }
}

/// The annotations Vigil reads: AppArmor profiles and its own alert annotation. The others are skipped
/// unread, which keeps large ones such as kubectl's last-applied-configuration off the review path.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Annotations {
    kept: BTreeMap<String, String>,
}

impl Annotations {
    /// The key prefixes that are kept.
    pub const KEPT: [&'static str; 2] = [
        "container.apparmor.security.beta.kubernetes.io/",
        "vigil.dev/alert",
    ];

    fn is_kept(key: &str) -> bool {
        Self::KEPT.iter().any(|prefix| key.starts_with(prefix))
    }

    /// One kept annotation's value.
    pub fn get(&self, key: &str) -> Option<&str> {
        self.kept.get(key).map(String::as_str)
    }

    /// The kept annotations whose key starts with `prefix`, in key order.
    pub fn with_prefix<'a>(
        &'a self,
        prefix: &'a str,
    ) -> impl Iterator<Item = (&'a str, &'a str)> + 'a {
        self.kept
            .range::<str, _>((
                std::ops::Bound::Included(prefix),
                std::ops::Bound::Unbounded,
            ))
            .take_while(move |(k, _)| k.starts_with(prefix))
            .map(|(k, v)| (k.as_str(), v.as_str()))
    }
}

impl<'de> Deserialize<'de> for Annotations {
    fn deserialize<D: Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        struct AnnotationsVisitor;
        impl<'de> Visitor<'de> for AnnotationsVisitor {
            type Value = Annotations;
            fn expecting(&self, f: &mut fmt::Formatter) -> fmt::Result {
                f.write_str("a map of annotations")
            }
            fn visit_map<A: MapAccess<'de>>(self, mut map: A) -> Result<Annotations, A::Error> {
                let mut kept = BTreeMap::new();
                while let Some(Text(key)) = map.next_key::<Text<'de>>()? {
                    if Annotations::is_kept(&key) {
                        // A null value reads as empty, as in Go; the last of duplicate keys wins, as in Go.
                        let value = map.next_value::<Option<String>>()?.unwrap_or_default();
                        kept.insert(key.into_owned(), value);
                    } else {
                        map.next_value::<IgnoredAny>()?;
                    }
                }
                Ok(Annotations { kept })
            }
        }
        d.deserialize_map(AnnotationsVisitor)
    }
}

/// A pod template: metadata and spec.
#[derive(Debug, Clone, Default, Deserialize)]
#[serde(rename_all = "camelCase")]
struct PodTemplateSpec {
    #[serde(default, deserialize_with = "nullable")]
    metadata: ObjectMeta,
    #[serde(default)]
    spec: Option<PodSpec>,
}

/// The pod spec fields the rules judge.
#[derive(Debug, Clone, Default, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct PodSpec {
    #[serde(default)]
    pub host_network: Option<bool>,
    #[serde(default, rename = "hostPID")]
    pub host_pid: Option<bool>,
    #[serde(default, rename = "hostIPC")]
    pub host_ipc: Option<bool>,
    #[serde(default)]
    pub host_users: Option<bool>,
    #[serde(default)]
    pub os: Option<PodOs>,
    #[serde(default)]
    pub security_context: Option<PodSecurityContext>,
    #[serde(default, deserialize_with = "nullable")]
    pub init_containers: Vec<Container>,
    #[serde(default, deserialize_with = "nullable")]
    pub containers: Vec<Container>,
    #[serde(default, deserialize_with = "nullable")]
    pub ephemeral_containers: Vec<Container>,
    #[serde(default, deserialize_with = "nullable")]
    pub volumes: Vec<Volume>,
}

/// `spec.os`.
#[derive(Debug, Clone, Default, Deserialize)]
pub struct PodOs {
    #[serde(default)]
    pub name: Option<String>,
}

/// `spec.securityContext`.
#[derive(Debug, Clone, Default, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct PodSecurityContext {
    #[serde(default)]
    pub run_as_non_root: Option<bool>,
    #[serde(default)]
    pub run_as_user: Option<i64>,
    #[serde(default, rename = "seLinuxOptions")]
    pub se_linux_options: Option<SeLinuxOptions>,
    #[serde(default)]
    pub seccomp_profile: Option<SecurityProfile>,
    #[serde(default)]
    pub app_armor_profile: Option<SecurityProfile>,
    #[serde(default, deserialize_with = "nullable")]
    pub sysctls: Vec<Sysctl>,
    #[serde(default)]
    pub windows_options: Option<WindowsOptions>,
}

/// A container of any of the three lists.
#[derive(Debug, Clone, Default, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct Container {
    #[serde(default, deserialize_with = "nullable")]
    pub name: String,
    #[serde(default)]
    pub image: Option<String>,
    /// The entrypoint, as written (`secret-in-args` reads it with `args`).
    #[serde(default, deserialize_with = "nullable_strings")]
    pub command: Vec<String>,
    #[serde(default, deserialize_with = "nullable_strings")]
    pub args: Vec<String>,
    #[serde(default)]
    pub security_context: Option<SecurityContext>,
    #[serde(default, deserialize_with = "nullable")]
    pub ports: Vec<ContainerPort>,
    #[serde(default, deserialize_with = "nullable")]
    pub env: Vec<EnvVar>,
    #[serde(default)]
    pub liveness_probe: Option<Handler>,
    #[serde(default)]
    pub readiness_probe: Option<Handler>,
    #[serde(default)]
    pub startup_probe: Option<Handler>,
    #[serde(default)]
    pub lifecycle: Option<Lifecycle>,
}

/// A container's `securityContext`.
#[derive(Debug, Clone, Default, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct SecurityContext {
    #[serde(default)]
    pub privileged: Option<bool>,
    #[serde(default)]
    pub allow_privilege_escalation: Option<bool>,
    #[serde(default)]
    pub run_as_non_root: Option<bool>,
    #[serde(default)]
    pub run_as_user: Option<i64>,
    #[serde(default)]
    pub capabilities: Option<Capabilities>,
    #[serde(default)]
    pub proc_mount: Option<String>,
    #[serde(default, rename = "seLinuxOptions")]
    pub se_linux_options: Option<SeLinuxOptions>,
    #[serde(default)]
    pub seccomp_profile: Option<SecurityProfile>,
    #[serde(default)]
    pub app_armor_profile: Option<SecurityProfile>,
    #[serde(default)]
    pub windows_options: Option<WindowsOptions>,
}

/// `capabilities`.
#[derive(Debug, Clone, Default, Deserialize)]
pub struct Capabilities {
    #[serde(default, deserialize_with = "nullable")]
    pub add: Vec<String>,
    #[serde(default, deserialize_with = "nullable")]
    pub drop: Vec<String>,
}

/// `seLinuxOptions`.
#[derive(Debug, Clone, Default, Deserialize)]
pub struct SeLinuxOptions {
    #[serde(default, rename = "type")]
    pub type_: Option<String>,
    #[serde(default)]
    pub user: Option<String>,
    #[serde(default)]
    pub role: Option<String>,
}

/// `seccompProfile` or `appArmorProfile`: both name a profile by `type`.
#[derive(Debug, Clone, Default, Deserialize)]
pub struct SecurityProfile {
    #[serde(default, rename = "type")]
    pub type_: Option<String>,
}

impl SecurityProfile {
    /// Whether the profile confines: `RuntimeDefault` or `Localhost`, the values Pod Security allows for both
    /// seccomp and AppArmor. `Unconfined`, an empty or a missing type do not.
    pub fn confines(&self) -> bool {
        matches!(self.type_.as_deref(), Some("RuntimeDefault" | "Localhost"))
    }
}

/// `windowsOptions`.
#[derive(Debug, Clone, Default, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct WindowsOptions {
    #[serde(default)]
    pub host_process: Option<bool>,
}

/// One `sysctls` entry.
#[derive(Debug, Clone, Default, Deserialize)]
pub struct Sysctl {
    #[serde(default, deserialize_with = "nullable")]
    pub name: String,
}

/// One container port.
#[derive(Debug, Clone, Default, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct ContainerPort {
    #[serde(default)]
    pub host_port: Option<i32>,
}

/// One env entry. Only a literal `value` is ever judged; `valueFrom` is a reference, not a secret.
#[derive(Debug, Clone, Default, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct EnvVar {
    #[serde(default, deserialize_with = "nullable")]
    pub name: String,
    #[serde(default)]
    pub value: Option<String>,
}

/// A probe or a lifecycle handler: the parts that can name a host.
#[derive(Debug, Clone, Default, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct Handler {
    #[serde(default)]
    pub http_get: Option<HostField>,
    #[serde(default)]
    pub tcp_socket: Option<HostField>,
}

/// The `host` of an `httpGet` or `tcpSocket` handler.
#[derive(Debug, Clone, Default, Deserialize)]
pub struct HostField {
    #[serde(default)]
    pub host: Option<String>,
}

/// `lifecycle`.
#[derive(Debug, Clone, Default, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct Lifecycle {
    #[serde(default)]
    pub post_start: Option<Handler>,
    #[serde(default)]
    pub pre_stop: Option<Handler>,
}

/// A volume: its name, its hostPath if any, and which volume source it uses.
#[derive(Debug, Clone, Default)]
pub struct Volume {
    pub name: String,
    pub host_path: Option<String>,
    /// The keys of the volume sources that are set (normally exactly one), in the order given.
    pub sources: Vec<String>,
}

impl<'de> Deserialize<'de> for Volume {
    fn deserialize<D: Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        #[derive(Deserialize)]
        struct HostPathSource {
            #[serde(default, deserialize_with = "nullable")]
            path: String,
        }

        struct VolumeVisitor;
        impl<'de> Visitor<'de> for VolumeVisitor {
            type Value = Volume;
            fn expecting(&self, f: &mut fmt::Formatter) -> fmt::Result {
                f.write_str("a volume object")
            }
            fn visit_map<A: MapAccess<'de>>(self, mut map: A) -> Result<Volume, A::Error> {
                let mut volume = Volume::default();
                let mut seen_name = false;
                while let Some(Text(key)) = map.next_key::<Text<'de>>()? {
                    match key.as_ref() {
                        "name" => {
                            if seen_name {
                                return Err(de::Error::duplicate_field("name"));
                            }
                            seen_name = true;
                            volume.name = map.next_value::<Option<String>>()?.unwrap_or_default();
                        }
                        "hostPath" => {
                            if let Some(src) = map.next_value::<Option<HostPathSource>>()? {
                                volume.host_path = Some(src.path);
                                volume.sources.push(key.into_owned());
                            }
                        }
                        _ => {
                            // A source given as null is not set, as in Go.
                            if map.next_value::<Option<IgnoredAny>>()?.is_some() {
                                volume.sources.push(key.into_owned());
                            }
                        }
                    }
                }
                Ok(volume)
            }
        }
        d.deserialize_map(VolumeVisitor)
    }
}

/// Why an object could not be read as its kind.
#[derive(Debug, thiserror::Error)]
pub enum DecodeError {
    #[error("{path}: {message}")]
    Field { path: String, message: String },
    #[error("{0} has no pod spec (field {1} is missing or null)")]
    NoPodSpec(WorkloadKind, &'static str),
}

/// A decoded pod-bearing object: its own metadata, the metadata of its pod template, and the pod spec.
#[derive(Debug, Clone)]
pub struct Workload {
    pub kind: WorkloadKind,
    pub metadata: ObjectMeta,
    /// The pod template's metadata; `None` for a Pod, whose own metadata is the pod's.
    template_metadata: Option<ObjectMeta>,
    pub spec: PodSpec,
}

/// An object of one of the covered kinds, as decoded, before its pod spec is found.
enum Decoded {
    Pod(PodObject),
    CronJob(CronJobObject),
    PodTemplate(PodTemplateObject),
    Templated(TemplatedObject),
}

#[derive(Deserialize)]
struct PodObject {
    #[serde(default, deserialize_with = "nullable")]
    metadata: ObjectMeta,
    #[serde(default)]
    spec: Option<PodSpec>,
}

#[derive(Deserialize)]
struct TemplateSpec {
    #[serde(default)]
    template: Option<PodTemplateSpec>,
}

#[derive(Deserialize)]
struct TemplatedObject {
    #[serde(default, deserialize_with = "nullable")]
    metadata: ObjectMeta,
    #[serde(default)]
    spec: Option<TemplateSpec>,
}

#[derive(Deserialize)]
#[serde(rename_all = "camelCase")]
struct CronJobSpec {
    #[serde(default)]
    job_template: Option<JobTemplate>,
}

#[derive(Deserialize)]
struct JobTemplate {
    #[serde(default)]
    spec: Option<TemplateSpec>,
}

#[derive(Deserialize)]
struct CronJobObject {
    #[serde(default, deserialize_with = "nullable")]
    metadata: ObjectMeta,
    #[serde(default)]
    spec: Option<CronJobSpec>,
}

#[derive(Deserialize)]
struct PodTemplateObject {
    #[serde(default, deserialize_with = "nullable")]
    metadata: ObjectMeta,
    #[serde(default)]
    template: Option<PodTemplateSpec>,
}

impl Workload {
    /// Decodes an object of a covered kind from any serde deserializer (JSON for reviews, YAML for `check`).
    ///
    /// A decode failure names the field path inside the object.
    pub fn decode<'de, D>(kind: WorkloadKind, de: D) -> Result<Workload, DecodeError>
    where
        D: Deserializer<'de>,
    {
        fn read<'de, D: Deserializer<'de>, T: Deserialize<'de>>(de: D) -> Result<T, DecodeError> {
            serde_path_to_error::deserialize(de).map_err(|e| {
                let path = e.path().to_string();
                DecodeError::Field {
                    path: if path == "." {
                        "(object)".to_owned()
                    } else {
                        path
                    },
                    message: e.into_inner().to_string(),
                }
            })
        }
        let decoded = match kind {
            WorkloadKind::Pod => Decoded::Pod(read(de)?),
            WorkloadKind::CronJob => Decoded::CronJob(read(de)?),
            WorkloadKind::PodTemplate => Decoded::PodTemplate(read(de)?),
            _ => Decoded::Templated(read(de)?),
        };
        Self::assemble(kind, decoded)
    }

    /// Finds the pod spec in a decoded object.
    fn assemble(kind: WorkloadKind, decoded: Decoded) -> Result<Workload, DecodeError> {
        let missing = || DecodeError::NoPodSpec(kind, kind.spec_path());
        let (metadata, template) = match decoded {
            Decoded::Pod(pod) => {
                return Ok(Workload {
                    kind,
                    metadata: pod.metadata,
                    template_metadata: None,
                    spec: pod.spec.ok_or_else(missing)?,
                });
            }
            Decoded::CronJob(cj) => {
                let template = cj
                    .spec
                    .and_then(|s| s.job_template)
                    .and_then(|j| j.spec)
                    .and_then(|s| s.template);
                (cj.metadata, template)
            }
            Decoded::PodTemplate(pt) => (pt.metadata, pt.template),
            Decoded::Templated(obj) => (obj.metadata, obj.spec.and_then(|s| s.template)),
        };
        let template = template.ok_or_else(missing)?;
        let spec = template.spec.ok_or_else(missing)?;
        Ok(Workload {
            kind,
            metadata,
            template_metadata: Some(template.metadata),
            spec,
        })
    }

    /// Decodes an object from JSON text. The review path's fast way: the field path of an error is worked
    /// out only when there is an error.
    pub fn from_json(kind: WorkloadKind, json: &str) -> Result<Workload, DecodeError> {
        let fast = match kind {
            WorkloadKind::Pod => serde_json::from_str(json).map(Decoded::Pod),
            WorkloadKind::CronJob => serde_json::from_str(json).map(Decoded::CronJob),
            WorkloadKind::PodTemplate => serde_json::from_str(json).map(Decoded::PodTemplate),
            _ => serde_json::from_str(json).map(Decoded::Templated),
        };
        match fast {
            Ok(decoded) => Self::assemble(kind, decoded),
            Err(first) => {
                let mut de = serde_json::Deserializer::from_str(json);
                let located = Self::decode(kind, &mut de).and_then(|w| {
                    de.end().map(|_| w).map_err(|e| DecodeError::Field {
                        path: "(object)".to_owned(),
                        message: e.to_string(),
                    })
                });
                // The second pass finds the path; should it disagree, the first error still stands.
                match located {
                    Err(e) => Err(e),
                    Ok(_) => Err(DecodeError::Field {
                        path: "(object)".to_owned(),
                        message: first.to_string(),
                    }),
                }
            }
        }
    }

    /// The metadata that carries the pod's annotations: the object's own for a Pod, the template's for the
    /// others.
    pub fn pod_metadata(&self) -> &ObjectMeta {
        self.template_metadata.as_ref().unwrap_or(&self.metadata)
    }

    /// Every container of every list, with where it sits.
    pub fn containers(&self) -> impl Iterator<Item = ContainerRef<'_>> {
        let lists = [
            (ContainerList::Init, &self.spec.init_containers),
            (ContainerList::Regular, &self.spec.containers),
            (ContainerList::Ephemeral, &self.spec.ephemeral_containers),
        ];
        lists.into_iter().flat_map(|(list, items)| {
            items
                .iter()
                .enumerate()
                .map(move |(index, container)| ContainerRef {
                    list,
                    index,
                    container,
                })
        })
    }

    /// The field path of the pod spec inside this object.
    pub fn spec_path(&self) -> &'static str {
        self.kind.spec_path()
    }
}

/// Which container list a container sits in.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ContainerList {
    Init,
    Regular,
    Ephemeral,
}

impl ContainerList {
    /// The list's field name in the pod spec.
    pub fn field(self) -> &'static str {
        match self {
            ContainerList::Init => "initContainers",
            ContainerList::Regular => "containers",
            ContainerList::Ephemeral => "ephemeralContainers",
        }
    }
}

/// A container together with its place in the pod spec.
#[derive(Debug, Clone, Copy)]
pub struct ContainerRef<'a> {
    pub list: ContainerList,
    pub index: usize,
    pub container: &'a Container,
}

impl ContainerRef<'_> {
    /// The container's path relative to the pod spec, e.g. `initContainers[1]`.
    pub fn path(&self) -> String {
        format!("{}[{}]", self.list.field(), self.index)
    }

    /// The container's name.
    pub fn name(&self) -> &str {
        &self.container.name
    }

    /// The container's security context, if any.
    pub fn security_context(&self) -> Option<&SecurityContext> {
        self.container.security_context.as_ref()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn kinds_match_group_and_ignore_case() {
        assert_eq!(
            WorkloadKind::from_group_kind("", "Pod"),
            Some(WorkloadKind::Pod)
        );
        assert_eq!(
            WorkloadKind::from_group_kind("", "POD"),
            Some(WorkloadKind::Pod)
        );
        assert_eq!(
            WorkloadKind::from_group_kind("batch", "cronjob"),
            Some(WorkloadKind::CronJob)
        );
        assert_eq!(
            WorkloadKind::from_group_kind("extensions", "Deployment"),
            Some(WorkloadKind::Deployment)
        );
        assert_eq!(WorkloadKind::from_group_kind("apps", "Pod"), None);
        assert_eq!(
            WorkloadKind::from_group_kind("example.com", "Deployment"),
            None
        );
        assert_eq!(WorkloadKind::from_group_kind("", "ConfigMap"), None);
    }

    #[test]
    fn cronjob_reaches_its_pod_spec() {
        let json = r#"{"metadata":{"name":"c"},"spec":{"jobTemplate":{"spec":{"template":{
            "metadata":{"annotations":{"container.apparmor.security.beta.kubernetes.io/i0":"runtime/default","other":"x"}},
            "spec":{"initContainers":[{"name":"i0","image":"x"},{"name":"i1","image":"y"}],
                    "containers":[{"name":"c","image":"z"}]}}}}}}"#;
        let w = Workload::from_json(WorkloadKind::CronJob, json).unwrap();
        let paths: Vec<_> = w.containers().map(|c| c.path()).collect();
        assert_eq!(
            paths,
            ["initContainers[0]", "initContainers[1]", "containers[0]"]
        );
        assert_eq!(
            w.pod_metadata()
                .annotation("container.apparmor.security.beta.kubernetes.io/i0"),
            Some("runtime/default")
        );
        assert_eq!(
            w.pod_metadata().annotation("other"),
            None,
            "only the annotations Vigil reads are kept"
        );
        assert_eq!(w.spec_path(), "spec.jobTemplate.spec.template.spec");
    }

    #[test]
    fn nulls_read_as_absent() {
        let json = r#"{"metadata":null,"spec":{"containers":[{"name":"a","securityContext":null,
            "env":null,"ports":null}],"volumes":[{"name":"v","emptyDir":null,"configMap":{}}]}}"#;
        let w = Workload::from_json(WorkloadKind::Pod, json).unwrap();
        assert!(w.spec.containers[0].security_context.is_none());
        assert_eq!(w.spec.volumes[0].sources, ["configMap"]);
    }

    #[test]
    fn wrong_types_name_the_field() {
        let json =
            r#"{"spec":{"containers":[{"name":"a","securityContext":{"privileged":"yes"}}]}}"#;
        let err = Workload::from_json(WorkloadKind::Pod, json)
            .unwrap_err()
            .to_string();
        assert!(
            err.starts_with("spec.containers[0].securityContext.privileged:"),
            "{err}"
        );
        let err = Workload::from_json(
            WorkloadKind::Pod,
            r#"{"spec":{"containers":[{"image":5}]}}"#,
        )
        .unwrap_err()
        .to_string();
        assert!(err.starts_with("spec.containers[0].image:"), "{err}");
    }

    #[test]
    fn missing_or_null_spec_is_an_error() {
        for json in [r#"{"spec":null}"#, r#"{}"#] {
            let err = Workload::from_json(WorkloadKind::Pod, json).unwrap_err();
            assert!(matches!(
                err,
                DecodeError::NoPodSpec(WorkloadKind::Pod, "spec")
            ));
        }
        let err = Workload::from_json(WorkloadKind::Deployment, r#"{"spec":{"template":null}}"#)
            .unwrap_err();
        assert_eq!(
            err.to_string(),
            "Deployment has no pod spec (field spec.template.spec is missing or null)"
        );
    }

    #[test]
    fn duplicate_keys_are_rejected() {
        let json = r#"{"spec":{"containers":[{"name":"a","securityContext":{"privileged":false,"privileged":true}}]}}"#;
        assert!(Workload::from_json(WorkloadKind::Pod, json).is_err());
    }
}
