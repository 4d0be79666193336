//! `vigil audit`: judges what already runs in a cluster with the webhook's engine and policy, and keeps a
//! policy report per namespace equal to what it found.
//!
//! It goes namespace by namespace and kind by kind, a page at a time, and keeps nothing of a page once it
//! is judged: its memory follows the page size (`--page-size`) and the largest namespace report (bounded in
//! `report`), not the size of the cluster. Controllers' pods are judged through their owners, which are
//! fetched when needed and kept in a small cache.

pub mod cluster;
pub mod judge;

use std::collections::VecDeque;
use std::io::Write as _;
use std::path::PathBuf;

use clap::{Args, ValueEnum};
use time::OffsetDateTime;

use crate::admission::ConfigMapRef;
use crate::policy::{Mode, Policy};
use crate::report::{self, ReportApi, ReportBuilder};
use crate::workload::{Workload, WorkloadKind};
use cluster::{Cluster, ClusterError};
use judge::{AuditResult, Outcome, Owner};

/// Exit code: enforce would deny nothing (or, with `--write-reports`, the reports are written).
pub const EXIT_OK: u8 = 0;
/// Exit code: enforce would deny something.
pub const EXIT_DENIED: u8 = 1;
/// Exit code: the audit could not do its work.
pub const EXIT_ERROR: u8 = 2;

/// Owners kept at once. A list comes in name order, and a controller's pods share its name as a prefix, so
/// the pods of one owner come together and a few entries are enough.
const OWNER_CACHE: usize = 64;

/// `vigil audit`.
#[derive(Debug, Args)]
pub struct AuditArgs {
    /// The kubeconfig file; without it `$KUBECONFIG` or `~/.kube/config`, else the pod's service account.
    #[arg(long)]
    pub kubeconfig: Option<PathBuf>,
    /// The kubeconfig context; the current context when absent.
    #[arg(long)]
    pub context: Option<String>,
    /// A policy file, instead of the cluster's policy ConfigMap.
    #[arg(long, conflicts_with = "policy_configmap")]
    pub policy: Option<PathBuf>,
    /// The ConfigMap that holds the policy (key `policy.yaml`), as NAMESPACE/NAME.
    #[arg(long, default_value = "vigil/vigil-policy")]
    pub policy_configmap: ConfigMapRef,
    /// A namespace to audit (repeatable); every namespace when absent.
    #[arg(long = "namespace", short = 'n')]
    pub namespaces: Vec<String>,
    /// Replace every active rule's mode, e.g. `enforce` to see what enforcing would block.
    #[arg(long, value_parser = Mode::parse_flag)]
    pub mode: Option<Mode>,
    /// Output format.
    #[arg(long, value_enum, default_value_t = AuditOutput::Text)]
    pub output: AuditOutput,
    /// Write one report per namespace, named `vigil`, equal to what this run found.
    #[arg(long)]
    pub write_reports: bool,
    /// The report API to write.
    #[arg(long, value_enum, default_value_t = ReportApi::Wgpolicyk8s)]
    pub report_api: ReportApi,
    /// Objects asked for per list request.
    #[arg(long, default_value_t = 500, value_parser = clap::value_parser!(u32).range(1..))]
    pub page_size: u32,
}

/// Output formats of `vigil audit`.
#[derive(Debug, Clone, Copy, PartialEq, Eq, ValueEnum)]
pub enum AuditOutput {
    Text,
    Json,
}

/// Runs `vigil audit` on a runtime of its own and returns its exit code.
pub fn run(args: &AuditArgs) -> u8 {
    let runtime = match tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
    {
        Ok(rt) => rt,
        Err(e) => {
            eprintln!("vigil audit: cannot start the runtime: {e}");
            return EXIT_ERROR;
        }
    };
    runtime.block_on(audit(args))
}

/// Counts over the whole run.
#[derive(Debug, Default)]
struct Totals {
    namespaces: usize,
    listed: usize,
    judged: usize,
    through_owner: usize,
    flagged: usize,
    denied: usize,
    unreadable: usize,
    reports: usize,
}

/// Where results go as they are found: stdout, as text or as one JSON array.
struct Printer {
    output: AuditOutput,
    first: bool,
}

impl Printer {
    fn write(&self, text: &str) {
        // A closed pipe (`vigil audit | head`) is not the audit's failure.
        let _ = std::io::stdout().lock().write_all(text.as_bytes());
    }

