package server_test

import (
	"bufio"
	"bytes"
	"context"
	"encoding/json"
	"fmt"
	"net/http"
	"net/url"
	"slices"
	"sort"
	"strings"
	"testing"
	"time"

	"github.com/casefhir/casefhir/server"
	"github.com/casefhir/casefhir/server/bulk/bulkbench"
	"github.com/casefhir/casefhir/server/servertest"
)

// exportSeed is the data the export tests load: three patients, an
// insurer whose members are p1 and p2 (their Coverage names it as payor),
// observations, conditions, a case of p1 with linked and unlinked resources.
var exportSeed = []struct{ typ, id, body string }{
	{"Patient", "p1", `{"resourceType":"Patient","name":[{"family":"One"}]}`},
	{"Patient", "p2", `{"resourceType":"Patient","name":[{"family":"Two"}]}`},
	{"Patient", "p3", `{"resourceType":"Patient","name":[{"family":"Three"}]}`},
	{"Organization", "ins1", `{"resourceType":"Organization","name":"Insurer One"}`},
	{"Organization", "ins2", `{"resourceType":"Organization","name":"Insurer Two"}`},
	{"Coverage", "cov1", `{"resourceType":"Coverage","status":"active","beneficiary":{"reference":"Patient/p1"},"payor":[{"reference":"Organization/ins1"}]}`},
	{"Coverage", "cov2", `{"resourceType":"Coverage","status":"active","beneficiary":{"reference":"Patient/p2"},"payor":[{"reference":"Organization/ins1"}]}`},
	{"Coverage", "cov3", `{"resourceType":"Coverage","status":"active","beneficiary":{"reference":"Patient/p3"},"payor":[{"reference":"Organization/ins2"}]}`},
	{"Observation", "o1", `{"resourceType":"Observation","status":"final","code":{"coding":[{"system":"http://loinc.org","code":"A"}]},"subject":{"reference":"Patient/p1"}}`},
	{"Observation", "o2", `{"resourceType":"Observation","status":"final","code":{"coding":[{"system":"http://loinc.org","code":"B"}]},"subject":{"reference":"Patient/p2"}}`},
	{"Observation", "o3", `{"resourceType":"Observation","status":"final","code":{"coding":[{"system":"http://loinc.org","code":"A"}]},"subject":{"reference":"Patient/p3"}}`},
	{"Observation", "o4", `{"resourceType":"Observation","status":"final","code":{"coding":[{"system":"http://loinc.org","code":"B"}]}}`},
	{"Condition", "c1", `{"resourceType":"Condition","subject":{"reference":"Patient/p1"}}`},
	{"Condition", "c3", `{"resourceType":"Condition","subject":{"reference":"Patient/p3"}}`},
	{"Group", "g1", `{"resourceType":"Group","type":"person","actual":true,"name":"Members of Insurer One","member":[{"entity":{"reference":"Patient/p1"}},{"entity":{"reference":"Patient/p2"}}]}`},
	{"CareTeam", "ct1", `{"resourceType":"CareTeam","status":"active","subject":{"reference":"Patient/p1"}}`},
	{"EpisodeOfCare", "e1", `{"resourceType":"EpisodeOfCare","status":"active","patient":{"reference":"Patient/p1"},"team":[{"reference":"CareTeam/ct1"}]}`},
	{"CarePlan", "cp1", `{"resourceType":"CarePlan","extension":[{"url":"http://hl7.org/fhir/StructureDefinition/workflow-episodeOfCare","valueReference":{"reference":"EpisodeOfCare/e1"}}],"status":"active","intent":"plan","subject":{"reference":"Patient/p1"}}`},
	{"CarePlan", "cp2", `{"resourceType":"CarePlan","status":"active","intent":"plan","subject":{"reference":"Patient/p1"}}`},
	{"Encounter", "enc1", `{"resourceType":"Encounter","status":"finished","class":{"system":"http://terminology.hl7.org/CodeSystem/v3-ActCode","code":"AMB"},"subject":{"reference":"Patient/p1"},"episodeOfCare":[{"reference":"EpisodeOfCare/e1"}]}`},
	{"Encounter", "enc2", `{"resourceType":"Encounter","status":"finished","class":{"system":"http://terminology.hl7.org/CodeSystem/v3-ActCode","code":"AMB"},"subject":{"reference":"Patient/p1"}}`},
}

