package server_test

import (
	"encoding/json"
	"fmt"
	"net/http"
	"slices"
	"strings"
	"testing"

	"github.com/casefhir/casefhir/mapping"
	"github.com/casefhir/casefhir/server/servertest"
)

// caseFixture is a server with a patient, a second patient, a case
// manager, an organisation and a referral.
type caseFixture struct {
	s                                 *servertest.Server
	patient, other, manager, org, ref string
}

func newCaseFixture(t *testing.T) *caseFixture {
	t.Helper()
	s := servertest.Start(t, servertest.Options{})
	f := &caseFixture{s: s}
	f.patient = "Patient/" + caseCreate(t, s, map[string]any{"resourceType": "Patient", "name": []any{map[string]any{"family": "Case"}}})
	f.other = "Patient/" + caseCreate(t, s, map[string]any{"resourceType": "Patient", "name": []any{map[string]any{"family": "Other"}}})
	f.manager = "Practitioner/" + caseCreate(t, s, map[string]any{"resourceType": "Practitioner", "name": []any{map[string]any{"family": "Manager"}}})
	f.org = "Organization/" + caseCreate(t, s, map[string]any{"resourceType": "Organization", "name": "Hospital"})
	f.ref = "ServiceRequest/" + caseCreate(t, s, map[string]any{"resourceType": "ServiceRequest", "status": "active",
		"intent": "order", "subject": caseRef(f.patient), "code": map[string]any{"text": "Case management"}})
	return f
}

func caseRef(s string) map[string]any { return map[string]any{"reference": s} }

func caseCreate(t *testing.T, s *servertest.Server, res map[string]any) string {
	t.Helper()
	r := s.Do(t, "POST", res["resourceType"].(string), res)
	wantStatus(t, r, 201)
	return r.JSON()["id"].(string)
}

// openedCase is what $open-case created.
type openedCase struct {
	id, team, task string
}

// open runs $open-case with the case manager, organisation, category
// intermediate and model clinical.
func (f *caseFixture) open(t *testing.T) openedCase {
	t.Helper()
	r := f.s.Do(t, "POST", "EpisodeOfCare/$open-case", caseParams(
		caseParam("referral", "valueReference", caseRef(f.ref)),
		caseParam("careManager", "valueReference", caseRef(f.manager)),
		caseParam("managingOrganization", "valueReference", caseRef(f.org)),
		caseParam("category", "valueCoding", map[string]any{"system": mapping.SystemCategory, "code": "intermediate"}),
		caseParam("model", "valueCoding", map[string]any{"system": mapping.SystemModel, "code": "clinical"}),
	))
	wantStatus(t, r, 201)
	return openedFrom(t, f.s, r)
}

// openedFrom reads the ids of the case, its CareTeam and intake Task from
// a $open-case transaction-response.
func openedFrom(t *testing.T, s *servertest.Server, r *servertest.Response) openedCase {
	t.Helper()
	var oc openedCase
	for _, e := range r.JSON()["entry"].([]any) {
		loc := e.(map[string]any)["response"].(map[string]any)["location"].(string)
		parts := strings.Split(strings.TrimPrefix(loc, s.URL+"/"), "/")
		switch parts[0] {
		case "EpisodeOfCare":
			oc.id = parts[1]
		case "CareTeam":
			oc.team = parts[1]
		case "Task":
			oc.task = parts[1]
		}
	}
	if oc.id == "" || oc.team == "" || oc.task == "" {
		t.Fatalf("$open-case created %+v: %s", oc, r.Body)
	}
	return oc
}

func caseParams(ps ...map[string]any) map[string]any {
	return map[string]any{"resourceType": "Parameters", "parameter": caseAnyList(ps)}
}

func caseParam(name, typ string, v any) map[string]any {
	return map[string]any{"name": name, typ: v}
}

func caseAnyList(ms []map[string]any) []any {
	out := make([]any, len(ms))
	for i, m := range ms {
		out[i] = m
	}
	return out
}

func casePhaseCoding(p string) map[string]any {
	return map[string]any{"system": mapping.SystemPhase, "code": p}
}

// transition runs $transition; extra are more parameters.
func (f *caseFixture) transition(t *testing.T, id, status, phase string, extra ...map[string]any) *servertest.Response {
	t.Helper()
	var ps []map[string]any
	if status != "" {
		ps = append(ps, caseParam("status", "valueCode", status))
	}
	if phase != "" {
		ps = append(ps, caseParam("phase", "valueCoding", casePhaseCoding(phase)))
	}
	return f.s.Do(t, "POST", "EpisodeOfCare/"+id+"/$transition", caseParams(append(ps, extra...)...))
}

