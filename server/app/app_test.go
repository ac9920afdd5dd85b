package app

import (
	"encoding/base64"
	"encoding/json"
	"io"
	"log/slog"
	"net/http"
	"net/http/cookiejar"
	"net/http/httptest"
	"net/url"
	"strings"
	"testing"

	"github.com/casefhir/casefhir/mapping"
)

func quietLogger() *slog.Logger { return slog.New(slog.NewTextHandler(io.Discard, nil)) }

func TestNewNeedsCredentials(t *testing.T) {
	if _, err := New(Config{FHIRBase: "http://x/fhir", AppBase: "http://x/app"}); err == nil {
		t.Error("auth on without client credentials accepted")
	}
	if _, err := New(Config{FHIRBase: "http://x/fhir", AppBase: "http://x/app", AuthOff: true}); err != nil {
		t.Errorf("auth off: %v", err)
	}
	if _, err := New(Config{AppBase: "http://x/app", AuthOff: true}); err == nil {
		t.Error("no FHIR base accepted")
	}
}

// fakeFHIR answers the few requests the app sends with canned resources.
func fakeFHIR(t *testing.T, routes map[string]any) *httptest.Server {
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		path := strings.TrimPrefix(r.URL.Path, "/fhir/")
		best := ""
		for prefix := range routes {
			if strings.HasPrefix(path, prefix) && len(prefix) > len(best) {
				best = prefix
			}
		}
		if v, ok := routes[best]; ok {
			w.Header().Set("Content-Type", "application/fhir+json")
			if oo, ok := v.(outcomeReply); ok {
				w.WriteHeader(oo.status)
				_ = json.NewEncoder(w).Encode(oo.body)
				return
			}
			_ = json.NewEncoder(w).Encode(v)
			return
		}
		w.WriteHeader(http.StatusNotFound)
		_, _ = io.WriteString(w, `{"resourceType":"OperationOutcome","issue":[{"severity":"error","code":"not-found"}]}`)
	}))
	t.Cleanup(srv.Close)
	return srv
}

// pagingHandler answers the worklist's first search (sorted, not a
// count, not a snapshot page) with first.
func pagingHandler(next http.Handler, first map[string]any) http.Handler {
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		q := r.URL.Query()
		if strings.HasSuffix(r.URL.Path, "/EpisodeOfCare") && q.Get("_summary") == "" && q.Get("_snapshot") == "" {
			w.Header().Set("Content-Type", "application/fhir+json")
			_ = json.NewEncoder(w).Encode(first)
			return
		}
		next.ServeHTTP(w, r)
	})
}

type outcomeReply struct {
	status int
	body   any
}

func newOffApp(t *testing.T, fhirBase string) (*App, *httptest.Server) {
	t.Helper()
	a, err := New(Config{FHIRBase: fhirBase, AppBase: "http://app.test/app", AuthOff: true, Logger: quietLogger()})
	if err != nil {
		t.Fatal(err)
	}
	srv := httptest.NewServer(http.StripPrefix("/app", a))
	t.Cleanup(srv.Close)
	return a, srv
}

func phaseHistory(entries ...[3]string) []any {
	var out []any
	for _, e := range entries {
		p := map[string]any{"start": e[1]}
		if e[2] != "" {
			p["end"] = e[2]
		}
		out = append(out, map[string]any{"url": mapping.ExtPhaseHistory, "extension": []any{
			map[string]any{"url": "phase", "valueCoding": map[string]any{"system": mapping.SystemPhase, "code": e[0]}},
			map[string]any{"url": "period", "valuePeriod": p},
		}})
	}
	return out
}

