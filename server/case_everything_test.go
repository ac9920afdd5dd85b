package server_test

import (
	"net/url"
	"slices"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/casefhir/casefhir/fhir"
	"github.com/casefhir/casefhir/mapping"
	"github.com/casefhir/casefhir/server/auth/authtest"
	"github.com/casefhir/casefhir/server/servertest"
)

// bundleKeys returns the "Type/id" of a Bundle's entries, in order.
func bundleKeys(m map[string]any) []string {
	var out []string
	for _, e := range caseList(m["entry"]) {
		res, _ := e.(map[string]any)["resource"].(map[string]any)
		out = append(out, mapping.Key(res))
	}
	return out
}

// pageAll follows the next links from first and returns the keys of every
// page's entries, checking no page has more than size.
func pageAll(t *testing.T, s *servertest.Server, first string, size int) []string {
	t.Helper()
	var keys []string
	eachPage(t, s, first, func(pm map[string]any) {
		if n := len(bundleKeys(pm)); n > size {
			t.Fatalf("page of %d", n)
		}
		keys = append(keys, bundleKeys(pm)...)
	})
	return keys
}

// eachPage calls fn with the first page and every next page.
func eachPage(t *testing.T, s *servertest.Server, first string, fn func(page map[string]any)) {
	t.Helper()
	next := first
	for pages := 0; next != ""; pages++ {
		if pages > 100 {
			t.Fatal("too many pages")
		}
		r := s.Do(t, "GET", next, nil)
		wantStatus(t, r, 200)
		pm := r.JSON()
		fn(pm)
		next = bundleLink(pm, "next")
	}
}

// searchModes returns the "Type/id" of a searchset's entries of search
// mode mode, in order.
func searchModes(m map[string]any, mode string) []string {
	var out []string
	for _, e := range caseList(m["entry"]) {
		em := e.(map[string]any)
		if sm, _ := em["search"].(map[string]any); sm != nil && sm["mode"] == mode {
			out = append(out, mapping.Key(em["resource"].(map[string]any)))
		}
	}
	return out
}

// checkPaged follows the next links of an $everything from first and
// checks them against whole, the result in one page: each page has at
// most size members (search mode match), every member comes exactly once
// and in the same order, a page lists an include once and never a member
// as include, and every include of whole is on some page.
func checkPaged(t *testing.T, s *servertest.Server, first string, size int, whole map[string]any) {
	t.Helper()
	var matches []string
	includes := map[string]bool{}
	eachPage(t, s, first, func(pm map[string]any) {
		m := searchModes(pm, "match")
		if len(m) > size || len(m) == 0 {
			t.Fatalf("%s: page of %d members", first, len(m))
		}
		matches = append(matches, m...)
		inc := searchModes(pm, "include")
		for _, k := range inc {
			if slices.Contains(m, k) || slices.Contains(searchModes(whole, "match"), k) {
				t.Errorf("%s: member %s as include", first, k)
			}
		}
		if len(slices.Compact(slices.Sorted(slices.Values(inc)))) != len(inc) {
			t.Errorf("%s: includes repeated within a page: %v", first, inc)
		}
		for _, k := range inc {
			includes[k] = true
		}
	})
	if want := searchModes(whole, "match"); !slices.Equal(matches, want) {
		t.Errorf("%s: paged members %v\nwant %v", first, matches, want)
	}
	for _, k := range searchModes(whole, "include") {
		if !includes[k] {
			t.Errorf("%s: include %s on no page", first, k)
		}
	}
	if len(includes) != len(searchModes(whole, "include")) {
		t.Errorf("%s: includes %v, want %v", first, includes, searchModes(whole, "include"))
	}
}

func bundleLink(m map[string]any, rel string) string {
	for _, l := range caseList(m["link"]) {
		if lm := l.(map[string]any); lm["relation"] == rel {
			return lm["url"].(string)
		}
	}
	return ""
}

// everythingFixture is a case with linked resources of several types, an
// unlinked resource of the same patient and a resource of another case.
type everythingFixture struct {
	*caseFixture
	oc                                   openedCase
	plan, goal, enc, cov, payer, obs, xg string
}

