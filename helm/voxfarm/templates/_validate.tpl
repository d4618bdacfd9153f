{{/*
Checks that span several values, which values.schema.json cannot express.
Each failure names the value to fix.
*/}}
{{- define "voxfarm.validate" -}}
{{- $root := . }}
{{- $seen := dict }}
{{- $edges := list }}
{{- range .Values.farm.bucketEdges }}{{ $edges = append $edges (int .) }}{{ end }}
{{- range $pool := (include "voxfarm.pools" . | fromJson).items }}
{{- if hasKey $seen $pool.name }}
{{- fail (printf "pools: the name %q is used twice; pool names must be unique" $pool.name) }}
{{- end }}
{{- $_ := set $seen $pool.name true }}
{{- range $pool._buckets }}
{{- if not (has (int .) $edges) }}
{{- fail (printf "pools[%s].buckets: %d is not one of farm.bucketEdges %v; a pool can only serve queues that producers fill" $pool.name (int .) $edges) }}
{{- end }}
{{- end }}
{{- if and (ne $pool.family "cpu") (not $pool._resourceName) }}
{{- fail (printf "pools[%s]: family %s needs an extended resource; set resourceName or deviceFamilies.%s.resourceName" $pool.name $pool.family $pool.family) }}
{{- end }}
{{- if le (float64 $pool._tgps) (float64 $root.Values.farm.batchTimeLimitSeconds) }}
{{- fail (printf "pools[%s].terminationGracePeriodSeconds: %v must exceed farm.batchTimeLimitSeconds (%v) so a draining worker can finish its batch and upload" $pool.name $pool._tgps $root.Values.farm.batchTimeLimitSeconds) }}
{{- end }}
{{- if and $pool.autoscaling.enabled (lt (int $pool.autoscaling.maxReplicas) (int $pool.autoscaling.minReplicas)) }}
{{- fail (printf "pools[%s].autoscaling: maxReplicas (%d) is below minReplicas (%d)" $pool.name (int $pool.autoscaling.maxReplicas) (int $pool.autoscaling.minReplicas)) }}
{{- end }}
{{- if and (eq $pool.cache.type "persistentVolumeClaim") (gt (int $pool.replicas) 1) (not $pool.cache.existingClaim) (not (has "ReadWriteMany" $pool.cache.accessModes)) }}
{{- fail (printf "pools[%s].cache: %d replicas share one claim; use accessModes [ReadWriteMany], an existingClaim, or cache.type hostPath" $pool.name (int $pool.replicas)) }}
{{- end }}
{{- end }}
{{- if hasPrefix "file://" .Values.storage.url }}
{{- $path := trimPrefix "file://" .Values.storage.url }}
{{- if not (hasPrefix (trimSuffix "/" .Values.storage.sharedVolume.mountPath) $path) }}
{{- fail (printf "storage.url %s must point inside storage.sharedVolume.mountPath (%s): every pod must see the same files" .Values.storage.url .Values.storage.sharedVolume.mountPath) }}
{{- end }}
{{- end }}
{{- end }}