    fn result(&mut self, result: &AuditResult) {
        match self.output {
            AuditOutput::Text => {
                if result.violations.is_empty() && result.error.is_none() {
                    return;
                }
                let mut heading = result.object.object.describe();
                if let Some(owner) = &result.beyond {
                    heading.push_str(&format!(" (beyond its {owner})"));
                }
                match &result.error {
                    Some(error) => self.write(&format!("{heading}: denied: {error}\n")),
                    None => self.write(&report::text_lines(
                        &heading,
                        result.decision,
                        &result.violations,
                    )),
                }
            }
            AuditOutput::Json => {
                let item = serde_json::to_string_pretty(result).expect("results serialize");
                let sep = if self.first { "[\n" } else { ",\n" };
                self.first = false;
                self.write(&format!("{sep}{item}"));
            }
        }
    }

    fn finish(&self, totals: &Totals, write_reports: Option<ReportApi>) {
        let mut line = format!(
            "{} namespaces audited, {} objects listed, {} judged, {} judged through their owners, {} with violations, {} denied",
            totals.namespaces,
            totals.listed,
            totals.judged,
            totals.through_owner,
            totals.flagged,
            totals.denied
        );
        if totals.unreadable > 0 {
            line.push_str(&format!(" ({} unreadable)", totals.unreadable));
        }
        if let Some(api) = write_reports {
            line.push_str(&format!(
                "; {} {} {}s written",
                totals.reports,
                api.api_version(),
                api.kind()
            ));
        }
        match self.output {
            AuditOutput::Text => self.write(&format!("{line}\n")),
            AuditOutput::Json => {
                self.write(if self.first { "[]\n" } else { "\n]\n" });
                eprintln!("vigil audit: {line}");
            }
        }
    }
}

/// The owners fetched lately, by uid: their workload, or `None` when the reference leads nowhere.
#[derive(Default)]
struct OwnerCache {
    entries: VecDeque<(String, Option<Workload>)>,
}

impl OwnerCache {
    async fn get(
        &mut self,
        cluster: &Cluster,
        namespace: &str,
        owner: &Owner,
    ) -> Result<Option<&Workload>, ClusterError> {
        let found = self.entries.iter().position(|(uid, _)| *uid == owner.uid);
        let index = match found {
            Some(i) => i,
            None => {
                let text = cluster.workload(owner.kind, namespace, &owner.name).await?;
                let workload = text.and_then(|t| judge::owner_workload(owner, &t));
                if self.entries.len() == OWNER_CACHE {
                    self.entries.pop_front();
                }
                self.entries.push_back((owner.uid.clone(), workload));
                self.entries.len() - 1
            }
        };
        Ok(self.entries[index].1.as_ref())
    }
}

/// One audit run.
struct Audit<'a> {
    cluster: &'a Cluster,
    policy: &'a Policy,
    now: OffsetDateTime,
    page_size: u32,
    printer: Printer,
    totals: Totals,
    owners: OwnerCache,
}

impl Audit<'_> {
    /// Judges every covered object of `namespace`, into `report` when one is kept.
    async fn namespace(
        &mut self,
        namespace: &str,
        mut report: Option<&mut ReportBuilder>,
    ) -> Result<(), ClusterError> {
        self.owners.entries.clear();
        for kind in WorkloadKind::ALL {
            let mut token: Option<String> = None;
            loop {
                let page = self
                    .cluster
                    .workload_page(kind, namespace, self.page_size, token.as_deref())
                    .await?;
                let (items, next) = page.items().map_err(|source| ClusterError::Decode {
                    what: format!("cannot list {kind} objects in namespace {namespace}"),
                    source,
                })?;
                for raw in items {
                    self.totals.listed += 1;
                    let outcome = self.item(kind, namespace, raw).await?;
                    let Outcome::Judged(result) = outcome else {
                        self.totals.through_owner += 1;
                        continue;
                    };
                    self.totals.judged += 1;
                    if !result.violations.is_empty() || result.error.is_some() {
                        self.totals.flagged += 1;
                    }
                    if result.decision == "denied" {
                        self.totals.denied += 1;
                    }
                    if let Some(report) = report.as_deref_mut() {
                        let object = &result.object;
                        match &result.error {
                            Some(error) => {
                                report.add_error(&object.object, object.uid.as_deref(), error)
                            }
                            None => report.add(
                                &object.object,
                                object.uid.as_deref(),
                                &result.violations,
                                &[],
                            ),
                        }
                    }
                    self.printer.result(&result);
                }
                match next {
                    Some(next) => token = Some(next),
                    None => break,
                }
            }
        }
        Ok(())
    }

    async fn item(
        &mut self,
        kind: WorkloadKind,
        namespace: &str,
        raw: &str,
    ) -> Result<Outcome, ClusterError> {
        // Metadata the API server wrote that does not read is not the object's fault: the listing failed.
        let listed = judge::read(kind, namespace, raw).map_err(|source| ClusterError::Decode {
            what: format!("cannot read a listed {kind} in namespace {namespace}"),
            source,
        })?;
        let owner = match &listed.owner {
            Some(owner) => self.owners.get(self.cluster, namespace, owner).await?,
            None => None,
        };
        let outcome = judge::judge(self.policy, &listed, owner, self.now);
        if let Outcome::Judged(r) = &outcome
            && r.error.is_some()
        {
            self.totals.unreadable += 1;
        }
        Ok(outcome)
    }
}

