{{/* vim: set filetype=mustache: */}}

{{- define "pinworks.name" -}}
{{- default .Chart.Name .Values.nameOverride | trunc 63 | trimSuffix "-" }}
{{- end }}

{{- define "pinworks.fullname" -}}
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

{{- define "pinworks.chart" -}}
{{- printf "%s-%s" .Chart.Name .Chart.Version | replace "+" "_" | trunc 63 | trimSuffix "-" }}
{{- end }}

{{/* Selector labels of the whole release. */}}
{{- define "pinworks.selectorLabels" -}}
app.kubernetes.io/name: {{ include "pinworks.name" . }}
app.kubernetes.io/instance: {{ .Release.Name }}
{{- end }}

{{- define "pinworks.labels" -}}
helm.sh/chart: {{ include "pinworks.chart" . }}
{{ include "pinworks.selectorLabels" . }}
app.kubernetes.io/version: {{ .Chart.AppVersion | quote }}
app.kubernetes.io/managed-by: {{ .Release.Service }}
app.kubernetes.io/part-of: pinworks
{{- end }}

{{/* Selector labels of one workload: (dict "root" $ "workload" $w) */}}
{{- define "pinworks.workloadSelectorLabels" -}}
{{ include "pinworks.selectorLabels" .root }}
app.kubernetes.io/component: {{ .workload.component }}
{{- if .workload.pool }}
pinworks.io/pool: {{ .workload.pool }}
{{- end }}
{{- end }}

{{- define "pinworks.workloadLabels" -}}
{{ include "pinworks.labels" .root }}
app.kubernetes.io/component: {{ .workload.component }}
{{- if .workload.pool }}
pinworks.io/pool: {{ .workload.pool }}
{{- end }}
{{- end }}

{{- define "pinworks.serviceAccountName" -}}
{{- if .Values.serviceAccount.create }}
{{- default (include "pinworks.fullname" .) .Values.serviceAccount.name }}
{{- else }}
{{- default "default" .Values.serviceAccount.name }}
{{- end }}
{{- end }}

{{- define "pinworks.secretName" -}}
{{- default (include "pinworks.fullname" .) .Values.existingSecret }}
{{- end }}

{{- define "pinworks.configMapName" -}}
{{- printf "%s-config" (include "pinworks.fullname" .) }}
{{- end }}

{{- define "pinworks.routerPolicyConfigMapName" -}}
{{- default (printf "%s-router-policy" (include "pinworks.fullname" .)) .Values.router.existingPolicyConfigMap }}
{{- end }}

{{- define "pinworks.cnpgClusterName" -}}
{{- default (printf "%s-pg" (include "pinworks.fullname" .)) .Values.postgresql.cloudnativepg.clusterName | trunc 50 | trimSuffix "-" }}
{{- end }}

{{/* Name the official NATS chart gives its resources (mirrors nats.fullname). */}}
{{- define "pinworks.natsFullname" -}}
{{- if .Values.nats.fullnameOverride }}
{{- .Values.nats.fullnameOverride | trunc 63 | trimSuffix "-" }}
{{- else }}
{{- $name := default "nats" .Values.nats.nameOverride }}
{{- if contains $name .Release.Name }}
{{- .Release.Name | trunc 63 | trimSuffix "-" }}
{{- else }}
{{- printf "%s-%s" .Release.Name $name | trunc 63 | trimSuffix "-" }}
{{- end }}
{{- end }}
{{- end }}

{{- define "pinworks.natsUrl" -}}
{{- if .Values.nats.enabled }}
{{- printf "nats://%s.%s.svc:4222" (include "pinworks.natsFullname" .) .Release.Namespace }}
{{- else }}
{{- .Values.externalNats.url }}
{{- end }}
{{- end }}

