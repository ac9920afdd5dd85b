package server_test

import (
	"bytes"
	"encoding/json"
	"flag"
	"fmt"
	"os"
	"path/filepath"
	"regexp"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/casefhir/casefhir/mapping"
	"github.com/casefhir/casefhir/server/servertest"
)

var updateGolden = flag.Bool("update", false, "rewrite the golden files of the demo cases")

// demoDir holds the demo cases: one folder per case with a base
// transaction Bundle (00-base.json, loadable with casefhir load) and the
// steps that take the case from referral to closure.
const demoDir = "../mapping/demo/cases"

// goldenDir holds the expected $everything and $timeline of each case.
const goldenDir = "../mapping/testdata/demo"

// demoStep is one request of a demo case. In url and body, {{case}},
// {{team}} and {{intake}} stand for the ids $open-case assigned.
type demoStep struct {
	Description string `json:"description"`
	Request     struct {
		Method string `json:"method"`
		URL    string `json:"url"`
	} `json:"request"`
	Body   json.RawMessage `json:"body"`
	Status int             `json:"status"`
}

func TestCaseDemo(t *testing.T) {
	dirs, err := filepath.Glob(filepath.Join(demoDir, "*"))
	if err != nil {
		t.Fatal(err)
	}
	var n int
	for _, d := range dirs {
		if fi, err := os.Stat(d); err != nil || !fi.IsDir() {
			continue
		}
		n++
		t.Run(filepath.Base(d), func(t *testing.T) { replayDemo(t, d) })
	}
	if n != 2 {
		t.Fatalf("%d demo cases, want 2", n)
	}
}

func replayDemo(t *testing.T, dir string) {
	s := servertest.Start(t, servertest.Options{})
	files, _ := filepath.Glob(filepath.Join(dir, "*.json"))
	slices.Sort(files)
	started := time.Now().UTC()
	ids := map[string]string{} // placeholder -> id
	var bounds []time.Time     // start of each step (0: base)
	for i, file := range files {
		raw, err := os.ReadFile(file)
		if err != nil {
			t.Fatal(err)
		}
		bounds = append(bounds, time.Now().UTC().Truncate(time.Millisecond))
		if i == 0 {
			r := s.Do(t, "POST", "", raw)
			wantStatus(t, r, 200)
			continue
		}
		for k, v := range ids {
			raw = bytes.ReplaceAll(raw, []byte(k), []byte(v))
		}
		var st demoStep
		if err := json.Unmarshal(raw, &st); err != nil {
			t.Fatalf("%s: %v", file, err)
		}
		var hdr []string
		if st.Request.Method == "PATCH" {
			hdr = []string{"Content-Type", "application/json-patch+json"}
		}
		r := s.Do(t, st.Request.Method, st.Request.URL, []byte(st.Body), hdr...)
		if r.Status != st.Status {
			t.Fatalf("%s (%s): status %d, want %d: %s", filepath.Base(file), st.Description, r.Status, st.Status, r.Body)
		}
		if strings.HasSuffix(st.Request.URL, "$open-case") {
			for _, e := range caseList(r.JSON()["entry"]) {
				loc := e.(map[string]any)["response"].(map[string]any)["location"].(string)
				parts := strings.Split(strings.TrimPrefix(loc, s.URL+"/"), "/")
				name := map[string]string{"EpisodeOfCare": "{{case}}", "CareTeam": "{{team}}", "Task": "{{intake}}"}[parts[0]]
				ids[name] = parts[1]
			}
		}
	}
	caseID := ids["{{case}}"]
	eoc := s.Do(t, "GET", "EpisodeOfCare/"+caseID, nil).JSON()
	if eoc["status"] != "finished" || mapping.Phase(eoc) != mapping.PhaseClosed {
		t.Fatalf("the demo case ends %v/%s", eoc["status"], mapping.Phase(eoc))
	}
	ph := mapping.PhaseHistoryOf(eoc)
	if len(ph) < 6 || ph[0].Phase != mapping.PhaseScreening || ph[len(ph)-1].Phase != mapping.PhaseClosed {
		t.Errorf("phase history %+v", ph)
	}

	norm := &demoNormaliser{base: s.URL, ids: ids, from: started.Add(-time.Minute), to: time.Now().UTC().Add(time.Minute)}

	ev := s.Do(t, "GET", "EpisodeOfCare/"+caseID+"/$everything?_count=1000", nil)
	wantStatus(t, ev, 200)
	evb := ev.JSON()
	entries := caseList(evb["entry"])
	if k := mapping.Key(entries[0].(map[string]any)["resource"].(map[string]any)); k != "EpisodeOfCare/"+caseID {
		t.Errorf("$everything starts with %s", k)
	}
	evn := norm.value(evb).(map[string]any)
	rest := caseList(evn["entry"])[1:]
	slices.SortFunc(rest, func(a, b any) int {
		return strings.Compare(a.(map[string]any)["fullUrl"].(string), b.(map[string]any)["fullUrl"].(string))
	})
	checkGolden(t, filepath.Join(goldenDir, filepath.Base(dir)+".everything.golden.json"), evn)

	tl := s.Do(t, "GET", "EpisodeOfCare/"+caseID+"/$timeline", nil)
	wantStatus(t, tl, 200)
	tlb := tl.JSON()
	type ordered struct {
		step int
		key  string
		e    any
	}
	var evs []ordered
	last := ""
	for _, e := range caseList(tlb["entry"]) {
		res := e.(map[string]any)["resource"].(map[string]any)
		lu := res["meta"].(map[string]any)["lastUpdated"].(string)
		if lu < last {
			t.Errorf("$timeline not oldest first: %s after %s", lu, last)
		}
		last = lu
		at, err := time.Parse(time.RFC3339Nano, lu)
		if err != nil {
			t.Fatal(err)
		}
		step := 0
		for i, b := range bounds {
			if !at.Before(b) {
				step = i
			}
		}
		ne := norm.value(e).(map[string]any)
		ne["resource"].(map[string]any)["meta"].(map[string]any)["lastUpdated"] = filepath.Base(files[step])
		evs = append(evs, ordered{step, ne["fullUrl"].(string) + " " + res["meta"].(map[string]any)["versionId"].(string), ne})
	}
	// Writes of one step may share an instant: order within a step by key.
	slices.SortStableFunc(evs, func(a, b ordered) int {
		if a.step != b.step {
			return a.step - b.step
		}
		return strings.Compare(a.key, b.key)
	})
	tln := norm.value(tlb).(map[string]any)
	tln["entry"] = []any{}
	for _, o := range evs {
		tln["entry"] = append(tln["entry"].([]any), o.e)
	}
	checkGolden(t, filepath.Join(goldenDir, filepath.Base(dir)+".timeline.golden.json"), tln)
}

