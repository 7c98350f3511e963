{{/* Names, labels and small values shared by the templates. */}}

{{- define "tailor.name" -}}
{{- .Chart.Name | trunc 63 | trimSuffix "-" -}}
{{- end -}}

{{/* The release's full name: the release name alone when it already says "tailor". */}}
{{- define "tailor.fullname" -}}
{{- if contains .Chart.Name .Release.Name -}}
{{- .Release.Name | trunc 63 | trimSuffix "-" -}}
{{- else -}}
{{- printf "%s-%s" .Release.Name .Chart.Name | trunc 63 | trimSuffix "-" -}}
{{- end -}}
{{- end -}}

{{- define "tailor.selectorLabels" -}}
app.kubernetes.io/name: {{ include "tailor.name" . }}
app.kubernetes.io/instance: {{ .Release.Name }}
app.kubernetes.io/component: operator
{{- end -}}

{{- define "tailor.labels" -}}
helm.sh/chart: {{ printf "%s-%s" .Chart.Name .Chart.Version | replace "+" "_" }}
{{ include "tailor.selectorLabels" . }}
app.kubernetes.io/version: {{ .Chart.AppVersion | quote }}
app.kubernetes.io/managed-by: {{ .Release.Service }}
app.kubernetes.io/part-of: tailor
{{- end -}}

{{- define "tailor.serviceAccountName" -}}
{{- if .Values.serviceAccount.create -}}
{{- default (include "tailor.fullname" .) .Values.serviceAccount.name -}}
{{- else -}}
{{- required "serviceAccount.name is required when serviceAccount.create is false" .Values.serviceAccount.name -}}
{{- end -}}
{{- end -}}

{{- define "tailor.peeringName" -}}
{{- default (include "tailor.fullname" .) .Values.peering.name -}}
{{- end -}}

{{- define "tailor.metricsServiceName" -}}
{{- printf "%s-metrics" (include "tailor.fullname" .) | trunc 63 | trimSuffix "-" -}}
{{- end -}}

{{/* NAMESPACE/NAME of the calibration table the operator reads, or "none". */}}
{{- define "tailor.calibrationRef" -}}
{{- if .Values.calibration.create -}}
{{- printf "%s/%s" .Release.Namespace .Values.calibration.name -}}
{{- else -}}
{{- required "calibration.existing (NAMESPACE/NAME or none) is required when calibration.create is false" .Values.calibration.existing -}}
{{- end -}}
{{- end -}}

{{- define "tailor.image" -}}
{{- printf "%s:%s" .image.repository (default .chart.AppVersion .image.tag) -}}
{{- end -}}

{{/* The restricted Pod Security profile, for the pod and its container. */}}
{{- define "tailor.podSecurityContext" -}}
runAsNonRoot: true
runAsUser: 65532
runAsGroup: 65532
fsGroup: 65532
seccompProfile:
  type: RuntimeDefault
{{- end -}}

{{- define "tailor.containerSecurityContext" -}}
allowPrivilegeEscalation: false
readOnlyRootFilesystem: true
runAsNonRoot: true
capabilities:
  drop: [ALL]
seccompProfile:
  type: RuntimeDefault
{{- end -}}

{{/* What the operator does in a namespace whose TrainingJobs it manages. */}}
{{- define "tailor.jobRules" -}}
- apiGroups: [tailor.dev]
  resources: [trainingjobs]
  verbs: [get, list, watch]
- apiGroups: [tailor.dev]
  resources: [trainingjobs/status]
  verbs: [get, update, patch]
- apiGroups: [""]
  resources: [pods]
  verbs: [get, list, watch, create, delete, patch]
- apiGroups: [""]
  resources: [configmaps]
  verbs: [create]  # trial configs; never read back
- apiGroups: [""]
  resources: [events]
  verbs: [create, patch]
{{- end }}
