// Package unittest holds the few helpers that unit tests in several
// packages share. It stays light (no Kubernetes client, no processes):
// tests/testutil is the end-to-end tests' kit.
package unittest

import (
	"crypto/rand"
	"net/http"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/libp2p/go-libp2p/core/crypto"
	"github.com/libp2p/go-libp2p/core/peer"
	"github.com/prometheus/client_golang/prometheus"
	"github.com/prometheus/common/expfmt"

	"github.com/edgelink/edgelink/pkg/agenthost"
)

// NewPeerID is a fresh, valid libp2p peer ID (of a new Ed25519 key).
func NewPeerID(t testing.TB) peer.ID {
	t.Helper()
	_, pub, err := crypto.GenerateEd25519Key(rand.Reader)
	if err != nil {
		t.Fatal(err)
	}
	id, err := peer.IDFromPublicKey(pub)
	if err != nil {
		t.Fatal(err)
	}
	return id
}

// MetricsText renders what c collects in the text exposition format,
// through a pedantic registry (collected metrics must match Describe).
func MetricsText(t testing.TB, c prometheus.Collector) string {
	t.Helper()
	reg := prometheus.NewPedanticRegistry()
	reg.MustRegister(c)
	mfs, err := reg.Gather()
	if err != nil {
		t.Fatal(err)
	}
	var b strings.Builder
	for _, mf := range mfs {
		if _, err := expfmt.MetricFamilyToText(&b, mf); err != nil {
			t.Fatal(err)
		}
	}
	return b.String()
}

// StatusMux is the status socket's handler for the modules' routes
// (pkg/agenthost.StatusMux), failing the test on a bad pattern.
func StatusMux(t testing.TB, routes ...agenthost.Routes) *http.ServeMux {
	t.Helper()
	mux, err := agenthost.StatusMux(routes...)
	if err != nil {
		t.Fatal(err)
	}
	return mux
}

// Kubeconfig writes a kubeconfig for server (token auth) into a temporary
// directory and returns its path. It also clears the in-cluster
// environment, so that only the kubeconfig can reach a server.
func Kubeconfig(t *testing.T, server string) string {
	t.Helper()
	path := filepath.Join(t.TempDir(), "kubeconfig")
	if err := os.WriteFile(path, []byte(`apiVersion: v1
kind: Config
clusters: [{name: c, cluster: {server: "`+server+`"}}]
users: [{name: u, user: {token: t}}]
contexts: [{name: x, context: {cluster: c, user: u}}]
current-context: x
`), 0o600); err != nil {
		t.Fatal(err)
	}
	t.Setenv("KUBERNETES_SERVICE_HOST", "")
	t.Setenv("KUBERNETES_SERVICE_PORT", "")
	return path
}