func newEverythingFixture(t *testing.T) *everythingFixture {
	f := &everythingFixture{caseFixture: newCaseFixture(t)}
	s := f.s
	f.oc = f.open(t)
	id := f.oc.id
	f.payer = "Organization/" + caseCreate(t, s, map[string]any{"resourceType": "Organization", "name": "Insurer"})
	f.plan = "CarePlan/" + caseCreate(t, s, caseLinked("CarePlan", id, f.patient, map[string]any{"status": "draft", "intent": "plan"}))
	f.goal = "Goal/" + caseCreate(t, s, caseLinked("Goal", id, f.patient, map[string]any{"lifecycleStatus": "proposed", "description": map[string]any{"text": "walk"}}))
	f.enc = "Encounter/" + caseCreate(t, s, map[string]any{"resourceType": "Encounter", "status": "finished",
		"class":   map[string]any{"system": "http://terminology.hl7.org/CodeSystem/v3-ActCode", "code": "AMB"},
		"subject": caseRef(f.patient), "episodeOfCare": []any{caseRef("EpisodeOfCare/" + id)}})
	f.cov = "Coverage/" + caseCreate(t, s, caseLinked("Coverage", id, f.patient, map[string]any{"status": "active", "payor": []any{caseRef(f.payer)}}))
	f.obs = "Observation/" + caseCreate(t, s, map[string]any{"resourceType": "Observation", "status": "final",
		"code": map[string]any{"text": "weight"}, "subject": caseRef(f.patient)})
	other := f.open(t)
	f.xg = "Goal/" + caseCreate(t, s, caseLinked("Goal", other.id, f.patient, map[string]any{"lifecycleStatus": "proposed", "description": map[string]any{"text": "x"}}))
	return f
}

func TestCaseEverything(t *testing.T) {
	f := newEverythingFixture(t)
	s, id := f.s, f.oc.id
	r := s.Do(t, "GET", "EpisodeOfCare/"+id+"/$everything", nil)
	wantStatus(t, r, 200)
	b := r.JSON()
	if b["type"] != "searchset" {
		t.Fatalf("type %v", b["type"])
	}
	keys := bundleKeys(b)
	if keys[0] != "EpisodeOfCare/"+id {
		t.Errorf("first entry %s, want the case", keys[0])
	}
	want := []string{"EpisodeOfCare/" + id, "CareTeam/" + f.oc.team, "Task/" + f.oc.task, f.plan, f.goal, f.enc, f.cov,
		f.patient, f.manager, f.org, f.payer, f.ref}
	for _, k := range want {
		if !slices.Contains(keys, k) {
			t.Errorf("$everything lacks %s: %v", k, keys)
		}
	}
	for _, k := range []string{f.obs, f.xg, f.other} {
		if slices.Contains(keys, k) {
			t.Errorf("$everything has %s, not part of the case", k)
		}
	}
	if len(keys) != len(want) {
		t.Errorf("%d entries, want %d: %v", len(keys), len(want), keys)
	}
	if b["total"] != nil {
		t.Errorf("total %v: $everything pages by keyset and does not count", b["total"])
	}

	// _type narrows all but the case.
	r = s.Do(t, "GET", "EpisodeOfCare/"+id+"/$everything?_type=Goal,Patient", nil)
	wantStatus(t, r, 200)
	if got := bundleKeys(r.JSON()); !slices.Equal(got, []string{"EpisodeOfCare/" + id, f.goal, f.patient}) {
		t.Errorf("_type: %v", got)
	}

	// _since keeps only later changes (and the case).
	time.Sleep(5 * time.Millisecond)
	since := fhir.FormatInstant(time.Now().UTC())
	time.Sleep(5 * time.Millisecond)
	g := f.read(t, f.goal)
	g["lifecycleStatus"] = "active"
	wantStatus(t, s.Do(t, "PUT", f.goal, g), 200)
	r = s.Do(t, "GET", "EpisodeOfCare/"+id+"/$everything?_since="+url.QueryEscape(since), nil)
	wantStatus(t, r, 200)
	if got := bundleKeys(r.JSON()); !slices.Equal(got, []string{"EpisodeOfCare/" + id, f.goal}) {
		t.Errorf("_since: %v", got)
	}

	// Paging: every member exactly once across the next links, every
	// include of the whole result on some page.
	for _, n := range []int{1, 2, 5} {
		checkPaged(t, s, "EpisodeOfCare/"+id+"/$everything?_count="+strconv.Itoa(n), n, b)
	}

	// _count=0: no entries, no next link.
	r = s.Do(t, "GET", "EpisodeOfCare/"+id+"/$everything?_count=0", nil)
	wantStatus(t, r, 200)
	if m := r.JSON(); len(bundleKeys(m)) != 0 || bundleLink(m, "next") != "" {
		t.Errorf("_count=0: %s", r.Body)
	}

	wantStatus(t, s.Do(t, "GET", "EpisodeOfCare/nope/$everything", nil), 404)
	wantStatus(t, s.Do(t, "GET", "EpisodeOfCare/"+id+"/$everything?_type=Nope", nil), 400)
}

