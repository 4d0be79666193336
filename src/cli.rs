//! The command line: clap definitions and the offline subcommands (check, review, policy, rules); `audit`
//! has its own module.

use std::collections::BTreeMap;
use std::io::Write;
use std::path::{Path, PathBuf};
use std::process::ExitCode;

use clap::{Args, Parser, Subcommand, ValueEnum};
use serde::Serialize;
use time::OffsetDateTime;

use crate::admission::{self, Endpoint};
use crate::alert::ObjectRef;
use crate::engine::{self, Decision, Violation};
use crate::image::ImageRef;
use crate::manifest::{self, Object, Origin};
use crate::policy::{self, DEFAULT_POLICY, Mode, Policy};
use crate::registry::{LookupMetrics, RegistryArgs, RegistryFacts};
use crate::report::{self, ReportApi, ReportBuilder};
use crate::rules::CATALOGUE;

/// Exit code: nothing would be denied.
pub const EXIT_OK: u8 = 0;
/// Exit code: something would be denied.
pub const EXIT_DENIED: u8 = 1;
/// Exit code: bad input or a bad policy.
pub const EXIT_BAD_INPUT: u8 = 2;

/// Vigil: a Kubernetes admission webhook that stops or records workloads slipping past security monitoring.
#[derive(Debug, Parser)]
#[command(name = "vigil", version, about)]
pub struct Cli {
    #[command(subcommand)]
    pub command: Command,
}

/// The subcommands.
#[derive(Debug, Subcommand)]
pub enum Command {
    /// Run the HTTPS admission webhook.
    Serve(crate::server::ServeArgs),
    /// Evaluate manifests offline with the server's engine, as CREATE requests.
    Check(CheckArgs),
    /// Answer one AdmissionReview as /validate would.
    Review(ReviewArgs),
    /// Validate or print policies.
    #[command(subcommand)]
    Policy(PolicyCommand),
    /// List the rule catalogue.
    Rules(RulesArgs),
    /// Judge what already runs in a cluster, and keep policy reports of it.
    Audit(crate::audit::AuditArgs),
}

/// `vigil check`.
#[derive(Debug, Args)]
pub struct CheckArgs {
    /// Policy file; the built-in default policy when absent.
    #[arg(long, env = "VIGIL_POLICY")]
    pub policy: Option<PathBuf>,
    /// Replace every active rule's mode, e.g. `enforce` to see what enforcing would block.
    #[arg(long, value_parser = Mode::parse_flag)]
    pub mode: Option<Mode>,
    /// The requesting user, for exemptions.
    #[arg(long, default_value = "")]
    pub user: String,
    /// A group of the requesting user, for exemptions (repeatable).
    #[arg(long = "group")]
    pub groups: Vec<String>,
    /// Output format.
    #[arg(long, value_enum, default_value_t = CheckOutput::Text)]
    pub output: CheckOutput,
    /// Make the registry look-ups the policy's registry rules need (image-resolvable, ...), as `serve` does.
    #[arg(long)]
    pub resolve: bool,
    #[command(flatten)]
    pub registry: RegistryArgs,
    /// Files or directories (searched for .yaml, .yml, .json), or `-` for stdin.
    #[arg(required = true)]
    pub paths: Vec<String>,
}

/// Output formats of `vigil check`.
#[derive(Debug, Clone, Copy, PartialEq, Eq, ValueEnum)]
pub enum CheckOutput {
    Text,
    Json,
    Policyreport,
}

/// `vigil review`.
#[derive(Debug, Args)]
pub struct ReviewArgs {
    /// Policy file; the built-in default policy when absent.
    #[arg(long, env = "VIGIL_POLICY")]
    pub policy: Option<PathBuf>,
    #[command(flatten)]
    pub registry: RegistryArgs,
    /// The ConfigMap that holds the policy, as NAMESPACE/NAME, as for `serve`.
    #[arg(
        long,
        env = "VIGIL_POLICY_CONFIGMAP",
        default_value = "vigil/vigil-policy"
    )]
    pub policy_configmap: crate::admission::ConfigMapRef,
    /// The AdmissionReview file, or `-` for stdin.
    #[arg(default_value = "-")]
    pub file: String,
}

/// `vigil policy ...`.
#[derive(Debug, Subcommand)]
pub enum PolicyCommand {
    /// Validate a policy file: exit 0, or 2 with every error.
    Validate {
        /// The policy file.
        file: PathBuf,
    },
    /// Print the built-in default policy.
    Default,
}

