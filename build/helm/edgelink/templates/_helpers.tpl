{{/* Names, labels and the agent config shared by both DaemonSets. */}}

{{- define "edgelink.name" -}}
{{- .Chart.Name | trunc 63 | trimSuffix "-" -}}
{{- end -}}

{{- define "edgelink.fullname" -}}
{{- if contains .Chart.Name .Release.Name -}}
{{- .Release.Name | trunc 63 | trimSuffix "-" -}}
{{- else -}}
{{- printf "%s-%s" .Release.Name .Chart.Name | trunc 63 | trimSuffix "-" -}}
{{- end -}}
{{- end -}}

{{- define "edgelink.labels" -}}
helm.sh/chart: {{ printf "%s-%s" .Chart.Name .Chart.Version | replace "+" "_" }}
app.kubernetes.io/name: {{ include "edgelink.name" . }}
app.kubernetes.io/instance: {{ .Release.Name }}
app.kubernetes.io/version: {{ .Chart.AppVersion | quote }}
app.kubernetes.io/managed-by: {{ .Release.Service }}
{{- end -}}

{{/* selectorLabels takes (dict "root" $ "role" "edge"|"cloud"). */}}
{{- define "edgelink.selectorLabels" -}}
app.kubernetes.io/name: {{ include "edgelink.name" .root }}
app.kubernetes.io/instance: {{ .root.Release.Name }}
app.kubernetes.io/component: {{ .role }}-agent
{{- end -}}

{{- define "edgelink.image" -}}
{{- printf "%s:%s" .Values.image.repository (.Values.image.tag | default .Chart.AppVersion) -}}
{{- end -}}

{{- define "edgelink.serviceAccountName" -}}
{{- if .Values.serviceAccount.create -}}
{{- .Values.serviceAccount.name | default (include "edgelink.fullname" .) -}}
{{- else -}}
{{- .Values.serviceAccount.name | default "default" -}}
{{- end -}}
{{- end -}}

{{/*
edgelink.checks fails rendering on values that cannot work, each message
naming the value to set. Every template that needs it includes it.
*/}}
{{- define "edgelink.checks" -}}
{{- $_ := include "edgelink.meshCIDRs" . -}}
{{- if hasKey .Values.agent "psk" -}}
{{- fail "agent.psk: EdgeLink has no pre-shared key (unlike EdgeMesh); nodes prove membership with certificates: remove agent.psk and set membership.existingSecret (docs/install.md)" -}}
{{- end -}}
{{- if and (not .Values.edge.enabled) (not .Values.cloud.enabled) -}}
{{- fail "edge.enabled and cloud.enabled are both false: enable at least one" -}}
{{- end -}}
{{- if and (include "edgelink.enroll" .) (not (and .Values.controller.enabled (include "edgelink.meshEnabled" .))) -}}
{{- fail "membership: without membership.existingSecret, cloud nodes get their certificates from the controller (CertificateSigningRequests), which needs controller.enabled and agent.meshCIDRConfig (cloudCIDR/edgeCIDR); set those, or set membership.existingSecret (docs/install.md)" -}}
{{- end -}}
{{- end -}}

{{/* enroll is "true" when cloud agents run and no membership Secret is
given: the controller keeps the cluster CA and signs cloud nodes'
certificates (CSRs). Without a Secret, edge nodes always prove membership
with the certificates cloudcore gave their edgecore. */}}
{{- define "edgelink.enroll" -}}
{{- if and .Values.cloud.enabled (not .Values.membership.existingSecret) -}}true{{- end -}}
{{- end -}}

{{/* The CA Secret and ConfigMap the controller keeps. */}}
{{- define "edgelink.caName" -}}{{ printf "%s-ca" (include "edgelink.fullname" .) }}{{- end -}}

{{/* Where the controller's CA ConfigMap appears inside the container. */}}
{{- define "edgelink.caDir" -}}/etc/edgelink/ca{{- end -}}

