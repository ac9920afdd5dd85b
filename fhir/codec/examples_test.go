package codec

import (
	"encoding/json"
	"os"
	"path/filepath"
	"reflect"
	"sort"
	"testing"
	"time"

	"github.com/casefhir/casefhir/fhir/outcome"
)

// examplesDir holds the official R4 examples, one resource per file.
const examplesDir = "../../../shared/fhir-r4/examples"

// knownRejected lists official examples Decode rejects, with the reason.
// Each entry is a file name relative to examplesDir.
var knownRejected = map[string]string{
	// R4 Observation.performer allows Practitioner, PractitionerRole,
	// Organization, CareTeam, Patient and RelatedPerson; this example
	// references Encounter/example, so it is not valid R4. It decodes with
	// Options.AllowAnyReferenceType (TestOfficialExamplesLenient).
	"Observation/Observation-clinical-gender.json": "performer references an Encounter",
}

// TestOfficialExamplesLenient checks that every official example, including
// the invalid ones listed above, decodes with the lenient options.
func TestOfficialExamplesLenient(t *testing.T) {
	c, err := NewWithOptions(Options{AllowAnyReferenceType: true})
	if err != nil {
		t.Fatal(err)
	}
	for _, f := range exampleFiles(t) {
		body, err := os.ReadFile(f)
		if err != nil {
			t.Fatal(err)
		}
		if _, err := c.Decode(body); err != nil {
			t.Errorf("%s: %v", f, err)
		}
	}
}

func exampleFiles(t testing.TB) []string {
	t.Helper()
	files, err := filepath.Glob(filepath.Join(examplesDir, "*", "*.json"))
	if err != nil {
		t.Fatal(err)
	}
	if len(files) == 0 {
		t.Skipf("no official examples under %s", examplesDir)
	}
	sort.Strings(files)
	return files
}

func newCodec(t testing.TB) *Codec {
	t.Helper()
	c, err := New()
	if err != nil {
		t.Fatal(err)
	}
	return c
}

// semanticJSON decodes b for comparison, dropping id and meta.versionId /
// meta.lastUpdated (and meta when nothing else is left).
func semanticJSON(t testing.TB, b []byte) map[string]any {
	t.Helper()
	var m map[string]any
	if err := json.Unmarshal(b, &m); err != nil {
		t.Fatalf("invalid JSON: %v", err)
	}
	delete(m, "id")
	if meta, ok := m["meta"].(map[string]any); ok {
		delete(meta, "versionId")
		delete(meta, "lastUpdated")
		if len(meta) == 0 {
			delete(m, "meta")
		}
	}
	return m
}

func TestOfficialExamples(t *testing.T) {
	c := newCodec(t)
	files := exampleFiles(t)
	if len(files) != 201 {
		t.Errorf("found %d example files, want 201", len(files))
	}
	now := time.Date(2024, 1, 2, 3, 4, 5, 678_000_000, time.UTC)
	for _, f := range files {
		rel, _ := filepath.Rel(examplesDir, f)
		t.Run(rel, func(t *testing.T) {
			body, err := os.ReadFile(f)
			if err != nil {
				t.Fatal(err)
			}
			p, err := c.Decode(body)
			if reason, known := knownRejected[rel]; known {
				if err == nil {
					t.Fatalf("listed as rejected (%s) but decodes: remove it from knownRejected", reason)
				}
				return
			}
			if err != nil {
				for _, is := range outcome.As(err).AllIssues() {
					t.Errorf("issue %s %q %v: %s", is.Code, is.Detail, is.Expression, is.Diagnostics)
				}
				return
			}
			out, err := c.Finalize(p, "x1", 3, now)
			if err != nil {
				t.Fatal(err)
			}
			p2, err := c.Decode(out)
			if err != nil {
				t.Fatalf("stored form does not re-decode: %v", err)
			}
			if p2.ID != "x1" || p2.Type != p.Type {
				t.Errorf("re-decoded %s/%s", p2.Type, p2.ID)
			}
			want, got := semanticJSON(t, body), semanticJSON(t, out)
			if !reflect.DeepEqual(want, got) {
				wb, _ := json.Marshal(want)
				gb, _ := json.Marshal(got)
				t.Errorf("round trip differs\nsent:   %s\nstored: %s", wb, gb)
			}
		})
	}
}