/// `vigil rules`.
#[derive(Debug, Args)]
pub struct RulesArgs {
    /// Output format.
    #[arg(long, value_enum, default_value_t = RulesOutput::Text)]
    pub output: RulesOutput,
}

/// Output formats of `vigil rules`.
#[derive(Debug, Clone, Copy, PartialEq, Eq, ValueEnum)]
pub enum RulesOutput {
    Text,
    Json,
    /// The README's rule table.
    Markdown,
}

/// Loads the policy named on the command line, or the default one.
pub fn load_policy(path: Option<&PathBuf>) -> Result<Policy, String> {
    match path {
        None => Ok(Policy::default_policy()),
        Some(path) => {
            let name = path.display().to_string();
            let text = std::fs::read_to_string(path).map_err(|e| format!("{name}: {e}"))?;
            Policy::parse(&text, &name).map_err(|e| e.to_string())
        }
    }
}

/// Runs an offline subcommand and returns its exit code.
pub fn run(command: Command) -> ExitCode {
    let code = match command {
        Command::Serve(_) => unreachable!("serve runs in main, on the async runtime"),
        Command::Check(args) => check(&args),
        Command::Review(args) => review(&args),
        Command::Policy(PolicyCommand::Validate { file }) => validate(&file),
        Command::Policy(PolicyCommand::Default) => {
            print!("{DEFAULT_POLICY}");
            EXIT_OK
        }
        Command::Rules(args) => {
            print!("{}", rules_listing(args.output));
            EXIT_OK
        }
        Command::Audit(args) => crate::audit::run(&args),
    };
    ExitCode::from(code)
}

fn validate(file: &PathBuf) -> u8 {
    let name = file.display().to_string();
    let text = match std::fs::read_to_string(file) {
        Ok(t) => t,
        Err(e) => {
            eprintln!("{name}: {e}");
            return EXIT_BAD_INPUT;
        }
    };
    match Policy::parse(&text, &name) {
        Ok(policy) => {
            for warning in policy::warnings(&policy, OffsetDateTime::now_utc()) {
                eprintln!("{name}: warning: {warning}");
            }
            println!("{name}: valid (hash {})", policy.hash);
            EXIT_OK
        }
        Err(e) => {
            eprintln!("{e}");
            EXIT_BAD_INPUT
        }
    }
}

fn review(args: &ReviewArgs) -> u8 {
    let policy = match load_policy(args.policy.as_ref()) {
        Ok(p) => p,
        Err(e) => {
            eprintln!("{e}");
            return EXIT_BAD_INPUT;
        }
    };
    let body = match manifest::read_source(&args.file) {
        Ok(b) => b,
        Err(e) => {
            eprintln!("{e}");
            return EXIT_BAD_INPUT;
        }
    };
    let now = OffsetDateTime::now_utc();
    let prepared = match admission::prepare(
        &policy,
        body.as_bytes(),
        now,
        Endpoint::Validate,
        &args.policy_configmap,
    ) {
        Ok(p) => p,
        Err(e) => {
            eprintln!("{}: {e}", args.file);
            return EXIT_BAD_INPUT;
        }
    };
    let reviewed = match prepared {
        admission::Prepared::Answered(reviewed) => reviewed,
        admission::Prepared::Evaluate(pending) => {
            let images = pending.lookups();
            let facts = if images.is_empty() {
                None
            } else {
                match resolve_images(&policy, &args.registry, images) {
                    Ok(facts) => Some(facts),
                    Err(e) => {
                        eprintln!("{e}");
                        return EXIT_BAD_INPUT;
                    }
                }
            };
            pending.finish(facts.as_ref())
        }
    };
    let mut out = std::io::stdout().lock();
    let _ = out.write_all(&reviewed.body);
    let _ = out.write_all(b"\n");
    EXIT_OK
}

/// Looks `images` up as the server would, on a runtime of its own, bounded by the policy's timeout.
fn resolve_images(
    policy: &Policy,
    args: &RegistryArgs,
    images: Vec<(String, ImageRef)>,
) -> Result<RegistryFacts, String> {
    let resolver =
        std::sync::Arc::new(args.resolver(std::sync::Arc::new(LookupMetrics::default()))?);
    let runtime = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .map_err(|e| format!("cannot start the runtime: {e}"))?;
    let options = &policy.options;
    Ok(runtime.block_on(async {
        // The image look-up, then its signatures: each bounded by the policy's timeout.
        let deadline = std::time::Instant::now() + options.registry.timeout * 2;
        resolver
            .resolve_all(images, options, policy.signature_policy(), deadline)
            .await
    }))
}

