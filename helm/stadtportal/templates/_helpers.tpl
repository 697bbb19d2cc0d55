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

{{/* Whether a part serves HTTP (the gateway and the web portal) rather than gRPC: "true" or "". */}}
{{- define "stadtportal.http" -}}
{{- if has .name (list "gateway" "web") }}true{{ end -}}
{{- end -}}

{{/* Whether a part has a database of its own (every gRPC service): "true" or "". */}}
{{- define "stadtportal.hasDatabase" -}}
{{- if not (has .name (list "gateway" "web")) }}true{{ end -}}
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

{{/* A part's non-secret settings, its ConfigMap's data (docs/configuration.md). The
part's checksum/config is of these alone: a change rolls the parts it concerns. */}}
{{- define "stadtportal.configData" -}}
{{- $ := .root }}
{{- $name := .name }}
{{- $svc := index $.Values.services $name -}}
STADTPORTAL_TENANT: {{ $.Values.tenant | quote }}
STADTPORTAL_LOG_LEVEL: {{ $.Values.logLevel | quote }}
STADTPORTAL_LISTEN_HOST: "0.0.0.0"
STADTPORTAL_PUBLIC_URL: {{ $.Values.publicUrl | quote }}
STADTPORTAL_SHUTDOWN_DELAY_MS: {{ $.Values.pods.shutdownDelayMs | quote }}
STADTPORTAL_SHUTDOWN_GRACE_MS: {{ $.Values.pods.shutdownGraceMs | quote }}
{{- if eq $name "gateway" }}
STADTPORTAL_HTTP_PORT: {{ $svc.httpPort | quote }}
STADTPORTAL_ADMIN_PORT: {{ $svc.adminPort | quote }}
STADTPORTAL_TRUSTED_PROXIES: {{ join "," $svc.trustedProxies | quote }}
STADTPORTAL_OAUTH_TOKEN_URL: {{ printf "%s/api/v1/oauth/token" $.Values.publicUrl | quote }}
{{- else if eq $name "web" }}
STADTPORTAL_WEB_PORT: {{ $svc.httpPort | quote }}
STADTPORTAL_ADMIN_PORT: {{ $svc.adminPort | quote }}
STADTPORTAL_TRUSTED_PROXIES: {{ join "," $svc.trustedProxies | quote }}
STADTPORTAL_WEB_GATEWAY_URL: {{ printf "http://%s:%v" (include "stadtportal.name" (dict "root" $ "name" "gateway")) $.Values.gatewayService.port | quote }}
{{- else }}
STADTPORTAL_GRPC_PORT: {{ $svc.grpcPort | quote }}
STADTPORTAL_ADMIN_PORT: {{ $svc.adminPort | quote }}
STADTPORTAL_GRPC_MAX_CONNECTION_AGE_MS: {{ $.Values.pods.grpcMaxConnectionAgeMs | quote }}
STADTPORTAL_MIGRATE_ON_START: {{ (not $.Values.migrations.job) | quote }}
STADTPORTAL_DB_STARTUP_TIMEOUT_MS: "120000"
STADTPORTAL_RETENTION_INTERVAL_MS: {{ $.Values.retention.intervalMs | quote }}
STADTPORTAL_EVENT_RETENTION_DAYS: {{ $.Values.retention.eventDays | quote }}
{{- end }}
{{- if and (eq $name "submission") $.Values.archive.enabled }}
STADTPORTAL_ARCHIVE_DIR: {{ $.Values.archive.mountPath | quote }}
{{- end }}
{{- range $callee := $svc.calls }}
{{ printf "STADTPORTAL_%s_ADDR" (upper $callee) }}: {{ include "stadtportal.grpcTarget" (dict "root" $ "name" $callee) | quote }}
{{- end }}
{{- if has "smtp" $svc.egress }}
STADTPORTAL_SMTP_URL: {{ $.Values.smtp.url | quote }}
STADTPORTAL_MAIL_FROM: {{ $.Values.smtp.from | quote }}
{{- end }}
{{- if eq $name "messaging" }}
STADTPORTAL_PORTAL_NAME: {{ $.Values.portalName | quote }}
{{- end }}
{{- if eq $name "connector" }}
STADTPORTAL_CONNECTOR_ALLOWED_NETWORKS: {{ join "," $.Values.deliveries.allowedNetworks | quote }}
STADTPORTAL_DELIVERY_SNAPSHOT_DAYS: {{ $.Values.deliveries.snapshotDays | quote }}
{{- end }}
{{- if eq $name "payment" }}
STADTPORTAL_PAYMENT_PROVIDERS: {{ $.Values.payment.providers | quote }}
STADTPORTAL_ALLOW_TEST_PROVIDERS: {{ $.Values.payment.allowTestProviders | quote }}
STADTPORTAL_PAYMENT_CALLBACK_URL: {{ $.Values.publicUrl | quote }}
{{- if hasKey $.Values.services "web" }}
{{- /* The payer comes back to the web portal's page, which settles the payment through the API. */}}
STADTPORTAL_PAYMENT_RETURN_URL: {{ printf "%s/submissions/{submission}/paid?payment={payment}" $.Values.publicUrl | quote }}
{{- end }}
STADTPORTAL_TESTPAY_URL: {{ $.Values.payment.testpayUrl | quote }}
STADTPORTAL_PAYPAL_BASE_URL: {{ $.Values.payment.paypalBaseUrl | quote }}
{{- end }}
{{- if and (eq $name "identity") $.Values.federation.enabled }}
{{- include "stadtportal.federationEnv" $ }}
{{- end }}
{{- if and (eq $name "identity") $.Values.openidProvider.enabled }}
{{- with $.Values.openidProvider }}
STADTPORTAL_OP_ISSUER: {{ $.Values.publicUrl | quote }}
STADTPORTAL_OP_ACCESS_TOKEN_S: {{ .accessTokenSeconds | int64 | quote }}
STADTPORTAL_OP_ID_TOKEN_S: {{ .idTokenSeconds | int64 | quote }}
STADTPORTAL_OP_GRANT_S: {{ .grantSeconds | int64 | quote }}
STADTPORTAL_OP_KEY_ROTATION_S: {{ .keyRotationSeconds | int64 | quote }}
STADTPORTAL_OP_KEY_PUBLISH_AHEAD_S: {{ .keyPublishAheadSeconds | int64 | quote }}
STADTPORTAL_OP_ALLOWED_NETWORKS: {{ join "," (.allowedNetworks | default list) | quote }}
{{- end }}
{{- end }}
{{- range $k, $v := $svc.env }}
{{ $k }}: {{ $v | quote }}
{{- end }}
{{- end -}}

