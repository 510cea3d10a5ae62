"""Helm chart fixtures written the way chart authors write them: a podinfo-style chart (helpers,
Deployment, Service with named ports, HPA behind a capability check, test hooks with random names,
a ``crds/`` folder, a vendored dependency in ``charts/``) and values files in Git."""

from __future__ import annotations

HELPERS = """\
{{- define "podinfo.fullname" -}}
{{- if contains .Chart.Name .Release.Name }}{{ .Release.Name | trunc 63 | trimSuffix "-" }}
{{- else }}{{ printf "%s-%s" .Release.Name .Chart.Name | trunc 63 | trimSuffix "-" }}{{ end }}
{{- end }}

{{- define "podinfo.labels" -}}
helm.sh/chart: {{ printf "%s-%s" .Chart.Name .Chart.Version | replace "+" "_" }}
app.kubernetes.io/name: {{ .Chart.Name }}
app.kubernetes.io/instance: {{ .Release.Name }}
app.kubernetes.io/version: {{ .Chart.AppVersion | quote }}
app.kubernetes.io/managed-by: {{ .Release.Service }}
{{- end }}

{{- define "podinfo.selectorLabels" -}}
app.kubernetes.io/name: {{ .Chart.Name }}
app.kubernetes.io/instance: {{ .Release.Name }}
{{- end }}
"""

DEPLOYMENT = """\
apiVersion: apps/v1
kind: Deployment
metadata:
  name: {{ template "podinfo.fullname" . }}
  labels:
    {{- include "podinfo.labels" . | nindent 4 }}
spec:
  {{- if not .Values.hpa.enabled }}
  replicas: {{ .Values.replicaCount }}
  {{- end }}
  strategy:
    type: RollingUpdate
    rollingUpdate:
      maxUnavailable: 1
  selector:
    matchLabels:
      {{- include "podinfo.selectorLabels" . | nindent 6 }}
  template:
    metadata:
      labels:
        {{- include "podinfo.selectorLabels" . | nindent 8 }}
      annotations:
        prometheus.io/scrape: "true"
        prometheus.io/port: "{{ .Values.service.httpPort }}"
        checksum/secret: {{ include (print $.Template.BasePath "/secret.yaml") . | sha256sum }}
    spec:
      terminationGracePeriodSeconds: 30
      {{- with .Values.securityContext }}
      securityContext:
        {{- toYaml . | nindent 8 }}
      {{- end }}
      containers:
        - name: {{ .Chart.Name }}
          image: "{{ .Values.image.repository }}:{{ .Values.image.tag }}"
          imagePullPolicy: {{ .Values.image.pullPolicy }}
          command:
            - ./podinfo
            - --port={{ .Values.service.httpPort | default 9898 }}
            - --level={{ .Values.logLevel }}
          env:
          {{- range $key, $value := .Values.extraEnvs }}
            - name: {{ $key }}
              value: {{ $value | quote }}
          {{- end }}
            - name: PODINFO_UI_MESSAGE
              valueFrom:
                secretKeyRef:
                  name: {{ template "podinfo.fullname" . }}
                  key: message
          ports:
            - name: http
              containerPort: {{ .Values.service.httpPort }}
              protocol: TCP
            - name: grpc
              containerPort: {{ .Values.service.grpcPort }}
              protocol: TCP
          volumeMounts:
            - name: data
              mountPath: /data
          resources:
            {{- toYaml .Values.resources | nindent 12 }}
      volumes:
        - name: data
          emptyDir: {}
"""

SERVICE = """\
apiVersion: v1
kind: Service
metadata:
  name: {{ template "podinfo.fullname" . }}
  labels:
    {{- include "podinfo.labels" . | nindent 4 }}
spec:
  type: {{ .Values.service.type }}
  ports:
    - port: {{ .Values.service.externalPort }}
      targetPort: http
      protocol: TCP
      name: http
    - port: {{ .Values.service.grpcPort }}
      targetPort: grpc
      protocol: TCP
      name: grpc
  selector:
    {{- include "podinfo.selectorLabels" . | nindent 4 }}
"""

HPA = """\
{{- if .Values.hpa.enabled -}}
apiVersion: {{ if .Capabilities.APIVersions.Has "autoscaling/v2" }}autoscaling/v2{{ else }}autoscaling/v2beta2{{ end }}
kind: HorizontalPodAutoscaler
metadata:
  name: {{ template "podinfo.fullname" . }}
  labels:
    {{- include "podinfo.labels" . | nindent 4 }}
spec:
  scaleTargetRef:
    apiVersion: apps/v1
    kind: Deployment
    name: {{ template "podinfo.fullname" . }}
  minReplicas: {{ .Values.hpa.minReplicas }}
  maxReplicas: {{ .Values.hpa.maxReplicas }}
  metrics:
    - type: Resource
      resource:
        name: cpu
        target:
          type: Utilization
          averageUtilization: {{ .Values.hpa.cpu }}
{{- end }}
"""