{{/*
edgelink.meshCIDRs renders the segments as JSON {"cloudCIDR": [...],
"edgeCIDR": [...]} from either spelling EdgeMesh's documentation uses:
agent.cloudCIDR / agent.edgeCIDR or agent.meshCIDRConfig.cloudCIDR /
edgeCIDR. Both spellings with different values is an error naming both.
*/}}
{{- define "edgelink.meshCIDRs" -}}
{{- $a := .Values.agent -}}
{{- $mc := $a.meshCIDRConfig | default dict -}}
{{- $out := dict -}}
{{- range $k := list "cloudCIDR" "edgeCIDR" -}}
{{- $flat := get $a $k | default list -}}
{{- $nested := get $mc $k | default list -}}
{{- if and $flat $nested (ne (toJson $flat) (toJson $nested)) -}}
{{- fail (printf "agent.%s %v and agent.meshCIDRConfig.%s %v are both set and differ: set one of them (EdgeMesh's documentation uses both spellings; they mean the same)" $k $flat $k $nested) -}}
{{- end -}}
{{- $_ := set $out $k (ternary $flat $nested (gt (len $flat) 0)) -}}
{{- end -}}
{{- toJson $out -}}
{{- end -}}

{{/* meshEnabled is "true" when any segment is set: without one the pod
network feature is off, as in EdgeMesh (no CNI, no IPAM, no routes). */}}
{{- define "edgelink.meshEnabled" -}}
{{- $m := include "edgelink.meshCIDRs" . | fromJson -}}
{{- if or $m.cloudCIDR $m.edgeCIDR -}}true{{- end -}}
{{- end -}}

{{/* The agent's status socket (statusSocket), on the host's runDir; the probes ask it. */}}
{{- define "edgelink.statusSocket" -}}{{ printf "%s/agent.sock" .Values.hostPaths.runDir }}{{- end -}}

{{/* Where the membership files appear inside the container. */}}
{{- define "edgelink.membershipDir" -}}/etc/edgelink/membership{{- end -}}

{{/*
edgelink.config renders one agent config (agent.edgelink.io/v1alpha1).
Takes (dict "root" $ "role" "edge"|"cloud"). nodeName is left out: the
agent takes it from $NODE_NAME (downward API).
*/}}
{{- define "edgelink.config" -}}
{{- $v := .root.Values -}}
{{- $a := $v.agent -}}
{{- $edge := eq .role "edge" -}}
{{- $mdir := include "edgelink.membershipDir" .root -}}
{{- $cidrs := include "edgelink.meshCIDRs" .root | fromJson -}}
{{- $cloudCIDR := $cidrs.cloudCIDR | default list -}}
{{- $edgeCIDR := $cidrs.edgeCIDR | default list -}}
{{- $mesh := or (gt (len $cloudCIDR) 0) (gt (len $edgeCIDR) 0) -}}
{{- $relays := list -}}
{{- range $a.relayNodes -}}
{{- $relays = append $relays (dict "nodeName" .nodeName "advertiseAddress" (.advertiseAddress | default list)) -}}
{{- end -}}
{{- $metaSync := dict "enable" true -}}
{{- if $edge -}}
{{- $_ := set $metaSync "source" "metaServer" -}}
{{- if $v.edge.metaServer.requireAuthorization -}}
{{- $_ := set $metaSync "metaServer" (regexReplaceAll "^http://" $a.metaServer "https://") -}}
{{- $_ := set $metaSync "caFile" "/etc/kubeedge/pki/metaserver/ca.crt" -}}
{{- $_ := set $metaSync "tokenFile" (include "edgelink.metaServerTokenFile" .root) -}}
{{- else -}}
{{- $_ := set $metaSync "metaServer" $a.metaServer -}}
{{- end -}}
{{- else -}}
{{- $_ := set $metaSync "source" "inCluster" -}}
{{- end -}}
{{- $tunnel := dict "enable" true "listenPort" (int $a.listenPort) "routableCIDRs" ($a.routableCIDRs | default list) "relayNodes" $relays -}}
{{- $enroll := include "edgelink.enroll" .root -}}
{{- $cadir := include "edgelink.caDir" .root -}}
{{- if and $edge (or $v.membership.kubeEdgeCerts (not $v.membership.existingSecret)) -}}
{{- $_ := set $tunnel "identityFile" (printf "%s/tunnel/identity.key" $v.hostPaths.dataDir) -}}
{{- $_ := set $tunnel "caFile" "/etc/kubeedge/ca/rootCA.crt" -}}
{{- $_ := set $tunnel "certFile" "/etc/kubeedge/certs/server.crt" -}}
{{- $_ := set $tunnel "keyFile" "/etc/kubeedge/certs/server.key" -}}
{{- if $enroll -}}
{{- /* cloud nodes' certificates are the controller's CA's; edge nodes' KubeEdge's */ -}}
{{- $_ := set $tunnel "caFile" (printf "%s/ca.crt" $cadir) -}}
{{- $_ := set $tunnel "kubeEdgeCAFile" "/etc/kubeedge/ca/rootCA.crt" -}}
{{- end -}}
{{- else if $enroll -}}
{{- $_ := set $tunnel "enroll" true -}}
{{- $_ := set $tunnel "identityFile" (printf "%s/tunnel/identity.key" $v.hostPaths.dataDir) -}}
{{- $_ := set $tunnel "caFile" (printf "%s/ca.crt" $cadir) -}}
{{- $_ := set $tunnel "kubeEdgeCAFile" (printf "%s/kubeedge-ca.crt" $cadir) -}}
{{- $_ := set $tunnel "certFile" (printf "%s/tunnel/member.crt" $v.hostPaths.dataDir) -}}
{{- $_ := set $tunnel "keyFile" (printf "%s/tunnel/member.key" $v.hostPaths.dataDir) -}}
{{- else -}}
{{- $_ := set $tunnel "identityFile" (printf "%s/identity.key" $mdir) -}}
{{- $_ := set $tunnel "caFile" (printf "%s/ca.crt" $mdir) -}}
{{- $_ := set $tunnel "certFile" (printf "%s/node.crt" $mdir) -}}
{{- $_ := set $tunnel "keyFile" (printf "%s/node.key" $mdir) -}}
{{- end -}}
{{- $cfg := dict
  "apiVersion" "agent.edgelink.io/v1alpha1"
  "kind" "EdgeLinkAgent"
  "dataDir" $v.hostPaths.dataDir
  "statusSocket" (include "edgelink.statusSocket" .root)
  "modules" (dict
    "metaSync" $metaSync
    "ipam" (dict "enable" (and $edge $mesh) "socketPath" (printf "%s/ipam.sock" $v.hostPaths.runDir))
    "edgeCNI" (dict "enable" $mesh "tunName" $a.tunName "mtu" (int $a.mtu)
      "meshCIDRConfig" (dict "cloudCIDR" $cloudCIDR "edgeCIDR" $edgeCIDR))
    "tunnel" $tunnel)
-}}
{{- toYaml $cfg -}}
{{- end -}}