func seedExport(t *testing.T, s *servertest.Server) []string {
	t.Helper()
	var keys []string
	for _, r := range exportSeed {
		body := strings.Replace(r.body, `{"resourceType":"`+r.typ+`",`, `{"resourceType":"`+r.typ+`","id":"`+r.id+`",`, 1)
		resp := s.Do(t, http.MethodPut, r.typ+"/"+r.id, body)
		if resp.Status != http.StatusCreated && resp.Status != http.StatusOK {
			t.Fatalf("seeding %s/%s: %d %s", r.typ, r.id, resp.Status, resp.Body)
		}
		keys = append(keys, r.typ+"/"+r.id)
	}
	return keys
}

// exportRun kicks off an export at path, waits for the manifest and returns
// every exported resource key with how often it arrived.
func exportRun(t *testing.T, s *servertest.Server, method, path string, body any) (map[string]int, map[string]any) {
	t.Helper()
	loc := exportKickoff(t, s, method, path, body)
	m := exportWait(t, s, loc, 30*time.Second)
	return exportDownload(t, s, m), m
}

func exportKickoff(t *testing.T, s *servertest.Server, method, path string, body any) string {
	t.Helper()
	r := s.Do(t, method, path, body, "Prefer", "respond-async", "Accept", "application/fhir+json")
	if r.Status != http.StatusAccepted {
		t.Fatalf("kick-off %s: %d %s", path, r.Status, r.Body)
	}
	loc := r.Header.Get("Content-Location")
	if !strings.HasPrefix(loc, s.URL+"/$export-status/") {
		t.Fatalf("Content-Location %q", loc)
	}
	return loc
}

func exportWait(t *testing.T, s *servertest.Server, loc string, limit time.Duration) map[string]any {
	t.Helper()
	deadline := time.Now().Add(limit)
	for time.Now().Before(deadline) {
		r := s.Do(t, http.MethodGet, loc, nil)
		switch r.Status {
		case http.StatusAccepted:
			if r.Header.Get("X-Progress") == "" || r.Header.Get("Retry-After") == "" {
				t.Fatalf("202 without X-Progress/Retry-After: %v", r.Header)
			}
			time.Sleep(50 * time.Millisecond)
			continue
		case http.StatusOK:
			m := r.JSON()
			if m["requiresAccessToken"] != true || m["transactionTime"] == nil || m["request"] == nil {
				t.Fatalf("manifest: %s", r.Body)
			}
			return m
		default:
			t.Fatalf("status: %d %s", r.Status, r.Body)
		}
	}
	t.Fatalf("export did not finish within %v", limit)
	return nil
}

func exportDownload(t *testing.T, s *servertest.Server, m map[string]any) map[string]int {
	t.Helper()
	got := map[string]int{}
	outs, _ := m["output"].([]any)
	for _, o := range outs {
		om := o.(map[string]any)
		r := s.Do(t, http.MethodGet, om["url"].(string), nil)
		wantStatus(t, r, http.StatusOK)
		if ct := r.Header.Get("Content-Type"); ct != "application/fhir+ndjson" {
			t.Errorf("Content-Type %q", ct)
		}
		n := 0
		sc := bufio.NewScanner(bytes.NewReader(r.Body))
		sc.Buffer(make([]byte, 1<<20), 16<<20)
		for sc.Scan() {
			var res struct{ ResourceType, ID string }
			if err := json.Unmarshal(sc.Bytes(), &res); err != nil {
				t.Fatalf("bad NDJSON line in %s: %v", om["url"], err)
			}
			if res.ResourceType != om["type"] {
				t.Errorf("%s in the %s file", res.ResourceType, om["type"])
			}
			got[res.ResourceType+"/"+res.ID]++
			n++
		}
		if c, _ := om["count"].(float64); int(c) != n {
			t.Errorf("%s: count %v, lines %d", om["type"], om["count"], n)
		}
	}
	return got
}

