//! The rule catalogue: one file per rule id, each a pure check from a pod view to findings.
//!
//! A rule knows nothing of modes, exemptions or requests. It reads the pod spec (or, for the rules about
//! running pods, what a CONNECT asks for) and reports what it sees, with a field path into the original
//! object. The engine decides what each finding means.

use std::borrow::Cow;
use std::fmt;

use serde::Serialize;

use crate::connect::Connect;
use crate::image::{ImageRef, ImageRefError};
use crate::policy::{Mode, Profile, RuleOptions};
use crate::registry::{Lookup, RegistryFacts};
use crate::signature::SignatureCheck;
use crate::workload::{Container, ContainerList, Workload};

mod apparmor;
mod capabilities;
mod ephemeral_containers;
mod host_namespaces;
pub mod host_path;
mod host_ports;
mod host_probes;
mod image_digest;
mod image_digest_deny;
mod image_registry;
mod image_resolvable;
mod image_runs_as_root;
pub mod image_signature;
mod image_tag;
mod image_tag_moved;
mod pod_exec;
mod policy_change;
mod port_forward;
mod privilege_escalation;
mod privileged;
mod proc_mount;
mod run_as_non_root;
mod seccomp;
pub mod secret_in_args;
pub mod secret_in_env;
mod selinux;
mod sysctls;
mod volume_types;
mod windows_host_process;

/// How bad a finding is.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize)]
#[serde(rename_all = "lowercase")]
pub enum Severity {
    Low,
    Medium,
    High,
    Critical,
}

impl Severity {
    /// The name used in alerts and reports.
    pub fn as_str(self) -> &'static str {
        match self {
            Severity::Low => "low",
            Severity::Medium => "medium",
            Severity::High => "high",
            Severity::Critical => "critical",
        }
    }
}

/// Which policies turn a rule on without the policy naming it.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
#[serde(rename_all = "lowercase")]
pub enum RuleProfile {
    /// On under `baseline` and `restricted`.
    Baseline,
    /// On under `restricted` only.
    Restricted,
    /// On only when the policy configures it.
    Configured,
    /// About edits of the policy ConfigMap, not pods; always on.
    PolicyEdits,
}

/// A rule's mode when the policy does not set one.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum DefaultMode {
    /// The policy's `mode`.
    Policy,
    /// A fixed mode, whatever the policy's `mode` says.
    Fixed(Mode),
}

impl fmt::Display for DefaultMode {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            DefaultMode::Policy => f.write_str("policy"),
            DefaultMode::Fixed(mode) => f.write_str(mode.as_str()),
        }
    }
}

macro_rules! rule_ids {
    ($($variant:ident => $id:literal,)*) => {
        /// A stable rule id. Ids are never renamed.
        #[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash)]
        pub enum RuleId { $($variant,)* }

        impl RuleId {
            /// Every rule id, in catalogue order.
            pub const ALL: &'static [RuleId] = &[$(RuleId::$variant,)*];

            /// The id as written in policies and alerts.
            pub fn as_str(self) -> &'static str {
                match self { $(RuleId::$variant => $id,)* }
            }

            /// Looks an id up by its name.
            pub fn parse(name: &str) -> Option<RuleId> {
                match name { $($id => Some(RuleId::$variant),)* _ => None }
            }
        }
    };
}

rule_ids! {
    Privileged => "privileged",
    HostNamespaces => "host-namespaces",
    HostPorts => "host-ports",
    HostPath => "host-path",
    Capabilities => "capabilities",
    ProcMount => "proc-mount",
    Seccomp => "seccomp",
    AppArmor => "apparmor",
    SeLinux => "selinux",
    Sysctls => "sysctls",
    WindowsHostProcess => "windows-host-process",
    HostProbes => "host-probes",
    PrivilegeEscalation => "privilege-escalation",
    RunAsNonRoot => "run-as-non-root",
    VolumeTypes => "volume-types",
    EphemeralContainers => "ephemeral-containers",
    ImageRegistry => "image-registry",
    ImageTag => "image-tag",
    ImageDigest => "image-digest",
    SecretInEnv => "secret-in-env",
    ImageResolvable => "image-resolvable",
    ImageDigestDeny => "image-digest-deny",
    ImageTagMoved => "image-tag-moved",
    ImageRunsAsRoot => "image-runs-as-root",
    ImageSignature => "image-signature",
    PolicyChange => "policy-change",
    SecretInArgs => "secret-in-args",
    PodExec => "pod-exec",
    PortForward => "port-forward",
}

