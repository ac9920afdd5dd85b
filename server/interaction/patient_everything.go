package interaction

import (
	"context"
	"net/http"
	"slices"
	"strings"

	"github.com/casefhir/casefhir/fhir"
	"github.com/casefhir/casefhir/fhir/outcome"
	"github.com/casefhir/casefhir/fhir/search"
	"github.com/casefhir/casefhir/fhir/store"
	"github.com/casefhir/casefhir/mapping"
)

// maxEverything bounds the resources one Patient $everything collects.
const maxEverything = 100000

// PatientEverything implements GET Patient/{id}/$everything
// (http://hl7.org/fhir/R4/operation-patient-everything.html): a searchset
// Bundle with the patient (always first), every resource of the patient's
// compartment as R4 defines it (one Find per compartment type over the
// compartment index, each candidate checked exactly), and the resources
// the patient references (general practitioners, managing organisation,
// linked patients) as includes. AuditEvents are left out: they record
// accesses to the record, not the record. _since and _type filter all but the
// patient; _count pages with next links (_offset); _summary and _elements
// shape the entries. Only what the caller may read is returned: types
// without read scope are left out, and a caller bound to another patient
// gets 404.
func PatientEverything(ctx context.Context, h *Handler, r *Request) (*Response, error) {
	if r.Type != "Patient" || r.ID == "" || (r.Method != http.MethodGet && r.Method != http.MethodPost) {
		return nil, outcome.New(outcome.NotSupported, "$everything is GET Patient/{id}/$everything").WithStatus(http.StatusNotFound)
	}
	pat, err := readTarget(ctx, h, r)
	if err != nil {
		return nil, err
	}
	q, err := parseCaseQuery(h, r, true)
	if err != nil {
		return nil, err
	}
	stored, err := h.o.Store.Types(ctx)
	if err != nil {
		return nil, err
	}
	slices.Sort(stored)
	items := []everythingItem{{pat, "match"}}
	for _, typ := range stored {
		// AuditEvents record accesses to the record, not the record
		// itself (they are read with their own scope, by search).
		if typ == "AuditEvent" || search.PatientCompartmentParams(typ) == nil || (q.types != nil && !q.types[typ]) {
			continue
		}
		if r.Access != nil && r.Access.Allow(ActionRead, typ) != nil {
			continue
		}
		var members []*store.Resource
		err := findEach(ctx, h, typ, search.PatientCompartmentFilter(typ, r.ID), store.FindOptions{}, func(res *store.Resource) {
			if res.Deleted || res.Key() == pat.Key() || !search.InCompartment(res.Index, r.ID) {
				return
			}
			if q.wants(res) && h.visible(r, ActionRead, res) {
				members = append(members, res)
			}
		})
		if err != nil {
			return nil, err
		}
		slices.SortFunc(members, func(a, b *store.Resource) int { return strings.Compare(a.ID, b.ID) })
		for _, m := range members {
			items = append(items, everythingItem{m, "match"})
		}
		if len(items) > maxEverything {
			return nil, outcome.New(outcome.TooCostly, "the patient has too many resources for one $everything; narrow it with _type or _since").
				WithStatus(http.StatusForbidden)
		}
	}
	// What the patient references, once, when not already there.
	pm, err := mapping.Decode(pat.JSON)
	if err != nil {
		return nil, err
	}
	have := map[string]bool{}
	for _, it := range items {
		have[it.res.Key()] = true
	}
	var refs []string
	for _, el := range []string{"generalPractitioner", "managingOrganization", "link"} {
		for _, ref := range referencesIn(pm[el]) {
			if !have[ref] {
				have[ref] = true
				refs = append(refs, ref)
			}
		}
	}
	followed, err := fetchKeys(ctx, h, refs)
	if err != nil {
		return nil, err
	}
	for _, res := range followed {
		if !res.Deleted && q.wants(res) && readable(h, r, res) {
			items = append(items, everythingItem{res, "include"})
		}
	}
	return everythingPage(h, r, q, r.BaseURL+"/Patient/"+r.ID+"/$everything", items)
}

// referencesIn returns the local "Type/id" references found in v (a
// Reference, a list of them, or backbone elements holding them).
func referencesIn(v any) []string {
	var out []string
	switch x := v.(type) {
	case []any:
		for _, e := range x {
			out = append(out, referencesIn(e)...)
		}
	case map[string]any:
		if s, ok := x["reference"].(string); ok {
			if ref, ok := fhir.ParseReference(s); ok && ref.Type != "" && ref.Base == "" {
				out = append(out, ref.Type+"/"+ref.ID)
			}
		}
		for k, e := range x {
			if k != "reference" {
				out = append(out, referencesIn(e)...)
			}
		}
	}
	return out
}
