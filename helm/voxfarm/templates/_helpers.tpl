{{/* vim: set filetype=mustache: */}}

{{/*
Chart name, truncated to 63 characters (the DNS label limit).
*/}}
{{- define "voxfarm.name" -}}
{{- default .Chart.Name .Values.nameOverride | trunc 63 | trimSuffix "-" }}
{{- end }}

{{/*
Full name of the release: <release>-<chart>, or <release> when it already contains the chart name.
*/}}
{{- define "voxfarm.fullname" -}}
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
A component's resource name: <fullname>-<suffix>, at most 63 characters.
Usage: include "voxfarm.componentName" (list $ "control")
*/}}
{{- define "voxfarm.componentName" -}}
{{- $root := index . 0 }}
{{- printf "%s-%s" (include "voxfarm.fullname" $root | trunc 40 | trimSuffix "-") (index . 1) | trunc 63 | trimSuffix "-" }}
{{- end }}

{{- define "voxfarm.chart" -}}
{{- printf "%s-%s" .Chart.Name .Chart.Version | replace "+" "_" | trunc 63 | trimSuffix "-" }}
{{- end }}

{{/*
Labels of every resource (app.kubernetes.io/* recommended labels).
*/}}
{{- define "voxfarm.labels" -}}
helm.sh/chart: {{ include "voxfarm.chart" . }}
{{ include "voxfarm.selectorLabels" . }}
app.kubernetes.io/version: {{ .Chart.AppVersion | quote }}
app.kubernetes.io/managed-by: {{ .Release.Service }}
app.kubernetes.io/part-of: voxfarm
{{- with .Values.commonLabels }}
{{ toYaml . }}
{{- end }}
{{- end }}

{{- define "voxfarm.selectorLabels" -}}
app.kubernetes.io/name: {{ include "voxfarm.name" . }}
app.kubernetes.io/instance: {{ .Release.Name }}
{{- end }}

{{/*
Labels of one component. Usage: include "voxfarm.componentLabels" (list $ "control")
*/}}
{{- define "voxfarm.componentLabels" -}}
{{ include "voxfarm.labels" (index . 0) }}
app.kubernetes.io/component: {{ index . 1 }}
{{- end }}

{{- define "voxfarm.componentSelectorLabels" -}}
{{ include "voxfarm.selectorLabels" (index . 0) }}
app.kubernetes.io/component: {{ index . 1 }}
{{- end }}

{{/*
Pool labels: the worker component labels plus the pool name and device family.
Usage: include "voxfarm.poolSelectorLabels" (list $ $pool)
*/}}
{{- define "voxfarm.poolSelectorLabels" -}}
{{ include "voxfarm.componentSelectorLabels" (list (index . 0) "worker") }}
voxfarm/pool: {{ (index . 1).name }}
{{- end }}

{{- define "voxfarm.poolLabels" -}}
{{ include "voxfarm.componentLabels" (list (index . 0) "worker") }}
voxfarm/pool: {{ (index . 1).name }}
voxfarm/device-family: {{ (index . 1).family }}
{{- end }}

{{/*
metadata.annotations of every resource: a newline and the indented block, or nothing when empty.
Usage (right after the labels block): {{- include "voxfarm.metadataAnnotations" . }}
*/}}
{{- define "voxfarm.metadataAnnotations" -}}
{{- with .Values.commonAnnotations }}
{{- printf "annotations:\n%s" (toYaml . | indent 2) | nindent 2 }}
{{- end }}
{{- end }}

{{/*
An image reference. Usage: include "voxfarm.image" (dict "image" $img "default" $.Values.image.registry "root" $)
global.imageRegistry wins, then the image's own registry, then the default registry.
A digest wins over the tag; an empty tag is the chart appVersion.
*/}}
{{- define "voxfarm.image" -}}
{{- $img := .image }}
{{- $registry := coalesce .root.Values.global.imageRegistry $img.registry .default | default "" }}
{{- $repo := required "an image repository is empty" $img.repository }}
{{- $ref := $repo }}
{{- if $registry }}
{{- $ref = printf "%s/%s" (trimSuffix "/" $registry) $repo }}
{{- end }}
{{- if $img.digest }}
{{- printf "%s@%s" $ref $img.digest }}
{{- else }}
{{- printf "%s:%s" $ref (toString (default .root.Chart.AppVersion $img.tag)) }}
{{- end }}
{{- end }}