{{/* host:port of the NATS monitoring endpoint (KEDA needs the headless service in a cluster). */}}
{{- define "pinworks.natsMonitoringEndpoint" -}}
{{- if .Values.nats.enabled }}
{{- printf "%s-headless.%s.svc.cluster.local:%v" (include "pinworks.natsFullname" .) .Release.Namespace (.Values.nats.config.monitor.port | default 8222) }}
{{- else }}
{{- .Values.externalNats.monitoringEndpoint }}
{{- end }}
{{- end }}

{{/* Image reference: (dict "root" $ "image" $imageValues "service" "router") */}}
{{- define "pinworks.image" -}}
{{- $g := .root.Values.image }}
{{- $i := .image | default dict }}
{{- $repo := $i.repository | default (printf "%s/%s%s" $g.registry $g.repositoryPrefix .service) }}
{{- $tag := $i.tag | default $g.tag | default .root.Chart.AppVersion }}
{{- $digest := $i.digest | default $g.digest }}
{{- if $digest }}
{{- printf "%s:%s@%s" $repo $tag $digest }}
{{- else }}
{{- printf "%s:%s" $repo $tag }}
{{- end }}
{{- end }}

{{/*
Checkov skips, justified here, applied to every workload and the migration Job.
Checkov reads "checkov.io/skipN: <check>=<reason>" annotations (no "=" in the reason).
*/}}
{{- define "pinworks.checkovSkips" -}}
checkov.io/skip1: "CKV_K8S_35=The services are 12-factor apps configured only through environment variables (pydantic-settings); secrets come from Secret objects via secretKeyRef and are never in ConfigMaps or the pod spec"
checkov.io/skip2: "CKV_K8S_43=Images are pinned by release tag by default; digests are supported through image.digest and <service>.image.digest and are set by the release pipeline, not in chart defaults"
checkov.io/skip5: "CKV_K8S_15=Images are pinned by release tag or digest so IfNotPresent reuses a node's cached copy and pods still start when the registry is unreachable; set image.pullPolicy to Always for mutable tags"
{{- end }}