// dropArtefacts removes what the server stores itself (its conformance
// artefacts, the AuditEvents of the test's requests) from got, checking
// they arrived once, and returns their keys.
func dropArtefacts(t *testing.T, got map[string]int) []string {
	t.Helper()
	var dropped []string
	for k, n := range got {
		switch strings.Split(k, "/")[0] {
		case "CodeSystem", "ValueSet", "OperationDefinition", "SearchParameter", "StructureDefinition", "AuditEvent":
			dropped = append(dropped, k)
			if n != 1 {
				t.Errorf("%s exported %d times", k, n)
			}
			delete(got, k)
		}
	}
	return dropped
}

// wantExactlyOnce checks got holds every key of want once and nothing else.
func wantExactlyOnce(t *testing.T, got map[string]int, want []string) {
	t.Helper()
	var extra, missing, dup []string
	for k, n := range got {
		if !slices.Contains(want, k) {
			extra = append(extra, k)
		} else if n != 1 {
			dup = append(dup, fmt.Sprintf("%s x%d", k, n))
		}
	}
	for _, k := range want {
		if got[k] == 0 {
			missing = append(missing, k)
		}
	}
	sort.Strings(extra)
	sort.Strings(missing)
	if len(extra)+len(missing)+len(dup) > 0 {
		t.Fatalf("export: extra %v, missing %v, duplicated %v", extra, missing, dup)
	}
}

func keysWhere(keys []string, keep func(k string) bool) []string {
	var out []string
	for _, k := range keys {
		if keep(k) {
			out = append(out, k)
		}
	}
	return out
}