/// One object's result in `vigil check`.
#[derive(Debug, Serialize)]
pub struct CheckResult {
    pub origin: Origin,
    pub object: ObjectRef,
    pub decision: &'static str,
    pub violations: Vec<Violation>,
    /// The images a trusted key verified (`image-signature` with `--resolve`), with the key.
    #[serde(skip_serializing_if = "Vec::is_empty")]
    pub signatures: Vec<crate::rules::image_signature::SignedImage>,
}

/// Evaluates objects read from manifests as CREATE requests. Objects of kinds Vigil does not cover are
/// left out.
pub fn check_objects(
    policy: &Policy,
    objects: &[Object],
    user: &str,
    groups: &[String],
    now: OffsetDateTime,
    registry: Option<&RegistryFacts>,
) -> Vec<CheckResult> {
    objects
        .iter()
        .filter_map(|object| {
            let workload = object.workload.as_ref()?;
            let namespace = object
                .namespace
                .clone()
                .unwrap_or_else(|| "default".to_owned());
            let decision: Decision = engine::evaluate(
                policy,
                workload,
                &engine::Context {
                    username: user,
                    groups,
                    registry,
                    ..engine::Context::create(&namespace, now)
                },
            );
            Some(CheckResult {
                origin: object.origin.clone(),
                object: ObjectRef {
                    api_version: object.api_version.clone(),
                    kind: object.kind.clone(),
                    namespace,
                    name: object.name.clone(),
                },
                decision: crate::alert::decision_word(&decision),
                violations: decision.violations,
                signatures: decision.signatures,
            })
        })
        .collect()
}

fn check(args: &CheckArgs) -> u8 {
    let policy = match load_policy(args.policy.as_ref()) {
        Ok(p) => p,
        Err(e) => {
            eprintln!("{e}");
            return EXIT_BAD_INPUT;
        }
    };
    let policy = match args.mode {
        Some(mode) => policy.with_forced_mode(mode),
        None => policy,
    };
    let mut errors = Vec::new();
    let mut objects = Vec::new();
    let mut skipped = 0;
    for path in &args.paths {
        let walked = Path::new(path).is_dir();
        let files = if path == "-" {
            vec![PathBuf::from("-")]
        } else {
            match manifest::collect_files(path.as_ref()) {
                Ok(files) => files,
                Err(e) => {
                    errors.push(e.to_string());
                    continue;
                }
            }
        };
        for file in files {
            let name = if path == "-" {
                "(stdin)".to_owned()
            } else {
                file.display().to_string()
            };
            match manifest::read_source(&file.to_string_lossy()) {
                Ok(text) => {
                    let (found, errs) = manifest::read_objects(&name, &text);
                    objects.extend(found);
                    for e in errs {
                        // A directory holds more than manifests (Chart.yaml, values.yaml, reports);
                        // what is not a Kubernetes object cannot make a workload, so it is counted, not
                        // reported. A file named on the command line is reported.
                        if walked && matches!(e, manifest::ManifestError::NotAnObject { .. }) {
                            skipped += 1;
                        } else {
                            errors.push(e.to_string());
                        }
                    }
                }
                Err(e) => errors.push(e.to_string()),
            }
        }
    }
    let facts = if args.resolve && policy.needs_registry() {
        let images = crate::registry::images_for(
            &policy,
            objects.iter().filter_map(|o| o.workload.as_ref()),
        );
        match resolve_images(&policy, &args.registry, images) {
            Ok(facts) => Some(facts),
            Err(e) => {
                eprintln!("{e}");
                return EXIT_BAD_INPUT;
            }
        }
    } else {
        None
    };
    let results = check_objects(
        &policy,
        &objects,
        &args.user,
        &args.groups,
        OffsetDateTime::now_utc(),
        facts.as_ref(),
    );
    let out = match args.output {
        CheckOutput::Text => text_report(&results, objects.len(), skipped),
        CheckOutput::Json => {
            serde_json::to_string_pretty(&results).expect("results serialize") + "\n"
        }
        CheckOutput::Policyreport => {
            let name = args
                .policy
                .as_ref()
                .map_or_else(|| "default".to_owned(), |p| p.display().to_string());
            policy_reports(&results, &name, OffsetDateTime::now_utc())
        }
    };
    print!("{out}");
    for e in &errors {
        eprintln!("error: {e}");
    }
    if !errors.is_empty() {
        EXIT_BAD_INPUT
    } else if results.iter().any(|r| r.decision == "denied") {
        EXIT_DENIED
    } else {
        EXIT_OK
    }
}

