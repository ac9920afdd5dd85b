package casefhir_test

import (
	"encoding/json"
	"os/exec"
	"strings"
	"testing"
)

// TestDependencies enforces the layering of docs: which packages may
// import the MongoDB driver, the SQLite driver, Gin, go-oidc, FerretDB, and which of ours.
func TestDependencies(t *testing.T) {
	out, err := exec.Command("go", "list", "-json", "./...").Output()
	if err != nil {
		t.Fatalf("go list: %v", err)
	}
	const mod = "github.com/casefhir/casefhir"
	type pkg struct {
		ImportPath string
		Imports    []string
	}
	dec := json.NewDecoder(strings.NewReader(string(out)))
	var pkgs []pkg
	for dec.More() {
		var p pkg
		if err := dec.Decode(&p); err != nil {
			t.Fatal(err)
		}
		pkgs = append(pkgs, p)
	}
	if len(pkgs) < 10 {
		t.Fatalf("only %d packages listed", len(pkgs))
	}
	rel := func(p string) string { return strings.TrimPrefix(strings.TrimPrefix(p, mod), "/") }
	under := func(p, dir string) bool { return p == dir || strings.HasPrefix(p, dir+"/") }
	for _, p := range pkgs {
		me := rel(p.ImportPath)
		for _, imp := range p.Imports {
			ours := strings.HasPrefix(imp, mod+"/") || imp == mod
			dep := rel(imp)
			check := func(bad bool, rule string) {
				if bad {
					t.Errorf("%s imports %s: %s", me, imp, rule)
				}
			}
			check(strings.HasPrefix(imp, "go.mongodb.org/mongo-driver") && me != "fhir/store/mongostore",
				"only fhir/store/mongostore may import the MongoDB driver")
			// (The FerretDB stand-in used by tests runs on SQLite too.)
			check(strings.HasPrefix(imp, "modernc.org/sqlite") && me != "fhir/store/sqlitestore" && !importsFerretDB(p.Imports),
				"only fhir/store/sqlitestore may import the SQLite driver")
			check(strings.HasPrefix(imp, "github.com/FerretDB/") && me != "fhir/store/mongostore/ferrettest",
				"FerretDB only by tests: only fhir/store/mongostore/ferrettest (a test stand-in) may import it")
			check(strings.HasPrefix(imp, "github.com/gin-gonic/gin") && me != "server" && me != "server/middleware",
				"only server and server/middleware may import Gin")
			check(strings.HasPrefix(imp, "github.com/coreos/go-oidc") && !under(me, "server/auth"),
				"only server/auth may import go-oidc")
			if !ours {
				continue
			}
			check(under(me, "fhir") && (under(dep, "server") || under(dep, "mapping") || under(dep, "conformance")),
				"fhir/... never imports server, mapping or conformance")
			check(under(me, "mapping") && (under(dep, "server") || under(dep, "fhir/store/mongostore") || under(dep, "fhir/store/sqlitestore")),
				"mapping never imports server or a store implementation")
			check(me == "fhir/outcome", "fhir/outcome imports nothing of ours")
			check(under(dep, "cmd"), "nothing imports cmd/...")
			// go list's Imports leave out _test.go files: those may import it.
			check(dep == "fhir/store/mongostore/ferrettest" && me != "cmd/benchfhir",
				"fhir/store/mongostore/ferrettest (FerretDB) is imported only by tests and cmd/benchfhir")
			check(under(me, "server/app") && dep != "mapping",
				"server/app is a client of the FHIR API over HTTP: of ours it imports only mapping (the case vocabulary)")
			check(under(me, "server/interaction") && (dep == "server" || under(dep, "fhir/store/mongostore") || under(dep, "fhir/store/sqlitestore")),
				"server/interaction is transport- and backend-free")
		}
	}
}

func importsFerretDB(imports []string) bool {
	for _, imp := range imports {
		if strings.HasPrefix(imp, "github.com/FerretDB/") {
			return true
		}
	}
	return false
}