func caseReason(code string) map[string]any {
	return caseParam("reason", "valueCodeableConcept", map[string]any{"coding": []any{
		map[string]any{"system": mapping.SystemClosureReason, "code": code}}})
}

func (f *caseFixture) mustTransition(t *testing.T, id, status, phase string, extra ...map[string]any) map[string]any {
	t.Helper()
	r := f.transition(t, id, status, phase, extra...)
	wantStatus(t, r, 200)
	return r.JSON()
}

// read returns the current resource.
func (f *caseFixture) read(t *testing.T, key string) map[string]any {
	t.Helper()
	r := f.s.Do(t, "GET", key, nil)
	wantStatus(t, r, 200)
	return r.JSON()
}

// activate moves a freshly opened case to active, phase planning.
func (f *caseFixture) activate(t *testing.T, id string) {
	t.Helper()
	f.mustTransition(t, id, "active", "planning")
}

// linked returns a resource of typ linked to the case, about patient.
func caseLinked(typ, caseID, patient string, fields map[string]any) map[string]any {
	m := map[string]any{"resourceType": typ, "extension": []any{map[string]any{
		"url": mapping.ExtEpisodeOfCare, "valueReference": caseRef("EpisodeOfCare/" + caseID)}}}
	for _, el := range mapping.PatientElements(typ)[:1] {
		if typ == "Appointment" {
			m["participant"] = []any{map[string]any{"actor": caseRef(patient), "status": "accepted"}}
			continue
		}
		m[el] = caseRef(patient)
	}
	for k, v := range fields {
		m[k] = v
	}
	return m
}

// wantCaseRule checks a 422 OperationOutcome naming rule (a case-rule code)
// and, when given, mentioning each of refs.
func wantCaseRule(t *testing.T, r *servertest.Response, rule mapping.Rule, refs ...string) {
	t.Helper()
	if r.Status != http.StatusUnprocessableEntity {
		t.Fatalf("status %d, want 422 (%s); body: %s", r.Status, rule, r.Body)
	}
	found, texts := false, ""
	for _, iss := range caseList(r.JSON()["issue"]) {
		im := iss.(map[string]any)
		if im["code"] != "business-rule" {
			continue
		}
		d, _ := im["details"].(map[string]any)
		for _, c := range caseList(d["coding"]) {
			cm := c.(map[string]any)
			if cm["system"] == mapping.SystemRule && cm["code"] == string(rule) {
				found = true
				text, _ := d["text"].(string)
				texts += text + "\n"
			}
		}
	}
	if !found {
		t.Fatalf("no business-rule issue with case-rule %s; body: %s", rule, r.Body)
	}
	for _, rf := range refs {
		if !strings.Contains(texts, rf) {
			t.Errorf("rule %s: details.text %q does not list %s", rule, texts, rf)
		}
	}
}

// caseWritePath writes a new version of an existing resource one way.
type caseWritePath struct {
	name  string
	write func(t *testing.T, s *servertest.Server, key string, old, next map[string]any) *servertest.Response
}

// caseUpdatePaths are the ways to update a resource.
func caseUpdatePaths() []caseWritePath {
	return []caseWritePath{
		{"PUT", func(t *testing.T, s *servertest.Server, key string, _, next map[string]any) *servertest.Response {
			return s.Do(t, "PUT", key, next)
		}},
		{"PATCH", func(t *testing.T, s *servertest.Server, key string, old, next map[string]any) *servertest.Response {
			return s.Do(t, "PATCH", key, caseJSONPatch(old, next), "Content-Type", "application/json-patch+json")
		}},
		{"transaction", func(t *testing.T, s *servertest.Server, key string, _, next map[string]any) *servertest.Response {
			return caseUnwrapTx(t, s.Do(t, "POST", "", caseBundle("transaction", caseTxEntry("PUT", key, next))))
		}},
	}
}

type caseCreatePath struct {
	name   string
	create func(t *testing.T, s *servertest.Server, res map[string]any) *servertest.Response
}

