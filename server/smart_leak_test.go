package server_test

import (
	"encoding/base64"
	"encoding/json"
	"net/http"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/casefhir/casefhir/mapping"
	"github.com/casefhir/casefhir/server/auth/authtest"
	"github.com/casefhir/casefhir/server/servertest"
)

// leakSide is one patient's seeded data.
type leakSide struct {
	pat, lab, cross, cond, cp, enc, cov, sr string // ids
	eoc, team, task                         string // the managed case ($open-case)
	ident, code, family, marker             string
}

// keys returns "Type/id" of every resource of the side.
func (s *leakSide) keys() []string {
	return []string{"Patient/" + s.pat, "Observation/" + s.lab, "Observation/" + s.cross, "Condition/" + s.cond,
		"CarePlan/" + s.cp, "Encounter/" + s.enc, "Coverage/" + s.cov, "ServiceRequest/" + s.sr,
		"EpisodeOfCare/" + s.eoc, "CareTeam/" + s.team, "Task/" + s.task}
}

// leakFixture is patient A and patient B with resources of several types
// each, seeded with a system/*.cruds token, and tokens for A and B.
type leakFixture struct {
	e                 *smartEnv
	admin, tokA, tokB string
	a, b              leakSide
	manager, org      string
}

func newLeakFixture(t *testing.T) *leakFixture {
	t.Helper()
	e := startSMART(t, smartOptions{},
		authtest.Client{ID: "leak-admin"},
		authtest.Client{ID: "leak-app-a", Claims: map[string]any{"patient": "leak-a-pat"}},
		authtest.Client{ID: "leak-app-b", Claims: map[string]any{"patient": "leak-b-pat"}},
	)
	f := &leakFixture{e: e, admin: e.prov.Token(t, "leak-admin", "system/*.cruds")}
	f.tokA = e.prov.Token(t, "leak-app-a", "patient/*.cruds launch/patient")
	f.tokB = e.prov.Token(t, "leak-app-b", "patient/*.rs launch/patient")
	put := func(res map[string]any) {
		t.Helper()
		typ, id := res["resourceType"].(string), res["id"].(string)
		wantStatus(t, e.do(t, f.admin, "PUT", typ+"/"+id, res), 201)
	}
	f.manager, f.org = "leak-manager", "leak-org"
	put(map[string]any{"resourceType": "Practitioner", "id": f.manager, "name": []any{map[string]any{"family": "Manager"}}})
	put(map[string]any{"resourceType": "Organization", "id": f.org, "name": "Insurer"})
	for _, side := range []struct {
		s      *leakSide
		p      string
		marker string
		family string
	}{{&f.a, "a", "ALPHA-A-MARK", "Alpha"}, {&f.b, "b", "ZULU-B-MARK", "Zulu"}} {
		s, p := side.s, "leak-"+side.p+"-"
		*s = leakSide{pat: p + "pat", lab: p + "lab", cross: p + "cross", cond: p + "cond", cp: p + "cp", enc: p + "enc",
			cov: p + "cov", sr: p + "sr", ident: "ident-" + side.p, code: "code-" + side.p, family: side.family, marker: side.marker}
		subj := caseRef("Patient/" + s.pat)
		note := []any{map[string]any{"text": s.marker}}
		put(map[string]any{"resourceType": "Patient", "id": s.pat, "name": []any{map[string]any{"family": s.family, "given": []any{s.marker}}},
			"identifier": []any{map[string]any{"system": "urn:leak", "value": s.ident}}})
		put(map[string]any{"resourceType": "Observation", "id": s.lab, "status": "final", "subject": subj, "note": note,
			"identifier": []any{map[string]any{"system": "urn:leak", "value": s.ident}},
			"category":   []any{map[string]any{"coding": []any{map[string]any{"system": "http://terminology.hl7.org/CodeSystem/observation-category", "code": "laboratory"}}}},
			"code":       map[string]any{"coding": []any{map[string]any{"system": "urn:leak", "code": s.code}}, "text": s.marker}})
		put(map[string]any{"resourceType": "Condition", "id": s.cond, "subject": subj, "note": note,
			"code": map[string]any{"text": s.marker}})
		put(map[string]any{"resourceType": "Encounter", "id": s.enc, "status": "finished", "subject": subj,
			"class": map[string]any{"system": "http://terminology.hl7.org/CodeSystem/v3-ActCode", "code": "AMB"},
			"type":  []any{map[string]any{"text": s.marker}}})
		put(map[string]any{"resourceType": "ServiceRequest", "id": s.sr, "status": "active", "intent": "order", "subject": subj,
			"code": map[string]any{"text": "Case management " + s.marker}})
		r := e.do(t, f.admin, "POST", "EpisodeOfCare/$open-case", caseParams(
			caseParam("referral", "valueReference", caseRef("ServiceRequest/"+s.sr)),
			caseParam("careManager", "valueReference", caseRef("Practitioner/"+f.manager)),
			caseParam("managingOrganization", "valueReference", caseRef("Organization/"+f.org)),
			caseParam("category", "valueCoding", map[string]any{"system": mapping.SystemCategory, "code": "intermediate"}),
			caseParam("model", "valueCoding", map[string]any{"system": mapping.SystemModel, "code": "clinical"}),
		))
		wantStatus(t, r, 201)
		oc := openedFrom(t, e.s, r)
		s.eoc, s.team, s.task = oc.id, oc.team, oc.task
		wantStatus(t, e.do(t, f.admin, "POST", "EpisodeOfCare/"+s.eoc+"/$transition", caseParams(
			caseParam("status", "valueCode", "active"), caseParam("phase", "valueCoding", casePhaseCoding("planning")))), 200)
		cp := caseLinked("CarePlan", s.eoc, "Patient/"+s.pat, map[string]any{"status": "active", "intent": "plan", "note": note})
		cp["id"] = s.cp
		put(cp)
		cov := caseLinked("Coverage", s.eoc, "Patient/"+s.pat, map[string]any{"status": "active", "payor": []any{caseRef("Organization/" + f.org)}})
		cov["id"] = s.cov
		put(cov)
	}
	// Cross references: A's panel has B's result as a member; B's derived
	// result is derived from A's.
	put(map[string]any{"resourceType": "Observation", "id": f.a.cross, "status": "final", "subject": caseRef("Patient/" + f.a.pat),
		"code": map[string]any{"text": "panel " + f.a.marker}, "hasMember": []any{caseRef("Observation/" + f.b.lab)}})
	put(map[string]any{"resourceType": "Observation", "id": f.b.cross, "status": "final", "subject": caseRef("Patient/" + f.b.pat),
		"code":        map[string]any{"coding": []any{map[string]any{"system": "urn:leak", "code": "derived-b"}}, "text": "derived " + f.b.marker},
		"derivedFrom": []any{caseRef("Observation/" + f.a.lab)}})
	return f
}

