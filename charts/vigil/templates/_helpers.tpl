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
values.policy as JSON, with every mode written bare as `off` (which YAML 1.1, and so Helm, reads as false)
turned back into "off".
*/}}
{{- define "vigil.policy" -}}
{{- $policy := deepCopy .Values.policy -}}
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
{{- if kindIs "bool" .mode -}}
{{- $_ := set . "mode" "off" -}}
{{- end -}}
{{- end -}}
{{- toJson $policy -}}
{{- end -}}

{{/*
"true" when the policy enforces anything: its mode, a rule's mode, or a namespace override. Then an outage
must not silently admit what the policy would deny, and the default failurePolicy is Fail.
*/}}
{{- define "vigil.enforcing" -}}
{{- $enforcing := eq (toString .Values.policy.mode) "enforce" -}}
{{- range $id, $rule := .Values.policy.rules -}}
{{- if and (kindIs "string" $rule) (eq (toString $rule) "enforce") -}}
{{- $enforcing = true -}}
{{- else if and (kindIs "map" $rule) (eq (toString (get $rule "mode")) "enforce") -}}
{{- $enforcing = true -}}
{{- end -}}
{{- end -}}
{{- range .Values.policy.namespaces -}}
{{- if eq (toString .mode) "enforce" -}}
{{- $enforcing = true -}}
{{- end -}}
{{- end -}}
{{- $enforcing -}}
{{- end -}}

{{/*
"true" when a registry rule (one that looks images up in their registries) is on: configured in
policy.rules with a mode other than off, its own or the policy's. Such a rule needs DNS and HTTPS egress.
*/}}
{{- define "vigil.registryLookups" -}}
{{- $policy := include "vigil.policy" . | fromJson -}}
{{- $on := false -}}
{{- range $id := list "image-resolvable" "image-digest-deny" "image-tag-moved" "image-runs-as-root" -}}
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

{{/* The failurePolicy of the ordinary-namespaces entry: the value, or Fail when enforcing, else Ignore. */}}
{{- define "vigil.failurePolicy" -}}
{{- if .Values.webhook.failurePolicy -}}
{{- .Values.webhook.failurePolicy -}}
{{- else if eq (include "vigil.enforcing" .) "true" -}}
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
its own because a resource rule never covers subresources; the mutating webhook leaves it out (an
annotation cannot be written through that subresource).
*/}}
{{- define "vigil.workloadRules" -}}
{{- $ephemeral := . -}}
rules:
  - apiGroups: [""]
    apiVersions: ["v1"]
    operations: ["CREATE", "UPDATE"]
    resources:
      - pods
      {{- if $ephemeral }}
      - pods/ephemeralcontainers
      {{- end }}
      - replicationcontrollers
      - podtemplates
    scope: Namespaced
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
