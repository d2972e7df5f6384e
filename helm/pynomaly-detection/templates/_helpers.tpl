{{/*
Names and labels.
*/}}
{{- define "pynomaly.name" -}}
{{- default .Chart.Name .Values.nameOverride | trunc 63 | trimSuffix "-" }}
{{- end }}

{{- define "pynomaly.fullname" -}}
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

{{- define "pynomaly.chart" -}}
{{- printf "%s-%s" .Chart.Name .Chart.Version | replace "+" "_" | trunc 63 | trimSuffix "-" }}
{{- end }}

{{/* Labels shared by every pod of the release (detector and topic-init). */}}
{{- define "pynomaly.selectorLabels" -}}
app.kubernetes.io/name: {{ include "pynomaly.name" . }}
app.kubernetes.io/instance: {{ .Release.Name }}
{{- end }}

{{/* Selector of the detector pods only. */}}
{{- define "pynomaly.detectorSelectorLabels" -}}
{{ include "pynomaly.selectorLabels" . }}
app.kubernetes.io/component: detector
{{- end }}

{{- define "pynomaly.labels" -}}
helm.sh/chart: {{ include "pynomaly.chart" . }}
{{ include "pynomaly.selectorLabels" . }}
app.kubernetes.io/version: {{ .Chart.AppVersion | quote }}
app.kubernetes.io/managed-by: {{ .Release.Service }}
app.kubernetes.io/part-of: pynomaly
{{- end }}

{{- define "pynomaly.serviceAccountName" -}}
{{- if .Values.serviceAccount.create }}
{{- default (include "pynomaly.fullname" .) .Values.serviceAccount.name }}
{{- else }}
{{- required "serviceAccount.name is required when serviceAccount.create is false (the pods never use the namespace's default account)" .Values.serviceAccount.name }}
{{- end }}
{{- end }}

{{/* repository:tag or repository@digest. Arg: dict with image and default tag. */}}
{{- define "pynomaly.imageRef" -}}
{{- if .image.digest }}
{{- printf "%s@%s" .image.repository .image.digest }}
{{- else }}
{{- printf "%s:%s" .image.repository (default .defaultTag .image.tag | toString) }}
{{- end }}
{{- end }}

{{/*
Replica ceiling: a consumer group never gives work to more members than there
are partitions, so every replica count is capped at kafka.partitions.
*/}}
{{- define "pynomaly.maxReplicas" -}}
{{- $cap := int .Values.kafka.partitions }}
{{- if .Values.keda.enabled }}
{{- min (int .Values.keda.maxReplicaCount) $cap }}
{{- else }}
{{- min (int .Values.autoscaling.maxReplicas) $cap }}
{{- end }}
{{- end }}

{{/*
PYNOMALY_MEMORY_LIMIT_GB: config.memoryLimitGb, or derived from the memory limit.
*/}}
{{- define "pynomaly.memoryLimitGb" -}}
{{- if ne (toString .Values.config.memoryLimitGb) "" }}
{{- .Values.config.memoryLimitGb }}
{{- else }}
{{- $mem := toString (dig "limits" "memory" "" .Values.resources) }}
{{- if regexMatch "^[0-9.]+Gi$" $mem }}
{{- trimSuffix "Gi" $mem }}
{{- else if regexMatch "^[0-9.]+G$" $mem }}
{{- trimSuffix "G" $mem }}
{{- else if regexMatch "^[0-9]+Mi$" $mem }}
{{- divf (trimSuffix "Mi" $mem | float64) 1024.0 }}
{{- else if regexMatch "^[0-9]+M$" $mem }}
{{- divf (trimSuffix "M" $mem | float64) 1000.0 }}
{{- else }}
{{- fail (printf "cannot derive PYNOMALY_MEMORY_LIMIT_GB from resources.limits.memory %q: set config.memoryLimitGb" $mem) }}
{{- end }}
{{- end }}
{{- end }}

