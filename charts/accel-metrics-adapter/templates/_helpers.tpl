{{/*
Names are cut at 63 characters (the DNS-1123 label limit for Service names and label values).
*/}}
{{- define "accel-metrics-adapter.name" -}}
{{- default .Chart.Name .Values.nameOverride | trunc 63 | trimSuffix "-" }}
{{- end }}

{{- define "accel-metrics-adapter.fullname" -}}
{{- if .Values.fullnameOverride }}
{{- .Values.fullnameOverride | trunc 63 | trimSuffix "-" }}
{{- else }}
{{- $name := default .Chart.Name .Values.nameOverride }}
{{- if contains $name .Release.Name }}
{{- .Release.Name | trunc 63 | trimSuffix "-" }}
{{- else }}
{{- printf "%s-%s" .Release.Name $name | trunc 63 | trimSuffix "-" }}
{{- end }}
{{- end }}
{{- end }}

{{- define "accel-metrics-adapter.chart" -}}
{{- printf "%s-%s" .Chart.Name .Chart.Version | replace "+" "_" | trunc 63 | trimSuffix "-" }}
{{- end }}

{{/*
Selector labels: stable for the life of a release (a Deployment's selector is immutable).
*/}}
{{- define "accel-metrics-adapter.selectorLabels" -}}
app.kubernetes.io/name: {{ include "accel-metrics-adapter.name" . }}
app.kubernetes.io/instance: {{ .Release.Name | trunc 63 | trimSuffix "-" }}
{{- end }}

{{- define "accel-metrics-adapter.labels" -}}
helm.sh/chart: {{ include "accel-metrics-adapter.chart" . }}
{{ include "accel-metrics-adapter.selectorLabels" . }}
app.kubernetes.io/version: {{ .Chart.AppVersion | trunc 63 | trimSuffix "-" | quote }}
app.kubernetes.io/component: metrics-adapter
app.kubernetes.io/part-of: accel-metrics-adapter
app.kubernetes.io/managed-by: {{ .Release.Service }}
{{- with .Values.commonLabels }}
{{ toYaml . }}
{{- end }}
{{- end }}

{{- define "accel-metrics-adapter.serviceAccountName" -}}
{{- if .Values.serviceAccount.create }}
{{- default (include "accel-metrics-adapter.fullname" .) .Values.serviceAccount.name }}
{{- else }}
{{- default "default" .Values.serviceAccount.name }}
{{- end }}
{{- end }}

{{/* Cluster-scoped names carry the namespace-less full name; keep them within 63 too. */}}
{{- define "accel-metrics-adapter.clusterName" -}}
{{- printf "%s-%s" (include "accel-metrics-adapter.fullname" .root) .suffix | trunc 63 | trimSuffix "-" }}
{{- end }}

{{- define "accel-metrics-adapter.image" -}}
{{- if .Values.image.digest }}
{{- printf "%s@%s" .Values.image.repository .Values.image.digest }}
{{- else }}
{{- printf "%s:%s" .Values.image.repository (default .Chart.AppVersion .Values.image.tag) }}
{{- end }}
{{- end }}

{{/* The Secret holding tls.crt / tls.key for the server. */}}
{{- define "accel-metrics-adapter.tlsSecretName" -}}
{{- if eq .Values.tls.mode "existingSecret" }}
{{- required "tls.existingSecret.name is required when tls.mode=existingSecret" .Values.tls.existingSecret.name }}
{{- else }}
{{- printf "%s-tls" (include "accel-metrics-adapter.fullname" .) | trunc 63 | trimSuffix "-" }}
{{- end }}
{{- end }}

{{/* The DNS names the aggregator and in-cluster clients use for the Service. */}}
{{- define "accel-metrics-adapter.dnsNames" -}}
{{- $svc := include "accel-metrics-adapter.fullname" . }}
{{- $ns := .Release.Namespace }}
{{- list $svc (printf "%s.%s" $svc $ns) (printf "%s.%s.svc" $svc $ns) (printf "%s.%s.svc.cluster.local" $svc $ns) | toJson }}
{{- end }}

{{- define "accel-metrics-adapter.certManagerName" -}}
{{- include "accel-metrics-adapter.fullname" . }}
{{- end }}

{{/* The rule file mounted at /etc/accel-adapter/rules/config.yaml (when the chart owns it). */}}
{{- define "accel-metrics-adapter.config" -}}
{{- $cfg := dict "rules" (.Values.rules.rules | default list) "externalRules" (.Values.rules.externalRules | default list) }}
{{- if .Values.presets }}
{{- $_ := set $cfg "presets" .Values.presets }}
{{- end }}
{{- if .Values.rules.tenancy }}
{{- $_ := set $cfg "tenancy" .Values.rules.tenancy }}
{{- end }}
{{- toYaml $cfg }}
{{- end }}

{{/* The APIServices the release registers, as group/version/priority. */}}
{{- define "accel-metrics-adapter.apiServices" -}}
{{- $out := list }}
{{- if .Values.apiService.customV1beta1 }}
{{- $out = append $out (dict "group" "custom.metrics.k8s.io" "version" "v1beta1" "priority" 100) }}
{{- end }}
{{- if .Values.apiService.customV1beta2 }}
{{- $out = append $out (dict "group" "custom.metrics.k8s.io" "version" "v1beta2" "priority" 200) }}
{{- end }}
{{- if .Values.apiService.external }}
{{- $out = append $out (dict "group" "external.metrics.k8s.io" "version" "v1beta1" "priority" 100) }}
{{- end }}
{{- if .Values.apiService.explain }}
{{- $out = append $out (dict "group" "explain.accel-metrics.io" "version" "v1alpha1" "priority" 100) }}
{{- end }}
{{- toJson $out }}
{{- end }}