// forbidden returns what must never reach A: B's resources (as a
// resource id or a fullUrl/location) and B's content markers, except what
// the request itself names (echoed in an OperationOutcome). A plain
// reference to one of B's resources held in A's own data (A's panel lists
// B's result as a member) is A's data and is allowed.
func (f *leakFixture) forbidden(request string) []string {
	var out []string
	for _, s := range []string{f.b.marker, f.b.ident, f.b.code, f.b.family, "derived-b"} {
		if !strings.Contains(request, s) {
			out = append(out, s)
		}
	}
	for _, k := range f.b.keys() {
		_, id, _ := strings.Cut(k, "/")
		if !strings.Contains(request, id) {
			out = append(out, `"id":"`+id+`"`, "/"+k+`"`, "/"+k+"/")
		}
	}
	return out
}

// leakRow is one way of reaching data. A row either sends one request
// (method, path, body, hdr) or runs several (run), returning every body
// received and the text of the requests it sent.
type leakRow struct {
	name   string
	method string
	path   string
	body   any
	hdr    []string
	// status is the wanted status (0: 200).
	status int
	// want are strings that must appear (A's data: the row really ran).
	want []string
	// not are strings of A's that must not appear either (they would only
	// be there through B's data, e.g. a _has over B's resources).
	not []string
	// check inspects the response further.
	check func(t *testing.T, f *leakFixture, r *servertest.Response)
	// run replaces the single request.
	run func(t *testing.T, f *leakFixture) (body []byte, request string)
}

func leakTx(typ string, entries ...map[string]any) map[string]any {
	es := make([]any, len(entries))
	for i, e := range entries {
		es[i] = e
	}
	return map[string]any{"resourceType": "Bundle", "type": typ, "entry": es}
}