SECRET = """\
apiVersion: v1
kind: Secret
metadata:
  name: {{ template "podinfo.fullname" . }}
  labels:
    {{- include "podinfo.labels" . | nindent 4 }}
type: Opaque
stringData:
  message: {{ .Values.message | quote }}
"""

# rendered only when the cluster serves the kind (the way charts gate ServiceMonitors)
MONITOR = """\
{{- if .Capabilities.APIVersions.Has (printf "%s/v1/Monitor" .Values.monitor.group) }}
apiVersion: {{ .Values.monitor.group }}/v1
kind: Monitor
metadata:
  name: {{ template "podinfo.fullname" . }}
spec:
  endpoints:
    - port: http
      interval: 15s
{{- end }}
"""

# podinfo's own test hooks: random names, a new Pod on every render
TEST_HOOK = """\
apiVersion: v1
kind: Pod
metadata:
  name: {{ template "podinfo.fullname" . }}-grpc-test-{{ randAlphaNum 5 | lower }}
  labels:
    {{- include "podinfo.labels" . | nindent 4 }}
  annotations:
    "helm.sh/hook": test-success
    "helm.sh/hook-delete-policy": before-hook-creation,hook-succeeded
spec:
  containers:
    - name: grpc-health-probe
      image: stefanprodan/grpc_health_probe:v0.3.0
      command: ['grpc_health_probe']
      args: ['-addr={{ template "podinfo.fullname" . }}.{{ .Release.Namespace }}:{{ .Values.service.grpcPort }}']
  restartPolicy: Never
"""

VALUES = """\
replicaCount: 0
logLevel: info
message: "hello from values.yaml"
image:
  repository: ghcr.io/stefanprodan/podinfo
  tag: 6.9.0
  pullPolicy: IfNotPresent
service:
  type: ClusterIP
  externalPort: 9898
  httpPort: 9898
  grpcPort: 9999
hpa:
  enabled: false
  minReplicas: 1
  maxReplicas: 4
  cpu: 80
securityContext: {}
extraEnvs: {}
resources:
  limits: {}
  requests:
    cpu: 1m
    memory: 16Mi
monitor:
  group: monitoring.example.com
cache:
  maxmemory: 64mb
"""

CACHE_CHART = """\
apiVersion: v2
name: cache
description: a vendored dependency
type: application
version: 1.2.0
appVersion: "7.2"
"""

CACHE_CONFIG = """\
apiVersion: v1
kind: ConfigMap
metadata:
  name: {{ .Release.Name }}-cache
  labels:
    app.kubernetes.io/name: cache
data:
  redis.conf: |
    maxmemory {{ .Values.maxmemory }}
    maxmemory-policy allkeys-lru
"""


def widget_crd(group: str) -> str:
    return f"""\
apiVersion: apiextensions.k8s.io/v1
kind: CustomResourceDefinition
metadata:
  name: widgets.{group}
spec:
  group: {group}
  scope: Namespaced
  names: {{plural: widgets, singular: widget, kind: Widget}}
  versions:
    - name: v1
      served: true
      storage: true
      schema:
        openAPIV3Schema:
          type: object
          x-kubernetes-preserve-unknown-fields: true
"""


def podinfo_chart(path: str, widget_group: str, kube_version: str = ">=1.36.0-0") -> dict[str, str]:
    """Files of the chart at ``path`` in the repository."""
    return {
        f"{path}/Chart.yaml": f"""\
apiVersion: v2
name: podinfo
version: 6.9.0
appVersion: 6.9.0
kubeVersion: "{kube_version}"
description: Podinfo Helm chart for Kubernetes
home: https://github.com/stefanprodan/podinfo
dependencies:
  - name: cache
    version: 1.2.0
    repository: https://charts.example.com
""",
        f"{path}/values.yaml": VALUES,
        f"{path}/.helmignore": ".git/\n*.swp\n",
        f"{path}/templates/_helpers.tpl": HELPERS,
        f"{path}/templates/deployment.yaml": DEPLOYMENT,
        f"{path}/templates/service.yaml": SERVICE,
        f"{path}/templates/hpa.yaml": HPA,
        f"{path}/templates/secret.yaml": SECRET,
        f"{path}/templates/monitor.yaml": MONITOR,
        f"{path}/templates/tests/grpc.yaml": TEST_HOOK,
        f"{path}/templates/NOTES.txt": "podinfo is at http://{{ template \"podinfo.fullname\" . }}:9898\n",
        f"{path}/crds/widgets.yaml": widget_crd(widget_group),
        f"{path}/templates/widget.yaml": f"apiVersion: {widget_group}/v1\nkind: Widget\nmetadata:\n"
                                         "  name: {{ .Release.Name }}-widget\nspec:\n  size: 3\n",
        f"{path}/charts/cache/Chart.yaml": CACHE_CHART,
        f"{path}/charts/cache/values.yaml": "maxmemory: 32mb\n",
        f"{path}/charts/cache/templates/configmap.yaml": CACHE_CONFIG,
    }
