{{/*
Names, labels and the values that several templates must agree on: the Service's DNS names, the TLS
material and its CA bundle, the webhook rules and namespace selectors, and the effective failurePolicy.
*/}}

{{/* The chart name, or nameOverride. */}}
{{- define "vigil.name" -}}
{{- default .Chart.Name .Values.nameOverride | trunc 63 | trimSuffix "-" -}}
{{- end -}}

{{/* The resource name prefix: fullnameOverride, or the release name with the chart name unless it has it. */}}
{{- define "vigil.fullname" -}}
{{- if .Values.fullnameOverride -}}
{{- .Values.fullnameOverride | trunc 63 | trimSuffix "-" -}}
{{- else -}}
{{- $name := default .Chart.Name .Values.nameOverride -}}
{{- if contains $name .Release.Name -}}
{{- .Release.Name | trunc 63 | trimSuffix "-" -}}
{{- else -}}
{{- printf "%s-%s" .Release.Name $name | trunc 63 | trimSuffix "-" -}}
{{- end -}}
{{- end -}}
{{- end -}}

{{/* Chart name and version, for the helm.sh/chart label. */}}
{{- define "vigil.chart" -}}
{{- printf "%s-%s" .Chart.Name .Chart.Version | replace "+" "_" | trunc 63 | trimSuffix "-" -}}
{{- end -}}

{{/* The labels that select the webhook pods. */}}
{{- define "vigil.selectorLabels" -}}
app.kubernetes.io/name: {{ include "vigil.name" . }}
app.kubernetes.io/instance: {{ .Release.Name }}
app.kubernetes.io/component: webhook
{{- end -}}

{{/* The labels on every resource of the webhook (and the chart's shared resources). */}}
{{- define "vigil.labels" -}}
helm.sh/chart: {{ include "vigil.chart" . }}
{{ include "vigil.selectorLabels" . }}
{{ include "vigil.releaseLabels" . }}
{{- end -}}

{{/* The labels that select the audit's pods: never the webhook's, so no Service or budget counts them. */}}
{{- define "vigil.auditSelectorLabels" -}}
app.kubernetes.io/name: {{ include "vigil.name" . }}
app.kubernetes.io/instance: {{ .Release.Name }}
app.kubernetes.io/component: audit
{{- end -}}

{{/* The labels on every resource of the audit. */}}
{{- define "vigil.auditLabels" -}}
helm.sh/chart: {{ include "vigil.chart" . }}
{{ include "vigil.auditSelectorLabels" . }}
{{ include "vigil.releaseLabels" . }}
{{- end -}}

{{/* Version, manager and the user's labels, on every resource. */}}
{{- define "vigil.releaseLabels" -}}
app.kubernetes.io/version: {{ .Chart.AppVersion | quote }}
app.kubernetes.io/managed-by: {{ .Release.Service }}
app.kubernetes.io/part-of: vigil
{{- with .Values.commonLabels }}
{{ toYaml . }}
{{- end -}}
{{- end -}}

{{- define "vigil.serviceAccountName" -}}
{{- if .Values.serviceAccount.create -}}
{{- default (include "vigil.fullname" .) .Values.serviceAccount.name -}}
{{- else -}}
{{- default "default" .Values.serviceAccount.name -}}
{{- end -}}
{{- end -}}

{{/* The audit's own ServiceAccount: read access to what it audits, write access to reports only. */}}
{{- define "vigil.auditServiceAccountName" -}}
{{- default (printf "%s-audit" (include "vigil.fullname" .)) .Values.audit.serviceAccount.name -}}
{{- end -}}

{{/* The report API the audit writes, as {"group", "resource"} for its RBAC. */}}
{{- define "vigil.reportResource" -}}
{{- if eq .Values.audit.reportApi "openreports" -}}
{"group": "openreports.io", "resource": "reports"}
{{- else -}}
{"group": "wgpolicyk8s.io", "resource": "policyreports"}
{{- end -}}
{{- end -}}

{{- define "vigil.policyConfigMapName" -}}
{{- default (printf "%s-policy" (include "vigil.fullname" .)) .Values.policyConfigMap.name -}}
{{- end -}}

