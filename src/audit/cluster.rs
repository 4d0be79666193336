//! The audit's reads and writes of the Kubernetes API, through the `kube` client: connecting as kubectl
//! does, listing covered kinds in pages, getting an owner or the policy ConfigMap, and writing reports.
//!
//! Objects come back as the API server's JSON text, page by page, and are decoded by the same decoder the
//! webhook uses for the objects in an AdmissionReview; the paths come from the `k8s-openapi` types.

use std::path::{Path, PathBuf};
use std::time::Duration;

use k8s_openapi::api::apps::v1::{DaemonSet, Deployment, ReplicaSet, StatefulSet};
use k8s_openapi::api::batch::v1::{CronJob, Job};
use k8s_openapi::api::core::v1::{ConfigMap, Namespace, Pod, PodTemplate, ReplicationController};
use k8s_openapi::apimachinery::pkg::apis::meta::v1::{APIResourceList, ListMeta};
use kube::Resource;
use kube::api::{ListParams, Patch, PatchParams};
use kube::config::{KubeConfigOptions, Kubeconfig};
use kube::core::Request;
use serde::Deserialize;
use serde_json::value::RawValue;

use crate::admission::ConfigMapRef;
use crate::report::{REPORT_NAME, Report, ReportApi};
use crate::workload::WorkloadKind;

/// The field manager of the reports Vigil writes with server-side apply.
pub const FIELD_MANAGER: &str = "vigil";

/// Why the audit could not read or write the cluster.
#[derive(Debug, thiserror::Error)]
pub enum ClusterError {
    #[error("cannot read the kubeconfig {path}: {source}")]
    Kubeconfig {
        path: PathBuf,
        #[source]
        source: kube::config::KubeconfigError,
    },
    #[error(
        "cannot find how to reach the cluster (no usable kubeconfig, and not running in a pod): {0}"
    )]
    Infer(#[source] kube::config::InferConfigError),
    #[error("cannot make a Kubernetes client: {0}")]
    Client(#[source] kube::Error),
    #[error("{what}: {}", describe(source))]
    Api {
        what: String,
        #[source]
        source: kube::Error,
    },
    #[error("{what}: the answer is not what the API server sends: {source}")]
    Decode {
        what: String,
        #[source]
        source: serde_json::Error,
    },
    #[error("the ConfigMap {0} has no policy.yaml key")]
    NoPolicyKey(ConfigMapRef),
    #[error(
        "cannot write reports: the API server does not serve {api} {kind} ({plural}.{group}); install {source_}. \
         The audit goes on and prints its results, but writes no report"
    )]
    NoReportApi {
        api: &'static str,
        kind: &'static str,
        plural: &'static str,
        group: &'static str,
        source_: &'static str,
    },
}

impl ClusterError {
    /// Whether the API server answered 404 Not Found.
    pub fn is_not_found(&self) -> bool {
        matches!(self, ClusterError::Api { source: kube::Error::Api(s), .. } if s.code == 404)
    }
}

/// A kube error in a line: the API server's own message and code when it sent one.
fn describe(e: &kube::Error) -> String {
    match e {
        kube::Error::Api(status) => {
            let reason = if status.reason.is_empty() {
                String::new()
            } else {
                format!(", {}", status.reason)
            };
            format!("{} (HTTP {}{reason})", status.message, status.code)
        }
        other => other.to_string(),
    }
}

/// The URL path of a covered kind's collection in `namespace`, from the k8s-openapi types.
pub fn collection_path(kind: WorkloadKind, namespace: &str) -> String {
    let ns = Some(namespace);
    match kind {
        WorkloadKind::Pod => Pod::url_path(&(), ns),
        WorkloadKind::Deployment => Deployment::url_path(&(), ns),
        WorkloadKind::ReplicaSet => ReplicaSet::url_path(&(), ns),
        WorkloadKind::StatefulSet => StatefulSet::url_path(&(), ns),
        WorkloadKind::DaemonSet => DaemonSet::url_path(&(), ns),
        WorkloadKind::Job => Job::url_path(&(), ns),
        WorkloadKind::CronJob => CronJob::url_path(&(), ns),
        WorkloadKind::ReplicationController => ReplicationController::url_path(&(), ns),
        WorkloadKind::PodTemplate => PodTemplate::url_path(&(), ns),
    }
}

