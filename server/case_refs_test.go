package server_test

import (
	"testing"

	"github.com/casefhir/casefhir/server/auth/authtest"
	"github.com/casefhir/casefhir/server/servertest"
)

// caseCounts returns how many versions of the types $open-case writes are
// stored.
func caseCounts(t *testing.T, s *servertest.Server) int {
	t.Helper()
	return caseHistoryTotal(t, s, "EpisodeOfCare") + caseHistoryTotal(t, s, "CareTeam") + caseHistoryTotal(t, s, "Task")
}

// wantUnresolved asserts a 422 OperationOutcome for an unresolvable reference.
func wantUnresolved(t *testing.T, r *servertest.Response) {
	t.Helper()
	wantStatus(t, r, 422)
	if codes := r.IssueCodes(); len(codes) == 0 || codes[0] != "not-found" {
		t.Fatalf("issue codes %v: %s", codes, r.Body)
	}
}

// TestOpenCaseReferencesMustResolve: $open-case from a referral (or with a
// patient, case manager or organisation) that cannot be read fails and
// creates nothing.
func TestOpenCaseReferencesMustResolve(t *testing.T) {
	f := newCaseFixture(t)
	s := f.s
	deleted := "ServiceRequest/" + caseCreate(t, s, map[string]any{"resourceType": "ServiceRequest", "status": "active",
		"intent": "order", "subject": caseRef(f.patient)})
	wantStatus(t, s.Do(t, "DELETE", deleted, nil), 204)
	before := caseCounts(t, s)
	for name, params := range map[string]map[string]any{
		"missing referral": caseParams(caseParam("referral", "valueReference", caseRef("ServiceRequest/does-not-exist")),
			caseParam("patient", "valueReference", caseRef(f.patient))),
		"deleted referral": caseParams(caseParam("referral", "valueReference", caseRef(deleted)),
			caseParam("patient", "valueReference", caseRef(f.patient))),
		"missing patient": caseParams(caseParam("referral", "valueReference", caseRef(f.ref)),
			caseParam("patient", "valueReference", caseRef("Patient/nobody"))),
		"missing care manager": caseParams(caseParam("referral", "valueReference", caseRef(f.ref)),
			caseParam("careManager", "valueReference", caseRef("Practitioner/nobody"))),
		"missing organisation": caseParams(caseParam("referral", "valueReference", caseRef(f.ref)),
			caseParam("managingOrganization", "valueReference", caseRef("Organization/nobody"))),
	} {
		t.Run(name, func(t *testing.T) {
			wantUnresolved(t, s.Do(t, "POST", "EpisodeOfCare/$open-case", params))
		})
	}
	if after := caseCounts(t, s); after != before {
		t.Errorf("refused $open-case wrote: %d versions before, %d after", before, after)
	}
	// The referral resolves: the case opens.
	f.open(t)
}

// TestTransitionReferencesMustResolve: activating a case whose CareTeam
// does not exist fails with nothing written.
func TestTransitionReferencesMustResolve(t *testing.T) {
	f := newCaseFixture(t)
	oc := f.open(t)
	wantStatus(t, f.s.Do(t, "DELETE", "CareTeam/"+oc.team, nil), 204)
	r := f.transition(t, oc.id, "active", "planning")
	wantUnresolved(t, r)
	if got := f.read(t, "EpisodeOfCare/"+oc.id)["status"]; got != "planned" {
		t.Errorf("status after refused transition: %v", got)
	}
}

// TestOpenCaseReferralOutsideAccess: a referral the caller may not read is
// as good as missing.
func TestOpenCaseReferralOutsideAccess(t *testing.T) {
	e := startSMART(t, smartOptions{AuditOff: true}, authtest.Client{ID: "backend"})
	all := e.prov.Token(t, "backend", "system/*.cruds")
	pat := e.do(t, all, "POST", "Patient", map[string]any{"resourceType": "Patient"})
	wantStatus(t, pat, 201)
	sr := e.do(t, all, "POST", "ServiceRequest", map[string]any{"resourceType": "ServiceRequest", "status": "active",
		"intent": "order", "subject": caseRef("Patient/" + pat.JSON()["id"].(string))})
	wantStatus(t, sr, 201)
	open := caseParams(caseParam("referral", "valueReference", caseRef("ServiceRequest/"+sr.JSON()["id"].(string))))
	noRead := e.prov.Token(t, "backend", "system/EpisodeOfCare.c system/CareTeam.c system/Task.c")
	wantUnresolved(t, e.do(t, noRead, "POST", "EpisodeOfCare/$open-case", open))
	wantStatus(t, e.do(t, all, "POST", "EpisodeOfCare/$open-case", open), 201)
}