{{/* Where identity finds the federation files: the provider documents and IdP metadata
(the ConfigMap <release>-federation), our SAML key pair (federation.samlKeySecret) and
the private_key_jwt key (federation.oidcPrivateKey). */}}
{{- define "stadtportal.federationDirs" -}}
files: /etc/stadtportal/federation
saml: /etc/stadtportal/saml
oidc: /etc/stadtportal/oidc
{{- end -}}

{{/* The provider kinds federation.providers has, e.g. {saml: true} (root context). */}}
{{- define "stadtportal.federationKinds" -}}
{{- range .Values.federation.providers }}
{{ .kind }}: true
{{- end }}
{{- end -}}

{{/* The federation ConfigMap's data (root context): providers.json, each SAML
provider's saml.idp_metadata pointed at its file in the mount, and the IdP metadata
files. Refuses values identity would refuse at start: a SAML provider whose metadata is
not in federation.idpMetadata, an id used twice, a missing Secret. */}}
{{- define "stadtportal.federationFiles" -}}
{{- $f := .Values.federation }}
{{- $dirs := include "stadtportal.federationDirs" . | fromYaml }}
{{- $kinds := include "stadtportal.federationKinds" . | fromYaml | default dict }}
{{- if and $kinds.saml (not $f.samlKeySecret) }}
{{- fail "federation.samlKeySecret is required with a SAML provider" }}
{{- end }}
{{- if and $kinds.oidc (not $f.oidcSecrets) (not $f.oidcPrivateKey.name) }}
{{- fail "federation.oidcSecrets (or federation.oidcPrivateKey) is required with an OpenID Connect provider" }}
{{- end }}
{{- $providers := list }}
{{- $ids := dict }}
{{- range $f.providers }}
{{- $p := deepCopy . }}
{{- if hasKey $ids $p.id }}
{{- fail (printf "federation.providers: id %s used twice" $p.id) }}
{{- end }}
{{- $_ := set $ids $p.id true }}
{{- if eq $p.kind "saml" }}
{{- $file := base $p.saml.idp_metadata }}
{{- if not (hasKey $f.idpMetadata $file) }}
{{- fail (printf "federation.providers: %s's saml.idp_metadata %s is not a key of federation.idpMetadata" $p.id $file) }}
{{- end }}
{{- $_ := set $p.saml "idp_metadata" (printf "%s/%s" $dirs.files $file) }}
{{- else if and (not $p.oidc.client_secret_env) (not $f.oidcPrivateKey.name) }}
{{- fail (printf "federation.providers: %s needs oidc.client_secret_env (or federation.oidcPrivateKey)" $p.id) }}
{{- end }}
{{- $providers = append $providers $p }}
{{- end -}}
providers.json: {{ toPrettyJson $providers | quote }}
{{- range $file, $xml := $f.idpMetadata }}
{{ $file }}: {{ $xml | quote }}
{{- end }}
{{- end -}}

{{/* Identity's federation settings in its ConfigMap (root context). */}}
{{- define "stadtportal.federationEnv" -}}
{{- $f := .Values.federation }}
{{- $dirs := include "stadtportal.federationDirs" . | fromYaml }}
{{- $kinds := include "stadtportal.federationKinds" . | fromYaml | default dict }}
STADTPORTAL_FEDERATION_PROVIDERS: {{ printf "%s/providers.json" $dirs.files | quote }}
STADTPORTAL_FEDERATION_FLOW_S: {{ $f.flowSeconds | quote }}
{{- if $kinds.saml }}
STADTPORTAL_SAML_KEY_FILE: {{ printf "%s/tls.key" $dirs.saml | quote }}
STADTPORTAL_SAML_CERT_FILE: {{ printf "%s/tls.crt" $dirs.saml | quote }}
{{- end }}
{{- if and $kinds.oidc $f.oidcPrivateKey.name }}
STADTPORTAL_OIDC_PRIVATE_KEY_FILE: {{ printf "%s/%s" $dirs.oidc $f.oidcPrivateKey.key | quote }}
{{- end }}
{{- end -}}