impl RuleId {
    /// The rule's catalogue entry.
    pub fn rule(self) -> &'static Rule {
        &CATALOGUE[self as usize]
    }
}

impl fmt::Display for RuleId {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

impl Serialize for RuleId {
    fn serialize<S: serde::Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        s.serialize_str(self.as_str())
    }
}

/// A catalogue entry: what a rule is, and its check.
pub struct Rule {
    pub id: RuleId,
    /// The severity of a typical finding; a finding may grade itself higher (host-path does).
    pub severity: Severity,
    pub techniques: &'static [&'static str],
    pub profile: RuleProfile,
    pub default_mode: DefaultMode,
    /// One line, for `vigil rules` and the README.
    pub description: &'static str,
    /// Whether the finding is about the image itself, so that a changed image counts as a new finding.
    pub about_image: bool,
    pub check: Check,
}

/// What a rule judges, with its check.
#[derive(Clone, Copy)]
pub enum Check {
    /// A pod spec: every pod-bearing kind, on CREATE and UPDATE.
    Pod(fn(&PodView<'_>, &CheckContext<'_>, &mut Vec<Finding>)),
    /// A CONNECT into a running pod: exec, attach or port-forward. There is no pod spec to read.
    Connect(fn(&Connect, &mut Vec<Finding>)),
}

/// Every rule, indexed by `RuleId as usize`.
pub static CATALOGUE: [Rule; 29] = [
    privileged::RULE,
    host_namespaces::RULE,
    host_ports::RULE,
    host_path::RULE,
    capabilities::RULE,
    proc_mount::RULE,
    seccomp::RULE,
    apparmor::RULE,
    selinux::RULE,
    sysctls::RULE,
    windows_host_process::RULE,
    host_probes::RULE,
    privilege_escalation::RULE,
    run_as_non_root::RULE,
    volume_types::RULE,
    ephemeral_containers::RULE,
    image_registry::RULE,
    image_tag::RULE,
    image_digest::RULE,
    secret_in_env::RULE,
    image_resolvable::RULE,
    image_digest_deny::RULE,
    image_tag_moved::RULE,
    image_runs_as_root::RULE,
    image_signature::RULE,
    policy_change::RULE,
    secret_in_args::RULE,
    pod_exec::RULE,
    port_forward::RULE,
];

/// What a rule's check may read besides the pod: the policy's profile, the rule options, and what the
/// registries said about the pod's images (when look-ups were made).
pub struct CheckContext<'a> {
    pub profile: Profile,
    pub options: &'a RuleOptions,
    pub registry: Option<&'a RegistryFacts>,
}

/// One container, with where it sits and its parsed image.
pub struct ContainerView<'a> {
    pub list: ContainerList,
    pub index: usize,
    pub container: &'a Container,
    /// `None` when the container names no image.
    pub image: Option<Result<ImageRef, ImageRefError>>,
    /// The image as alerts show it, made once when first asked for.
    display: std::cell::OnceCell<Option<String>>,
}

impl ContainerView<'_> {
    /// The container's name.
    pub fn name(&self) -> &str {
        &self.container.name
    }

    /// The image's normalized form, or the raw string when it does not parse.
    pub fn image_display(&self) -> Option<&str> {
        self.display
            .get_or_init(|| match &self.image {
                Some(Ok(image)) => Some(image.to_string()),
                Some(Err(_)) => self.container.image.clone(),
                None => None,
            })
            .as_deref()
    }
}

