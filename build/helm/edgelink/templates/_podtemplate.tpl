{{/*
edgelink.podTemplate is the agent's pod template for one node role.
Takes (dict "root" $ "role" "edge"|"cloud").

Privileges: the agent is NOT privileged. It needs
  - NET_ADMIN: create the TUN device (TUNSETIFF), program routes and rules
    over netlink, and change iptables (SNAT exemption, MSS clamp, FORWARD);
  - NET_RAW: iptables-legacy opens a raw socket to read and write tables;
  - the host's /dev/net/tun (a hostPath char device; the runtime's default
    device allowlist already includes 10:200, the TUN device);
  - the host network (the TUN, routes and tunnel port belong to the node).
It does not need privileged: true. The one thing a privileged container
could do that it cannot is write /proc/sys (read-only in containers): the
node must have net.ipv4.ip_forward=1 already (Kubernetes requires it; the
agent exits saying so otherwise), and the TUN's rp_filter is left as the
host set it: the kernel uses the larger of net.ipv4.conf.all.rp_filter and
the TUN's own, and 1 (strict) drops replies from remote pods, so the node
needs all and default (which the TUN gets when created) at 2 or 0
(docs/install.md; `edgelink diagnose` checks it).
*/}}
{{- define "edgelink.podTemplate" -}}
{{- $root := .root -}}
{{- $v := $root.Values -}}
{{- $edge := eq .role "edge" -}}
{{- $enroll := include "edgelink.enroll" $root -}}
{{- $kubeEdgeCerts := and $edge (or $v.membership.kubeEdgeCerts (not $v.membership.existingSecret)) -}}
{{- $metaServerAuth := and $edge $v.edge.metaServer.requireAuthorization -}}
{{- /* No segment: the pod network feature is off, nothing CNI-related is installed. */ -}}
{{- $installCNI := and $edge $v.edge.cni.install (include "edgelink.meshEnabled" $root) -}}
{{- $mdir := include "edgelink.membershipDir" $root -}}
{{- $nodeSelector := ternary $v.edge.nodeSelector $v.cloud.nodeSelector $edge -}}
metadata:
  labels:
    {{- include "edgelink.selectorLabels" . | nindent 4 }}
  annotations:
    checksum/config: {{ include "edgelink.config" . | sha256sum }}
