{{/* Chart name, truncated to the 63 characters Kubernetes allows in names. */}}
{{- define "propstream.name" -}}
{{- default .Chart.Name .Values.nameOverride | trunc 63 | trimSuffix "-" -}}
{{- end -}}

{{/* Release-qualified name; the release name alone when it already contains the chart's. */}}
{{- define "propstream.fullname" -}}
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

{{- define "propstream.labels" -}}
helm.sh/chart: {{ printf "%s-%s" .Chart.Name .Chart.Version | replace "+" "_" | trunc 63 | trimSuffix "-" }}
{{ include "propstream.selectorLabels" . }}
app.kubernetes.io/version: {{ .Chart.AppVersion | quote }}
app.kubernetes.io/managed-by: {{ .Release.Service }}
{{- end -}}

{{- define "propstream.selectorLabels" -}}
app.kubernetes.io/name: {{ include "propstream.name" . }}
app.kubernetes.io/instance: {{ .Release.Name }}
{{- end -}}

{{- define "propstream.serviceAccountName" -}}
{{- if .Values.serviceAccount.create -}}
{{- default (include "propstream.fullname" .) .Values.serviceAccount.name -}}
{{- else -}}
{{- default "default" .Values.serviceAccount.name -}}
{{- end -}}
{{- end -}}

{{- define "propstream.image" -}}
{{- printf "%s:%s" .Values.image.repository (default .Chart.AppVersion .Values.image.tag) -}}
{{- end -}}

{{/* The Secret that holds PROPSTREAM_PG_DSN, PROPSTREAM_REDIS_URL, PROPSTREAM_SECRET_KEY, the
    Stripe API key and webhook signing secret, and PROPSTREAM_DATA_KEY_SECRET. */}}
{{- define "propstream.secretName" -}}
{{- default (include "propstream.fullname" .) (tpl .Values.existingSecret .) -}}
{{- end -}}

{{- define "propstream.secretKeys" -}}
{{- list "PROPSTREAM_PG_DSN" "PROPSTREAM_REDIS_URL" "PROPSTREAM_SECRET_KEY"
    "PROPSTREAM_STRIPE_API_KEY" "PROPSTREAM_STRIPE_WEBHOOK_SECRET" "PROPSTREAM_DATA_KEY_SECRET"
    | toJson -}}
{{- end -}}

{{/*
Non-secret settings as a YAML map, shared by the ConfigMap and the topics hook Job (which
runs before the ConfigMap exists). PROPSTREAM_HOST is 0.0.0.0 so the API is reachable in
the pod; PROPSTREAM_CACHE_DIR points into the writable /tmp volume.
*/}}
{{- define "propstream.settings" -}}
{{- $secretKeys := include "propstream.secretKeys" . | fromJsonArray -}}
PROPSTREAM_ENV: {{ .Values.config.env | quote }}
PROPSTREAM_NAMESPACE: {{ .Values.config.namespace | quote }}
PROPSTREAM_HOST: "0.0.0.0"
PROPSTREAM_CACHE_DIR: "/tmp/propstream"
PROPSTREAM_KAFKA_BOOTSTRAP: {{ required "kafka.bootstrap must name the Kafka bootstrap servers" .Values.kafka.bootstrap | quote }}
PROPSTREAM_KAFKA_REPLICATION_FACTOR: {{ .Values.kafka.replicationFactor | quote }}
PROPSTREAM_API_PORT: {{ .Values.api.port | quote }}
PROPSTREAM_MARKET_API_PORT: {{ .Values.marketApi.port | quote }}
PROPSTREAM_WS_PORT: {{ .Values.wsGateway.port | quote }}
PROPSTREAM_WS_MAX_CONNECTIONS_PER_IP: {{ .Values.wsGateway.maxConnectionsPerIp | quote }}
PROPSTREAM_WS_MAX_CONNECTIONS_PER_USER: {{ .Values.wsGateway.maxConnectionsPerUser | quote }}
PROPSTREAM_WS_TRUSTED_PROXIES: {{ .Values.wsGateway.trustedProxies | toJson | quote }}
PROPSTREAM_METRICS_PORT: {{ .Values.metrics.port | quote }}
PROPSTREAM_COMMAND_TIMEOUT_MS: {{ .Values.config.commandTimeoutMs | quote }}
PROPSTREAM_MAX_BODY_BYTES: {{ .Values.config.maxBodyBytes | quote }}
PROPSTREAM_LOG_LEVEL: {{ .Values.config.logLevel | quote }}
PROPSTREAM_LOG_FORMAT: {{ .Values.config.logFormat | quote }}
{{- range $key, $value := .Values.extraEnv }}
{{- if has $key $secretKeys }}
{{- fail (printf "extraEnv.%s is a secret: put it in the Secret named by existingSecret" $key) }}
{{- end }}
{{ $key }}: {{ $value | quote }}
{{- end }}
{{- end -}}

{{/* env entries reading the secret settings from the existing Secret. */}}
{{- define "propstream.secretEnv" -}}
{{- $secret := include "propstream.secretName" . -}}
{{- range include "propstream.secretKeys" . | fromJsonArray }}
- name: {{ . }}
  valueFrom:
    secretKeyRef:
      name: {{ $secret }}
      key: {{ . }}
{{- end }}
{{- end -}}

{{/* Pod-level fields every propstream pod shares. */}}
{{- define "propstream.podSpecCommon" -}}
{{- with .Values.imagePullSecrets }}
imagePullSecrets:
  {{- toYaml . | nindent 2 }}
{{- end }}
securityContext:
  {{- toYaml .Values.podSecurityContext | nindent 2 }}
{{- with .Values.nodeSelector }}
nodeSelector:
  {{- toYaml . | nindent 2 }}
{{- end }}
{{- with .Values.affinity }}
affinity:
  {{- toYaml . | nindent 2 }}
{{- end }}
{{- with .Values.tolerations }}
tolerations:
  {{- toYaml . | nindent 2 }}
{{- end }}
volumes:
  # The root filesystem is read-only; /tmp is the only place a process may write.
  - name: tmp
    emptyDir:
      sizeLimit: 256Mi
{{- end -}}

{{/* Pod template annotations: a config change rolls the pods. */}}
{{- define "propstream.podAnnotations" -}}
checksum/config: {{ include (print .Template.BasePath "/configmap.yaml") . | sha256sum }}
prometheus.io/scrape: "true"
prometheus.io/port: {{ .Values.metrics.port | quote }}
prometheus.io/path: /metrics
{{- with .Values.podAnnotations }}
{{ toYaml . }}
{{- end }}
{{- end -}}

{{/* Container fields every long-running propstream container shares. */}}
{{- define "propstream.containerCommon" -}}
image: {{ include "propstream.image" . }}
imagePullPolicy: {{ .Values.image.pullPolicy }}
securityContext:
  {{- toYaml .Values.securityContext | nindent 2 }}
envFrom:
  - configMapRef:
      name: {{ include "propstream.fullname" . }}
env:
  {{- include "propstream.secretEnv" . | trim | nindent 2 }}
volumeMounts:
  - name: tmp
    mountPath: /tmp
{{- end -}}