func TestExportLevelsAndFilters(t *testing.T) {
	s := servertest.Start(t, servertest.Options{})
	all := seedExport(t, s)

	t.Run("kick-off errors", func(t *testing.T) {
		r := s.Do(t, http.MethodGet, "$export", nil)
		wantStatus(t, r, http.StatusBadRequest)
		r = s.Do(t, http.MethodGet, "$export?_type=Nonsense", nil, "Prefer", "respond-async")
		wantStatus(t, r, http.StatusBadRequest)
		r = s.Do(t, http.MethodGet, "$export?_outputFormat=text/csv", nil, "Prefer", "respond-async")
		wantStatus(t, r, http.StatusBadRequest)
		r = s.Do(t, http.MethodGet, "$export?_since=yesterday", nil, "Prefer", "respond-async")
		wantStatus(t, r, http.StatusBadRequest)
		r = s.Do(t, http.MethodGet, "$export?_typeFilter=Observation%3Fnope%3D1", nil, "Prefer", "respond-async")
		wantStatus(t, r, http.StatusBadRequest)
		r = s.Do(t, http.MethodGet, "Group/missing/$export", nil, "Prefer", "respond-async")
		wantStatus(t, r, http.StatusNotFound)
		r = s.Do(t, http.MethodGet, "$export-status/00000000-0000-4000-8000-000000000000", nil)
		wantStatus(t, r, http.StatusNotFound)
		wantIssue(t, r, "not-found")
	})

	t.Run("system", func(t *testing.T) {
		got, m := exportRun(t, s, http.MethodGet, "$export", nil)
		dropArtefacts(t, got)
		wantExactlyOnce(t, got, all)
		if errs, _ := m["error"].([]any); len(errs) != 0 {
			t.Errorf("error files: %v", errs)
		}
	})

	t.Run("_type", func(t *testing.T) {
		got, _ := exportRun(t, s, http.MethodGet, "$export?_type=Patient,Observation&_outputFormat=application/fhir%2Bndjson", nil)
		wantExactlyOnce(t, got, keysWhere(all, func(k string) bool {
			return strings.HasPrefix(k, "Patient/") || strings.HasPrefix(k, "Observation/")
		}))
	})

	t.Run("_typeFilter", func(t *testing.T) {
		q := url.Values{"_type": {"Observation,Condition"}, "_typeFilter": {"Observation?code=http://loinc.org|A"}}
		got, _ := exportRun(t, s, http.MethodGet, "$export?"+q.Encode(), nil)
		wantExactlyOnce(t, got, []string{"Observation/o1", "Observation/o3", "Condition/c1", "Condition/c3"})
	})

	t.Run("patient", func(t *testing.T) {
		got, _ := exportRun(t, s, http.MethodGet, "Patient/$export", nil)
		dropArtefacts(t, got)
		wantExactlyOnce(t, got, keysWhere(all, func(k string) bool {
			return !strings.HasPrefix(k, "Organization/") && k != "Observation/o4"
		}))
	})

	t.Run("POST Parameters", func(t *testing.T) {
		params := map[string]any{"resourceType": "Parameters", "parameter": []any{
			map[string]any{"name": "_type", "valueString": "Condition"},
			map[string]any{"name": "_outputFormat", "valueString": "ndjson"},
		}}
		got, m := exportRun(t, s, http.MethodPost, "Patient/$export", params)
		wantExactlyOnce(t, got, []string{"Condition/c1", "Condition/c3"})
		if req, _ := m["request"].(string); !strings.Contains(req, "/Patient/$export?") || !strings.Contains(req, "_type=Condition") {
			t.Errorf("manifest request %q", req)
		}
	})

	t.Run("group leaks nothing of non-members", func(t *testing.T) {
		got, _ := exportRun(t, s, http.MethodGet, "Group/g1/$export", nil)
		for _, k := range dropArtefacts(t, got) {
			if r := s.Do(t, http.MethodGet, k, nil); bytes.Contains(r.Body, []byte(`"Patient/p3"`)) {
				t.Errorf("%s of a non-member exported", k)
			}
		}
		want := []string{"Patient/p1", "Patient/p2", "Coverage/cov1", "Coverage/cov2", "Observation/o1", "Observation/o2",
			"Condition/c1", "Group/g1", "CareTeam/ct1", "EpisodeOfCare/e1", "CarePlan/cp1", "CarePlan/cp2",
			"Encounter/enc1", "Encounter/enc2"}
		wantExactlyOnce(t, got, want)
	})

	t.Run("episode", func(t *testing.T) {
		got, _ := exportRun(t, s, http.MethodGet, "EpisodeOfCare/e1/$export", nil)
		wantExactlyOnce(t, got, []string{"EpisodeOfCare/e1", "CareTeam/ct1", "CarePlan/cp1", "Encounter/enc1"})
	})

	t.Run("group members that are not patients go to the error file", func(t *testing.T) {
		r := s.Do(t, http.MethodPut, "Group/g2", `{"resourceType":"Group","id":"g2","type":"person","actual":true,"member":[{"entity":{"reference":"Patient/p3"}},{"entity":{"reference":"Practitioner/x"}}]}`)
		if r.Status != http.StatusCreated {
			t.Fatalf("Group g2: %d %s", r.Status, r.Body)
		}
		got, m := exportRun(t, s, http.MethodGet, "Group/g2/$export?_type=Patient,Observation,Condition,Coverage", nil)
		wantExactlyOnce(t, got, []string{"Patient/p3", "Observation/o3", "Condition/c3", "Coverage/cov3"})
		errs, _ := m["error"].([]any)
		if len(errs) != 1 {
			t.Fatalf("error files: %v", m["error"])
		}
		e := errs[0].(map[string]any)
		if e["type"] != "OperationOutcome" {
			t.Errorf("error file type %v", e["type"])
		}
		r = s.Do(t, http.MethodGet, e["url"].(string), nil)
		wantStatus(t, r, http.StatusOK)
		var oo map[string]any
		if err := json.Unmarshal(bytes.TrimSpace(r.Body), &oo); err != nil || oo["resourceType"] != "OperationOutcome" {
			t.Errorf("error file: %s", r.Body)
		}
	})

	t.Run("_since", func(t *testing.T) {
		time.Sleep(5 * time.Millisecond)
		since := time.Now().UTC()
		time.Sleep(5 * time.Millisecond)
		r := s.Do(t, http.MethodPut, "Observation/o2", `{"resourceType":"Observation","id":"o2","status":"amended","code":{"coding":[{"system":"http://loinc.org","code":"B"}]},"subject":{"reference":"Patient/p2"}}`)
		wantStatus(t, r, http.StatusOK)
		got, _ := exportRun(t, s, http.MethodGet, "$export?_since="+url.QueryEscape(since.Format(time.RFC3339Nano)), nil)
		dropArtefacts(t, got)
		wantExactlyOnce(t, got, []string{"Observation/o2"})
	})

	t.Run("cancel", func(t *testing.T) {
		loc := exportKickoff(t, s, http.MethodGet, "$export", nil)
		r := s.Do(t, http.MethodDelete, loc, nil)
		wantStatus(t, r, http.StatusAccepted)
		r = s.Do(t, http.MethodGet, loc, nil)
		wantStatus(t, r, http.StatusNotFound)
		r = s.Do(t, http.MethodDelete, loc, nil)
		wantStatus(t, r, http.StatusNotFound)
	})

	t.Run("capability statement lists $export", func(t *testing.T) {
		r := s.Do(t, http.MethodGet, "metadata", nil)
		if !bytes.Contains(r.Body, []byte("OperationDefinition/export")) || !bytes.Contains(r.Body, []byte("group-export")) {
			t.Error("export operations missing from the CapabilityStatement")
		}
	})
}