{{/*
edgelink.controllerConfig renders the controller's config
(EdgeLinkController, docs/config-reference.md).
*/}}
{{- define "edgelink.controllerConfig" -}}
{{- $c := .Values.controller -}}
{{- $cfg := dict
  "apiVersion" "agent.edgelink.io/v1alpha1"
  "kind" "EdgeLinkController"
  "meshCIDRConfig" (include "edgelink.meshCIDRs" . | fromJson)
  "blockSize" (int $c.blockSize)
  "blockSizeIPv6" (int $c.blockSizeIPv6)
  "minFree" (int $c.minFree)
  "leaderElection" (dict "enable" true "namespace" .Release.Namespace "name" (printf "%s-controller" (include "edgelink.fullname" .)))
-}}
{{- if include "edgelink.enroll" . -}}
{{- $_ := set $cfg "enrollment" (dict "enable" true "namespace" .Release.Namespace
  "caSecret" (include "edgelink.caName" .) "caConfigMap" (include "edgelink.caName" .)
  "agentServiceAccount" (printf "%s/%s" .Release.Namespace (include "edgelink.serviceAccountName" .))
  "certificateLifetime" $c.certificateLifetime "kubeEdgeCASecret" .Values.membership.kubeEdgeCASecret) -}}
{{- end -}}
{{- toYaml $cfg -}}
{{- end -}}

{{/*
edgelink.metaServerTokenFile is where edge agents find their projected
ServiceAccount token for a metaServer with requireAuthorization.
*/}}
{{- define "edgelink.metaServerTokenFile" -}}
/var/run/secrets/edgelink/metaserver/token
{{- end -}}

{{/*
edgelink.rbac says whether the read-only ClusterRole and the ServiceAccount
are rendered: cloud agents read the kube-apiserver with them, edge agents
with edge.metaServer.requireAuthorization present the ServiceAccount's
token to EdgeCore's metaServer, which checks the same RBAC.
*/}}
{{- define "edgelink.rbac" -}}
{{- if or .Values.cloud.enabled (and .Values.edge.enabled .Values.edge.metaServer.requireAuthorization) }}true{{ end -}}
{{- end -}}