{{/*
All workloads as a YAML document {"workloads": [...]} so that every template
(Deployments, PDBs, NetworkPolicies, ScaledObjects, HPAs) iterates the same list.
*/}}
{{- define "pinworks.workloads" -}}
{{- $root := . }}
{{- $items := list }}
{{- range $svc := list "classifier" "router" "verifier" "escalation" }}
{{- $v := index $root.Values $svc }}
{{- if $v.enabled }}
{{- $consumers := list (dict "stream" $v.jetstream.stream "consumer" $v.jetstream.consumer) }}
{{- $items = append $items (dict "name" $svc "component" $svc "service" $svc "pool" "" "values" $v "consumers" $consumers "gpu" (dict "enabled" false) "vllm" (dict "enabled" false) "handlers" list) }}
{{- end }}
{{- end }}
{{- $sp := $root.Values.specialists }}
{{- if $sp.enabled }}
{{- /* Every handler the routing policy may name needs a consumer: a handler no enabled pool
       lists is served by the first enabled CPU pool (an LLM handler without an endpoint there
       declines as unavailable, so its tickets fall back instead of waiting forever). */}}
{{- $served := list }}
{{- range $pool := $sp.pools }}
{{- if (hasKey $pool "enabled" | ternary $pool.enabled true) }}
{{- $served = concat $served $pool.handlers }}
{{- end }}
{{- end }}
{{- $orphans := list }}
{{- range $h := list "template" "kb" "llm_small" "llm_frontier" }}
{{- if not (has $h $served) }}
{{- $orphans = append $orphans $h }}
{{- end }}
{{- end }}
{{- $adoption := dict "done" false }}
{{- range $pool := $sp.pools }}
{{- if (hasKey $pool "enabled" | ternary $pool.enabled true) }}
{{- $handlers := $pool.handlers }}
{{- if and $orphans (not $adoption.done) (not ($pool.gpu | default dict).enabled) }}
{{- $handlers = concat $pool.handlers $orphans }}
{{- $_ := set $adoption "done" true }}
{{- end }}
{{- $v := dict }}
{{- $_ := set $v "image" ($pool.image | default $sp.image | default dict) }}
{{- $_ := set $v "replicaCount" (hasKey $pool "replicaCount" | ternary $pool.replicaCount 1) }}
{{- $_ := set $v "resources" ($pool.resources | default $sp.resources) }}
{{- /* Key-by-key overrides (sprig merge would treat 0 and "" as unset). */}}
{{- $as := deepCopy $sp.autoscaling }}
{{- range $k, $x := ($pool.autoscaling | default dict) }}
{{- $_ := set $as $k $x }}
{{- end }}
{{- $_ := set $v "autoscaling" $as }}
{{- $env := deepCopy ($sp.env | default dict) }}
{{- range $k, $x := ($pool.env | default dict) }}
{{- $_ := set $env $k $x }}
{{- end }}
{{- $_ := set $v "env" $env }}
{{- $_ := set $v "podAnnotations" ($pool.podAnnotations | default dict) }}
{{- $_ := set $v "nodeSelector" ($pool.nodeSelector | default dict) }}
{{- $_ := set $v "tolerations" ($pool.tolerations | default list) }}
{{- $_ := set $v "affinity" ($pool.affinity | default dict) }}
{{- $consumers := list }}
{{- range $h := $handlers }}
{{- $consumers = append $consumers (dict "stream" $sp.jetstream.stream "consumer" (printf "%s%s" $sp.jetstream.consumerPrefix $h)) }}
{{- end }}
{{- $gpu := deepCopy ($pool.gpu | default (dict "enabled" false)) }}
{{- /* Pools are list items, so values.yaml defaults do not reach them: fill the gaps here.
       A key given explicitly (even empty) is kept as given. */}}
{{- if $gpu.enabled }}
{{- range $k, $d := dict "resourceName" "nvidia.com/gpu" "count" 1 "runtimeClassName" "" "affinity" dict "nodeSelector" (dict $root.Values.common.gpuNodeLabel "true") "tolerations" (list (dict "key" "nvidia.com/gpu" "operator" "Exists" "effect" "NoSchedule")) }}
{{- if not (hasKey $gpu $k) }}
{{- $_ := set $gpu $k $d }}
{{- end }}
{{- end }}
{{- end }}
{{- $vllm := dict "enabled" false }}
{{- if and $gpu.enabled $pool.vllm }}
{{- $vllm = include "pinworks.vllmDefaults" $root | fromYaml }}
{{- range $k, $x := $pool.vllm }}
{{- if and (kindIs "map" $x) (kindIs "map" (index $vllm $k)) }}
{{- $_ := set $vllm $k (merge (deepCopy $x) (index $vllm $k)) }}
{{- else }}
{{- $_ := set $vllm $k $x }}
{{- end }}
{{- end }}
{{- end }}
{{- $items = append $items (dict "name" (printf "specialists-%s" $pool.name) "component" "specialists" "service" "specialists" "pool" $pool.name "values" $v "consumers" $consumers "gpu" $gpu "vllm" $vllm "handlers" $handlers) }}
{{- end }}
{{- end }}
{{- end }}
{{- dict "workloads" $items | toJson }}
{{- end }}