// demoNormaliser blanks what changes from run to run: the server's base
// URL, the ids $open-case assigns, Bundle ids and instants of the run.
type demoNormaliser struct {
	base     string
	ids      map[string]string
	from, to time.Time
}

var instantRE = regexp.MustCompile(`^\d{4}-\d{2}-\d{2}T\d{2}:\d{2}:\d{2}(\.\d+)?(Z|[+-]\d{2}:\d{2})$`)

func (n *demoNormaliser) value(v any) any {
	switch x := v.(type) {
	case map[string]any:
		out := map[string]any{}
		for k, e := range x {
			out[k] = n.value(e)
		}
		if out["resourceType"] == "Bundle" {
			out["id"] = "<bundle>"
		}
		return out
	case []any:
		out := make([]any, len(x))
		for i, e := range x {
			out[i] = n.value(e)
		}
		return out
	case string:
		if instantRE.MatchString(x) {
			if t, err := time.Parse(time.RFC3339Nano, x); err == nil && !t.Before(n.from) && !t.After(n.to) {
				return "<now>"
			}
		}
		s := strings.ReplaceAll(x, n.base, "{base}")
		for k, id := range n.ids {
			s = strings.ReplaceAll(s, id, k)
		}
		return s
	}
	return v
}

// checkGolden compares got with the golden file semantically (as JSON
// values), rewriting it under -update.
func checkGolden(t *testing.T, path string, got any) {
	t.Helper()
	js, err := json.MarshalIndent(got, "", "  ")
	if err != nil {
		t.Fatal(err)
	}
	js = append(js, '\n')
	if *updateGolden {
		if err := os.WriteFile(path, js, 0o644); err != nil {
			t.Fatal(err)
		}
		return
	}
	raw, err := os.ReadFile(path)
	if err != nil {
		t.Fatalf("%v (run with -update to create it)", err)
	}
	var want any
	if err := json.Unmarshal(raw, &want); err != nil {
		t.Fatalf("%s: %v", path, err)
	}
	wantJS, _ := json.MarshalIndent(want, "", "  ")
	wantJS = append(wantJS, '\n')
	if !bytes.Equal(wantJS, js) {
		t.Errorf("%s differs (run with -update after checking):\n%s", path, firstDiff(string(wantJS), string(js)))
	}
}

// firstDiff shows the first differing line.
func firstDiff(want, got string) string {
	wl, gl := strings.Split(want, "\n"), strings.Split(got, "\n")
	for i := 0; i < len(wl) || i < len(gl); i++ {
		var w, g string
		if i < len(wl) {
			w = wl[i]
		}
		if i < len(gl) {
			g = gl[i]
		}
		if w != g {
			return fmt.Sprintf("line %d:\n- %s\n+ %s", i+1, w, g)
		}
	}
	return ""
}
