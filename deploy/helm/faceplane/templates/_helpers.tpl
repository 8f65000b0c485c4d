{{/* Names, labels and the pieces every workload shares. */}}

{{- define "faceplane.fullname" -}}
{{- if contains .Chart.Name .Release.Name -}}
{{- .Release.Name | trunc 40 | trimSuffix "-" -}}
{{- else -}}
{{- printf "%s-%s" .Release.Name .Chart.Name | trunc 40 | trimSuffix "-" -}}
{{- end -}}
{{- end -}}

{{- define "faceplane.labels" -}}
app.kubernetes.io/name: {{ .root.Chart.Name }}
app.kubernetes.io/instance: {{ .root.Release.Name }}
app.kubernetes.io/version: {{ .root.Chart.AppVersion | quote }}
app.kubernetes.io/managed-by: {{ .root.Release.Service }}
app.kubernetes.io/component: {{ .component }}
helm.sh/chart: {{ printf "%s-%s" .root.Chart.Name .root.Chart.Version }}
{{- end -}}

{{- define "faceplane.selector" -}}
app.kubernetes.io/name: {{ .root.Chart.Name }}
app.kubernetes.io/instance: {{ .root.Release.Name }}
app.kubernetes.io/component: {{ .component }}
{{- end -}}

{{- define "faceplane.image" -}}
{{- printf "%s/%s:%s" .root.Values.image.registry .name (.root.Values.image.tag | default .root.Chart.AppVersion) -}}
{{- end -}}

{{/* A model service's settings: serviceDefaults overridden by its own entry under `services`. */}}
{{- define "faceplane.serviceConfig" -}}
{{- $cfg := mergeOverwrite (deepCopy .root.Values.serviceDefaults) (deepCopy (index .root.Values.services .name)) -}}
{{- toYaml $cfg -}}
{{- end -}}

{{/* The release's Secret (templates/secrets.yaml): the Redis password, URL and config, the service token. */}}
{{- define "faceplane.secretName" -}}
{{- printf "%s-secrets" (include "faceplane.fullname" .) -}}
{{- end -}}

{{/* An env entry's value from one key of that Secret: (dict "root" $ "key" "redis-url"). */}}
{{- define "faceplane.fromSecret" -}}
valueFrom:
  secretKeyRef:
    name: {{ include "faceplane.secretName" .root }}
    key: {{ .key }}
{{- end -}}

{{/* Non-root, nothing to escalate, no capabilities, read-only root: the same for every container. */}}
{{- define "faceplane.podSecurityContext" -}}
runAsNonRoot: true
runAsUser: {{ .uid | default 10001 }}
runAsGroup: {{ .uid | default 10001 }}
fsGroup: {{ .uid | default 10001 }}
seccompProfile:
  type: RuntimeDefault
{{- end -}}

{{- define "faceplane.containerSecurityContext" -}}
allowPrivilegeEscalation: false
readOnlyRootFilesystem: true
privileged: false
capabilities:
  drop: [ALL]
{{- end -}}

{{- define "faceplane.scheduling" -}}
{{- with .nodeSelector }}
nodeSelector:
  {{- toYaml . | nindent 2 }}
{{- end }}
{{- with .tolerations }}
tolerations:
  {{- toYaml . | nindent 2 }}
{{- end }}
{{- with .affinity }}
affinity:
  {{- toYaml . | nindent 2 }}
{{- end }}
{{- end -}}

{{- define "faceplane.hpa" -}}
{{- if .autoscaling.enabled }}
---
apiVersion: autoscaling/v2
kind: HorizontalPodAutoscaler
metadata:
  name: {{ .name }}
  labels:
    {{- include "faceplane.labels" . | nindent 4 }}
spec:
  scaleTargetRef:
    apiVersion: apps/v1
    kind: Deployment
    name: {{ .name }}
  minReplicas: {{ .autoscaling.minReplicas }}
  maxReplicas: {{ .autoscaling.maxReplicas }}
  metrics:
    - type: Resource
      resource:
        name: cpu
        target:
          type: Utilization
          averageUtilization: {{ .autoscaling.targetCPUUtilizationPercentage }}
    {{- if .autoscaling.inFlightPerPod }}
    - type: Pods
      pods:
        metric:
          name: faceplane_grpc_server_in_flight
        target:
          type: AverageValue
          averageValue: {{ .autoscaling.inFlightPerPod | quote }}
    {{- end }}
{{- end }}
{{- end -}}

{{- define "faceplane.pdb" -}}
{{- if .root.Values.podDisruptionBudget.enabled }}
---
apiVersion: policy/v1
kind: PodDisruptionBudget
metadata:
  name: {{ .name }}
  labels:
    {{- include "faceplane.labels" . | nindent 4 }}
spec:
  maxUnavailable: {{ .root.Values.podDisruptionBudget.maxUnavailable }}
  selector:
    matchLabels:
      {{- include "faceplane.selector" . | nindent 6 }}
{{- end }}
{{- end -}}

{{- /* The model server container's ports, fixed by its image: TorchServe's config, TF Serving's entrypoint (metrics
on the REST port, at /metrics per the image's monitoring.config). */ -}}
{{- /* Which model server kind each model-server backend of a service needs. */ -}}
{{- define "faceplane.backendServers" -}}
{torchserve: torchserve, tfserving: tfserving, kserve_v2: triton}
{{- end -}}

{{- define "faceplane.modelServerPorts" -}}
{{- if eq .kind "tfserving" -}}
{grpc: 8500, http: 8501, metrics: 8501}
{{- else if eq .kind "triton" -}}
{grpc: 8001, http: 8000, metrics: 8002}
{{- else -}}
{grpc: 7070, http: 8080, metrics: 8082}
{{- end -}}
{{- end -}}

{{/* Traces (values `tracing`, when enabled): a component's settings under its prefix, its pod on its spans. */}}
{{- define "faceplane.tracingEnv" -}}
{{- with .root.Values.tracing }}
- name: {{ $.prefix }}TRACING
  value: "true"
- name: {{ $.prefix }}OTLP_ENDPOINT
  value: {{ .otlpEndpoint | quote }}
- name: {{ $.prefix }}TRACE_SAMPLE_RATIO
  value: {{ .sampleRatio | quote }}
- name: FACEPLANE_POD_NAME
  valueFrom:
    fieldRef:
      fieldPath: metadata.name
- name: OTEL_RESOURCE_ATTRIBUTES
  value: {{ printf "k8s.pod.name=$(FACEPLANE_POD_NAME),k8s.namespace.name=%s" $.root.Release.Namespace | quote }}
{{- end }}
{{- end -}}
