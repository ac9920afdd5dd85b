package server_test

import (
	"encoding/json"
	"os"
	"path/filepath"
	"reflect"
	"sort"
	"strings"
	"testing"

	"github.com/casefhir/casefhir/server/servertest"
)

// examplesDir locates the official R4 examples beside the repository.
func examplesDir(t *testing.T) string {
	t.Helper()
	for _, d := range []string{"../../shared/fhir-r4/examples", "../../../shared/fhir-r4/examples"} {
		if st, err := os.Stat(d); err == nil && st.IsDir() {
			return d
		}
	}
	t.Fatal("official R4 examples not found (../shared/fhir-r4/examples beside the repository)")
	return ""
}

// TestOfficialExamplesRoundTrip creates every official example over HTTP
// (PUT with its own id) and reads it back: semantically equal apart from
// id and meta.
func TestOfficialExamplesRoundTrip(t *testing.T) {
	s := servertest.Start(t, servertest.Options{})
	files, _ := filepath.Glob(filepath.Join(examplesDir(t), "*", "*.json"))
	if len(files) < 200 {
		t.Fatalf("found %d example files", len(files))
	}
	// A case link must point at an existing EpisodeOfCare: cases first.
	sort.SliceStable(files, func(i, j int) bool {
		return strings.Contains(files[i], "/EpisodeOfCare/") && !strings.Contains(files[j], "/EpisodeOfCare/")
	})
	for _, f := range files {
		name := filepath.Base(f)
		t.Run(strings.TrimSuffix(name, ".json"), func(t *testing.T) {
			raw, err := os.ReadFile(f)
			if err != nil {
				t.Fatal(err)
			}
			var sent map[string]any
			if err := json.Unmarshal(raw, &sent); err != nil {
				t.Fatal(err)
			}
			typ, _ := sent["resourceType"].(string)
			id, _ := sent["id"].(string)
			r := s.Do(t, "PUT", typ+"/"+id, raw)
			if r.Status != 201 {
				t.Fatalf("PUT %s/%s: %d %s", typ, id, r.Status, r.Body)
			}
			g := s.Do(t, "GET", typ+"/"+id, nil)
			if g.Status != 200 {
				t.Fatalf("GET: %d %s", g.Status, g.Body)
			}
			var got map[string]any
			if err := json.Unmarshal(g.Body, &got); err != nil {
				t.Fatal(err)
			}
			for _, m := range []map[string]any{sent, got} {
				delete(m, "id")
				delete(m, "meta")
			}
			if !reflect.DeepEqual(normalise(sent), normalise(got)) {
				a, _ := json.MarshalIndent(normalise(sent), "", " ")
				b, _ := json.MarshalIndent(normalise(got), "", " ")
				t.Fatalf("round trip differs:\nsent %s\ngot  %s", a, b)
			}
		})
	}
}

// normalise makes JSON values comparable by FHIR meaning: numbers as
// their float value.
func normalise(v any) any {
	switch x := v.(type) {
	case map[string]any:
		out := map[string]any{}
		for k, e := range x {
			out[k] = normalise(e)
		}
		return out
	case []any:
		out := make([]any, len(x))
		for i, e := range x {
			out[i] = normalise(e)
		}
		return out
	}
	return v
}