func leakEntry(method, url string, res map[string]any) map[string]any {
	e := map[string]any{"request": map[string]any{"method": method, "url": url}}
	if res != nil {
		e["resource"] = res
	}
	return e
}

func leakObs(subject, text string) map[string]any {
	return map[string]any{"resourceType": "Observation", "status": "final", "subject": caseRef(subject), "code": map[string]any{"text": text}}
}

// entryStatuses returns the status codes of a batch/transaction response.
func entryStatuses(t *testing.T, r *servertest.Response) []int {
	t.Helper()
	var b struct {
		Entry []struct {
			Response struct {
				Status string `json:"status"`
			} `json:"response"`
		} `json:"entry"`
	}
	if err := json.Unmarshal(r.Body, &b); err != nil {
		t.Fatalf("bundle: %v", err)
	}
	var out []int
	for _, e := range b.Entry {
		var n int
		for _, c := range e.Response.Status {
			if c < '0' || c > '9' {
				break
			}
			n = n*10 + int(c-'0')
		}
		out = append(out, n)
	}
	return out
}

// follow fetches a first page and every next page as A.
func (f *leakFixture) follow(t *testing.T, tok, path string) ([]byte, string, int) {
	t.Helper()
	var all []byte
	pages := 0
	for p := path; p != ""; pages++ {
		if pages > 50 {
			t.Fatalf("more than 50 pages from %s", path)
		}
		r := f.e.do(t, tok, "GET", p, nil)
		wantStatus(t, r, 200)
		all = append(all, r.Body...)
		p = bundleLink(r.JSON(), "next")
	}
	return all, path, pages
}

// unchanged checks with the admin token that B's resource is still at
// version 1.
func (f *leakFixture) unchanged(t *testing.T, key string) {
	t.Helper()
	r := f.e.do(t, f.admin, "GET", key, nil)
	wantStatus(t, r, 200)
	if v := r.Header.Get("ETag"); v != `W/"1"` {
		t.Errorf("%s was changed: ETag %s", key, v)
	}
}