{{/* The Secret holding tls.crt and tls.key, whichever certs.mode made it. */}}
{{- define "vigil.tlsSecretName" -}}
{{- if and (eq .Values.certs.mode "secret") .Values.certs.secret.name -}}
{{- .Values.certs.secret.name -}}
{{- else -}}
{{- printf "%s-tls" (include "vigil.fullname" .) -}}
{{- end -}}
{{- end -}}

{{/* The image reference: repository:tag, plus @digest when pinned. */}}
{{- define "vigil.image" -}}
{{- if eq .Values.image.tag "latest" -}}
{{- fail "image.tag: \"latest\" is a mutable tag, and Vigil's own image-tag rule flags it; pin a version (and optionally image.digest)" -}}
{{- end -}}
{{- $ref := printf "%s:%s" .Values.image.repository (default .Chart.AppVersion .Values.image.tag) -}}
{{- if .Values.image.digest -}}
{{- $ref = printf "%s@%s" $ref .Values.image.digest -}}
{{- end -}}
{{- $ref -}}
{{- end -}}

{{/* The names the serving certificate must cover: how the API server reaches the Service. */}}
{{- define "vigil.dnsNames" -}}
{{- $svc := include "vigil.fullname" . -}}
{{- $ns := .Release.Namespace -}}
{{- list $svc (printf "%s.%s" $svc $ns) (printf "%s.%s.svc" $svc $ns) (printf "%s.%s.svc.%s" $svc $ns .Values.clusterDomain) | toJson -}}
{{- end -}}

{{/*
The TLS material of certs.mode=helm, base64-encoded, as {"ca": ..., "crt": ..., "key": ...}.
An existing Secret is reused (lookup) so that an upgrade keeps the caBundle the API server already trusts;
otherwise a CA and a certificate are generated. The result is kept on the root context, so that the
Secret and both webhook configurations of one render agree.
*/}}
{{- define "vigil.helmTLS" -}}
{{- if not (hasKey . "vigilHelmTLS") -}}
{{- $secretName := include "vigil.tlsSecretName" . -}}
{{- $existing := lookup "v1" "Secret" .Release.Namespace $secretName -}}
{{- $data := dict -}}
{{- if $existing -}}
{{- $data = $existing.data | default dict -}}
{{- end -}}
{{- $tls := dict -}}
{{- if and (index $data "ca.crt") (index $data "tls.crt") (index $data "tls.key") -}}
{{- $tls = dict "ca" (index $data "ca.crt") "crt" (index $data "tls.crt") "key" (index $data "tls.key") -}}
{{- else -}}
{{- $days := int .Values.certs.helm.validityDays -}}
{{- $ca := genCA (printf "%s-ca" (include "vigil.fullname" .)) $days -}}
{{- $names := include "vigil.dnsNames" . | fromJsonArray -}}
{{- $cert := genSignedCert (index $names 2) nil $names $days $ca -}}
{{- $tls = dict "ca" ($ca.Cert | b64enc) "crt" ($cert.Cert | b64enc) "key" ($cert.Key | b64enc) -}}
{{- end -}}
{{- $_ := set . "vigilHelmTLS" $tls -}}
{{- end -}}
{{- toJson (get . "vigilHelmTLS") -}}
{{- end -}}

{{/* The caBundle for the webhook configurations (base64 PEM); empty under cert-manager, which injects it. */}}
{{- define "vigil.caBundle" -}}
{{- if eq .Values.certs.mode "helm" -}}
{{- (include "vigil.helmTLS" . | fromJson).ca -}}
{{- else if eq .Values.certs.mode "secret" -}}
{{- $bundle := .Values.certs.secret.caBundle | trim -}}
{{- if hasPrefix "-----BEGIN" $bundle -}}
{{- $bundle | b64enc -}}
{{- else if $bundle -}}
{{- $bundle -}}
{{- else -}}
{{- $existing := lookup "v1" "Secret" .Release.Namespace (include "vigil.tlsSecretName" .) -}}
{{- $ca := "" -}}
{{- if $existing -}}
{{- $ca = index ($existing.data | default dict) "ca.crt" | default "" -}}
{{- end -}}
{{- if not $ca -}}
{{- fail (printf "certs.mode=secret needs certs.secret.caBundle (the CA that signed the Secret %s), or a ca.crt key in that Secret" (include "vigil.tlsSecretName" .)) -}}
{{- end -}}
{{- $ca -}}
{{- end -}}
{{- end -}}
{{- end -}}