{{/*
imagePullSecrets of voxfarm pods.
*/}}
{{- define "voxfarm.imagePullSecrets" -}}
{{- $secrets := concat .Values.global.imagePullSecrets .Values.image.pullSecrets | uniq }}
{{- if $secrets }}
imagePullSecrets:
{{- range $secrets }}
  - name: {{ . }}
{{- end }}
{{- end }}
{{- end }}

{{- define "voxfarm.serviceAccountName" -}}
{{- if .Values.serviceAccount.create }}
{{- default (include "voxfarm.fullname" .) .Values.serviceAccount.name }}
{{- else }}
{{- default "default" .Values.serviceAccount.name }}
{{- end }}
{{- end }}

{{/* ---------------------------------------------------------------- Redis */}}

{{- define "voxfarm.redis.fullname" -}}
{{- include "voxfarm.componentName" (list . "redis") }}
{{- end }}

{{/*
Name of the Secret that holds the Redis password; empty when Redis runs without AUTH.
*/}}
{{- define "voxfarm.redis.secretName" -}}
{{- if .Values.redis.enabled }}
{{- default (include "voxfarm.redis.fullname" .) .Values.redis.auth.existingSecret }}
{{- else if .Values.externalRedis.existingSecret }}
{{- .Values.externalRedis.existingSecret }}
{{- else if .Values.externalRedis.password }}
{{- include "voxfarm.componentName" (list . "external-redis") }}
{{- end }}
{{- end }}

{{- define "voxfarm.redis.secretKey" -}}
{{- if .Values.redis.enabled }}
{{- .Values.redis.auth.existingSecretPasswordKey }}
{{- else if .Values.externalRedis.existingSecret }}
{{- .Values.externalRedis.existingSecretPasswordKey }}
{{- else }}
{{- "redis-password" }}
{{- end }}
{{- end }}

{{/*
Broker URL without the password (VOXFARM_REDIS_URL).
*/}}
{{- define "voxfarm.redis.url" -}}
{{- if .Values.redis.enabled }}
{{- printf "redis://%s.%s.svc.%s:%d/%d" (include "voxfarm.redis.fullname" .) .Release.Namespace .Values.clusterDomain (int .Values.redis.service.port) (int .Values.redis.database) }}
{{- else }}
{{- .Values.externalRedis.url }}
{{- end }}
{{- end }}

{{/*
host:port of the broker, for KEDA's redis trigger.
*/}}
{{- define "voxfarm.redis.address" -}}
{{- if .Values.keda.redisAddress }}
{{- .Values.keda.redisAddress }}
{{- else if .Values.redis.enabled }}
{{- printf "%s.%s.svc.%s:%d" (include "voxfarm.redis.fullname" .) .Release.Namespace .Values.clusterDomain (int .Values.redis.service.port) }}
{{- else }}
{{- $u := urlParse .Values.externalRedis.url }}
{{- $host := regexReplaceAll "^.*@" $u.host "" }}
{{- if contains ":" $host }}{{ $host }}{{ else }}{{ printf "%s:6379" $host }}{{ end }}
{{- end }}
{{- end }}

{{/*
Port of the broker, for NetworkPolicy egress.
*/}}
{{- define "voxfarm.redis.port" -}}
{{- if .Values.redis.enabled }}
{{- .Values.redis.service.port }}
{{- else }}
{{- $addr := include "voxfarm.redis.address" . }}
{{- last (splitList ":" $addr) }}
{{- end }}
{{- end }}

{{- define "voxfarm.redis.database" -}}
{{- if .Values.redis.enabled }}
{{- .Values.redis.database }}
{{- else }}
{{- $path := trimPrefix "/" (urlParse .Values.externalRedis.url).path }}
{{- default "0" $path }}
{{- end }}
{{- end }}

{{- define "voxfarm.redis.tls" -}}
{{- if and (not .Values.redis.enabled) (hasPrefix "rediss://" .Values.externalRedis.url) }}true{{ else }}false{{ end }}
{{- end }}

{{/* ------------------------------------------------------------------- S3 */}}

{{- define "voxfarm.storage.isS3" -}}
{{- if hasPrefix "s3://" .Values.storage.url }}true{{ end }}
{{- end }}

{{/*
Name of the Secret with the S3 credentials; empty when ambient credentials are used.
*/}}
{{- define "voxfarm.s3.secretName" -}}
{{- if .Values.storage.s3.existingSecret }}
{{- .Values.storage.s3.existingSecret }}
{{- else if and .Values.storage.s3.accessKeyId .Values.storage.s3.secretAccessKey }}
{{- include "voxfarm.componentName" (list . "s3") }}
{{- end }}
{{- end }}