// leakRows is the compartment-leak matrix: every way of reading or writing
// data, as patient A. A new read path, search feature or operation joins
// it here.
func leakRows(f *leakFixture) []leakRow {
	a, b := f.a, f.b
	var rows []leakRow
	// read and vread of each of B's resources
	for _, k := range b.keys() {
		rows = append(rows,
			leakRow{name: "read " + k, method: "GET", path: k, status: 404},
			leakRow{name: "vread " + k, method: "GET", path: k + "/_history/1", status: 404},
			leakRow{name: "instance history " + k, method: "GET", path: k + "/_history", status: 404},
		)
	}
	rows = append(rows, []leakRow{
		{name: "read own", method: "GET", path: "Observation/" + a.lab, want: []string{a.marker}},
		{name: "type history", method: "GET", path: "Observation/_history", want: []string{a.lab, a.cross}},
		{name: "system history", method: "GET", path: "_history?_count=500", want: []string{a.pat, a.lab, a.eoc}},
		{name: "type search", method: "GET", path: "Observation?_count=500", want: []string{a.lab, a.cross}},
		{name: "search by B's patient", method: "GET", path: "Observation?patient=" + b.pat},
		{name: "search by B's subject", method: "GET", path: "Observation?subject=Patient/" + b.pat},
		{name: "search B's id", method: "GET", path: "Observation?_id=" + b.lab + "," + a.lab, want: []string{a.lab}},
		{name: "search by B's code", method: "GET", path: "Observation?code=urn:leak|" + b.code},
		{name: "search by B's identifier", method: "GET", path: "Patient?identifier=urn:leak|" + b.ident},
		{name: "POST _search", method: "POST", path: "Observation/_search", body: "patient=" + b.pat,
			hdr: []string{"Content-Type", "application/x-www-form-urlencoded"}},
		{name: "_include", method: "GET", path: "Observation?_id=" + a.cross + "&_include=Observation:has-member", want: []string{a.cross}},
		{name: "_include *", method: "GET", path: "Observation?_include=*&_count=500", want: []string{a.cross}},
		{name: "_include:iterate", method: "GET", path: "EpisodeOfCare?_include=EpisodeOfCare:patient&_include:iterate=Observation:has-member&_revinclude:iterate=Observation:subject",
			want: []string{a.eoc}},
		{name: "_revinclude", method: "GET", path: "Observation?_id=" + a.lab + "&_revinclude=Observation:derived-from", want: []string{a.lab}},
		{name: "_revinclude of A's patient", method: "GET", path: "Patient?_revinclude=Observation:subject&_revinclude=EpisodeOfCare:patient",
			want: []string{a.pat, a.lab, a.eoc}},
		{name: "_revinclude from B's patient", method: "GET", path: "Patient?_id=" + b.pat + "&_revinclude=Observation:subject"},
		{name: "_has over B's data", method: "GET", path: "Patient?_has:Observation:subject:code=urn:leak|" + b.code},
		{name: "_has through B's reference", method: "GET", path: "Observation?_has:Observation:derived-from:code=urn:leak|derived-b", not: []string{a.lab}},
		{name: "chain to B's patient", method: "GET", path: "Observation?subject:Patient.family=" + b.family},
		{name: "chain on B's identifier", method: "GET", path: "Observation?patient.identifier=urn:leak|" + b.ident},
		{name: "chain into A's data", method: "GET", path: "Observation?derived-from:Observation.code=urn:leak|" + a.code},
		{name: "_type system search", method: "GET", path: "?_type=Observation,Patient,Condition,EpisodeOfCare,CareTeam,Task,Coverage,Encounter,CarePlan&_count=500",
			want: []string{a.pat, a.lab, a.cond, a.eoc, a.team, a.cov, a.enc, a.cp}},
		{name: "system search", method: "GET", path: "?_lastUpdated=gt2000-01-01&_count=500", want: []string{a.pat, a.lab}},
		{name: "compartment of B", method: "GET", path: "Patient/" + b.pat + "/Observation"},
		{name: "compartment of B, all types", method: "GET", path: "Patient/" + b.pat + "/*"},
		{name: "own compartment, all types", method: "GET", path: "Patient/" + a.pat + "/*?_count=500", want: []string{a.pat, a.lab, a.cond, a.eoc}},
		{name: "own compartment with _include", method: "GET", path: "Patient/" + a.pat + "/Observation?_include=Observation:has-member", want: []string{a.cross}},

		// conditional interactions whose criteria match B's data
		{name: "conditional create matching B", method: "POST", path: "Observation", body: leakObs("Patient/"+a.pat, "cc"),
			hdr: []string{"If-None-Exist", "identifier=urn:leak|" + b.ident}, status: 201,
			check: func(t *testing.T, f *leakFixture, _ *servertest.Response) { f.unchanged(t, "Observation/"+f.b.lab) }},
		{name: "conditional update matching B", method: "PUT", path: "Observation?identifier=urn:leak|" + b.ident,
			body: leakObs("Patient/"+a.pat, "cu"), status: 201,
			check: func(t *testing.T, f *leakFixture, _ *servertest.Response) { f.unchanged(t, "Observation/"+f.b.lab) }},
		{name: "conditional patch matching B", method: "PATCH", path: "Observation?identifier=urn:leak|" + b.ident,
			body: `[{"op":"replace","path":"/status","value":"amended"}]`, hdr: []string{"Content-Type", "application/json-patch+json"}, status: 404,
			check: func(t *testing.T, f *leakFixture, _ *servertest.Response) { f.unchanged(t, "Observation/"+f.b.lab) }},
		{name: "conditional delete matching B", method: "DELETE", path: "Observation?identifier=urn:leak|" + b.ident, status: 204,
			check: func(t *testing.T, f *leakFixture, _ *servertest.Response) { f.unchanged(t, "Observation/"+f.b.lab) }},

		// writes into or out of B's compartment
		{name: "create in B's compartment", method: "POST", path: "Observation", body: leakObs("Patient/"+b.pat, "x"), status: 403},
		{name: "create B's patient record", method: "PUT", path: "Patient/" + b.pat + "-new", body: map[string]any{"resourceType": "Patient", "id": b.pat + "-new"}, status: 403},
		{name: "move A's resource to B", method: "PUT", path: "Condition/" + a.cond,
			body: map[string]any{"resourceType": "Condition", "id": a.cond, "subject": caseRef("Patient/" + b.pat)}, status: 403},
		{name: "patch A's resource to B", method: "PATCH", path: "Condition/" + a.cond,
			body: `[{"op":"replace","path":"/subject/reference","value":"Patient/` + b.pat + `"}]`, hdr: []string{"Content-Type", "application/json-patch+json"}, status: 403},
		{name: "update B's resource", method: "PUT", path: "Observation/" + b.lab,
			body: map[string]any{"resourceType": "Observation", "id": b.lab, "status": "final", "subject": caseRef("Patient/" + a.pat),
				"code": map[string]any{"text": "steal"}}, status: 403,
			check: func(t *testing.T, f *leakFixture, _ *servertest.Response) { f.unchanged(t, "Observation/"+f.b.lab) }},
		{name: "patch B's resource", method: "PATCH", path: "Observation/" + b.lab,
			body: `[{"op":"replace","path":"/status","value":"amended"}]`, hdr: []string{"Content-Type", "application/json-patch+json"}, status: 404},
		{name: "delete B's resource", method: "DELETE", path: "Condition/" + b.cond, status: 404,
			check: func(t *testing.T, f *leakFixture, _ *servertest.Response) { f.unchanged(t, "Condition/"+f.b.cond) }},

		// batch and transaction entries
		{name: "batch entries", method: "POST", path: "", body: leakTx("batch",
			leakEntry("GET", "Observation/"+b.lab, nil),
			leakEntry("GET", "Observation?patient="+b.pat, nil),
			leakEntry("GET", "Patient/"+b.pat+"/_history", nil),
			leakEntry("POST", "Observation", leakObs("Patient/"+b.pat, "batch")),
			leakEntry("GET", "EpisodeOfCare/"+b.eoc+"/$everything", nil),
			leakEntry("GET", "Observation/"+a.lab, nil),
		), want: []string{a.marker},
			check: func(t *testing.T, _ *leakFixture, r *servertest.Response) {
				if got, want := entryStatuses(t, r), []int{404, 200, 404, 403, 404, 200}; !slices.Equal(got, want) {
					t.Errorf("batch entry statuses %v, want %v", got, want)
				}
			}},
		{name: "transaction reading B", method: "POST", path: "", body: leakTx("transaction",
			leakEntry("GET", "Observation/"+a.lab, nil), leakEntry("GET", "Observation/"+b.lab, nil)), status: 404},
		{name: "transaction searching B", method: "POST", path: "", body: leakTx("transaction",
			leakEntry("GET", "Observation?patient="+b.pat, nil), leakEntry("GET", "Observation?_id="+a.lab, nil)), want: []string{a.lab}},
		{name: "transaction writing into B", method: "POST", path: "", body: leakTx("transaction",
			leakEntry("POST", "Observation", leakObs("Patient/"+a.pat, "tx ok")),
			leakEntry("POST", "Observation", leakObs("Patient/"+b.pat, "tx"))), status: 403},
		{name: "transaction conditional reference to B", method: "POST", path: "", body: leakTx("transaction",
			leakEntry("POST", "Observation", leakObs("Patient?identifier=urn:leak|"+b.ident, "tx ref"))), status: 412},
		{name: "transaction updating B", method: "POST", path: "", body: leakTx("transaction",
			leakEntry("PUT", "Observation/"+b.lab, map[string]any{"resourceType": "Observation", "id": b.lab, "status": "final",
				"subject": caseRef("Patient/" + a.pat), "code": map[string]any{"text": "tx steal"}})), status: 403},

		// operations
		{name: "$everything on B's case", method: "GET", path: "EpisodeOfCare/" + b.eoc + "/$everything", status: 404},
		{name: "$timeline on B's case", method: "GET", path: "EpisodeOfCare/" + b.eoc + "/$timeline", status: 404},
		{name: "$transition on B's case", method: "POST", path: "EpisodeOfCare/" + b.eoc + "/$transition",
			body: caseParams(caseParam("phase", "valueCoding", casePhaseCoding("implementation"))), status: 404},
		{name: "$everything on A's case", method: "GET", path: "EpisodeOfCare/" + a.eoc + "/$everything", want: []string{a.eoc, a.cp, a.cov, a.team}},
		{name: "$timeline on A's case", method: "GET", path: "EpisodeOfCare/" + a.eoc + "/$timeline", want: []string{a.eoc, a.cp}},
		{name: "$open-case on B's referral", method: "POST", path: "EpisodeOfCare/$open-case", body: caseParams(
			caseParam("patient", "valueReference", caseRef("Patient/"+b.pat)),
			caseParam("referral", "valueReference", caseRef("ServiceRequest/"+b.sr)),
			caseParam("careManager", "valueReference", caseRef("Practitioner/"+f.manager)),
			caseParam("managingOrganization", "valueReference", caseRef("Organization/"+f.org)),
			caseParam("category", "valueCoding", map[string]any{"system": mapping.SystemCategory, "code": "intermediate"}),
			caseParam("model", "valueCoding", map[string]any{"system": mapping.SystemModel, "code": "clinical"}),
		), status: -1, check: func(t *testing.T, f *leakFixture, r *servertest.Response) {
			if r.Status < 400 {
				t.Errorf("$open-case for B's referral succeeded: %d %s", r.Status, r.Body)
			}
		}},

		// paging
		{name: "paging through A's search", want: []string{a.lab, a.cross, a.marker},
			run: func(t *testing.T, f *leakFixture) ([]byte, string) {
				body, req, pages := f.follow(t, f.tokA, "Observation?_count=1")
				if pages < 2 {
					t.Errorf("A's search has %d pages, want several", pages)
				}
				return body, req
			}},
		{name: "paging through $everything", want: []string{a.eoc, a.cp},
			run: func(t *testing.T, f *leakFixture) ([]byte, string) {
				body, req, _ := f.follow(t, f.tokA, "EpisodeOfCare/"+f.a.eoc+"/$everything?_count=1")
				return body, req
			}},
		{name: "paging through $timeline", want: []string{a.eoc, a.cp},
			run: func(t *testing.T, f *leakFixture) ([]byte, string) {
				body, req, pages := f.follow(t, f.tokA, "EpisodeOfCare/"+f.a.eoc+"/$timeline?_count=1")
				if pages < 3 {
					t.Errorf("A's timeline has %d pages, want several", pages)
				}
				return body, req
			}},
		{name: "paging through Patient $everything", want: []string{a.pat, a.lab, a.cross, a.cond, a.cp, a.eoc, a.team},
			run: func(t *testing.T, f *leakFixture) ([]byte, string) {
				body, req, pages := f.follow(t, f.tokA, "Patient/"+f.a.pat+"/$everything?_count=1")
				if pages < 5 {
					t.Errorf("A's $everything has %d pages, want several", pages)
				}
				return body, req
			}},
		{name: "another caller's next links of A's operations", run: func(t *testing.T, f *leakFixture) ([]byte, string) {
			// The admin's cursors over A's own data are bound to the admin.
			var body []byte
			for _, op := range []string{"EpisodeOfCare/" + f.a.eoc + "/$everything", "EpisodeOfCare/" + f.a.eoc + "/$timeline", "Patient/" + f.a.pat + "/$everything"} {
				r := f.e.do(t, f.admin, "GET", op+"?_count=1", nil)
				wantStatus(t, r, 200)
				next := bundleLink(r.JSON(), "next")
				if next == "" {
					t.Fatalf("%s has no next link", op)
				}
				ra := f.e.do(t, f.tokA, "GET", next, nil)
				wantStatus(t, ra, 400)
				wantIssue(t, ra, "invalid")
				body = append(body, ra.Body...)
			}
			return body, ""
		}},
		{name: "paging through type history", want: []string{a.lab},
			run: func(t *testing.T, f *leakFixture) ([]byte, string) {
				body, req, _ := f.follow(t, f.tokA, "Observation/_history?_count=2")
				return body, req
			}},
		{name: "next link of B's search", run: func(t *testing.T, f *leakFixture) ([]byte, string) {
			rb := f.e.do(t, f.tokB, "GET", "Observation?_count=1", nil)
			wantStatus(t, rb, 200)
			next := bundleLink(rb.JSON(), "next")
			if next == "" {
				t.Fatalf("B's search has no next link: %s", rb.Body)
			}
			return f.e.do(t, f.tokA, "GET", next, nil).Body, next
		}},

		// bulk export
		{name: "patient-level $export", want: []string{a.pat, a.lab, a.eoc},
			run: func(t *testing.T, f *leakFixture) ([]byte, string) { return f.export(t, "Patient/$export"), "" }},
		{name: "$export of B's case", method: "GET", path: "EpisodeOfCare/" + b.eoc + "/$export", hdr: []string{"Prefer", "respond-async"}, status: 404},
	}...)
	return rows
}

