package metasync

import (
	"errors"
	"path/filepath"
	"strings"
	"testing"

	apierrors "k8s.io/apimachinery/pkg/api/errors"
	"k8s.io/apimachinery/pkg/runtime/schema"

	v1 "github.com/edgelink/edgelink/config/v1alpha1"
)

// A metaServer's refusal names the metaServer, the token file and the fix
// in the status the agent reports (edgelink status: lastError).
func TestNoteErrorExplainsAuthorization(t *testing.T) {
	pods := schema.GroupResource{Resource: "pods"}
	for _, tc := range []struct {
		name  string
		token string
		err   error
		want  []string
	}{
		{"no token", "", apierrors.NewUnauthorized("Unauthorized"), []string{"pods: Unauthorized", "https://127.0.0.1:10550 wants a bearer token", "set modules.metaSync.tokenFile"}},
		{"bad token", "/run/tok", apierrors.NewUnauthorized("Unauthorized"), []string{"https://127.0.0.1:10550 rejected the token in modules.metaSync.tokenFile /run/tok", "serviceAccountKeyFiles"}},
		{"no RBAC", "/run/tok", apierrors.NewForbidden(pods, "", errors.New("no")), []string{"accepted the token in modules.metaSync.tokenFile /run/tok", "ClusterRole with get, list and watch"}},
		{"token file unreadable", "/run/tok", errors.New("open /run/tok: no such file or directory"), []string{"no such file", "metaServer https://127.0.0.1:10550", "/run/tok"}},
	} {
		t.Run(tc.name, func(t *testing.T) {
			s := &Service{Source: v1.SourceMetaServer, Server: "https://127.0.0.1:10550", TokenFile: tc.token, SnapshotPath: filepath.Join(t.TempDir(), "snap")}
			if err := s.Init(); err != nil {
				t.Fatal(err)
			}
			s.noteError("pods", tc.err)
			st := s.Status()
			if st.Connected {
				t.Error("connected after an error")
			}
			for _, w := range tc.want {
				if !strings.Contains(st.LastError, w) {
					t.Errorf("lastError %q does not say %q", st.LastError, w)
				}
			}
		})
	}
	s := &Service{Source: v1.SourceMetaServer, Server: "http://127.0.0.1:10550", SnapshotPath: filepath.Join(t.TempDir(), "snap")}
	if err := s.Init(); err != nil {
		t.Fatal(err)
	}
	s.noteError("nodes", errors.New("connection refused"))
	if got := s.Status().LastError; got != "nodes: connection refused" {
		t.Errorf("plain error rewritten: %q", got)
	}
}

// A token file that is not there stops the module with an error naming
// the metaServer and the file, in the status as well as returned.
func TestRunMissingTokenFile(t *testing.T) {
	tok := filepath.Join(t.TempDir(), "missing-token")
	s := &Service{Source: v1.SourceMetaServer, Server: "https://127.0.0.1:1", TokenFile: tok, SnapshotPath: filepath.Join(t.TempDir(), "snap")}
	err := s.Run(t.Context())
	if err == nil {
		t.Skip("client-go built a client without reading the token file")
	}
	for _, got := range []string{err.Error(), s.Status().LastError} {
		if !strings.Contains(got, tok) || !strings.Contains(got, "https://127.0.0.1:1") {
			t.Errorf("%q does not name the token file and the metaServer", got)
		}
	}
}