{{/*
Ports of the S3 endpoint, for NetworkPolicy egress.
*/}}
{{- define "voxfarm.s3.ports" -}}
{{- if .Values.networkPolicy.s3Ports }}
{{- join "," .Values.networkPolicy.s3Ports }}
{{- else if .Values.storage.s3.endpointUrl }}
{{- $u := urlParse .Values.storage.s3.endpointUrl }}
{{- if contains ":" $u.host }}
{{- last (splitList ":" $u.host) }}
{{- else if eq $u.scheme "http" }}80{{ else }}443{{ end }}
{{- else }}443{{ end }}
{{- end }}

{{/* ------------------------------------------------------- shared pod bits */}}

{{/*
Environment variables that carry secrets: always secretKeyRef, never a plain value.
*/}}
{{- define "voxfarm.secretEnv" -}}
{{- $redisSecret := include "voxfarm.redis.secretName" . }}
{{- if $redisSecret }}
- name: VOXFARM_REDIS_PASSWORD
  valueFrom:
    secretKeyRef:
      name: {{ $redisSecret }}
      key: {{ include "voxfarm.redis.secretKey" . }}
{{- end }}
{{- $s3Secret := include "voxfarm.s3.secretName" . }}
{{- if and (include "voxfarm.storage.isS3" .) $s3Secret }}
{{- $keys := .Values.storage.s3.existingSecretKeys }}
{{- $external := .Values.storage.s3.existingSecret }}
- name: AWS_ACCESS_KEY_ID
  valueFrom:
    secretKeyRef:
      name: {{ $s3Secret }}
      key: {{ ternary $keys.accessKeyId "AWS_ACCESS_KEY_ID" (not (empty $external)) }}
- name: AWS_SECRET_ACCESS_KEY
  valueFrom:
    secretKeyRef:
      name: {{ $s3Secret }}
      key: {{ ternary $keys.secretAccessKey "AWS_SECRET_ACCESS_KEY" (not (empty $external)) }}
{{- if and $external $keys.storageUrl }}
- name: VOXFARM_STORAGE_URL
  valueFrom:
    secretKeyRef:
      name: {{ $s3Secret }}
      key: {{ $keys.storageUrl }}
{{- end }}
{{- if and $external $keys.endpointUrl }}
- name: VOXFARM_S3_ENDPOINT_URL
  valueFrom:
    secretKeyRef:
      name: {{ $s3Secret }}
      key: {{ $keys.endpointUrl }}
{{- end }}
{{- end }}
{{- end }}

{{/*
Checksums that roll the pods when the configuration or chart-made secrets change.
*/}}
{{- define "voxfarm.configChecksums" -}}
checksum/config: {{ include (print .Template.BasePath "/configmap.yaml") . | sha256sum }}
checksum/secrets: {{ include (print .Template.BasePath "/secrets.yaml") . | sha256sum }}
{{- end }}

{{/*
Volumes every voxfarm pod has: a writable /tmp, and the shared storage volume for file://.
Usage: include "voxfarm.commonVolumes" (list $ "2Gi")
*/}}
{{- define "voxfarm.commonVolumes" -}}
{{- $root := index . 0 }}
- name: tmp
  emptyDir:
    sizeLimit: {{ index . 1 }}
{{- if $root.Values.storage.sharedVolume.enabled }}
- name: shared-storage
  persistentVolumeClaim:
    claimName: {{ default (include "voxfarm.componentName" (list $root "storage")) $root.Values.storage.sharedVolume.existingClaim }}
{{- end }}
{{- end }}

{{- define "voxfarm.commonVolumeMounts" -}}
- name: tmp
  mountPath: /tmp
{{- if .Values.storage.sharedVolume.enabled }}
- name: shared-storage
  mountPath: {{ .Values.storage.sharedVolume.mountPath }}
{{- end }}
{{- end }}

{{/*
An HTTP probe. Usage: include "voxfarm.httpProbe" (dict "path" "/readyz" "port" "health" "probe" $p)
*/}}
{{- define "voxfarm.httpProbe" -}}
httpGet:
  path: {{ .path }}
  port: {{ .port }}
periodSeconds: {{ .probe.periodSeconds }}
timeoutSeconds: {{ .probe.timeoutSeconds }}
failureThreshold: {{ .probe.failureThreshold }}
{{- end }}

{{/* ----------------------------------------------------------------- Pools */}}

