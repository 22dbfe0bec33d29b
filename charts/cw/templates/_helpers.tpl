{{/* Names, labels and the shared pieces of both cw containers. */}}

{{- define "cw.name" -}}
{{- default .Chart.Name .Values.nameOverride | trunc 63 | trimSuffix "-" }}
{{- end }}

{{- define "cw.fullname" -}}
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

{{- define "cw.chart" -}}
{{- printf "%s-%s" .Chart.Name .Chart.Version | replace "+" "_" | trunc 63 | trimSuffix "-" }}
{{- end }}

{{/* Common labels; call with (dict "ctx" $ "component" "watcher"). */}}
{{- define "cw.labels" -}}
helm.sh/chart: {{ include "cw.chart" .ctx }}
{{ include "cw.selectorLabels" . }}
app.kubernetes.io/version: {{ .ctx.Chart.AppVersion | quote }}
app.kubernetes.io/managed-by: {{ .ctx.Release.Service }}
app.kubernetes.io/part-of: cw
{{- end }}

{{- define "cw.selectorLabels" -}}
app.kubernetes.io/name: {{ include "cw.name" .ctx }}
app.kubernetes.io/instance: {{ .ctx.Release.Name }}
app.kubernetes.io/component: {{ .component }}
{{- end }}

{{- define "cw.image" -}}
{{- printf "%s:%s" .Values.image.repository (default .Chart.AppVersion .Values.image.tag) }}
{{- end }}

{{- define "cw.watcher.serviceAccountName" -}}
{{- if .Values.watcher.serviceAccount.create }}
{{- default (printf "%s-watcher" (include "cw.fullname" .)) .Values.watcher.serviceAccount.name }}
{{- else }}
{{- default "default" .Values.watcher.serviceAccount.name }}
{{- end }}
{{- end }}

{{- define "cw.authSecretName" -}}
{{- default (printf "%s-token" (include "cw.fullname" .)) .Values.auth.existingSecret }}
{{- end }}

{{- define "cw.ingestUrl" -}}
{{- printf "http://%s-ingest.%s.svc:%d" (include "cw.fullname" .) .Release.Namespace (int .Values.ingest.config.port) }}
{{- end }}

{{/* "true" when the bundled Chroma is deployed: enabled, and Qdrant not chosen instead. */}}
{{- define "cw.bundledChroma" -}}
{{- if and .Values.chroma.enabled (not .Values.store.qdrant.url) }}true{{ end }}
{{- end }}

{{- define "cw.chromaUrl" -}}
{{- if .Values.ingest.config.chromaUrl }}
{{- .Values.ingest.config.chromaUrl }}
{{- else if .Values.chroma.enabled }}
{{- printf "http://%s-chroma.%s.svc:%d" (include "cw.fullname" .) .Release.Namespace (int .Values.chroma.port) }}
{{- else }}
{{- fail "ingest.config.chromaUrl is empty and chroma.enabled is false: set one of them (or store.qdrant.url)" }}
{{- end }}
{{- end }}

{{/* The bearer token, read by both containers from the same Secret. */}}
{{- define "cw.authEnv" -}}
{{- if .Values.auth.enabled -}}
- name: CW_INGEST_TOKEN
  valueFrom:
    secretKeyRef:
      name: {{ include "cw.authSecretName" . }}
      key: {{ .Values.auth.secretKey }}
{{- end }}
{{- end }}

{{/*
Types the ClusterRole grants, as the watcher's allow list (`plural` for the core group,
`plural.group` otherwise), so that it never asks for what it may not read.
*/}}
{{- define "cw.watcher.grantedTypes" -}}
{{- $types := list }}
{{- $r := .Values.watcher.rbac }}
{{- range (concat $r.rules $r.extraRules) }}
{{- $groups := .apiGroups }}
{{- range .resources }}
{{- $res := . }}
{{- range $groups }}
{{- $types = append $types (ternary $res (printf "%s.%s" $res .) (eq . "")) }}
{{- end }}
{{- end }}
{{- end }}
{{- if $r.secrets }}{{ $types = append $types "secrets" }}{{ end }}
{{- if $r.customResourceDefinitions }}{{ $types = append $types "customresourcedefinitions.apiextensions.k8s.io" }}{{ end }}
{{- $types | uniq | join "," }}
{{- end }}

{{- define "cw.tmpVolume" -}}
- name: tmp
  emptyDir:
    sizeLimit: 64Mi
{{- end }}