/// The `apiVersion` a covered kind is listed in.
pub fn api_version(kind: WorkloadKind) -> &'static str {
    match kind {
        WorkloadKind::Pod => <Pod as k8s_openapi::Resource>::API_VERSION,
        WorkloadKind::Deployment => <Deployment as k8s_openapi::Resource>::API_VERSION,
        WorkloadKind::ReplicaSet => <ReplicaSet as k8s_openapi::Resource>::API_VERSION,
        WorkloadKind::StatefulSet => <StatefulSet as k8s_openapi::Resource>::API_VERSION,
        WorkloadKind::DaemonSet => <DaemonSet as k8s_openapi::Resource>::API_VERSION,
        WorkloadKind::Job => <Job as k8s_openapi::Resource>::API_VERSION,
        WorkloadKind::CronJob => <CronJob as k8s_openapi::Resource>::API_VERSION,
        WorkloadKind::ReplicationController => {
            <ReplicationController as k8s_openapi::Resource>::API_VERSION
        }
        WorkloadKind::PodTemplate => <PodTemplate as k8s_openapi::Resource>::API_VERSION,
    }
}

/// One page of a list: the objects as the API server wrote them, and the token for the next page.
pub struct Page {
    text: String,
}

#[derive(Deserialize)]
struct PageDoc<'a> {
    #[serde(default)]
    metadata: Option<ListMeta>,
    #[serde(borrow, default)]
    items: Option<Vec<&'a RawValue>>,
}

impl Page {
    /// The objects of the page, as JSON text, and the continue token of the next page, if any.
    pub fn items(&self) -> Result<(Vec<&str>, Option<String>), serde_json::Error> {
        let doc: PageDoc<'_> = serde_json::from_str(&self.text)?;
        let next = doc
            .metadata
            .and_then(|m| m.continue_)
            .filter(|c| !c.is_empty());
        let items = doc
            .items
            .unwrap_or_default()
            .into_iter()
            .map(RawValue::get)
            .collect();
        Ok((items, next))
    }
}

/// The cluster, as the audit sees it.
pub struct Cluster {
    client: kube::Client,
}

impl Cluster {
    /// Connects like kubectl: the kubeconfig named, else `$KUBECONFIG` or `~/.kube/config`, else the pod's
    /// service account; `context` picks a kubeconfig context other than the current one.
    pub async fn connect(
        kubeconfig: Option<&Path>,
        context: Option<&str>,
    ) -> Result<Cluster, ClusterError> {
        let options = KubeConfigOptions {
            context: context.map(str::to_owned),
            ..KubeConfigOptions::default()
        };
        let mut config =
            match kubeconfig {
                Some(path) => {
                    let fail = |source| ClusterError::Kubeconfig {
                        path: path.to_owned(),
                        source,
                    };
                    let file = Kubeconfig::read_from(path).map_err(fail)?;
                    kube::Config::from_custom_kubeconfig(file, &options)
                        .await
                        .map_err(fail)?
                }
                None if context.is_some() => kube::Config::from_kubeconfig(&options)
                    .await
                    .map_err(|source| ClusterError::Kubeconfig {
                        path: PathBuf::from("$KUBECONFIG or ~/.kube/config"),
                        source,
                    })?,
                None => kube::Config::infer().await.map_err(ClusterError::Infer)?,
            };
        // A page of a large list takes a while to encode; a stalled connection must still end.
        config.read_timeout = Some(Duration::from_secs(120));
        let client = kube::Client::try_from(config).map_err(ClusterError::Client)?;
        Ok(Cluster { client })
    }

    async fn text(
        &self,
        what: &str,
        request: http::Request<Vec<u8>>,
    ) -> Result<String, ClusterError> {
        self.client
            .request_text(request)
            .await
            .map_err(|source| ClusterError::Api {
                what: what.to_owned(),
                source,
            })
    }

    fn build(
        what: &str,
        request: Result<http::Request<Vec<u8>>, kube::core::request::Error>,
    ) -> Result<http::Request<Vec<u8>>, ClusterError> {
        request.map_err(|e| ClusterError::Api {
            what: what.to_owned(),
            source: kube::Error::BuildRequest(e),
        })
    }

    /// The `policy.yaml` of the policy ConfigMap.
    pub async fn policy_text(&self, configmap: &ConfigMapRef) -> Result<String, ClusterError> {
        let what = format!("cannot read the policy ConfigMap {configmap}");
        let request = Request::new(ConfigMap::url_path(&(), Some(&configmap.namespace)))
            .get(&configmap.name, &Default::default());
        let text = self.text(&what, Self::build(&what, request)?).await?;
        let mut cm: ConfigMap =
            serde_json::from_str(&text).map_err(|source| ClusterError::Decode { what, source })?;
        cm.data
            .as_mut()
            .and_then(|d| d.remove("policy.yaml"))
            .ok_or_else(|| ClusterError::NoPolicyKey(configmap.clone()))
    }