fn text_report(results: &[CheckResult], objects: usize, skipped: usize) -> String {
    let mut out = String::new();
    let (mut denied, mut flagged) = (0, 0);
    for r in results
        .iter()
        .filter(|r| !r.violations.is_empty() || !r.signatures.is_empty())
    {
        if !r.violations.is_empty() {
            flagged += 1;
        }
        if r.decision == "denied" {
            denied += 1;
        }
        out.push_str(&report::text_lines(
            &format!("{}: {}", r.origin, r.object.describe()),
            r.decision,
            &r.violations,
        ));
        for signed in &r.signatures {
            out.push_str(&format!(
                "  signed: container {:?} image {} ({}) by key {:?}, in {}\n",
                signed.container,
                signed.image,
                signed.digest,
                signed.key,
                match signed.form {
                    crate::signature::SignatureForm::Tag => "the .sig tag",
                    crate::signature::SignatureForm::Bundle => "a bundle referrer",
                }
            ));
        }
    }
    let skipped = if skipped > 0 {
        format!(" ({skipped} documents in directories skipped: not Kubernetes objects)")
    } else {
        String::new()
    };
    out.push_str(&format!(
        "{} objects read, {} workloads checked, {flagged} with violations, {denied} denied{skipped}\n",
        objects,
        results.len()
    ));
    out
}

/// One `wgpolicyk8s.io/v1alpha2` PolicyReport per namespace, as a YAML stream: the reports `vigil audit
/// --write-reports` keeps in a cluster, made from manifests. Each result names the file it came from.
fn policy_reports(results: &[CheckResult], policy: &str, now: OffsetDateTime) -> String {
    let mut by_namespace: BTreeMap<&str, Vec<&CheckResult>> = BTreeMap::new();
    for r in results {
        by_namespace.entry(&r.object.namespace).or_default().push(r);
    }
    let mut out = String::new();
    for (namespace, results) in by_namespace {
        let mut builder = ReportBuilder::new(ReportApi::Wgpolicyk8s, namespace, policy, now);
        for r in results {
            builder.add(
                &r.object,
                None,
                &r.violations,
                &[("origin", r.origin.to_string())],
            );
        }
        out.push_str("---\n");
        out.push_str(&serde_yaml_ng::to_string(&builder.finish()).expect("reports serialize"));
    }
    out
}

#[derive(Serialize)]
#[serde(rename_all = "camelCase")]
struct RuleRow {
    id: &'static str,
    profile: &'static str,
    default_mode: String,
    severity: &'static str,
    techniques: &'static [&'static str],
    description: &'static str,
}

fn rule_rows() -> Vec<RuleRow> {
    CATALOGUE
        .iter()
        .map(|r| RuleRow {
            id: r.id.as_str(),
            profile: match r.profile {
                crate::rules::RuleProfile::Baseline => "baseline",
                crate::rules::RuleProfile::Restricted => "restricted",
                crate::rules::RuleProfile::Configured => "configured",
                crate::rules::RuleProfile::PolicyEdits => "policy edits",
            },
            default_mode: r.default_mode.to_string(),
            severity: r.severity.as_str(),
            techniques: r.techniques,
            description: r.description,
        })
        .collect()
}

/// The catalogue as text, JSON or the README's markdown table.
pub fn rules_listing(output: RulesOutput) -> String {
    let rows = rule_rows();
    match output {
        RulesOutput::Json => serde_json::to_string_pretty(&rows).expect("rules serialize") + "\n",
        RulesOutput::Markdown => {
            let mut out = String::from(
                "| id | profile | default mode | severity | ATT&CK | detects |\n|---|---|---|---|---|---|\n",
            );
            for r in rows {
                out.push_str(&format!(
                    "| `{}` | {} | {} | {} | {} | {} |\n",
                    r.id,
                    r.profile,
                    r.default_mode,
                    r.severity,
                    r.techniques.join(", "),
                    r.description.replace('|', "\\|")
                ));
            }
            out
        }
        RulesOutput::Text => {
            let mut out = format!(
                "{:<22} {:<11} {:<8} {:<9} {:<28} {}\n",
                "ID", "PROFILE", "DEFAULT", "SEVERITY", "TECHNIQUES", "DESCRIPTION"
            );
            for r in rows {
                out.push_str(&format!(
                    "{:<22} {:<11} {:<8} {:<9} {:<28} {}\n",
                    r.id,
                    r.profile,
                    r.default_mode,
                    r.severity,
                    r.techniques.join(","),
                    r.description
                ));
            }
            out
        }
    }
}
