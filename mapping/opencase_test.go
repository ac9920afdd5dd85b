package mapping

import (
	"fmt"
	"strings"
	"testing"

	"github.com/casefhir/casefhir/fhir/outcome"
)

func seqUUID() func() string {
	n := 0
	return func() string { n++; return fmt.Sprintf("00000000-0000-4000-8000-%012d", n) }
}

func TestOpenCase(t *testing.T) {
	referral := jsonRes(t, `{"resourceType":"ServiceRequest","id":"ref1","status":"active","intent":"order",
		"subject":{"reference":"Patient/p1"},"requester":{"reference":"Organization/insurer"}}`)
	res, err := OpenCase(OpenCaseParams{
		Referral: "ServiceRequest/ref1", ReferralResource: referral,
		CareManager: "Practitioner/cm", ManagingOrganization: "Organization/o1",
		Category: coding(SystemCategory, "long-term", ""), Model: coding(SystemModel, "brokerage", ""),
		Now: t0, NewUUID: seqUUID(),
	})
	if err != nil {
		t.Fatal(err)
	}
	eoc, team, task := res.Episode, res.CareTeam, res.Task
	if res.EpisodeURN != "urn:uuid:00000000-0000-4000-8000-000000000001" || res.CareTeamURN == res.TaskURN {
		t.Fatalf("urns %s %s %s", res.EpisodeURN, res.CareTeamURN, res.TaskURN)
	}
	if Status(eoc) != "planned" || Phase(eoc) != PhaseScreening || Patient(eoc) != "Patient/p1" ||
		Category(eoc) != "long-term" || Models(eoc)[0] != "brokerage" ||
		refString(objs(eoc, "referralRequest")[0]) != "ServiceRequest/ref1" ||
		refString(objs(eoc, "team")[0]) != res.CareTeamURN || refString(eoc["careManager"]) != "Practitioner/cm" {
		t.Fatalf("episode %s", mustJSON(t, eoc))
	}
	if CaseLinks("CareTeam", team)[0] != res.EpisodeURN || CaseLinks("Task", task)[0] != res.EpisodeURN {
		t.Fatal("not linked to the case")
	}
	p := objs(team, "participant")
	if len(p) != 1 || !hasCoding(objs(p[0], "role")[0], SystemSNOMED, CodeCaseManagerRole) || refString(p[0]["member"]) != "Practitioner/cm" {
		t.Fatalf("care team %s", mustJSON(t, team))
	}
	if refString(task["for"]) != "Patient/p1" || refString(task["focus"]) != res.EpisodeURN || !IsOpenTask(task) {
		t.Fatalf("task %s", mustJSON(t, task))
	}
	// The case it builds is what the create rules would store.
	stored, err := CheckEpisodeWrite(ctx, nil, eoc, nil, t0)
	wantRules(t, err)
	if mustJSON(t, stored) != mustJSON(t, eoc) {
		t.Fatalf("create rules change the opened case:\n%s\n%s", mustJSON(t, stored), mustJSON(t, eoc))
	}
	// Transaction bundle
	b := res.Transaction()
	es := objs(b, "entry")
	if str(b, "type") != "transaction" || len(es) != 3 || str(es[0], "fullUrl") != res.EpisodeURN ||
		str(obj(es[2], "request"), "url") != "Task" {
		t.Fatalf("bundle %s", mustJSON(t, b))
	}
	// Later steps of a case: the case manager can activate it once the team is stored.
	eoc["id"] = "c1"
	eoc["team"] = []any{reference("CareTeam/t1")}
	_, err = Transition(ctx, eoc, TransitionParams{Status: "active", Phase: PhaseRiskAssessment}, nil, t1)
	wantRules(t, err)
}

func TestOpenCaseParameters(t *testing.T) {
	referral := jsonRes(t, `{"resourceType":"ServiceRequest","id":"r","subject":{"reference":"Patient/p1"}}`)
	// patient defaults to the referral's subject; no referral resource needs a patient
	_, err := OpenCase(OpenCaseParams{Referral: "ServiceRequest/r", Now: t0})
	wantCode(t, err, outcome.Invalid)
	res, err := OpenCase(OpenCaseParams{Referral: "ServiceRequest/r", Patient: "Patient/p7", Now: t0})
	if err != nil || Patient(res.Episode) != "Patient/p7" || present(res.Episode, "type") || present(res.CareTeam, "participant") {
		t.Fatalf("%v %s", err, mustJSON(t, res.Episode))
	}
	if !strings.HasPrefix(res.EpisodeURN, "urn:uuid:") || len(res.EpisodeURN) != 45 || res.EpisodeURN == res.TaskURN {
		t.Fatalf("random urn %s", res.EpisodeURN)
	}
	// a patient other than the referral's subject
	_, err = OpenCase(OpenCaseParams{Referral: "ServiceRequest/r", ReferralResource: referral, Patient: "Patient/p2", Now: t0})
	wantRules(t, err, RuleSamePatient)
	for _, p := range []OpenCaseParams{
		{Referral: "Patient/p1"},
		{Referral: "ServiceRequest/r", ReferralResource: referral, Patient: "Group/g"},
		{Referral: "ServiceRequest/r", ReferralResource: referral, CareManager: "Organization/x"},
		{Referral: "ServiceRequest/r", ReferralResource: referral, ManagingOrganization: "Practitioner/x"},
		{Referral: "ServiceRequest/r", ReferralResource: referral, Category: coding(SystemModel, "clinical", "")},
		{Referral: "ServiceRequest/r", ReferralResource: referral, Model: coding(SystemModel, "heroic", "")},
	} {
		_, err := OpenCase(p)
		wantCode(t, err, outcome.Invalid)
	}
}