// testCase is a managed case that went through a re-planning loop and a
// hold with a reason.
func testCase() map[string]any {
	ext := append([]any{map[string]any{"url": mapping.ExtPhase, "valueCoding": map[string]any{"system": mapping.SystemPhase, "code": "monitoring"}}},
		phaseHistory(
			[3]string{"screening", "2025-01-01T10:00:00Z", "2025-01-02T10:00:00Z"},
			[3]string{"planning", "2025-01-02T10:00:00Z", "2025-01-05T10:00:00Z"},
			[3]string{"monitoring", "2025-01-05T10:00:00Z", "2025-02-01T10:00:00Z"},
			[3]string{"planning", "2025-02-01T10:00:00Z", "2025-02-03T10:00:00Z"},
			[3]string{"monitoring", "2025-02-03T10:00:00Z", ""},
		)...)
	return map[string]any{
		"resourceType": "EpisodeOfCare", "id": "c1", "status": "onhold", "extension": ext,
		"meta":    map[string]any{"lastUpdated": "2025-02-04T08:00:00Z"},
		"patient": map[string]any{"reference": "Patient/p1"}, "careManager": map[string]any{"reference": "Practitioner/cm"},
		"type": []any{map[string]any{"coding": []any{map[string]any{"system": mapping.SystemCategory, "code": "long-term"}}}},
		"statusHistory": []any{
			map[string]any{"status": "planned", "period": map[string]any{"start": "2025-01-01T10:00:00Z", "end": "2025-01-02T10:00:00Z"}},
			map[string]any{"status": "active", "period": map[string]any{"start": "2025-01-02T10:00:00Z", "end": "2025-02-04T08:00:00Z"}},
			map[string]any{"status": "onhold", "period": map[string]any{"start": "2025-02-04T08:00:00Z"}, "extension": []any{
				map[string]any{"url": mapping.ExtStatusReason, "valueCodeableConcept": map[string]any{"text": "Patient in hospital"}}}},
		},
	}
}

func TestBuildTimeline(t *testing.T) {
	tl := buildTimeline(testCase())
	if tl.Replans != 1 || len(tl.Phases) != 5 || !tl.Phases[3].Replan || tl.Phases[4].Replan || !tl.Phases[4].Current {
		t.Errorf("phases %+v, replans %d", tl.Phases, tl.Replans)
	}
	states := map[string]string{}
	for _, s := range tl.Track {
		states[s.Code] = s.State
	}
	want := map[string]string{"screening": "done", "assessment": "done", "planning": "done", "monitoring": "current", "evaluation": "todo", "closed": "todo"}
	for k, v := range want {
		if states[k] != v {
			t.Errorf("track %s = %s, want %s", k, states[k], v)
		}
	}
	if len(tl.Status) != 3 || !tl.Status[2].Hold || tl.Status[2].Reason != "Patient in hospital" || !tl.Status[2].Current {
		t.Errorf("status history %+v", tl.Status)
	}
	if tl.Phases[1].Duration != "3 days" {
		t.Errorf("duration %q", tl.Phases[1].Duration)
	}
}