/// The policy the audit judges with, and its name in reports.
async fn load_policy(args: &AuditArgs, cluster: &Cluster) -> Result<(Policy, String), String> {
    let (text, name) = match &args.policy {
        Some(path) => {
            let name = path.display().to_string();
            let text = std::fs::read_to_string(path).map_err(|e| format!("{name}: {e}"))?;
            (text, name)
        }
        None => {
            let text = cluster
                .policy_text(&args.policy_configmap)
                .await
                .map_err(|e| {
                    if e.is_not_found() {
                        format!(
                            "{e}; name the policy ConfigMap with --policy-configmap NAMESPACE/NAME, or a file with --policy"
                        )
                    } else {
                        e.to_string()
                    }
                })?;
            (text, args.policy_configmap.to_string())
        }
    };
    let policy = Policy::parse(&text, &name).map_err(|e| e.to_string())?;
    let policy = match args.mode {
        Some(mode) => policy.with_forced_mode(mode),
        None => policy,
    };
    Ok((policy, name))
}

async fn audit(args: &AuditArgs) -> u8 {
    let fail = |e: &dyn std::fmt::Display| {
        eprintln!("vigil audit: {e}");
        EXIT_ERROR
    };
    let cluster = match Cluster::connect(args.kubeconfig.as_deref(), args.context.as_deref()).await
    {
        Ok(c) => c,
        Err(e) => return fail(&e),
    };
    let (policy, policy_name) = match load_policy(args, &cluster).await {
        Ok(p) => p,
        Err(e) => return fail(&e),
    };
    let mut failed = false;
    // A missing report CRD is said at once, and the results are printed all the same.
    let write = match args.write_reports {
        false => None,
        true => match cluster.check_report_api(args.report_api).await {
            Ok(()) => Some(args.report_api),
            Err(e) => {
                failed = true;
                fail(&e);
                None
            }
        },
    };
    let namespaces = if args.namespaces.is_empty() {
        match cluster.namespaces(args.page_size).await {
            Ok(names) => names,
            Err(e) => return fail(&e),
        }
    } else {
        let mut names = args.namespaces.clone();
        names.sort();
        names.dedup();
        names
    };
    let now = OffsetDateTime::now_utc();
    let mut run = Audit {
        cluster: &cluster,
        policy: &policy,
        now,
        page_size: args.page_size,
        printer: Printer {
            output: args.output,
            first: true,
        },
        totals: Totals::default(),
        owners: OwnerCache::default(),
    };
    for namespace in &namespaces {
        run.totals.namespaces += 1;
        let mut report = write.map(|api| ReportBuilder::new(api, namespace, &policy_name, now));
        if let Err(e) = run.namespace(namespace, report.as_mut()).await {
            // A report made of part of a namespace would drop results that still hold: none is written.
            failed = true;
            fail(&e);
            continue;
        }
        if let (Some(api), Some(report)) = (write, report) {
            let omitted = report.omitted();
            if omitted > 0 {
                eprintln!(
                    "vigil audit: the {} {namespace}/{} lists {} results fewer than found (counted in its summary, annotation {})",
                    api.kind(),
                    report::REPORT_NAME,
                    omitted,
                    report::OMITTED_ANNOTATION
                );
            }
            match cluster.write_report(api, &report.finish()).await {
                Ok(()) => run.totals.reports += 1,
                Err(e) => {
                    failed = true;
                    fail(&e);
                }
            }
        }
    }
    run.printer.finish(&run.totals, write);
    if failed {
        EXIT_ERROR
    } else if args.write_reports {
        EXIT_OK
    } else if run.totals.denied > 0 {
        EXIT_DENIED
    } else {
        EXIT_OK
    }
}
