{{/*
The chart name, truncated to 63 characters (the limit of a label value).
*/}}
{{- define "gc-tuner.name" -}}
{{- default .Chart.Name .Values.nameOverride | trunc 63 | trimSuffix "-" }}
{{- end }}

{{/*
The prefix of every resource name: <release>-<chart>, or just <release> when the release name already
contains the chart name (helm install gc-tuner charts/gc-tuner gives "gc-tuner", not "gc-tuner-gc-tuner").
*/}}
{{- define "gc-tuner.fullname" -}}
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

{{/*
Chart name and version, for the helm.sh/chart label.
*/}}
{{- define "gc-tuner.chart" -}}
{{- printf "%s-%s" .Chart.Name .Chart.Version | replace "+" "_" | trunc 63 | trimSuffix "-" }}
{{- end }}

{{/*
Labels every resource of the release carries.
*/}}
{{- define "gc-tuner.labels" -}}
helm.sh/chart: {{ include "gc-tuner.chart" . }}
{{ include "gc-tuner.selectorLabels" . }}
app.kubernetes.io/version: {{ .Chart.AppVersion | quote }}
app.kubernetes.io/managed-by: {{ .Release.Service }}
app.kubernetes.io/part-of: gc-tuner
{{- end }}

{{/*
Labels that select the operator pods. They must never change between upgrades: a Deployment's selector
is immutable.
*/}}
{{- define "gc-tuner.selectorLabels" -}}
app.kubernetes.io/name: {{ include "gc-tuner.name" . }}
app.kubernetes.io/instance: {{ .Release.Name }}
{{- end }}

{{/*
The ServiceAccount the operator runs as.
*/}}
{{- define "gc-tuner.serviceAccountName" -}}
{{- if .Values.serviceAccount.create }}
{{- default (include "gc-tuner.fullname" .) .Values.serviceAccount.name }}
{{- else }}
{{- default "default" .Values.serviceAccount.name }}
{{- end }}
{{- end }}

{{/*
The operator image: repository@digest when a digest is set, else repository:tag (tag defaults to appVersion).
*/}}
{{- define "gc-tuner.image" -}}
{{- $img := .Values.image }}
{{- if $img.digest }}
{{- printf "%s@%s" $img.repository $img.digest }}
{{- else }}
{{- printf "%s:%s" $img.repository (default .Chart.AppVersion $img.tag) }}
{{- end }}
{{- end }}

{{/*
"true" when the operator watches every namespace (no operator.watchNamespaces), else "".
*/}}
{{- define "gc-tuner.clusterwide" -}}
{{- if not .Values.operator.watchNamespaces }}true{{ end }}
{{- end }}

{{/*
The arguments of `gc-tuner operator` (the image's entrypoint), one per line as a YAML list.
*/}}
{{- define "gc-tuner.args" -}}
{{- $op := .Values.operator }}
{{- if include "gc-tuner.clusterwide" . }}
- --all-namespaces
{{- else }}
{{- range $op.watchNamespaces }}
- --namespace={{ . }}
{{- end }}
{{- end }}
{{- if $op.peering.enabled }}
- --peering={{ $op.peering.name }}
- --priority={{ $op.peering.priority }}
- --peering-lifetime={{ $op.peering.lifetimeSeconds }}
{{- else }}
- --standalone
{{- end }}
# A pod has its own network namespace: listen on all of its addresses, so the kubelet's probes and the
# Service reach the pod IP.
- --bind-address=0.0.0.0
- --metrics-port={{ $op.metricsPort }}
- --liveness-port={{ $op.livenessPort }}
{{- if $op.dryRun }}
- --dry-run
{{- end }}
- --min-interval-seconds={{ $op.minIntervalSeconds }}
{{- if $op.verbose }}
- --verbose
{{- end }}
{{- range $op.extraArgs }}
- {{ . | quote }}
{{- end }}
{{- end }}

{{/*
The rules the operator needs in each namespace it watches: in a Role per namespace, or in the ClusterRole
when it watches all namespaces. "framework" rules are what kopf itself does; "application" rules are
gc-tuner's own calls.
*/}}
{{- define "gc-tuner.namespacedRules" -}}
# framework: kopf lists and watches GCPolicies, and patches them to add/remove its finalizer and to
# record handler progress in annotations.
- apiGroups: ["gctuner.io"]
  resources: ["gcpolicies"]
  verbs: ["list", "watch", "patch"]
# application: the tuning cycle writes status (fit, recommendation, applied, conditions).
- apiGroups: ["gctuner.io"]
  resources: ["gcpolicies/status"]
  verbs: ["patch"]
# framework + application: kopf's handler events and gc-tuner's Applied/Failed events on GCPolicies.
- apiGroups: [""]
  resources: ["events"]
  verbs: ["create"]
# application: pod discovery through a kopf.index on pods (one watch, no listing per interval).
- apiGroups: [""]
  resources: ["pods"]
  verbs: ["list", "watch"]
# application: the GCTrace source reads gctrace lines from the container logs.
- apiGroups: [""]
  resources: ["pods/log"]
  verbs: ["get"]
# application: a kopf.index on Deployments (list/watch) gives each policy its target's selector and
# memory limit; the EnvPatch rollout reads the target afresh every cycle (get) and writes its env with
# server-side apply (patch).
- apiGroups: ["apps"]
  resources: ["deployments"]
  verbs: ["get", "list", "watch", "patch"]
# application: the EnvPatch rollout of a StatefulSet target, as for a Deployment (server-side apply).
- apiGroups: ["apps"]
  resources: ["statefulsets"]
  verbs: ["patch"]
{{- if .Values.rbac.canaryDeployments }}
# application: the guarded EnvPatch rollout runs a candidate on a canary Deployment,
# <target>-gctuner-canary, owned by the GCPolicy, and deletes it when the trial ends. RBAC cannot
# narrow create/delete to those names, hence a value of its own (rbac.canaryDeployments).
- apiGroups: ["apps"]
  resources: ["deployments"]
  verbs: ["create", "delete"]
{{- end }}
# application: the other target kinds (kopf.index on StatefulSets and DaemonSets), and the owner chain
# pod -> ReplicaSet -> Deployment (kopf.index on ReplicaSets): a pod is tuned because its workload
# owns it, not because its labels match. Read only.
- apiGroups: ["apps"]
  resources: ["statefulsets", "daemonsets", "replicasets"]
  verbs: ["get", "list", "watch"]
# application: the Endpoint rollout reads its bearer token (spec.rollout.endpoint.tokenSecretRef).
# get only: the operator can read a Secret it is told the name of, but cannot list or watch Secrets.
- apiGroups: [""]
  resources: ["secrets"]
  verbs: ["get"]
{{- with .Values.rbac.secrets.resourceNames }}
  resourceNames:
{{- toYaml . | nindent 4 }}
{{- end }}
{{- end }}