{{/* Node affinity for a workload: CPU workloads are kept off GPU nodes. */}}
{{- define "pinworks.affinity" -}}
{{- $root := .root }}
{{- $w := .workload }}
{{- $aff := deepCopy ($w.values.affinity | default $root.Values.affinity | default dict) }}
{{- if $w.gpu.enabled }}
{{- $aff = merge $aff (deepCopy ($w.gpu.affinity | default dict)) }}
{{- else }}
{{- $na := $aff.nodeAffinity | default dict }}
{{- $req := $na.requiredDuringSchedulingIgnoredDuringExecution | default dict }}
{{- $terms := $req.nodeSelectorTerms | default (list dict) }}
{{- $newTerms := list }}
{{- range $t := $terms }}
{{- $exprs := $t.matchExpressions | default list }}
{{- $exprs = append $exprs (dict "key" $root.Values.common.gpuNodeLabel "operator" "NotIn" "values" (list "true")) }}
{{- $newTerms = append $newTerms (set (deepCopy $t) "matchExpressions" $exprs) }}
{{- end }}
{{- $_ := set $req "nodeSelectorTerms" $newTerms }}
{{- $_ := set $na "requiredDuringSchedulingIgnoredDuringExecution" $req }}
{{- $_ := set $aff "nodeAffinity" $na }}
{{- end }}
{{- if $aff }}
{{- toYaml $aff }}
{{- end }}
{{- end }}

{{/* Fail early when no database is configured. */}}
{{- define "pinworks.validate" -}}
{{- if not (or .Values.postgresql.cloudnativepg.enabled .Values.existingSecret .Values.externalDatabase.url) }}
{{- fail "pinworks: no database configured. Set externalDatabase.url (and roleUrls), existingSecret (with a URL per login, existingSecretKeys.databaseUrls) or postgresql.cloudnativepg.enabled=true." }}
{{- end }}
{{- if and (not .Values.nats.enabled) (not .Values.externalNats.url) }}
{{- fail "pinworks: set externalNats.url or nats.enabled=true." }}
{{- end }}
{{- end }}

{{/* DATABASE_URL env entry. */}}
{{/* The Postgres logins: one per role of pinworks_common/db/roles.py ("migrations" owns the
     tables and runs the migration Job; "console" is the escalation service's console). */}}
{{- define "pinworks.databaseLogins" -}}
{{- toJson (list "migrations" "classifier" "router" "specialists" "verifier" "escalation" "console" "operator" "reports") }}
{{- end }}

{{/* Key of a login's URL in the credentials Secret: (dict "root" $ "login" "router") */}}
{{- define "pinworks.databaseUrlKey" -}}
{{- index .root.Values.existingSecretKeys.databaseUrls .login | default (printf "DATABASE_URL_%s" (upper .login)) }}
{{- end }}

{{/* CloudNativePG: the basic-auth Secret (username, password) of a managed role. */}}
{{- define "pinworks.cnpgRoleSecret" -}}
{{- index (.root.Values.postgresql.cloudnativepg.roleSecrets | default dict) .login | default (printf "%s-db-%s" (include "pinworks.fullname" .root) .login) }}
{{- end }}

{{/* DATABASE_URL (or .var) of one login: (dict "root" $ "login" "router" ["var" "X"]).
     CloudNativePG: the migrations role is the database owner (its "<cluster>-app" uri);
     every other role is a managed role whose URL is composed from its Secret. Otherwise the
     login's own key in the credentials Secret. */}}
{{- define "pinworks.databaseUrlEnv" -}}
{{- $root := .root }}
{{- $var := .var | default "DATABASE_URL" }}
{{- $pg := $root.Values.postgresql.cloudnativepg }}
{{- if and $pg.enabled (eq .login "migrations") }}
- name: {{ $var }}
  valueFrom:
    secretKeyRef:
      name: {{ include "pinworks.cnpgClusterName" $root }}-app
      key: uri
{{- else if $pg.enabled }}
{{- $secret := include "pinworks.cnpgRoleSecret" . }}
{{- $prefix := printf "PINWORKS_DB_%s" (upper .login) }}
- name: {{ $prefix }}_USER
  valueFrom:
    secretKeyRef:
      name: {{ $secret }}
      key: username
- name: {{ $prefix }}_PASSWORD
  valueFrom:
    secretKeyRef:
      name: {{ $secret }}
      key: password