func TestWorklistAndCasePages(t *testing.T) {
	eoc := testCase()
	patient := map[string]any{"resourceType": "Patient", "id": "p1", "name": []any{map[string]any{"given": []any{"Ada"}, "family": "Lovelace"}}, "birthDate": "1950-12-10"}
	cm := map[string]any{"resourceType": "Practitioner", "id": "cm", "name": []any{map[string]any{"text": "Case Manager"}}}
	risk := map[string]any{"resourceType": "RiskAssessment", "id": "r1", "status": "final",
		"extension": []any{map[string]any{"url": mapping.ExtEpisodeOfCare, "valueReference": map[string]any{"reference": "EpisodeOfCare/c1"}}},
		"prediction": []any{map[string]any{"outcome": map[string]any{"text": "Falls"},
			"qualitativeRisk": map[string]any{"coding": []any{map[string]any{"system": SystemRisk, "code": "high"}}}}},
		"mitigation": "Home visit"}
	bundle := func(mode string, rs ...map[string]any) map[string]any {
		var es []any
		for i, r := range rs {
			m := "match"
			if i > 0 {
				m = mode
			}
			es = append(es, map[string]any{"resource": r, "search": map[string]any{"mode": m}})
		}
		return map[string]any{"resourceType": "Bundle", "type": "searchset", "total": 1, "entry": es}
	}
	fhir := fakeFHIR(t, map[string]any{
		"EpisodeOfCare/c1/$everything": bundle("match", eoc, patient, cm, risk),
		"EpisodeOfCare/c1":             eoc,
		"EpisodeOfCare/c1/$transition": outcomeReply{422, map[string]any{"resourceType": "OperationOutcome", "issue": []any{
			map[string]any{"severity": "error", "code": "business-rule", "details": map[string]any{
				"coding": []any{map[string]any{"system": mapping.SystemRule, "code": "G-FIN"}},
				"text":   "link a completed outcome evaluation to the case before finishing it"}}}}},
		"EpisodeOfCare": bundle("include", eoc, patient, cm, risk),
	})
	// The first page links to the next one (the server's paging link).
	first := bundle("include", eoc, patient, cm, risk)
	first["link"] = []any{map[string]any{"relation": "next", "url": fhir.URL + "/fhir/EpisodeOfCare?_snapshot=s1&_count=20&_offset=20"}}
	fhir.Config.Handler = pagingHandler(fhir.Config.Handler, first)
	_, srv := newOffApp(t, fhir.URL+"/fhir")
	jar := newJar(t)
	c := &http.Client{Jar: jar}

	body, status := get(t, c, srv.URL+"/app/")
	if status != 200 || !strings.Contains(body, "Ada Lovelace") || !strings.Contains(body, `risk-high`) || !strings.Contains(body, "Case Manager") {
		t.Fatalf("worklist %d:\n%s", status, body)
	}
	next := strings.TrimPrefix(between(body, `<a rel="next" href="`, `"`), "?")
	if v, err := url.ParseQuery(strings.ReplaceAll(next, "&amp;", "&")); err != nil || v.Get("page") != "EpisodeOfCare?_snapshot=s1&_count=20&_offset=20" {
		t.Errorf("next page link %q", next)
	} else if body, status := get(t, c, srv.URL+"/app/?"+strings.ReplaceAll(next, "&amp;", "&")); status != 200 || !strings.Contains(body, "Ada Lovelace") {
		t.Errorf("next page: %d", status)
	}
	body, status = get(t, c, srv.URL+"/app/case/c1")
	for _, want := range []string{"Ada Lovelace", "1 re-planning loop", "On hold because: Patient in hospital", "Falls", "Home visit", `aria-current="step"`} {
		if !strings.Contains(body, want) {
			t.Errorf("case page %d lacks %q", status, want)
		}
	}
	csrf := between(body, `name="csrf" value="`, `"`)
	if csrf == "" {
		t.Fatal("no CSRF token on the case page")
	}
	// A broken case rule is shown as a readable message.
	resp, err := c.PostForm(srv.URL+"/app/case/c1/transition", url.Values{"csrf": {csrf}, "status": {"finished"}, "reason": {"goals-met"}})
	if err != nil {
		t.Fatal(err)
	}
	b, _ := io.ReadAll(resp.Body)
	resp.Body.Close()
	if resp.StatusCode != 422 || !strings.Contains(string(b), "Guard to finished") || !strings.Contains(string(b), "outcome evaluation") ||
		strings.Contains(string(b), "OperationOutcome") {
		t.Errorf("transition refused: %d\n%s", resp.StatusCode, b)
	}
	// Without the CSRF token: refused before anything is sent.
	resp, err = c.PostForm(srv.URL+"/app/case/c1/transition", url.Values{"status": {"finished"}})
	if err != nil {
		t.Fatal(err)
	}
	resp.Body.Close()
	if resp.StatusCode != http.StatusForbidden {
		t.Errorf("POST without CSRF: %d", resp.StatusCode)
	}
	// Unknown case: a readable 404.
	if body, status := get(t, c, srv.URL+"/app/case/nope"); status != 404 || !strings.Contains(body, "Not found") {
		t.Errorf("unknown case: %d", status)
	}
	// A bad filter value.
	if _, status := get(t, c, srv.URL+"/app/?phase=nonsense"); status != 400 {
		t.Errorf("bad filter: %d", status)
	}
	// A page link that is not a paging link of the worklist is refused.
	for _, p := range []string{"http://evil.example/x", "EpisodeOfCare?patient=Patient/other", "Patient?_snapshot=x", "EpisodeOfCare?_snapshot=x&_include=*"} {
		if _, status := get(t, c, srv.URL+"/app/?page="+url.QueryEscape(p)); status != 400 {
			t.Errorf("page link %s: %d", p, status)
		}
	}
}

