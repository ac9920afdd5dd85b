package main

import (
	"bytes"
	"context"
	"fmt"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/casefhir/casefhir/server/servertest"
)

const examplesDir = "../../../shared/fhir-r4/examples"

func runLoad(t *testing.T, args ...string) (int, string, string) {
	t.Helper()
	var out, errb bytes.Buffer
	code := run(context.Background(), append([]string{"load"}, args...), func(string) string { return "" }, &out, &errb)
	return code, out.String(), errb.String()
}

// TestLoadExamples loads every official example; loading again updates
// the same resources (PUT by id) instead of duplicating them.
func TestLoadExamples(t *testing.T) {
	srv := servertest.Start(t, servertest.Options{})
	code, out, errs := runLoad(t, "--url", srv.URL, "--batch-size", "50", examplesDir)
	var created, updated, failed int
	if _, err := fmt.Sscanf(out, "loaded 201 files: %d created, %d updated, %d failed", &created, &updated, &failed); err != nil {
		t.Fatalf("exit %d\nstdout: %s\nstderr: %s", code, out, errs)
	}
	// Every example reaches the server; the server may still refuse one
	// its validation finds invalid (a 400 with the reason, listed).
	if created+failed != 201 || updated != 0 {
		t.Fatalf("%d created, %d updated, %d failed\n%s", created, updated, failed, out)
	}
	for _, line := range strings.Split(out, "\n") {
		if strings.Contains(line, "failed: ") && !strings.Contains(line, ": 400 ") {
			t.Errorf("not a validation refusal: %s", line)
		}
	}
	if failed > 0 {
		t.Logf("the server refused %d examples:\n%s", failed, out)
	}
	if (code == 0) != (failed == 0) {
		t.Errorf("exit %d with %d failures", code, failed)
	}
	code, out, _ = runLoad(t, "--url", srv.URL, examplesDir+"/Patient")
	if code != 0 || !strings.Contains(out, "0 created, 22 updated, 0 failed") {
		t.Fatalf("reload: exit %d: %s", code, out)
	}
	r := srv.Do(t, "GET", "Patient/example", nil)
	if r.Header.Get("ETag") != `W/"2"` {
		t.Errorf("Patient/example ETag %s after two loads", r.Header.Get("ETag"))
	}
}

// TestLoadFormats loads NDJSON, a collection Bundle, a transaction Bundle
// and a bad resource: the good ones are stored, the bad one is reported
// and the exit code is 1.
func TestLoadFormats(t *testing.T) {
	srv := servertest.Start(t, servertest.Options{})
	dir := t.TempDir()
	write := func(name, s string) {
		if err := os.MkdirAll(filepath.Dir(filepath.Join(dir, name)), 0o755); err != nil {
			t.Fatal(err)
		}
		if err := os.WriteFile(filepath.Join(dir, name), []byte(s), 0o644); err != nil {
			t.Fatal(err)
		}
	}
	write("a/patients.ndjson", `{"resourceType":"Patient","id":"n1"}`+"\n"+`{"resourceType":"Patient"}`+"\n\n"+`{"resourceType":"Patient","id":"n2","bogus":true}`+"\n")
	write("b/collection.json", `{"resourceType":"Bundle","type":"collection","entry":[{"resource":{"resourceType":"Organization","id":"o1","name":"A"}},{"resource":{"resourceType":"Organization","name":"B"}}]}`)
	write("b/tx.json", `{"resourceType":"Bundle","type":"transaction","entry":[{"fullUrl":"urn:uuid:7d6b7c52-2d43-4a7e-9d39-1f1d6c1e0c11","resource":{"resourceType":"Patient"},"request":{"method":"POST","url":"Patient"}},{"resource":{"resourceType":"Observation","status":"final","code":{"text":"x"},"subject":{"reference":"urn:uuid:7d6b7c52-2d43-4a7e-9d39-1f1d6c1e0c11"}},"request":{"method":"POST","url":"Observation"}}]}`)
	write("b/ignored.txt", "not FHIR")
	code, out, errs := runLoad(t, "--url", srv.URL, "--batch-size", "2", dir)
	if code != 1 {
		t.Fatalf("exit %d, want 1\n%s\n%s", code, out, errs)
	}
	if !strings.Contains(out, "6 created, 0 updated, 1 failed") || !strings.Contains(out, "patients.ndjson:4") {
		t.Errorf("stdout: %s", out)
	}
	if !strings.Contains(errs, "load:") {
		t.Errorf("no progress line on stderr: %q", errs)
	}
	for _, p := range []string{"Patient/n1", "Organization/o1"} {
		if r := srv.Do(t, "GET", p, nil); r.Status != 200 {
			t.Errorf("%s: %d", p, r.Status)
		}
	}
	if code, _, _ := runLoad(t, "--url", srv.URL, filepath.Join(dir, "missing")); code != 2 {
		t.Errorf("missing path: exit %d, want 2", code)
	}
}