{{/*
Validation of values that the schema cannot express. Included by the StatefulSet.
*/}}
{{- define "pynomaly.validate" -}}
{{- $grace := int .Values.terminationGracePeriodSeconds }}
{{- $drain := int .Values.config.shutdownTimeoutSecs }}
{{- if le $grace $drain }}
{{- fail (printf "terminationGracePeriodSeconds (%d) must be greater than config.shutdownTimeoutSecs (%d): the kubelet would SIGKILL the pod before it finishes draining" $grace $drain) }}
{{- end }}
{{- if and .Values.autoscaling.enabled .Values.keda.enabled }}
{{- fail "autoscaling.enabled and keda.enabled are mutually exclusive: KEDA creates its own HPA for the StatefulSet" }}
{{- end }}
{{- $partitions := int .Values.kafka.partitions }}
{{- if and (not .Values.autoscaling.enabled) (not .Values.keda.enabled) (gt (int .Values.replicaCount) $partitions) }}
{{- fail (printf "replicaCount (%d) is greater than kafka.partitions (%d): the extra consumers would get no partition" (int .Values.replicaCount) $partitions) }}
{{- end }}
{{- if and .Values.autoscaling.enabled (gt (int .Values.autoscaling.minReplicas) $partitions) }}
{{- fail (printf "autoscaling.minReplicas (%d) is greater than kafka.partitions (%d)" (int .Values.autoscaling.minReplicas) $partitions) }}
{{- end }}
{{- if and .Values.keda.enabled (gt (int .Values.keda.minReplicaCount) $partitions) }}
{{- fail (printf "keda.minReplicaCount (%d) is greater than kafka.partitions (%d)" (int .Values.keda.minReplicaCount) $partitions) }}
{{- end }}
{{- if and .Values.kafka.sasl.enabled (not .Values.kafka.sasl.existingSecret) }}
{{- fail "kafka.sasl.enabled needs kafka.sasl.existingSecret (a Secret with the username and password)" }}
{{- end }}
{{- if and .Values.kafka.tls.enabled (not .Values.kafka.tls.existingSecret) }}
{{- fail "kafka.tls.enabled needs kafka.tls.existingSecret (a Secret with the CA certificate)" }}
{{- end }}
{{- if and .Values.kafka.tls.enabled (ne (empty .Values.kafka.tls.certKey) (empty .Values.kafka.tls.keyKey)) }}
{{- fail "kafka.tls.certKey and kafka.tls.keyKey must be set together (mTLS) or both left empty" }}
{{- end }}
{{- if and .Values.kafka.sasl.enabled (not (hasPrefix "SASL_" .Values.kafka.securityProtocol)) }}
{{- fail (printf "kafka.sasl.enabled needs kafka.securityProtocol SASL_SSL or SASL_PLAINTEXT, not %s" .Values.kafka.securityProtocol) }}
{{- end }}
{{- if and .Values.kafka.tls.enabled (not (hasSuffix "SSL" .Values.kafka.securityProtocol)) }}
{{- fail (printf "kafka.tls.enabled needs kafka.securityProtocol SSL or SASL_SSL, not %s" .Values.kafka.securityProtocol) }}
{{- end }}
{{- end }}

{{/* Volumes for the pod: emptyDirs for /tmp and disabled persistent volumes, Secrets for TLS. */}}
{{- define "pynomaly.tlsVolume" -}}
- name: kafka-tls
  secret:
    secretName: {{ .Values.kafka.tls.existingSecret }}
    defaultMode: 0440
    items:
      - key: {{ .Values.kafka.tls.caKey }}
        path: ca.crt
      {{- if .Values.kafka.tls.certKey }}
      - key: {{ .Values.kafka.tls.certKey }}
        path: tls.crt
      - key: {{ .Values.kafka.tls.keyKey }}
        path: tls.key
      {{- end }}
{{- end }}

{{/* Environment variables holding secrets (SASL) or pod identity. */}}
{{- define "pynomaly.secretEnv" -}}
{{- if .Values.kafka.sasl.enabled }}
- name: PYNOMALY_KAFKA__SASL_USERNAME
  valueFrom:
    secretKeyRef:
      name: {{ .Values.kafka.sasl.existingSecret }}
      key: {{ .Values.kafka.sasl.usernameKey }}
- name: PYNOMALY_KAFKA__SASL_PASSWORD
  valueFrom:
    secretKeyRef:
      name: {{ .Values.kafka.sasl.existingSecret }}
      key: {{ .Values.kafka.sasl.passwordKey }}
{{- end }}
{{- end }}