func TestCaseTimeline(t *testing.T) {
	f := newEverythingFixture(t)
	s, id := f.s, f.oc.id
	f.activate(t, id)
	p := f.read(t, f.plan)
	p["status"] = "active"
	wantStatus(t, s.Do(t, "PUT", f.plan, p), 200)
	// Instants have millisecond precision: let the transition fall into a
	// later millisecond than the plan's update, for the _since check below.
	time.Sleep(2 * time.Millisecond)
	f.mustTransition(t, id, "", "implementation")

	r := s.Do(t, "GET", "EpisodeOfCare/"+id+"/$timeline", nil)
	wantStatus(t, r, 200)
	b := r.JSON()
	if b["type"] != "history" {
		t.Fatalf("type %v", b["type"])
	}
	var last string
	var eocVersions, planVersions int
	for _, e := range caseList(b["entry"]) {
		em := e.(map[string]any)
		res := em["resource"].(map[string]any)
		lu := res["meta"].(map[string]any)["lastUpdated"].(string)
		if lu < last {
			t.Errorf("not oldest first: %s after %s", lu, last)
		}
		last = lu
		switch mapping.Key(res) {
		case "EpisodeOfCare/" + id:
			eocVersions++
		case f.plan:
			planVersions++
		case f.obs, f.xg, f.patient:
			t.Errorf("timeline has %s", mapping.Key(res))
		}
		if em["request"] == nil || em["response"] == nil {
			t.Errorf("entry without request/response: %v", em)
		}
	}
	if eocVersions != 3 || planVersions != 2 {
		t.Errorf("case versions %d (want 3), plan versions %d (want 2)", eocVersions, planVersions)
	}
	first := bundleKeys(b)[0]
	if !strings.HasPrefix(first, "EpisodeOfCare/") && !strings.HasPrefix(first, "CareTeam/") && !strings.HasPrefix(first, "Task/") {
		t.Errorf("first event %s, want the opening of the case", first)
	}

	// _since keeps later versions only.
	since := f.read(t, "EpisodeOfCare/"+id)["meta"].(map[string]any)["lastUpdated"].(string)
	r = s.Do(t, "GET", "EpisodeOfCare/"+id+"/$timeline?_since="+url.QueryEscape(since), nil)
	wantStatus(t, r, 200)
	if got := bundleKeys(r.JSON()); !slices.Equal(got, []string{"EpisodeOfCare/" + id}) {
		t.Errorf("_since: %v", got)
	}
}

// TestCaseArtefactsPublished: the artefacts are served read-only, found by
// url, and the CapabilityStatement lists the case operations.
func TestCaseArtefactsPublished(t *testing.T) {
	s := servertest.Start(t, servertest.Options{})
	r := s.Do(t, "GET", "CodeSystem/case-phase", nil)
	wantStatus(t, r, 200)
	cs := r.JSON()
	if cs["url"] != mapping.SystemPhase {
		t.Fatalf("CodeSystem/case-phase url %v", cs["url"])
	}
	for _, k := range []string{"ValueSet/case-rule", "StructureDefinition/case-phase-history",
		"OperationDefinition/EpisodeOfCare-everything", "SearchParameter/CarePlan-episode-of-care", "SearchParameter/EpisodeOfCare-phase"} {
		wantStatus(t, s.Do(t, "GET", k, nil), 200)
	}

	// Client writes are refused.
	cs2 := caseClone(cs)
	cs2["title"] = "mine"
	for _, w := range []*servertest.Response{
		s.Do(t, "PUT", "CodeSystem/case-phase", cs2),
		s.Do(t, "DELETE", "CodeSystem/case-phase", nil),
		s.Do(t, "PATCH", "CodeSystem/case-phase", []any{map[string]any{"op": "replace", "path": "/title", "value": "x"}}, "Content-Type", "application/json-patch+json"),
		s.Do(t, "POST", "CodeSystem", func() map[string]any { m := caseClone(cs); delete(m, "id"); delete(m, "meta"); return m }()),
	} {
		if w.Status != 405 && w.Status != 403 {
			t.Errorf("write to an artefact: status %d: %s", w.Status, w.Body)
		}
		wantIssue(t, w, "forbidden")
	}
	if got := s.Do(t, "GET", "CodeSystem/case-phase", nil); string(got.Body) != string(r.Body) {
		t.Error("artefact changed")
	}

	// A restart on the same data writes nothing new.
	dir := s.DataDir
	s.Stop()
	s = servertest.Start(t, servertest.Options{DataDir: dir})
	if v := s.Do(t, "GET", "CodeSystem/case-phase", nil).JSON()["meta"].(map[string]any)["versionId"]; v != "1" {
		t.Errorf("restart rewrote the artefact: version %v", v)
	}

	// The CapabilityStatement lists the operations with their definitions.
	capb := s.Do(t, "GET", "metadata", nil)
	wantStatus(t, capb, 200)
	var ops, params []string
	for _, rest := range caseList(capb.JSON()["rest"]) {
		for _, res := range caseList(rest.(map[string]any)["resource"]) {
			rm := res.(map[string]any)
			if rm["type"] != "EpisodeOfCare" {
				continue
			}
			for _, sp := range caseList(rm["searchParam"]) {
				spm := sp.(map[string]any)
				params = append(params, spm["name"].(string)+" "+spm["definition"].(string))
			}
			for _, o := range caseList(rm["operation"]) {
				om := o.(map[string]any)
				ops = append(ops, om["name"].(string)+" "+om["definition"].(string))
			}
		}
	}
	for _, n := range []string{"transition", "everything", "open-case", "timeline"} {
		want := n + " " + mapping.Base + "/OperationDefinition/EpisodeOfCare-" + n
		if !slices.Contains(ops, want) {
			t.Errorf("CapabilityStatement EpisodeOfCare operations %v lack %q", ops, want)
		}
	}

	for _, n := range []string{"phase", "team"} {
		want := n + " " + mapping.Base + "/SearchParameter/EpisodeOfCare-" + n
		if !slices.Contains(params, want) {
			t.Errorf("CapabilityStatement EpisodeOfCare search parameters lack %q", want)
		}
	}

	// Search by url (needs the search executor).
	sr := s.Do(t, "GET", "CodeSystem?url="+url.QueryEscape(mapping.SystemPhase), nil)
	if sr.Status == 501 || sr.Status == 404 {
		t.Skipf("search is not wired yet: %d", sr.Status)
	}
	wantStatus(t, sr, 200)
	if got := bundleKeys(sr.JSON()); !slices.Equal(got, []string{"CodeSystem/case-phase"}) {
		t.Errorf("CodeSystem?url=: %v", got)
	}
}