{{/*
Every enabled pool, merged over poolDefaults and completed with derived fields, as
JSON {"items": [...]}. Derived fields start with an underscore:
  _name        resource name of the pool's Deployment and friends
  _image       image reference
  _resourceName extended resource per card ("" for CPU)
  _engine, _voice, _model   the one model the pool serves
  _buckets     bucket edges served
  _queues      queue names consumed (bucket queues, then the interactive lane)
  _multi       true when the pod runs the `voxfarm pool` supervisor
  _probePort   port name of the probes
  _metricsPorts list of {name, port} of the per-card metrics endpoints
  _hostMounts, _supplementalGroups, _tolerations, _familyEnv
  _tgps        terminationGracePeriodSeconds
*/}}
{{- define "voxfarm.pools" -}}
{{- $root := . }}
{{- $items := list }}
{{- range $p := .Values.pools }}
{{- $pool := mergeOverwrite (deepCopy $root.Values.poolDefaults) (deepCopy $p) }}
{{- if $pool.enabled }}
{{- $family := index $root.Values.deviceFamilies $pool.family }}
{{- $image := mergeOverwrite (deepCopy $family.image) (deepCopy (default (dict) $pool.image)) }}
{{- $engine := default $root.Values.farm.engine $pool.engine }}
{{- $voice := default $root.Values.farm.voice $pool.voice }}
{{- $model := printf "%s.%s" $engine $voice }}
{{- $buckets := $pool.buckets | default $root.Values.farm.bucketEdges }}
{{- $queues := list }}
{{- range $buckets }}
{{- $queues = append $queues (printf "voxfarm.%s.b%d" $model (int .)) }}
{{- end }}
{{- $queues = append $queues (printf "voxfarm.%s.interactive" $model) }}
{{- $devices := int $pool.devicesPerPod }}
{{- $multi := gt $devices 1 }}
{{- $metricsPorts := list }}
{{- range $i := until $devices }}
{{- $metricsPorts = append $metricsPorts (dict "name" (printf "metrics-%d" $i) "port" (add (int $pool.ports.metrics) $i)) }}
{{- end }}
{{- $tgps := $pool.terminationGracePeriodSeconds }}
{{- if kindIs "invalid" $tgps }}
{{- $tgps = add (int (ceil $root.Values.farm.batchTimeLimitSeconds)) (int $pool.drainUploadSeconds) }}
{{- end }}
{{- $_ := set $pool "_name" (include "voxfarm.componentName" (list $root (printf "worker-%s" $pool.name))) }}
{{- $_ := set $pool "_image" (include "voxfarm.image" (dict "image" $image "default" $root.Values.image.registry "root" $root)) }}
{{- $_ := set $pool "_resourceName" (default $family.resourceName $pool.resourceName) }}
{{- $_ := set $pool "_engine" $engine }}
{{- $_ := set $pool "_voice" $voice }}
{{- $_ := set $pool "_model" $model }}
{{- $_ := set $pool "_buckets" $buckets }}
{{- $_ := set $pool "_queues" $queues }}
{{- $_ := set $pool "_multi" $multi }}
{{- $_ := set $pool "_probePort" (ternary "health" "metrics-0" $multi) }}
{{- $_ := set $pool "_metricsPorts" $metricsPorts }}
{{- $_ := set $pool "_hostMounts" (ternary $family.hostMounts $pool.hostMounts (kindIs "invalid" $pool.hostMounts)) }}
{{- $_ := set $pool "_supplementalGroups" (ternary $family.supplementalGroups $pool.supplementalGroups (kindIs "invalid" $pool.supplementalGroups)) }}
{{- $_ := set $pool "_tolerations" (concat $family.tolerations $pool.tolerations) }}
{{- $_ := set $pool "_familyEnv" $family.env }}
{{- $_ := set $pool "_tgps" $tgps }}
{{- $items = append $items $pool }}
{{- end }}
{{- end }}
{{- toJson (dict "items" $items) }}
{{- end }}

{{/*
The worker container's arguments: `voxfarm worker` for one card, `voxfarm pool` for several.
*/}}
{{- define "voxfarm.workerArgs" -}}
{{- $pool := . }}
{{- $devices := int $pool.devicesPerPod }}
{{- if $pool._multi }}
- pool
- --devices
{{- if eq $pool.family "cpu" }}
- {{ printf "cpu:%d" $devices | quote }}
{{- else }}
- {{ printf "%s:0-%d" $pool.family (sub $devices 1) | quote }}
{{- end }}
- --metrics-port
- {{ $pool.ports.metrics | int | quote }}
- --health-port
- {{ $pool.ports.health | int | quote }}
{{- else }}
- worker
- --device
- {{ ternary "cpu" (printf "%s:0" $pool.family) (eq $pool.family "cpu") | quote }}
- --metrics-port
- {{ $pool.ports.metrics | int | quote }}
{{- if not (kindIs "invalid" $pool.concurrency) }}
- --concurrency
- {{ $pool.concurrency | int | quote }}
{{- end }}
{{- end }}
- --engine
- {{ $pool._engine | quote }}
- --voice
- {{ $pool._voice | quote }}
{{- end }}