// caseCreatePaths are the ways to create a resource.
func caseCreatePaths() []caseCreatePath {
	return []caseCreatePath{
		{"POST", func(t *testing.T, s *servertest.Server, res map[string]any) *servertest.Response {
			return s.Do(t, "POST", res["resourceType"].(string), res)
		}},
		{"transaction", func(t *testing.T, s *servertest.Server, res map[string]any) *servertest.Response {
			return caseUnwrapTx(t, s.Do(t, "POST", "", caseBundle("transaction", caseTxEntry("POST", res["resourceType"].(string), res))))
		}},
		{"batch", func(t *testing.T, s *servertest.Server, res map[string]any) *servertest.Response {
			return caseUnwrapBatch(t, s.Do(t, "POST", "", caseBundle("batch", caseTxEntry("POST", res["resourceType"].(string), res))))
		}},
	}
}

func caseBundle(typ string, entries ...map[string]any) map[string]any {
	return map[string]any{"resourceType": "Bundle", "type": typ, "entry": caseAnyList(entries)}
}

func caseTxEntry(method, url string, res map[string]any) map[string]any {
	e := map[string]any{"request": map[string]any{"method": method, "url": url}}
	if res != nil {
		e["resource"] = res
	}
	return e
}

// caseUnwrapTx returns a transaction's answer as is: the failing entry's
// OperationOutcome with its status, or the response Bundle.
func caseUnwrapTx(t *testing.T, r *servertest.Response) *servertest.Response {
	t.Helper()
	if r.Status == 200 {
		return caseUnwrapBatch(t, r)
	}
	return r
}

// caseUnwrapBatch turns a one-entry batch/transaction response into the
// entry's own answer (status from response.status, body from the resource
// or outcome).
func caseUnwrapBatch(t *testing.T, r *servertest.Response) *servertest.Response {
	t.Helper()
	if r.Status != 200 {
		return r
	}
	es, _ := r.JSON()["entry"].([]any)
	if len(es) != 1 {
		t.Fatalf("want one response entry: %s", r.Body)
	}
	e := es[0].(map[string]any)
	resp := e["response"].(map[string]any)
	var status int
	_, _ = fmt.Sscanf(resp["status"].(string), "%d", &status)
	var body any = e["resource"]
	if o, ok := resp["outcome"]; ok {
		body = o
	}
	js, _ := json.Marshal(body)
	return &servertest.Response{Status: status, Header: http.Header{}, Body: js}
}

// caseJSONPatch returns an RFC 6902 patch turning old into next, top-level
// members only.
func caseJSONPatch(old, next map[string]any) []any {
	var ops []any
	keys := make([]string, 0, len(old)+len(next))
	for k := range old {
		keys = append(keys, k)
	}
	for k := range next {
		keys = append(keys, k)
	}
	slices.Sort(keys)
	keys = slices.Compact(keys)
	for _, k := range keys {
		if k == "meta" || k == "id" || k == "text" {
			continue
		}
		ov, inOld := old[k]
		nv, inNext := next[k]
		switch {
		case inOld && !inNext:
			ops = append(ops, map[string]any{"op": "remove", "path": "/" + k})
		case !inOld && inNext:
			ops = append(ops, map[string]any{"op": "add", "path": "/" + k, "value": nv})
		default:
			a, _ := json.Marshal(ov)
			b, _ := json.Marshal(nv)
			if string(a) != string(b) {
				ops = append(ops, map[string]any{"op": "replace", "path": "/" + k, "value": nv})
			}
		}
	}
	return ops
}

// caseClone deep-copies a JSON object.
func caseClone(m map[string]any) map[string]any {
	b, _ := json.Marshal(m)
	var out map[string]any
	_ = json.Unmarshal(b, &out)
	return out
}

// caseWithPhase sets the case-phase extension.
func caseWithPhase(eoc map[string]any, phase string) map[string]any {
	var exts []any
	for _, e := range caseList(eoc["extension"]) {
		if e.(map[string]any)["url"] != mapping.ExtPhase {
			exts = append(exts, e)
		}
	}
	if phase != "" {
		exts = append(exts, map[string]any{"url": mapping.ExtPhase, "valueCoding": casePhaseCoding(phase)})
	}
	eoc["extension"] = exts
	if len(exts) == 0 {
		delete(eoc, "extension")
	}
	return eoc
}

func caseList(v any) []any { l, _ := v.([]any); return l }

func casePhaseOf(eoc map[string]any) string { return mapping.Phase(eoc) }

func caseJSON(v any) []byte { b, _ := json.Marshal(v); return b }