{{/* Annotations of the webhook configurations: cert-manager's CA injection, and the user's. */}}
{{- define "vigil.webhookAnnotations" -}}
{{- $annotations := deepCopy .Values.webhook.annotations -}}
{{- if eq .Values.certs.mode "cert-manager" -}}
{{- $_ := set $annotations "cert-manager.io/inject-ca-from" (printf "%s/%s-tls" .Release.Namespace (include "vigil.fullname" .)) -}}
{{- end -}}
{{- with $annotations -}}
{{- dict "annotations" . | toYaml -}}
{{- end -}}
{{- end -}}

{{/* clientConfig for a webhook path: the Service, and the caBundle unless cert-manager injects it. */}}
{{- define "vigil.clientConfig" -}}
{{- $root := index . 0 -}}
clientConfig:
  service:
    name: {{ include "vigil.fullname" $root }}
    namespace: {{ $root.Release.Namespace }}
    path: {{ index . 1 }}
    port: {{ $root.Values.service.port }}
  {{- if ne $root.Values.certs.mode "cert-manager" }}
  caBundle: {{ include "vigil.caBundle" $root }}
  {{- end }}
{{- end -}}

{{/*
A policy dict as JSON, with every mode written bare as `off` (which YAML 1.1, and so Helm's values and
fromYaml, read as false) turned back into "off".
*/}}
{{- define "vigil.normalizedPolicy" -}}
{{- $policy := deepCopy . -}}
{{- if kindIs "bool" $policy.mode -}}
{{- $_ := set $policy "mode" "off" -}}
{{- end -}}
{{- range $id, $rule := ($policy.rules | default dict) -}}
{{- if kindIs "bool" $rule -}}
{{- $_ := set $policy.rules $id "off" -}}
{{- else if and (kindIs "map" $rule) (kindIs "bool" (get $rule "mode")) -}}
{{- $_ := set $rule "mode" "off" -}}
{{- end -}}
{{- end -}}
{{- range ($policy.namespaces | default list) -}}
{{- if and (kindIs "map" .) (kindIs "bool" .mode) -}}
{{- $_ := set . "mode" "off" -}}
{{- end -}}
{{- end -}}
{{- toJson $policy -}}
{{- end -}}

{{/* values.policy as JSON (see vigil.normalizedPolicy). */}}
{{- define "vigil.policy" -}}
{{- include "vigil.normalizedPolicy" .Values.policy -}}
{{- end -}}

{{/* values.policy as the policy.yaml text the chart writes. */}}
{{- define "vigil.valuesPolicyText" -}}
{{- $policy := include "vigil.policy" . | fromJson -}}
apiVersion: vigil.dev/v1alpha1
kind: Policy
{{- range $key := list "mode" "profile" "updates" "rules" "namespaces" "exemptions" "registry" }}
{{- $value := get $policy $key }}
{{- if not (or (kindIs "invalid" $value) (and (kindIs "map" $value) (empty $value))) }}
{{ dict $key $value | toYaml }}
{{- end }}
{{- end }}
{{ end -}}

{{/*
The live policy ConfigMap (lookup), as JSON; {} when there is none: at install, and whenever Helm renders
without a cluster (helm template, --dry-run=client). Looked up once per render.
*/}}
{{- define "vigil.livePolicyConfigMap" -}}
{{- if not (hasKey . "vigilLivePolicyConfigMap") -}}
{{- $live := lookup "v1" "ConfigMap" .Release.Namespace (include "vigil.policyConfigMapName" .) | default dict -}}
{{- $_ := set . "vigilLivePolicyConfigMap" $live -}}
{{- end -}}
{{- toJson (get . "vigilLivePolicyConfigMap") -}}
{{- end -}}