- name: {{ $var }}
  value: {{ printf "postgresql://$(%s_USER):$(%s_PASSWORD)@%s-rw.%s.svc:5432/%s" $prefix $prefix (include "pinworks.cnpgClusterName" $root) $root.Release.Namespace $pg.database | quote }}
{{- else }}
- name: {{ $var }}
  valueFrom:
    secretKeyRef:
      name: {{ include "pinworks.secretName" $root }}
      key: {{ include "pinworks.databaseUrlKey" . }}
{{- end }}
{{- end }}

{{/* Probe timing: (dict "probe" $p) */}}
{{- define "pinworks.probeTiming" -}}
initialDelaySeconds: {{ .initialDelaySeconds }}
periodSeconds: {{ .periodSeconds }}
timeoutSeconds: {{ .timeoutSeconds }}
failureThreshold: {{ .failureThreshold }}
{{- end }}

{{/* Defaults for a pool's vLLM server (deep-merged under the pool's own settings). */}}
{{- define "pinworks.vllmDefaults" -}}
enabled: false
nativeSidecar: true
image:
  repository: docker.io/vllm/vllm-openai
  tag: v0.6.3
  digest: ""
  pullPolicy: IfNotPresent
model: Qwen/Qwen2.5-1.5B-Instruct
servedModelName: ""
port: 8000
extraArgs: []
env: {}
hfTokenSecret: ""
resources:
  requests:
    cpu: "2"
    memory: 16Gi
  limits:
    cpu: "8"
    memory: 32Gi
shmSizeLimit: 8Gi
tmpSizeLimit: 4Gi
modelCache:
  existingClaim: ""
  sizeLimit: 50Gi
startupProbe:
  periodSeconds: 10
  failureThreshold: 180
  timeoutSeconds: 5
{{- end }}

{{/* The vLLM model server of a GPU pool: (dict "root" $ "workload" $w "nativeSidecar" bool) */}}
{{- define "pinworks.vllmContainer" -}}
{{- $root := .root }}
{{- $w := .workload }}
{{- $vl := $w.vllm }}
{{- $vllmPort := int ($vl.port | default 8000) }}
- name: vllm
  {{- if .nativeSidecar }}
  restartPolicy: Always
  {{- end }}
  image: {{ printf "%s:%s%s" $vl.image.repository $vl.image.tag (ternary (printf "@%s" $vl.image.digest) "" (ne ($vl.image.digest | default "") "")) | quote }}
  imagePullPolicy: {{ $vl.image.pullPolicy | default "IfNotPresent" }}
  securityContext:
    {{- toYaml $root.Values.containerSecurityContext | nindent 4 }}
  args:
    - --model
    - {{ $vl.model | quote }}
    {{- with $vl.servedModelName }}
    - --served-model-name
    - {{ . | quote }}
    {{- end }}
    # Reachable only from inside the pod: no NetworkPolicy admits this port.
    - --host
    - "0.0.0.0"
    - --port
    - {{ $vllmPort | quote }}
    - --download-dir
    - /models
    {{- range $vl.extraArgs }}
    - {{ . | quote }}
    {{- end }}
  ports:
    - name: vllm
      containerPort: {{ $vllmPort }}
      protocol: TCP
  env:
    - name: HOME
      value: /tmp
    - name: HF_HOME
      value: /models/huggingface
    - name: XDG_CACHE_HOME
      value: /tmp/.cache
    - name: VLLM_CONFIG_ROOT
      value: /tmp/.config/vllm
    # The UID has no passwd entry; getpass.getuser() (torch caches) reads these instead.
    - name: USER
      value: vllm
    - name: LOGNAME
      value: vllm
    - name: TORCHINDUCTOR_CACHE_DIR
      value: /tmp/torchinductor
    {{- with $vl.hfTokenSecret }}
    - name: HF_TOKEN
      valueFrom:
        secretKeyRef:
          name: {{ . }}
          key: HF_TOKEN
    {{- end }}
    {{- range $k, $val := $vl.env }}
    - name: {{ $k }}
      value: {{ $val | quote }}
    {{- end }}
  startupProbe:
    httpGet:
      path: /health
      port: vllm
    periodSeconds: {{ $vl.startupProbe.periodSeconds }}
    failureThreshold: {{ $vl.startupProbe.failureThreshold }}
    timeoutSeconds: {{ $vl.startupProbe.timeoutSeconds }}
  livenessProbe:
    httpGet:
      path: /health
      port: vllm
    periodSeconds: 15
    timeoutSeconds: 5
    failureThreshold: 4
  readinessProbe:
    httpGet:
      path: /v1/models
      port: vllm
    periodSeconds: 10
    timeoutSeconds: 5
    failureThreshold: 3
  resources:
    {{- $res := deepCopy ($vl.resources | default dict) }}
    {{- $limits := $res.limits | default dict }}
    {{- $_ := set $limits $w.gpu.resourceName ($w.gpu.count | default 1) }}
    {{- $_ := set $res "limits" $limits }}
    {{- $requests := $res.requests | default dict }}
    {{- $_ := set $requests $w.gpu.resourceName ($w.gpu.count | default 1) }}
    {{- $_ := set $res "requests" $requests }}
    {{- toYaml $res | nindent 4 }}
  volumeMounts:
    - name: vllm-tmp
      mountPath: /tmp
    - name: dshm
      mountPath: /dev/shm
    - name: model-cache
      mountPath: /models
{{- end }}

