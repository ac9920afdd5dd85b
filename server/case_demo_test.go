package server_test

import (
	"bytes"
	"context"
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
	"github.com/casefhir/casefhir/mapping/demo"
	"github.com/casefhir/casefhir/server/servertest"
)

var updateGolden = flag.Bool("update", false, "rewrite the golden files of the demo cases")

// goldenDir holds the expected $everything and $timeline of each demo
// case (the cases themselves are in mapping/demo).
const goldenDir = "../mapping/testdata/demo"

func TestCaseDemo(t *testing.T) {
	cases, err := demo.Cases()
	if err != nil {
		t.Fatal(err)
	}
	if len(cases) != 2 {
		t.Fatalf("%d demo cases, want 2", len(cases))
	}
	for i := range cases {
		t.Run(cases[i].Name, func(t *testing.T) { replayDemo(t, &cases[i]) })
	}
}

// replayDemo replays a demo case to its closure through the HTTP API and
// compares its $everything and $timeline with the golden files.
func replayDemo(t *testing.T, c *demo.Case) {
	s := servertest.Start(t, servertest.Options{})
	started := time.Now().UTC()
	var files []string     // the step files, 00-base.json first
	var bounds []time.Time // start of each step (0: base)
	o := demo.Options{Base: s.URL, Client: s.Client, Complete: true, Progress: func(_ *demo.Case, st *demo.Step) {
		name := "00-base"
		if st != nil {
			name = st.Name
		}
		files = append(files, name+".json")
		// Stored instants have millisecond precision: let the previous
		// step's last write fall into an earlier millisecond than this
		// step's bound, so every write is attributed to its own step.
		time.Sleep(2 * time.Millisecond)
		bounds = append(bounds, time.Now().UTC().Truncate(time.Millisecond))
	}}
	loaded, err := o.Replay(context.Background(), c)
	if err != nil {
		t.Fatal(err)
	}
	ids := loaded.IDs
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
	checkGolden(t, filepath.Join(goldenDir, c.Name+".everything.golden.json"), evn)

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
		ne["resource"].(map[string]any)["meta"].(map[string]any)["lastUpdated"] = files[step]
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
	checkGolden(t, filepath.Join(goldenDir, c.Name+".timeline.golden.json"), tln)
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