// export runs a bulk export as A and returns every NDJSON file.
func (f *leakFixture) export(t *testing.T, path string) []byte {
	t.Helper()
	r := f.e.do(t, f.tokA, "GET", path, nil, "Prefer", "respond-async", "Accept", "application/fhir+json")
	if r.Status != http.StatusAccepted {
		t.Fatalf("kick-off %s: %d %s", path, r.Status, r.Body)
	}
	loc := r.Header.Get("Content-Location")
	deadline := time.Now().Add(60 * time.Second)
	var manifest *servertest.Response
	for manifest == nil {
		if time.Now().After(deadline) {
			t.Fatalf("export did not finish")
		}
		st := f.e.do(t, f.tokA, "GET", loc, nil)
		switch st.Status {
		case http.StatusAccepted:
			time.Sleep(100 * time.Millisecond)
		case http.StatusOK:
			manifest = st
		default:
			t.Fatalf("export status: %d %s", st.Status, st.Body)
		}
	}
	var m struct {
		Output []struct {
			URL string `json:"url"`
		} `json:"output"`
	}
	if err := json.Unmarshal(manifest.Body, &m); err != nil || len(m.Output) == 0 {
		t.Fatalf("manifest: %v %s", err, manifest.Body)
	}
	all := append([]byte(nil), manifest.Body...)
	for _, o := range m.Output {
		d := f.e.do(t, f.tokA, "GET", o.URL, nil)
		wantStatus(t, d, 200)
		all = append(all, d.Body...)
	}
	return all
}