{{/*
The live policy.yaml that policyConfigMap.source=cluster keeps, or "" when the chart writes the values'
policy: under source=helm, and under source=cluster when there is no live ConfigMap with a policy.yaml
(the first install). Fails when the values' policy changed since the chart last wrote or acknowledged it,
since under source=cluster it would not be applied.
*/}}
{{- define "vigil.clusterPolicyText" -}}
{{- if eq .Values.policyConfigMap.source "cluster" -}}
{{- $live := include "vigil.livePolicyConfigMap" . | fromJson -}}
{{- $text := index ($live.data | default dict) "policy.yaml" | default "" -}}
{{- if $text -}}
{{- $annotations := $live.metadata.annotations | default dict -}}
{{- $valuesSha := include "vigil.valuesPolicyText" . | sha256sum -}}
{{- $recorded := index $annotations "vigil.dev/values-policy-sha256" | default ($text | sha256sum) -}}
{{- if not (has $valuesSha (list $recorded .Values.policyConfigMap.ignoreValuesPolicy)) -}}
{{- $cm := printf "%s/%s" .Release.Namespace (include "vigil.policyConfigMapName" .) -}}
{{- fail (printf "policyConfigMap.source=cluster: the policy values changed (sha256 %s, last applied %s), but under source=cluster the chart never writes them over the policy kept in the cluster (ConfigMap %s), so this upgrade would drop the change. Either: make the change in the ConfigMap (kubectl apply) and upgrade with the values unchanged; or write the values' policy over the cluster's with --set policyConfigMap.source=helm (add --force-conflicts if it was edited with kubectl); or keep the cluster's policy and record this values change as not applied with --set policyConfigMap.ignoreValuesPolicy=%s" $valuesSha $recorded $cm $valuesSha) -}}
{{- end -}}
{{- $text -}}
{{- end -}}
{{- end -}}
{{- end -}}

{{/*
The policy in force after this render, as JSON: the live one kept under policyConfigMap.source=cluster, or
values.policy. The failurePolicy and the registry egress follow it.
*/}}
{{- define "vigil.policyInForce" -}}
{{- $text := include "vigil.clusterPolicyText" . -}}
{{- if $text -}}
{{- $live := fromYaml $text -}}
{{- if or (hasKey $live "Error") (not (kindIs "map" $live)) -}}
{{- fail (printf "policyConfigMap.source=cluster: policy.yaml in the ConfigMap %s/%s is not YAML (%s); fix it with kubectl apply, then upgrade" .Release.Namespace (include "vigil.policyConfigMapName" .) (get $live "Error" | default "not a map")) -}}
{{- end -}}
{{- include "vigil.normalizedPolicy" $live -}}
{{- else -}}
{{- include "vigil.policy" . -}}
{{- end -}}
{{- end -}}

{{/*
"true" when a policy (a dict, as vigil.policyInForce gives it) enforces anything: its mode, a rule's mode,
or a namespace override. Then an outage must not silently admit what the policy would deny, and the
default failurePolicy is Fail. Vigil's policy-edit check (src/policy/edit.rs) counts the same places.
*/}}
{{- define "vigil.enforcing" -}}
{{- $enforcing := eq (toString .mode) "enforce" -}}
{{- range $id, $rule := (.rules | default dict) -}}
{{- if and (kindIs "string" $rule) (eq (toString $rule) "enforce") -}}
{{- $enforcing = true -}}
{{- else if and (kindIs "map" $rule) (eq (toString (get $rule "mode")) "enforce") -}}
{{- $enforcing = true -}}
{{- end -}}
{{- end -}}
{{- range (.namespaces | default list) -}}
{{- if and (kindIs "map" .) (eq (toString .mode) "enforce") -}}
{{- $enforcing = true -}}
{{- end -}}
{{- end -}}
{{- $enforcing -}}
{{- end -}}

{{/*
"true" when a registry rule (one that looks images up in their registries) is on in the policy in force:
configured in its rules with a mode other than off, its own or the policy's. Such a rule needs DNS and HTTPS
egress.
*/}}
{{- define "vigil.registryLookups" -}}
{{- $policy := include "vigil.policyInForce" . | fromJson -}}
{{- $on := false -}}
{{- range $id := list "image-resolvable" "image-digest-deny" "image-tag-moved" "image-runs-as-root" "image-signature" -}}
{{- if hasKey ($policy.rules | default dict) $id -}}
{{- $rule := index $policy.rules $id -}}
{{- $mode := $policy.mode | default "audit" -}}
{{- if kindIs "string" $rule -}}
{{- $mode = $rule -}}
{{- else if and (kindIs "map" $rule) (get $rule "mode") -}}
{{- $mode = get $rule "mode" -}}
{{- end -}}
{{- if ne (toString $mode) "off" -}}
{{- $on = true -}}
{{- end -}}
{{- end -}}
{{- end -}}
{{- $on -}}
{{- end -}}