// TestExportSurvivesRestart stops the server in the middle of an export and
// starts a new one on the same data: the job resumes and every resource
// arrives exactly once.
func TestExportSurvivesRestart(t *testing.T) {
	dir := t.TempDir()
	cfg := server.Config{ExportBatchPause: 300 * time.Millisecond}
	keys := seedBulk(t, dir, 2000)
	s1 := servertest.Start(t, servertest.Options{DataDir: dir, Config: cfg})
	loc := exportKickoff(t, s1, http.MethodGet, "$export", nil)
	// Wait until some output is written, then stop mid-export.
	deadline := time.Now().Add(30 * time.Second)
	for {
		r := s1.Do(t, http.MethodGet, loc, nil)
		if r.Status != http.StatusAccepted {
			t.Fatalf("job ended before the restart: %d %s", r.Status, r.Body)
		}
		if p := r.Header.Get("X-Progress"); strings.Contains(p, "exporting") && !strings.Contains(p, " 0 resources") {
			break
		}
		if time.Now().After(deadline) {
			t.Fatal("no progress")
		}
		time.Sleep(50 * time.Millisecond)
	}
	s1.Stop()

	s2 := servertest.Start(t, servertest.Options{DataDir: dir, Config: server.Config{}})
	loc2 := strings.Replace(loc, s1.URL, s2.URL, 1)
	m := exportWait(t, s2, loc2, 120*time.Second)
	got := exportDownload(t, s2, m)
	dropArtefacts(t, got)
	wantExactlyOnce(t, got, keys)
}

// seedBulk loads n resources into the store a test server on dir serves,
// store directly, before a server opens it.
func seedBulk(t *testing.T, dir string, n int) []string {
	t.Helper()
	ctx := context.Background()
	emb, err := bulkbench.OpenEmbedded(ctx, dir)
	if err != nil {
		t.Fatal(err)
	}
	defer emb.Close()
	reg, err := bulkbench.Registry()
	if err != nil {
		t.Fatal(err)
	}
	keys, err := bulkbench.Seed(ctx, emb.Store, reg, n)
	if err != nil {
		t.Fatal(err)
	}
	return keys
}