func TestLaunchRefusals(t *testing.T) {
	a, err := New(Config{FHIRBase: "http://fhir.test/fhir", AppBase: "http://fhir.test/app", ClientID: "c", ClientSecret: "s", Logger: quietLogger()})
	if err != nil {
		t.Fatal(err)
	}
	for _, tc := range []struct {
		url    string
		status int
	}{
		{"/launch?iss=http://evil.example/fhir&launch=x", 400},
		{"/launch?iss=http://fhir.test/fhir", 400},
		{"/callback?code=x&state=forged", 400},
		{"/nowhere", 404},
	} {
		rec := httptest.NewRecorder()
		a.ServeHTTP(rec, httptest.NewRequest("GET", tc.url, nil))
		if rec.Code != tc.status || rec.Header().Get("Location") != "" {
			t.Errorf("%s: %d (location %q), want %d", tc.url, rec.Code, rec.Header().Get("Location"), tc.status)
		}
		if strings.Contains(rec.Body.String(), "{") {
			t.Errorf("%s: body shows JSON", tc.url)
		}
	}
	// A POST without a session is refused (no login redirect for a form).
	rec := httptest.NewRecorder()
	a.ServeHTTP(rec, httptest.NewRequest("POST", "/case/x/transition", strings.NewReader("")))
	if rec.Code != http.StatusUnauthorized {
		t.Errorf("POST without session: %d", rec.Code)
	}
}

func TestClosureText(t *testing.T) {
	cr := map[string]any{"coding": []any{map[string]any{"system": mapping.SystemClosureReason, "code": "goals-met"}}}
	if got := closureText(cr); got != "Goals met" {
		t.Errorf("closure reason %q", got)
	}
}

func TestFHIRUserClaim(t *testing.T) {
	payload := base64.RawURLEncoding.EncodeToString([]byte(`{"fhirUser":"Practitioner/7"}`))
	if got := fhirUserClaim("h." + payload + ".s"); got != "Practitioner/7" {
		t.Errorf("fhirUser %q", got)
	}
	if got := fhirUserClaim("not-a-jwt"); got != "" {
		t.Errorf("fhirUser of garbage %q", got)
	}
}

func TestFormatting(t *testing.T) {
	if got := formatDate("2025-03-12"); got != "12 Mar 2025" {
		t.Errorf("formatDate %q", got)
	}
	if got := formatEnd("2025-03-12T09:00:00Z", "2025-03-12T10:30:00Z"); got != "10:30 UTC" {
		t.Errorf("formatEnd same day %q", got)
	}
	if got := period(map[string]any{"start": "2025-01-01"}); got != "since 1 Jan 2025" {
		t.Errorf("period %q", got)
	}
	if got := duration("2025-01-01T00:00:00Z", "2025-01-01T00:30:00Z"); got != "30 min" {
		t.Errorf("duration %q", got)
	}
}

func get(t *testing.T, c *http.Client, u string) (string, int) {
	t.Helper()
	resp, err := c.Get(u)
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	b, _ := io.ReadAll(resp.Body)
	return string(b), resp.StatusCode
}

func between(s, from, to string) string {
	i := strings.Index(s, from)
	if i < 0 {
		return ""
	}
	s = s[i+len(from):]
	j := strings.Index(s, to)
	if j < 0 {
		return ""
	}
	return s[:j]
}

func newJar(t *testing.T) http.CookieJar {
	t.Helper()
	j, err := cookiejar.New(nil)
	if err != nil {
		t.Fatal(err)
	}
	return j
}
