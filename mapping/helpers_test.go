package mapping

import (
	"context"
	"encoding/json"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/casefhir/casefhir/fhir/outcome"
)

var (
	t0  = time.Date(2025, 3, 1, 9, 0, 0, 0, time.UTC)
	t1  = t0.Add(24 * time.Hour)
	ctx = context.Background()
)

// fakeReader is an in-memory Reader.
type fakeReader struct {
	episodes map[string]map[string]any
	// linked maps episode id -> type -> resources
	linked map[string]map[string][]map[string]any
	err    error
}

func newReader() *fakeReader {
	return &fakeReader{episodes: map[string]map[string]any{}, linked: map[string]map[string][]map[string]any{}}
}

func (f *fakeReader) Episode(_ context.Context, id string) (map[string]any, error) {
	if f.err != nil {
		return nil, f.err
	}
	e, ok := f.episodes[id]
	if !ok {
		return nil, outcome.New(outcome.NotFound, "no such resource")
	}
	return e, nil
}

func (f *fakeReader) Linked(_ context.Context, id, typ string) ([]map[string]any, error) {
	if f.err != nil {
		return nil, f.err
	}
	return f.linked[id][typ], nil
}

func (f *fakeReader) link(id string, res ...map[string]any) {
	if f.linked[id] == nil {
		f.linked[id] = map[string][]map[string]any{}
	}
	for _, r := range res {
		typ := ResourceType(r)
		f.linked[id][typ] = append(f.linked[id][typ], r)
	}
}

// jsonRes builds a resource from JSON text, failing the test on bad JSON.
func jsonRes(t testing.TB, s string) map[string]any {
	t.Helper()
	m, err := Decode([]byte(s))
	if err != nil {
		t.Fatalf("bad test JSON: %v\n%s", err, s)
	}
	return m
}

// managedCase returns a stored managed case (id "c1") with everything
// G-ACT needs, in the given status and phase, its histories started at t0.
func managedCase(status, phase string) map[string]any {
	at := formatTime(t0)
	return map[string]any{
		"resourceType": "EpisodeOfCare",
		"id":           "c1",
		"extension": []any{
			map[string]any{"url": ExtPhase, "valueCoding": phaseCoding(phase)},
			phaseHistoryEntry(phase, at),
		},
		"status":        status,
		"statusHistory": []any{map[string]any{"status": status, "period": map[string]any{"start": at}}},
		"type": []any{
			map[string]any{"coding": []any{coding(SystemCategory, CategoryAcute, "")}},
			map[string]any{"coding": []any{coding(SystemModel, ModelClinical, "")}},
		},
		"patient":              reference("Patient/p1"),
		"managingOrganization": reference("Organization/o1"),
		"period":               map[string]any{"start": "2025-02-01"},
		"careManager":          reference("Practitioner/cm"),
		"team":                 []any{reference("CareTeam/t1")},
	}
}

// withUpdate returns a copy of eoc with status and phase set.
func withUpdate(eoc map[string]any, status, phase string) map[string]any {
	n := Clone(eoc)
	n["status"] = status
	setExtensions(n, ExtPhase, map[string]any{"url": ExtPhase, "valueCoding": phaseCoding(phase)})
	return n
}

func setStatusReason(eoc map[string]any, text string) {
	hs := objs(eoc, "statusHistory")
	hs = append(hs, map[string]any{
		"status":    Status(eoc),
		"period":    map[string]any{"start": "2020-01-01"},
		"extension": []any{map[string]any{"url": ExtStatusReason, "valueCodeableConcept": map[string]any{"text": text}}},
	})
	eoc["statusHistory"] = toAny(hs)
}

func setClosureReason(eoc map[string]any, code string) {
	setExtensions(eoc, ExtClosureReason, map[string]any{"url": ExtClosureReason,
		"valueCodeableConcept": map[string]any{"coding": []any{coding(SystemClosureReason, code, "")}}})
}

func outcomeEvaluation(id, status string) map[string]any {
	return map[string]any{
		"resourceType": "ClinicalImpression", "id": id, "status": status,
		"code":    map[string]any{"coding": []any{coding(SystemDocument, CodeOutcomeEvaluation, "")}},
		"subject": reference("Patient/p1"),
	}
}

func res(typ, id, status string) map[string]any {
	return map[string]any{"resourceType": typ, "id": id, "status": status}
}

// wantRules checks that err is a 422 business-rule error naming exactly
// the given rules (in any order); no rules means err must be nil.
func wantRules(t *testing.T, err error, rules ...Rule) {
	t.Helper()
	if len(rules) == 0 {
		if err != nil {
			t.Fatalf("unexpected error: %v", issuesText(err))
		}
		return
	}
	if err == nil {
		t.Fatalf("no error, want rules %v", rules)
	}
	e := outcome.As(err)
	if e.HTTPStatus() != 422 || e.Code != outcome.BusinessRule {
		t.Fatalf("status %d code %s, want 422 business-rule: %v", e.HTTPStatus(), e.Code, err)
	}
	got := Rules(err)
	g, w := slices.Clone(got), slices.Clone(rules)
	slices.Sort(g)
	slices.Sort(w)
	if !slices.Equal(g, w) {
		t.Fatalf("rules %v, want %v\n%s", got, rules, issuesText(err))
	}
	for _, i := range e.AllIssues() {
		if i.Detail == "" || i.Code != outcome.BusinessRule {
			t.Errorf("issue without detail or with code %s: %+v", i.Code, i)
		}
	}
}

func wantCode(t *testing.T, err error, code outcome.Code) {
	t.Helper()
	if !outcome.Is(err, code) {
		t.Fatalf("error %v, want code %s", err, code)
	}
}

func issuesText(err error) string {
	e := outcome.As(err)
	if e == nil {
		return "<nil>"
	}
	var b strings.Builder
	for _, i := range e.AllIssues() {
		b.WriteString(string(i.Code))
		for _, c := range i.Coding {
			b.WriteString(" [" + c.Code + "]")
		}
		b.WriteString(" " + i.Detail + "\n")
	}
	return b.String()
}

func detailOf(err error, rule Rule) string {
	for _, i := range outcome.As(err).AllIssues() {
		for _, c := range i.Coding {
			if c.Code == string(rule) {
				return i.Detail
			}
		}
	}
	return ""
}

func mustJSON(t *testing.T, v any) string {
	t.Helper()
	b, err := json.Marshal(v)
	if err != nil {
		t.Fatal(err)
	}
	return string(b)
}