{{/* ---------------------------------------------------------------- NATS identities, TLS */}}

{{/* The Secret holding the in-cluster NATS' authorization (auth.conf); the nats values
     include and mount it by this name, so it follows the release name only. */}}
{{- define "pinworks.natsAuthSecret" -}}
{{- printf "%s-nats-auth" .Release.Name }}
{{- end }}

{{/* The in-cluster NATS' server certificate (tls.crt, tls.key, ca.crt), named likewise. */}}
{{- define "pinworks.natsTlsSecret" -}}
{{- printf "%s-nats-tls" .Release.Name }}
{{- end }}

{{/* "true" when the services connect to NATS with TLS and verify it with natsTls' CA. */}}
{{- define "pinworks.natsTlsOn" -}}
{{- if .Values.nats.enabled }}
{{- (((.Values.nats.config | default dict).nats | default dict).tls | default dict).enabled | default false }}
{{- else }}
{{- .Values.natsTls.enabled }}
{{- end }}
{{- end }}

{{- define "pinworks.natsCaSecret" -}}
{{- .Values.natsTls.caSecret | default (include "pinworks.natsTlsSecret" .) }}
{{- end }}

{{/* A service's seed Secret: (dict "root" $ "service" "router") */}}
{{- define "pinworks.natsSeedSecret" -}}
{{- index (.root.Values.natsAuth.seedSecrets | default dict) .service | default (printf "%s-nats-%s" (include "pinworks.fullname" .root) .service) }}
{{- end }}