// TestSMARTCompartmentLeakMatrix runs every row of leakRows as patient A
// and checks that nothing of patient B comes back.
func TestSMARTCompartmentLeakMatrix(t *testing.T) {
	f := newLeakFixture(t)
	// Sanity: B's data is there and B sees it.
	for _, k := range f.b.keys() {
		wantStatus(t, f.e.do(t, f.admin, "GET", k, nil), 200)
	}
	wantStatus(t, f.e.do(t, f.tokB, "GET", "Observation/"+f.b.lab, nil), 200)

	for _, row := range leakRows(f) {
		t.Run(row.name, func(t *testing.T) {
			var body []byte
			request := row.path
			if row.run != nil {
				body, request = row.run(t, f)
			} else {
				r := f.e.do(t, f.tokA, row.method, row.path, row.body, row.hdr...)
				body = r.Body
				if js, err := json.Marshal(row.body); err == nil {
					request += string(js)
				}
				request += strings.Join(row.hdr, " ")
				want := row.status
				if want == 0 {
					want = 200
				}
				if want > 0 && r.Status != want {
					t.Errorf("%s %s: status %d, want %d: %s", row.method, row.path, r.Status, want, r.Body)
				}
				if row.check != nil {
					row.check(t, f, r)
				}
			}
			text := string(body)
			// Base64 payloads (e.g. Binary) are checked too.
			if dec, err := base64.StdEncoding.DecodeString(text); err == nil {
				text += string(dec)
			}
			for _, s := range f.forbidden(request) {
				if strings.Contains(text, s) {
					i := strings.Index(text, s)
					t.Errorf("the response contains %s of patient B: ...%s...", s, text[max(0, i-300):min(len(text), i+200)])
				}
			}
			for _, s := range row.want {
				if !strings.Contains(text, s) {
					t.Errorf("the response lacks %q of patient A: %.1000s", s, body)
				}
			}
			for _, s := range row.not {
				if strings.Contains(text, s) {
					t.Errorf("the response contains %q, reachable only through B's data: %.1000s", s, body)
				}
			}
		})
	}

	// Nothing of B was changed or deleted by any row.
	for _, k := range f.b.keys() {
		r := f.e.do(t, f.admin, "GET", k, nil)
		if r.Status != 200 {
			t.Errorf("%s after the matrix: %d", k, r.Status)
		}
	}
	r := f.e.do(t, f.admin, "GET", "Observation?subject=Patient/"+f.b.pat+"&_count=100", nil)
	if ids := bundleIDs(r); len(ids) != 2 {
		t.Errorf("B's observations after the matrix: %v, want the 2 seeded", ids)
	}
}
