package agentapi

import (
	"go/parser"
	"go/token"
	"slices"
	"strings"
	"testing"
)

// The package comment lists exactly Endpoints, in order.
func TestDocListsEveryEndpoint(t *testing.T) {
	f, err := parser.ParseFile(token.NewFileSet(), "agentapi.go", nil, parser.ParseComments|parser.PackageClauseOnly)
	if err != nil {
		t.Fatal(err)
	}
	var documented []string
	for _, line := range strings.Split(f.Doc.Text(), "\n") {
		if !strings.HasPrefix(line, "\t") {
			continue
		}
		fields := strings.Fields(line)
		if len(fields) < 2 {
			continue
		}
		switch method := fields[0]; {
		case method == "*":
			documented = append(documented, fields[1])
		case method == strings.ToUpper(method) && strings.HasPrefix(fields[1], "/"):
			documented = append(documented, method+" "+fields[1])
		}
	}
	if !slices.Equal(documented, Endpoints) {
		t.Errorf("the package comment lists\n%q\nEndpoints are\n%q", documented, Endpoints)
	}
}