    /// The names of every namespace, listed in pages of `limit`.
    pub async fn namespaces(&self, limit: u32) -> Result<Vec<String>, ClusterError> {
        #[derive(Deserialize)]
        struct Item {
            metadata: Meta,
        }
        #[derive(Deserialize)]
        struct Meta {
            name: String,
        }
        let mut names = Vec::new();
        let mut token: Option<String> = None;
        loop {
            let page = self
                .page(
                    &Namespace::url_path(&(), None),
                    "namespaces",
                    limit,
                    token.as_deref(),
                )
                .await?;
            let (items, next) = page.items().map_err(|source| ClusterError::Decode {
                what: "cannot list namespaces".to_owned(),
                source,
            })?;
            for item in items {
                let item: Item =
                    serde_json::from_str(item).map_err(|source| ClusterError::Decode {
                        what: "cannot list namespaces".to_owned(),
                        source,
                    })?;
                names.push(item.metadata.name);
            }
            match next {
                Some(next) => token = Some(next),
                None => return Ok(names),
            }
        }
    }

    /// One page of the collection at `path`.
    pub async fn page(
        &self,
        path: &str,
        what: &str,
        limit: u32,
        token: Option<&str>,
    ) -> Result<Page, ClusterError> {
        let what = format!("cannot list {what}");
        let mut params = ListParams::default().limit(limit);
        if let Some(token) = token {
            params = params.continue_token(token);
        }
        let request = Request::new(path).list(&params);
        let text = self.text(&what, Self::build(&what, request)?).await?;
        Ok(Page { text })
    }

    /// One page of a covered kind in `namespace`.
    pub async fn workload_page(
        &self,
        kind: WorkloadKind,
        namespace: &str,
        limit: u32,
        token: Option<&str>,
    ) -> Result<Page, ClusterError> {
        self.page(
            &collection_path(kind, namespace),
            &format!("{kind} objects in namespace {namespace}"),
            limit,
            token,
        )
        .await
    }

    /// One object of a covered kind, as JSON text; `None` when it does not exist.
    pub async fn workload(
        &self,
        kind: WorkloadKind,
        namespace: &str,
        name: &str,
    ) -> Result<Option<String>, ClusterError> {
        let what = format!("cannot read {kind} {namespace}/{name}");
        let request = Request::new(collection_path(kind, namespace)).get(name, &Default::default());
        match self.text(&what, Self::build(&what, request)?).await {
            Ok(text) => Ok(Some(text)),
            Err(e) if e.is_not_found() => Ok(None),
            Err(e) => Err(e),
        }
    }

    /// Checks that the API server serves the report API (its CRD is installed).
    pub async fn check_report_api(&self, api: ReportApi) -> Result<(), ClusterError> {
        let missing = || ClusterError::NoReportApi {
            api: api.api_version(),
            kind: api.kind(),
            plural: api.plural(),
            group: api.group(),
            source_: api.crd_source(),
        };
        let what = format!("cannot ask the API server for {}", api.api_version());
        let request = http::Request::get(format!("/apis/{}", api.api_version()))
            .header(http::header::ACCEPT, "application/json")
            .body(Vec::new())
            .map_err(|e| ClusterError::Api {
                what: what.clone(),
                source: kube::Error::HttpError(e),
            })?;
        let text = match self.text(&what, request).await {
            Ok(text) => text,
            Err(e) if e.is_not_found() => return Err(missing()),
            Err(e) => return Err(e),
        };
        let list: APIResourceList =
            serde_json::from_str(&text).map_err(|source| ClusterError::Decode { what, source })?;
        if list.resources.iter().any(|r| r.name == api.plural()) {
            Ok(())
        } else {
            Err(missing())
        }
    }

    /// Writes a namespace's report with server-side apply, as the field manager `vigil`, so that it is
    /// exactly what this run found: results no longer found are gone. Unknown fields are refused rather than
    /// dropped (`fieldValidation=Strict`), so that the report is what the CRD's schema accepts.
    pub async fn write_report(&self, api: ReportApi, report: &Report) -> Result<(), ClusterError> {
        let namespace = &report.metadata.namespace;
        let what = format!("cannot write the {} {namespace}/{REPORT_NAME}", api.kind());
        let path = format!(
            "/apis/{}/namespaces/{namespace}/{}",
            api.api_version(),
            api.plural()
        );
        let params = PatchParams::apply(FIELD_MANAGER)
            .force()
            .validation_strict();
        let request = Request::new(path).patch(REPORT_NAME, &params, &Patch::Apply(report));
        self.text(&what, Self::build(&what, request)?).await?;
        Ok(())
    }
}