{{/* ------------------------------------------------------ NetworkPolicies */}}

{{/*
Egress of control and worker pods: DNS, the broker, object storage, and extra rules.
*/}}
{{- define "voxfarm.networkPolicy.egress" -}}
- to:
    {{- toYaml .Values.networkPolicy.dnsTo | nindent 4 }}
  ports:
    - protocol: UDP
      port: 53
    - protocol: TCP
      port: 53
{{- if .Values.redis.enabled }}
- to:
    - podSelector:
        matchLabels:
          {{- include "voxfarm.componentSelectorLabels" (list . "redis") | nindent 10 }}
  ports:
    - protocol: TCP
      port: {{ .Values.redis.service.port }}
{{- else }}
- {{- with .Values.networkPolicy.externalRedisTo }}
  to:
    {{- toYaml . | nindent 4 }}
  {{- end }}
  ports:
    - protocol: TCP
      port: {{ include "voxfarm.redis.port" . }}
{{- end }}
{{- if include "voxfarm.storage.isS3" . }}
- {{- with .Values.networkPolicy.s3To }}
  to:
    {{- toYaml . | nindent 4 }}
  {{- end }}
  ports:
    {{- range splitList "," (include "voxfarm.s3.ports" .) }}
    - protocol: TCP
      port: {{ . }}
    {{- end }}
{{- end }}
{{- with .Values.networkPolicy.extraEgress }}
{{ toYaml . }}
{{- end }}
{{- end }}

{{/*
Environment of a worker container. Usage: include "voxfarm.workerEnv" (list $ $pool)
Non-secret settings are plain values; secrets come from voxfarm.secretEnv (secretKeyRef).
*/}}
{{- define "voxfarm.workerEnv" -}}
{{- $root := index . 0 }}
{{- $pool := index . 1 }}
- name: HOME
  value: /tmp
- name: VOXFARM_ENGINE
  value: {{ $pool._engine | quote }}
- name: VOXFARM_VOICE
  value: {{ $pool._voice | quote }}
- name: VOXFARM_BUCKET_EDGES
  value: {{ toJson $pool._buckets | quote }}
- name: VOXFARM_MAX_BATCH_ITEMS
  value: {{ $pool.batching.maxBatchItems | int | quote }}
- name: VOXFARM_MAX_BATCH_TOKENS
  value: {{ $pool.batching.maxBatchTokens | int | quote }}
- name: VOXFARM_MAX_WAIT_MS
  value: {{ $pool.batching.maxWaitMs | int | quote }}
- name: VOXFARM_FRAME_SORT_BATCHES
  value: {{ $pool.batching.frameSortBatches | default 8 | int | quote }}
- name: VOXFARM_UPLOAD_PROCESSES
  value: {{ $pool.uploadProcesses | default 0 | int | quote }}
- name: VOXFARM_METRICS_PORT
  value: {{ $pool.ports.metrics | int | quote }}
- name: VOXFARM_CACHE_DIR
  value: {{ $pool.cache.mountPath | quote }}
{{- include "voxfarm.secretEnv" $root }}
{{- with $pool._familyEnv }}
{{ toYaml . }}
{{- end }}
{{- with $pool.env }}
{{ toYaml . }}
{{- end }}
{{- end }}

{{/*
Volume mounts of a worker container. Usage: include "voxfarm.workerVolumeMounts" (list $ $pool)
*/}}
{{- define "voxfarm.workerVolumeMounts" -}}
{{- $root := index . 0 }}
{{- $pool := index . 1 }}
{{ include "voxfarm.commonVolumeMounts" $root }}
- name: dshm
  mountPath: /dev/shm
- name: cache
  mountPath: {{ $pool.cache.mountPath }}
{{- range $pool._hostMounts }}
- name: {{ .name }}
  mountPath: {{ default .hostPath .mountPath }}
  readOnly: true
{{- end }}
{{- with $pool.extraVolumeMounts }}
{{ toYaml . }}
{{- end }}
{{- end }}
