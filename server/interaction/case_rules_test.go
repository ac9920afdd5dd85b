package interaction

import (
	"context"
	"testing"
	"time"

	"github.com/casefhir/casefhir/fhir/outcome"
	"github.com/casefhir/casefhir/fhir/store"
	"github.com/casefhir/casefhir/mapping"
)

// caseFakeStore serves Read from a map; other methods are not used.
type caseFakeStore struct {
	store.Store
	res map[string]*store.Resource
}

func (s *caseFakeStore) Read(_ context.Context, typ, id string) (*store.Resource, error) {
	if r, ok := s.res[typ+"/"+id]; ok {
		return r, nil
	}
	return nil, outcome.New(outcome.NotFound, "not found")
}

func TestCaseHook(t *testing.T) {
	now := time.Date(2025, 3, 1, 9, 0, 0, 0, time.UTC)
	fs := &caseFakeStore{res: map[string]*store.Resource{}}
	h := New(Options{Store: fs, Now: func() time.Time { return now }})
	c := &CaseRules{}
	ctx := context.Background()

	// A plain EpisodeOfCare is untouched.
	plain := []byte(`{"resourceType":"EpisodeOfCare","status":"active","patient":{"reference":"Patient/p"}}`)
	w := &Write{Type: "EpisodeOfCare", ID: "c0", Body: plain}
	if err := c.Hook(ctx, h, w); err != nil || string(w.Body) != string(plain) {
		t.Fatalf("plain: %v %s", err, w.Body)
	}

	// A managed case gets its histories.
	body := []byte(`{"resourceType":"EpisodeOfCare","status":"planned","patient":{"reference":"Patient/p"},
		"extension":[{"url":"` + mapping.ExtPhase + `","valueCoding":{"system":"` + mapping.SystemPhase + `","code":"screening"}}]}`)
	w = &Write{Type: "EpisodeOfCare", ID: "c1", Body: body}
	if err := c.Hook(ctx, h, w); err != nil {
		t.Fatal(err)
	}
	m, _ := mapping.Decode(w.Body)
	if len(mapping.PhaseHistoryOf(m)) != 1 || m["statusHistory"] == nil || mapping.ID(m) != "c1" {
		t.Fatalf("managed create: %s", w.Body)
	}
	stored := &store.Resource{Type: "EpisodeOfCare", ID: "c1", VersionID: 1, LastUpdated: now, JSON: w.Body}
	fs.res["EpisodeOfCare/c1"] = stored

	// Dropping the phase is refused.
	w = &Write{Type: "EpisodeOfCare", ID: "c1", Prev: stored, Body: plain}
	if err := c.Hook(ctx, h, w); !outcome.Is(err, outcome.BusinessRule) {
		t.Fatalf("drop phase: %v", err)
	}

	// A linked resource naming another patient is refused; the case is found in the store.
	goal := []byte(`{"resourceType":"Goal","subject":{"reference":"Patient/other"},
		"extension":[{"url":"` + mapping.ExtEpisodeOfCare + `","valueReference":{"reference":"EpisodeOfCare/c1"}}]}`)
	err := c.Hook(ctx, h, &Write{Type: "Goal", ID: "g1", Body: goal})
	if got := mapping.Rules(err); len(got) != 1 || got[0] != mapping.RuleSamePatient {
		t.Fatalf("same-patient: %v", err)
	}
	// ... and a link to a case pending in the same transaction resolves.
	tx := &TxContext{Pending: map[string]*store.Resource{"EpisodeOfCare/c9": {Type: "EpisodeOfCare", ID: "c9", JSON: stored.JSON}}}
	goal = []byte(`{"resourceType":"Goal","subject":{"reference":"Patient/p"},
		"extension":[{"url":"` + mapping.ExtEpisodeOfCare + `","valueReference":{"reference":"EpisodeOfCare/c9"}}]}`)
	if err := c.Hook(ctx, h, &Write{Type: "Goal", ID: "g2", Body: goal, Batch: tx}); err != nil {
		t.Fatal(err)
	}
	err = c.Hook(ctx, h, &Write{Type: "Goal", ID: "g3", Body: goal})
	if got := mapping.Rules(err); len(got) != 1 || got[0] != mapping.RuleCaseLink {
		t.Fatalf("case-link: %v", err)
	}
}

// TestApplyAllRefusesWithoutTransactions: the case operations are atomic,
// so a store without transactions gets no partial writes.
func TestApplyAllRefusesWithoutTransactions(t *testing.T) {
	fs := &caseFakeStore{res: map[string]*store.Resource{}}
	h := New(Options{Store: fs})
	err := applyAll(context.Background(), h, []store.Write{{Next: &store.Resource{Type: "Task", ID: "t", VersionID: 1}}})
	if !outcome.Is(err, outcome.NotSupported) || outcome.StatusOf(err) != 501 {
		t.Fatalf("applyAll on a store without transactions: %v", err)
	}
}

// TestCaseCheckedField: a write an operation already checked skips the
// hook; replacing its body makes the hook check it again.
func TestCaseCheckedField(t *testing.T) {
	fs := &caseFakeStore{res: map[string]*store.Resource{}}
	h := New(Options{Store: fs})
	c := &CaseRules{}
	// A managed case without histories: the hook would add them.
	body := []byte(`{"resourceType":"EpisodeOfCare","status":"planned","patient":{"reference":"Patient/p"},
		"extension":[{"url":"` + mapping.ExtPhase + `","valueCoding":{"system":"` + mapping.SystemPhase + `","code":"screening"}}]}`)
	w := &Write{Type: "EpisodeOfCare", ID: "c1", Body: body, CaseChecked: true}
	if err := c.Hook(context.Background(), h, w); err != nil || string(w.Body) != string(body) {
		t.Fatalf("checked write was changed: %v %s", err, w.Body)
	}
	w.Replace(append([]byte(nil), body[:len(body)-1]...))
	w.Replace(body)
	if w.CaseChecked {
		t.Fatal("Replace kept CaseChecked")
	}
}