{{/*
The failurePolicy of the ordinary-namespaces entry: the value, or Fail when the policy in force enforces
anything, else Ignore.
*/}}
{{- define "vigil.failurePolicy" -}}
{{- if .Values.webhook.failurePolicy -}}
{{- .Values.webhook.failurePolicy -}}
{{- else if eq (include "vigil.enforcing" (include "vigil.policyInForce" . | fromJson)) "true" -}}
Fail
{{- else -}}
Ignore
{{- end -}}
{{- end -}}

{{/* The namespaces whose webhook entry always fails open: kube-system, the release namespace, and the value's. */}}
{{- define "vigil.systemNamespaces" -}}
{{- concat (list "kube-system" .Release.Namespace) .Values.webhook.systemNamespaces | uniq | toJson -}}
{{- end -}}

{{/* The opt-out label's matchExpression, as a JSON list: empty unless it is enabled. */}}
{{- define "vigil.optOutExpressions" -}}
{{- if .Values.webhook.optOutLabel.enabled -}}
{{- list (dict "key" .Values.webhook.optOutLabel.key "operator" "NotIn" "values" (list (toString .Values.webhook.optOutLabel.value))) | toJson -}}
{{- else -}}
[]
{{- end -}}
{{- end -}}

{{/* namespaceSelector of the ordinary-namespaces entry: every namespace but the system ones. */}}
{{- define "vigil.ordinaryNamespaceSelector" -}}
{{- $system := include "vigil.systemNamespaces" . | fromJsonArray -}}
{{- $expressions := list (dict "key" "kubernetes.io/metadata.name" "operator" "NotIn" "values" $system) -}}
{{- $expressions = concat $expressions (include "vigil.optOutExpressions" . | fromJsonArray) .Values.webhook.namespaceSelectorExpressions -}}
{{- dict "namespaceSelector" (dict "matchExpressions" $expressions) | toYaml -}}
{{- end -}}

{{/* namespaceSelector of the fail-open entry: the system namespaces only. */}}
{{- define "vigil.systemNamespaceSelector" -}}
{{- $system := include "vigil.systemNamespaces" . | fromJsonArray -}}
{{- $expressions := list (dict "key" "kubernetes.io/metadata.name" "operator" "In" "values" $system) -}}
{{- $expressions = concat $expressions (include "vigil.optOutExpressions" . | fromJsonArray) -}}
{{- dict "namespaceSelector" (dict "matchExpressions" $expressions) | toYaml -}}
{{- end -}}

{{/* namespaceSelector of the mutating webhook, which covers every namespace (it always fails open). */}}
{{- define "vigil.annotateNamespaceSelector" -}}
{{- $expressions := concat (include "vigil.optOutExpressions" . | fromJsonArray) .Values.webhook.namespaceSelectorExpressions -}}
{{- with $expressions -}}
{{- dict "namespaceSelector" (dict "matchExpressions" .) | toYaml -}}
{{- end -}}
{{- end -}}

{{/*
The admission rules for every pod-bearing kind, CREATE and UPDATE. "pods/ephemeralcontainers" is listed on
its own because a resource rule never covers subresources. The validating webhook (argument true) also gets
CONNECT on pods/exec, pods/attach and pods/portforward, judged by pod-exec and port-forward. The mutating
webhook (false) leaves the subresources out: an annotation cannot be written through them.
*/}}
{{- define "vigil.workloadRules" -}}
{{- $validating := . -}}
rules:
  - apiGroups: [""]
    apiVersions: ["v1"]
    operations: ["CREATE", "UPDATE"]
    resources:
      - pods
      {{- if $validating }}
      - pods/ephemeralcontainers
      {{- end }}
      - replicationcontrollers
      - podtemplates
    scope: Namespaced
  {{- if $validating }}
  - apiGroups: [""]
    apiVersions: ["v1"]
    operations: ["CONNECT"]
    resources: ["pods/exec", "pods/attach", "pods/portforward"]
    scope: Namespaced
  {{- end }}
  - apiGroups: ["apps"]
    apiVersions: ["v1"]
    operations: ["CREATE", "UPDATE"]
    resources: ["deployments", "replicasets", "statefulsets", "daemonsets"]
    scope: Namespaced
  - apiGroups: ["batch"]
    apiVersions: ["v1"]
    operations: ["CREATE", "UPDATE"]
    resources: ["jobs", "cronjobs"]
    scope: Namespaced
{{- end -}}