/// A workload prepared for the checks: every container of every list, each image parsed once.
pub struct PodView<'a> {
    pub workload: &'a Workload,
    pub containers: Vec<ContainerView<'a>>,
}

impl<'a> PodView<'a> {
    /// Prepares a workload for the checks.
    pub fn new(workload: &'a Workload) -> PodView<'a> {
        let containers = workload
            .containers()
            .map(|c| ContainerView {
                list: c.list,
                index: c.index,
                container: c.container,
                image: c.container.image.as_deref().map(ImageRef::parse),
                display: std::cell::OnceCell::new(),
            })
            .collect();
        PodView {
            workload,
            containers,
        }
    }

    /// Whether the pod declares itself a Windows pod (`spec.os.name: windows`).
    pub fn is_windows(&self) -> bool {
        self.workload
            .spec
            .os
            .as_ref()
            .and_then(|os| os.name.as_deref())
            == Some("windows")
    }

    /// A finding about a pod-level field; `rel` is the path below the pod spec.
    pub fn pod_finding(
        &self,
        rule: RuleId,
        rel: &str,
        subject: impl Into<Cow<'static, str>>,
        message: String,
    ) -> Finding {
        Finding {
            rule,
            severity: rule.rule().severity,
            container: None,
            field: format!("{}.{rel}", self.workload.spec_path()),
            subject: subject.into(),
            message,
            max_mode: None,
        }
    }

    /// A finding about the pod's annotations; `key` is the annotation key.
    pub fn annotation_finding(
        &self,
        rule: RuleId,
        key: &str,
        container: Option<usize>,
        message: String,
    ) -> Finding {
        Finding {
            rule,
            severity: rule.rule().severity,
            container,
            field: format!(
                "{}.annotations[{key}]",
                self.workload.kind.pod_metadata_path()
            ),
            subject: Cow::Owned(key.to_owned()),
            message,
            max_mode: None,
        }
    }

    /// A finding about a container; `rel` is the path below the container.
    pub fn container_finding(
        &self,
        rule: RuleId,
        position: usize,
        rel: &str,
        subject: impl Into<Cow<'static, str>>,
        message: String,
    ) -> Finding {
        let c = &self.containers[position];
        Finding {
            rule,
            severity: rule.rule().severity,
            container: Some(position),
            field: format!(
                "{}.{}[{}].{rel}",
                self.workload.spec_path(),
                c.list.field(),
                c.index
            ),
            subject: subject.into(),
            message,
            max_mode: None,
        }
    }

    /// The containers with their position in `containers`.
    pub fn iter(&self) -> impl Iterator<Item = (usize, &ContainerView<'a>)> {
        self.containers.iter().enumerate()
    }
}

/// What a rule saw: a value, not an error.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Finding {
    pub rule: RuleId,
    pub severity: Severity,
    /// Position in `PodView::containers`, for a container-level finding.
    pub container: Option<usize>,
    /// Path of the offending field in the original object.
    pub field: String,
    /// What, within the rule and the container, the finding is about (a capability, a path, a field). With
    /// the rule and the container name, it says whether an old object had the same finding.
    pub subject: Cow<'static, str>,
    pub message: String,
    /// The most this finding may do whatever its rule's mode: a registry that could not answer under
    /// `onError: allow` is recorded (audit), never denied.
    pub max_mode: Option<Mode>,
}

impl Finding {
    /// Limits what this finding may do to `mode`.
    pub fn at_most(mut self, mode: Mode) -> Finding {
        self.max_mode = Some(mode);
        self
    }

    /// Raises the severity of this finding.
    pub fn with_severity(mut self, severity: Severity) -> Finding {
        self.severity = severity;
        self
    }
}

