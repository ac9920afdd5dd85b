package main

import (
	"bytes"
	"context"
	"encoding/json"
	"regexp"
	"testing"

	"github.com/casefhir/casefhir/server/servertest"
)

// TestDemo loads the demo cases through the API: the bicycle case stays
// active in monitoring, the stroke case is closed, and both phase histories
// start at screening.
func TestDemo(t *testing.T) {
	srv := servertest.Start(t, servertest.Options{})
	var out, errb bytes.Buffer
	code := run(context.Background(), []string{"demo", "--url", srv.URL}, func(string) string { return "" }, &out, &errb)
	if code != 0 {
		t.Fatalf("exit %d\nstdout: %s\nstderr: %s", code, out.String(), errb.String())
	}
	m := regexp.MustCompile(`(?m)^(\S+): EpisodeOfCare/(\S+) \(`).FindAllStringSubmatch(out.String(), -1)
	if len(m) != 2 {
		t.Fatalf("stdout: %s", out.String())
	}
	// With auth off the app opens at once and shows the demo cases.
	r := srv.Do(t, "GET", srv.Root+"/app/", nil)
	if r.Status != 200 || !bytes.Contains(r.Body, []byte("Jonas Berg")) || !bytes.Contains(r.Body, []byte("Margaret Holm")) {
		t.Errorf("GET /app/ with auth off: %d", r.Status)
	}
	want := map[string][2]string{"bicycle-tbi": {"active", "monitoring"}, "stroke-brokerage": {"finished", "closed"}}
	for _, g := range m {
		r := srv.Do(t, "GET", "EpisodeOfCare/"+g[2], nil)
		var eoc struct {
			Status    string `json:"status"`
			Extension []struct {
				URL         string `json:"url"`
				ValueCoding struct {
					Code string `json:"code"`
				} `json:"valueCoding"`
				Extension []struct {
					URL         string `json:"url"`
					ValueCoding struct {
						Code string `json:"code"`
					} `json:"valueCoding"`
				} `json:"extension"`
			} `json:"extension"`
		}
		if err := json.Unmarshal(r.Body, &eoc); err != nil {
			t.Fatal(err)
		}
		var phase string
		var history []string
		for _, e := range eoc.Extension {
			switch e.URL {
			case "https://casefhir.org/fhir/StructureDefinition/case-phase":
				phase = e.ValueCoding.Code
			case "https://casefhir.org/fhir/StructureDefinition/case-phase-history":
				for _, sub := range e.Extension {
					if sub.URL == "phase" {
						history = append(history, sub.ValueCoding.Code)
					}
				}
			}
		}
		if w := want[g[1]]; eoc.Status != w[0] || phase != w[1] {
			t.Errorf("%s: %s/%s, want %v", g[1], eoc.Status, phase, w)
		}
		if len(history) < 6 || history[0] != "screening" || history[len(history)-1] != phase {
			t.Errorf("%s: phase history %v", g[1], history)
		}
	}
}
