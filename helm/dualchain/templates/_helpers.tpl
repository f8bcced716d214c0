{{- define "dualchain.name" -}}dualchain-operator{{- end -}}

{{- define "dualchain.fullname" -}}
{{- printf "%s-operator" .Release.Name | trunc 63 | trimSuffix "-" -}}
{{- end -}}

{{- define "dualchain.labels" -}}
app.kubernetes.io/name: {{ include "dualchain.name" . }}
app.kubernetes.io/instance: {{ .Release.Name }}
app.kubernetes.io/version: {{ .Chart.AppVersion | quote }}
app.kubernetes.io/component: operator
app.kubernetes.io/part-of: dualchain
helm.sh/chart: {{ printf "%s-%s" .Chart.Name .Chart.Version }}
{{- end -}}

{{- define "dualchain.selectorLabels" -}}
app.kubernetes.io/name: {{ include "dualchain.name" . }}
app.kubernetes.io/instance: {{ .Release.Name }}
{{- end -}}