impl<'a> CheckContext<'a> {
    /// What the registry said about a container's image, for the registry rules. Without look-ups (none
    /// were made, or the image was not asked about), the image is not verified.
    pub fn lookup(&self, container: &ContainerView<'_>) -> Lookup {
        let image = container.container.image.as_deref().unwrap_or_default();
        match self.registry {
            None => Lookup::Unverified(
                "registry look-ups are not enabled here (vigil check needs --resolve)".to_owned(),
            ),
            Some(facts) => facts
                .get(image)
                .cloned()
                .unwrap_or_else(|| Lookup::Unverified("the image was not looked up".to_owned())),
        }
    }

    /// What the signature look-up said about a container's image, for `image-signature`.
    pub fn signature(&self, container: &ContainerView<'_>) -> SignatureCheck {
        let image = container.container.image.as_deref().unwrap_or_default();
        match self.registry {
            None => SignatureCheck::Unverified(
                "registry look-ups are not enabled here (vigil check needs --resolve)".to_owned(),
            ),
            Some(facts) => facts.signature(image).cloned().unwrap_or_else(|| {
                SignatureCheck::Unverified("the image's signatures were not looked up".to_owned())
            }),
        }
    }

    /// Builds the finding for an image the registry could not vouch for: recorded as "not verified" with
    /// the reason, and denying only under `onError: deny`.
    pub fn unverified(
        &self,
        pod: &PodView<'_>,
        rule: RuleId,
        position: usize,
        why: &str,
    ) -> Finding {
        let c = &pod.containers[position];
        let finding = pod.container_finding(
            rule,
            position,
            "image",
            "unverified",
            format!(
                "container {:?} image {} not verified: {why}",
                c.name(),
                c.image_display().unwrap_or_default()
            ),
        );
        match self.options.on_error(rule) {
            crate::policy::OnError::Deny => finding,
            crate::policy::OnError::Allow => finding.at_most(Mode::Audit),
        }
    }
}

/// Does the rules' one-time work (compiling their patterns) ahead of the first review, so that the first
/// review after a start costs what every other does.
pub fn warm_up() {
    secret_in_env::compile_patterns();
}

/// Runs one rule over a pod; a rule about CONNECT finds nothing there. Used by the engine and by the rule
/// tests.
pub fn run(rule: RuleId, pod: &PodView<'_>, cx: &CheckContext<'_>, out: &mut Vec<Finding>) {
    if let Check::Pod(check) = rule.rule().check {
        check(pod, cx, out)
    }
}

/// Runs one rule over a CONNECT; a rule about pod specs finds nothing there.
pub fn run_connect(rule: RuleId, connect: &Connect, out: &mut Vec<Finding>) {
    if let Check::Connect(check) = rule.rule().check {
        check(connect, out)
    }
}

/// A finding about a CONNECT. `field` names the subresource or the option it is about; the engine adds the
/// container the CONNECT names.
pub fn connect_finding(rule: RuleId, field: String, message: String) -> Finding {
    Finding {
        rule,
        severity: rule.rule().severity,
        container: None,
        field,
        subject: Cow::Borrowed(""),
        message,
        max_mode: None,
    }
}

#[cfg(test)]
pub(crate) mod testing {
    //! Helpers for the per-rule unit tests.
    use super::*;
    use crate::workload::WorkloadKind;