spec:
  hostNetwork: true
  dnsPolicy: ClusterFirstWithHostNet
  {{- if $metaServerAuth }}
  # Edge agents read EdgeCore's metaServer, not the kube-apiserver: no
  # API token, only the projected one the metaServer checks (below).
  serviceAccountName: {{ include "edgelink.serviceAccountName" $root }}
  automountServiceAccountToken: false
  {{- else if $edge }}
  # Edge agents read EdgeCore's metaServer, not the kube-apiserver.
  automountServiceAccountToken: false
  {{- else }}
  serviceAccountName: {{ include "edgelink.serviceAccountName" $root }}
  {{- end }}
  {{- with $v.agent.priorityClassName }}
  priorityClassName: {{ . }}
  {{- end }}
  {{- with $v.imagePullSecrets }}
  imagePullSecrets:
    {{- toYaml . | nindent 4 }}
  {{- end }}
  # The agent releases its TUN, routes and iptables rules within its
  # shutdownTimeout (30s).
  terminationGracePeriodSeconds: 45
  affinity:
    nodeAffinity:
      requiredDuringSchedulingIgnoredDuringExecution:
        nodeSelectorTerms:
          - matchExpressions:
              - key: kubernetes.io/os
                operator: In
                values: [linux]
              - key: node-role.kubernetes.io/edge
                operator: {{ ternary "Exists" "DoesNotExist" $edge }}
  {{- with $nodeSelector }}
  nodeSelector:
    {{- toYaml . | nindent 4 }}
  {{- end }}
  {{- with $v.agent.tolerations }}
  tolerations:
    {{- toYaml . | nindent 4 }}
  {{- end }}
  {{- if $installCNI }}
  initContainers:
    {{- if $v.edge.cni.installIPAMPlugin }}
    # The stock spiderpool IPAM plugin, which edgelink-cni delegates to and
    # which talks to this agent's IPAM socket. Copied, then renamed, so the
    # runtime never runs a half-written binary.
    - name: install-ipam-plugin
      image: {{ include "edgelink.image" $root }}
      imagePullPolicy: {{ $v.image.pullPolicy }}
      command:
        - /bin/sh
        - -c
        - cp /usr/local/lib/edgelink/spiderpool /host/cni/bin/.spiderpool.tmp && mv -f /host/cni/bin/.spiderpool.tmp /host/cni/bin/spiderpool
      securityContext:
        {{- include "edgelink.installerSecurityContext" . | nindent 8 }}
      volumeMounts:
        - name: cni-bin
          mountPath: /host/cni/bin
    {{- end }}
    - name: install-cni
      image: {{ include "edgelink.image" $root }}
      imagePullPolicy: {{ $v.image.pullPolicy }}
      command:
        - edgelink
        - cni
        - install
        - --agent-config=/etc/edgelink/edgelink.yaml
        - --bin-dir=/host/cni/bin
        - --conf-dir=/host/cni/net.d
        {{- range $v.edge.cni.defaultIPv4IPPool }}
        - --default-ipv4-ippool={{ . }}
        {{- end }}
        {{- range $v.edge.cni.defaultIPv6IPPool }}
        - --default-ipv6-ippool={{ . }}
        {{- end }}
      env:
        - name: NODE_NAME
          valueFrom:
            fieldRef:
              fieldPath: spec.nodeName
      securityContext:
        {{- include "edgelink.installerSecurityContext" . | nindent 8 }}
      volumeMounts:
        - name: config
          mountPath: /etc/edgelink/edgelink.yaml
          subPath: edgelink.yaml
          readOnly: true
        - name: cni-bin
          mountPath: /host/cni/bin
        - name: cni-conf
          mountPath: /host/cni/net.d
  {{- end }}
  containers:
    - name: agent
      image: {{ include "edgelink.image" $root }}
      imagePullPolicy: {{ $v.image.pullPolicy }}
      command:
        - edgelink
        - agent
        - --config=/etc/edgelink/edgelink.yaml
        - --v={{ $v.agent.logLevel }}
      env:
        - name: NODE_NAME
          valueFrom:
            fieldRef:
              fieldPath: spec.nodeName
      ports:
        - name: tunnel-tcp
          containerPort: {{ $v.agent.listenPort }}
          protocol: TCP
        - name: tunnel-quic
          containerPort: {{ $v.agent.listenPort }}
          protocol: UDP
      securityContext:
        privileged: false
        allowPrivilegeEscalation: false
        readOnlyRootFilesystem: true
        capabilities:
          drop: [ALL]
          add: [NET_ADMIN, NET_RAW]
      # Probes ask the agent on its status socket: `edgelink status` exits 0
      # when the agent answers, 1 when nothing listens. The socket is served
      # once the config is loaded, before the modules are up (a module that
      # fails stops the agent, and the pod restarts anyway), so these catch
      # a hung or wedged agent, not a slow tunnel. Liveness is generous: a
      # node under load must not have its network restarted for a slow answer.
      startupProbe:
        {{- include "edgelink.statusProbe" $root | nindent 8 }}
        periodSeconds: 5
        failureThreshold: 24    # up to 2 minutes to start
      readinessProbe:
        {{- include "edgelink.statusProbe" $root | nindent 8 }}
        periodSeconds: 10
        failureThreshold: 3
      livenessProbe:
        {{- include "edgelink.statusProbe" $root | nindent 8 }}
        periodSeconds: 30
        failureThreshold: 4     # restarted after about 2 minutes without an answer
      {{- with $v.agent.resources }}
      resources:
        {{- toYaml . | nindent 8 }}
      {{- end }}
      volumeMounts:
        - name: config
          mountPath: /etc/edgelink/edgelink.yaml
          subPath: edgelink.yaml
          readOnly: true
        {{- if $enroll }}
        # The CA certificates the controller publishes (no key).
        - name: cluster-ca
          mountPath: {{ include "edgelink.caDir" $root }}
          readOnly: true
        {{- end }}
        {{- if $kubeEdgeCerts }}
        - name: kubeedge-ca
          mountPath: /etc/kubeedge/ca
          readOnly: true
        - name: kubeedge-certs
          mountPath: /etc/kubeedge/certs
          readOnly: true
        {{- else if not $enroll }}
        # This node's files from the membership Secret, picked by node name.
        # Not a boundary: the kubelet fetches the whole Secret (every node's
        # key) onto the node; membership.kubeEdgeCerts keeps edge keys off it.
        - name: membership
          mountPath: {{ $mdir }}/ca.crt
          subPath: ca.crt
          readOnly: true
        - name: membership
          mountPath: {{ $mdir }}/node.crt
          subPathExpr: $(NODE_NAME).crt
          readOnly: true
        - name: membership
          mountPath: {{ $mdir }}/node.key
          subPathExpr: $(NODE_NAME).key
          readOnly: true
        - name: membership
          mountPath: {{ $mdir }}/identity.key
          subPathExpr: $(NODE_NAME).identity
          readOnly: true
        {{- end }}
        {{- if $metaServerAuth }}
        # EdgeCore writes the CA its metaServer's serving certificate
        # chains to here; the token is refreshed by the kubelet (edged).
        - name: metaserver-ca
          mountPath: /etc/kubeedge/pki/metaserver
          readOnly: true
        - name: metaserver-token
          mountPath: {{ include "edgelink.metaServerTokenFile" $root | dir }}
          readOnly: true
        {{- end }}
        - name: data
          mountPath: {{ $v.hostPaths.dataDir }}
        - name: run
          mountPath: {{ $v.hostPaths.runDir }}
        - name: dev-tun
          mountPath: /dev/net/tun
        - name: xtables-lock
          mountPath: /run/xtables.lock
        - name: tmp
          mountPath: /tmp
  volumes:
    - name: config
      configMap:
        name: {{ include "edgelink.fullname" $root }}
        items:
          - key: {{ .role }}.yaml
            path: edgelink.yaml
    {{- if $enroll }}
    - name: cluster-ca
      configMap:
        name: {{ include "edgelink.caName" $root }}
    {{- end }}
    {{- if $kubeEdgeCerts }}
    - name: kubeedge-ca
      hostPath:
        path: /etc/kubeedge/ca
        type: Directory
    - name: kubeedge-certs
      hostPath:
        path: /etc/kubeedge/certs
        type: Directory
    {{- else if not $enroll }}
    - name: membership
      secret:
        secretName: {{ $v.membership.existingSecret }}
        # Keys must not be readable by others (the agent refuses them).
        defaultMode: 0400
    {{- end }}
    {{- if $metaServerAuth }}
    - name: metaserver-ca
      hostPath:
        path: /etc/kubeedge/pki/metaserver
        type: DirectoryOrCreate
    - name: metaserver-token
      projected:
        sources:
          - serviceAccountToken:
              path: {{ include "edgelink.metaServerTokenFile" $root | base }}
              expirationSeconds: {{ int $v.edge.metaServer.tokenExpirationSeconds }}
              {{- with $v.edge.metaServer.tokenAudience }}
              audience: {{ . }}
              {{- end }}
    {{- end }}
    - name: data
      hostPath:
        path: {{ $v.hostPaths.dataDir }}
        type: DirectoryOrCreate
    - name: run
      hostPath:
        path: {{ $v.hostPaths.runDir }}
        type: DirectoryOrCreate
    - name: dev-tun
      hostPath:
        path: /dev/net/tun
        type: CharDevice
    # Shared with kube-proxy and every other iptables user on the node.
    - name: xtables-lock
      hostPath:
        path: /run/xtables.lock
        type: FileOrCreate
    - name: tmp
      emptyDir:
        medium: Memory
        sizeLimit: 16Mi
    {{- if $installCNI }}
    - name: cni-bin
      hostPath:
        path: {{ $v.edge.cni.binDir }}
        type: DirectoryOrCreate
    - name: cni-conf
      hostPath:
        path: {{ $v.edge.cni.confDir }}
        type: DirectoryOrCreate
    {{- end }}
{{- end -}}

{{/* The exec probe of the agent container: `edgelink status` on the status socket. */}}
{{- define "edgelink.statusProbe" -}}
exec:
  command:
    - edgelink
    - status
    - --socket
    - {{ include "edgelink.statusSocket" . }}
    - -o
    - json
timeoutSeconds: 10
{{- end -}}

{{/* The CNI installers only write files under the host's CNI dirs. */}}
{{- define "edgelink.installerSecurityContext" -}}
privileged: false
allowPrivilegeEscalation: false
readOnlyRootFilesystem: true
capabilities:
  drop: [ALL]
{{- end -}}