{{/* nats-server's authorization block (JSON without HTML escapes, which its format accepts): every identity of
     files/nats-permissions.json (`pinworks nats authorization --chart` writes it from
     pinworks_contracts.identities) an nkey user with its public key from natsAuth. */}}
{{- define "pinworks.natsAuthorization" -}}
{{- $matrix := .Files.Get "files/nats-permissions.json" | fromJson }}
{{- $keys := .Values.natsAuth.publicKeys | default dict }}
{{- $users := list }}
{{- range $identity, $permissions := $matrix.identities }}
{{- $given := index $keys $identity | default "" }}
{{- /* a list while rotating: the old and the new key, both admitted */}}
{{- $list := kindIs "slice" $given | ternary $given (list $given) }}
{{- range $key := $list }}
{{- if not (regexMatch "^U[A-Z2-7]{55}$" (toString $key)) }}
{{- fail (printf "pinworks: natsAuth.publicKeys.%s must be the identity's public nkey (U..., 56 characters; `pinworks nats keys` makes them), or a list of them" $identity) }}
{{- end }}
{{- $users = append $users (dict "nkey" $key "permissions" $permissions) }}
{{- end }}
{{- end }}
{{- range $platform, $key := .Values.natsAuth.platforms | default dict }}
{{- if not (regexMatch "^[A-Za-z0-9_-]+$" $platform) }}
{{- fail (printf "pinworks: natsAuth.platforms: %q is not a NATS subject token" $platform) }}
{{- end }}
{{- if not (regexMatch "^U[A-Z2-7]{55}$" $key) }}
{{- fail (printf "pinworks: natsAuth.platforms.%s must be a public nkey (U..., 56 characters)" $platform) }}
{{- end }}
{{- $permissions := $matrix.platform | toJson | replace $matrix.placeholder $platform | fromJson }}
{{- $users = append $users (dict "nkey" $key "permissions" $permissions) }}
{{- end }}
{{- dict "timeout" 5 "users" $users | toRawJson }}
{{- end }}

{{/* NATS_* env of a workload: its identity's seed file and inbox, the CA. (dict "root" $ "service" "router") */}}
{{- define "pinworks.natsEnv" -}}
{{- if .root.Values.natsAuth.enabled }}
- name: NATS_NKEY
  value: /etc/pinworks/nats/identity/nkey
- name: NATS_INBOX_PREFIX
  value: {{ printf "_INBOX_%s" .service | quote }}
{{- end }}
{{- if eq (include "pinworks.natsTlsOn" .root) "true" }}
- name: NATS_TLS_CA
  value: /etc/pinworks/nats/ca/ca.crt
{{- end }}
{{- end }}

{{- define "pinworks.natsVolumeMounts" -}}
{{- if .root.Values.natsAuth.enabled }}
- name: nats-identity
  mountPath: /etc/pinworks/nats/identity
  readOnly: true
{{- end }}
{{- if eq (include "pinworks.natsTlsOn" .root) "true" }}
- name: nats-ca
  mountPath: /etc/pinworks/nats/ca
  readOnly: true
{{- end }}
{{- end }}

{{- define "pinworks.natsVolumes" -}}
{{- if .root.Values.natsAuth.enabled }}
- name: nats-identity
  secret:
    secretName: {{ include "pinworks.natsSeedSecret" . }}
    defaultMode: 0440
    items:
      - key: {{ .root.Values.natsAuth.seedKey }}
        path: nkey
{{- end }}
{{- if eq (include "pinworks.natsTlsOn" .root) "true" }}
- name: nats-ca
  secret:
    secretName: {{ include "pinworks.natsCaSecret" .root }}
    items:
      - key: {{ .root.Values.natsTls.caKey }}
        path: ca.crt
{{- end }}
{{- end }}

{{/* CLASSIFIER_PLATFORM_UNITS from natsAuth.platformUnits (JSON platform -> units), empty when
     unset; every platform of natsAuth.platforms must be bound, and the value is not set twice. */}}
{{- define "pinworks.platformUnits" -}}
{{- $units := .Values.natsAuth.platformUnits | default dict }}
{{- range $platform, $_ := .Values.natsAuth.platforms | default dict }}
{{- if not (hasKey $units $platform) }}
{{- fail (printf "pinworks: natsAuth.platformUnits.%s is missing: name the business units support platform %s may submit for (a list; \"*\" for every unit)" $platform $platform) }}
{{- end }}
{{- end }}
{{- if and $units (hasKey (.Values.classifier.env | default dict) "CLASSIFIER_PLATFORM_UNITS") }}
{{- fail "pinworks: set natsAuth.platformUnits or classifier.env.CLASSIFIER_PLATFORM_UNITS, not both" }}
{{- end }}
{{- if $units }}{{ $units | toJson }}{{ end }}
{{- end }}