    /// Runs `rule` on a Pod whose `spec` is the given JSON, under `profile` and `options`.
    pub fn findings_with(
        rule: RuleId,
        spec: &str,
        profile: Profile,
        options: &RuleOptions,
    ) -> Vec<Finding> {
        findings_for(
            rule,
            &format!(r#"{{"spec":{spec}}}"#),
            WorkloadKind::Pod,
            profile,
            options,
        )
    }

    /// Runs `rule` on a whole object of `kind`.
    pub fn findings_for(
        rule: RuleId,
        object: &str,
        kind: WorkloadKind,
        profile: Profile,
        options: &RuleOptions,
    ) -> Vec<Finding> {
        let workload = Workload::from_json(kind, object).expect("test object decodes");
        let pod = PodView::new(&workload);
        let mut out = Vec::new();
        run(
            rule,
            &pod,
            &CheckContext {
                profile,
                options,
                registry: None,
            },
            &mut out,
        );
        out
    }

    /// Runs `rule` on a Pod whose `spec` is the given JSON, with registry facts.
    pub fn findings_with_facts(
        rule: RuleId,
        spec: &str,
        options: &RuleOptions,
        facts: &RegistryFacts,
    ) -> Vec<Finding> {
        let workload = Workload::from_json(WorkloadKind::Pod, &format!(r#"{{"spec":{spec}}}"#))
            .expect("test object decodes");
        let pod = PodView::new(&workload);
        let mut out = Vec::new();
        let cx = CheckContext {
            profile: Profile::Baseline,
            options,
            registry: Some(facts),
        };
        run(rule, &pod, &cx, &mut out);
        out
    }

    /// Registry facts: each image found with `digest` and `user`.
    pub fn found(entries: &[(&str, &str, &str)]) -> RegistryFacts {
        let mut facts = RegistryFacts::default();
        for (image, digest, user) in entries {
            facts.insert(
                *image,
                Lookup::Found(std::sync::Arc::new(crate::registry::ImageFacts {
                    digest: (*digest).to_owned(),
                    index_digest: None,
                    user: (*user).to_owned(),
                    moved_from: None,
                })),
            );
        }
        facts
    }

    /// Runs `rule` on a CONNECT of `kind` whose options object is the given JSON.
    pub fn connect_findings(
        rule: RuleId,
        kind: crate::connect::ConnectKind,
        options: &str,
    ) -> Vec<Finding> {
        let connect = Connect::from_json(kind, options).expect("test options decode");
        let mut out = Vec::new();
        run_connect(rule, &connect, &mut out);
        out
    }

    /// Runs `rule` under the baseline profile with default options.
    pub fn findings(rule: RuleId, spec: &str) -> Vec<Finding> {
        findings_with(rule, spec, Profile::Baseline, &RuleOptions::default())
    }

    /// Runs `rule` under the restricted profile with default options.
    pub fn restricted(rule: RuleId, spec: &str) -> Vec<Finding> {
        findings_with(rule, spec, Profile::Restricted, &RuleOptions::default())
    }

    /// The field paths of the findings.
    pub fn fields(findings: &[Finding]) -> Vec<&str> {
        findings.iter().map(|f| f.field.as_str()).collect()
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::collections::HashSet;

    #[test]
    fn catalogue_is_indexed_by_id() {
        for (i, rule) in CATALOGUE.iter().enumerate() {
            assert_eq!(rule.id as usize, i, "{} is out of place", rule.id);
            assert_eq!(RuleId::parse(rule.id.as_str()), Some(rule.id));
        }
        assert_eq!(RuleId::ALL.len(), CATALOGUE.len());
    }

    #[test]
    fn catalogue_entries_are_unique_and_documented() {
        let mut ids = HashSet::new();
        for rule in &CATALOGUE {
            let id = rule.id.as_str();
            assert!(ids.insert(id), "duplicate id {id}");
            assert!(
                id.chars().all(|c| c.is_ascii_lowercase() || c == '-'),
                "{id}: ids are lowercase words joined by '-'"
            );
            assert!(!rule.description.is_empty(), "{id} has no description");
            assert!(
                !rule.description.contains('\n') && rule.description.len() <= 100,
                "{id}: the description is one short line"
            );
            assert!(
                !rule.techniques.is_empty(),
                "{id} names no ATT&CK technique"
            );
            for t in rule.techniques {
                let ok = t.starts_with('T')
                    && t[1..]
                        .split('.')
                        .all(|p| !p.is_empty() && p.bytes().all(|b| b.is_ascii_digit()));
                assert!(ok, "{id}: {t} is not an ATT&CK technique id");
            }
        }
    }
}