// TestCaseOperationScopes: the case operations respect SMART scopes.
func TestCaseOperationScopes(t *testing.T) {
	e := startSMART(t, smartOptions{AuditOff: true}, authtest.Client{ID: "backend"})
	all := e.prov.Token(t, "backend", "system/*.cruds")
	do := func(tok, method, path string, body any) *servertest.Response { return e.do(t, tok, method, path, body) }
	mk := func(res map[string]any) string {
		r := do(all, "POST", res["resourceType"].(string), res)
		wantStatus(t, r, 201)
		return res["resourceType"].(string) + "/" + r.JSON()["id"].(string)
	}
	pat := mk(map[string]any{"resourceType": "Patient"})
	sr := mk(map[string]any{"resourceType": "ServiceRequest", "status": "active", "intent": "order", "subject": caseRef(pat)})
	open := caseParams(caseParam("referral", "valueReference", caseRef(sr)))

	// $open-case needs create on EpisodeOfCare, CareTeam and Task.
	r := do(e.prov.Token(t, "backend", "system/EpisodeOfCare.c system/CareTeam.c"), "POST", "EpisodeOfCare/$open-case", open)
	wantStatus(t, r, 403)
	r = do(all, "POST", "EpisodeOfCare/$open-case", open)
	wantStatus(t, r, 201)
	loc := strings.TrimPrefix(r.Header.Get("Location"), e.s.URL+"/")
	caseKey := strings.Join(strings.Split(loc, "/")[:2], "/")
	goal := mk(caseLinked("Goal", strings.TrimPrefix(caseKey, "EpisodeOfCare/"), pat, map[string]any{"lifecycleStatus": "proposed", "description": map[string]any{"text": "x"}}))

	// $transition needs update on EpisodeOfCare.
	ro := e.prov.Token(t, "backend", "system/EpisodeOfCare.rs system/Goal.rs")
	wantStatus(t, do(ro, "POST", caseKey+"/$transition", caseParams(caseParam("phase", "valueCoding", casePhaseCoding("assessment")))), 403)

	// $everything and $timeline return only readable types.
	for _, op := range []string{"$everything", "$timeline"} {
		r = do(ro, "GET", caseKey+"/"+op, nil)
		wantStatus(t, r, 200)
		for _, k := range bundleKeys(r.JSON()) {
			if !strings.HasPrefix(k, "EpisodeOfCare/") && k != goal {
				t.Errorf("%s with EpisodeOfCare and Goal scopes returned %s", op, k)
			}
		}
		if !slices.Contains(bundleKeys(r.JSON()), goal) {
			t.Errorf("%s lacks %s", op, goal)
		}
		wantStatus(t, do(e.prov.Token(t, "backend", "system/Goal.rs"), "GET", caseKey+"/"+op, nil), 403)
	}
}
