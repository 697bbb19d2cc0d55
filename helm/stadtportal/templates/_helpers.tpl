{{/* Name of a part's resources: <release>-<part>. */}}
{{- define "stadtportal.name" -}}
{{- printf "%s-%s" .root.Release.Name .name | trunc 63 | trimSuffix "-" -}}
{{- end -}}

{{/* Labels every resource carries. */}}
{{- define "stadtportal.labels" -}}
app.kubernetes.io/name: stadtportal
app.kubernetes.io/instance: {{ .root.Release.Name }}
app.kubernetes.io/component: {{ .name }}
app.kubernetes.io/part-of: stadtportal
app.kubernetes.io/version: {{ .root.Chart.AppVersion | quote }}
app.kubernetes.io/managed-by: {{ .root.Release.Service }}
helm.sh/chart: {{ printf "%s-%s" .root.Chart.Name .root.Chart.Version }}
{{- end -}}

{{/* Labels that select one part's pods. */}}
{{- define "stadtportal.selector" -}}
app.kubernetes.io/instance: {{ .root.Release.Name }}
app.kubernetes.io/component: {{ .name }}
{{- end -}}

{{/* Labels that select every pod of the release. */}}
{{- define "stadtportal.releaseSelector" -}}
app.kubernetes.io/instance: {{ .Release.Name }}
app.kubernetes.io/part-of: stadtportal
{{- end -}}

{{/* The image of a program: <registry>/stadtportal-<program>:<tag>. */}}
{{- define "stadtportal.image" -}}
{{- printf "%s/stadtportal-%s:%s" .root.Values.image.registry .name (.root.Values.image.tag | default .root.Chart.AppVersion) -}}
{{- end -}}

{{/* The gRPC address of a service for its callers: the headless Service (in the
callers' namespace), resolved by gRPC's DNS resolver into one address per ready pod;
the callers' round_robin spreads calls over all of them, and the servers' maximum
connection age makes callers resolve again, so new pods receive calls. */}}
{{- define "stadtportal.grpcTarget" -}}
{{- $svc := index .root.Values.services .name -}}
{{- printf "dns:///%s-grpc:%v" (include "stadtportal.name" .) $svc.grpcPort -}}
{{- end -}}

{{/* A value from a Secret as an environment variable. */}}
{{- define "stadtportal.secretEnv" -}}
- name: {{ .env }}
  valueFrom:
    secretKeyRef:
      name: {{ .secret }}
      key: {{ .key }}
      {{- if .optional }}
      optional: true
      {{- end }}
{{- end -}}

{{/* The container security context every container gets. */}}
{{- define "stadtportal.containerSecurity" -}}
runAsNonRoot: true
runAsUser: 10001
runAsGroup: 10001
readOnlyRootFilesystem: true
allowPrivilegeEscalation: false
privileged: false
capabilities:
  drop: [ALL]
seccompProfile:
  type: RuntimeDefault
{{- end -}}

{{/* The pod security context every pod gets. */}}
{{- define "stadtportal.podSecurity" -}}
runAsNonRoot: true
runAsUser: 10001
runAsGroup: 10001
fsGroup: 10001
seccompProfile:
  type: RuntimeDefault
{{- end -}}

{{/* imagePullSecrets of a pod, when the values name any (root context). */}}
{{- define "stadtportal.pullSecrets" -}}
{{- with .Values.image.pullSecrets -}}
imagePullSecrets:
  {{- range . }}
  - name: {{ . }}
  {{- end }}
{{- end }}
{{- end -}}

{{/* The development databases the chart can run, each with its port (devDatabases). */}}
{{- define "stadtportal.devDatabases" -}}
postgres: {{ .Values.networkPolicy.databasePort }}
redis: {{ .Values.networkPolicy.redisPort }}
{{- end -}}

{{/* The Secret holding a service's database URL (its own role): <namePrefix>-<service>. */}}
{{- define "stadtportal.databaseSecret" -}}
{{- printf "%s-%s" .root.Values.secrets.database.namePrefix .name -}}
{{- end -}}
