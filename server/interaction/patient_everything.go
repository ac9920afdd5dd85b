package interaction

import (
	"context"
	"net/http"
	"slices"

	"github.com/casefhir/casefhir/fhir"
	"github.com/casefhir/casefhir/fhir/outcome"
	"github.com/casefhir/casefhir/fhir/search"
	"github.com/casefhir/casefhir/fhir/store"
	"github.com/casefhir/casefhir/mapping"
)

// PatientEverything implements GET Patient/{id}/$everything
// (http://hl7.org/fhir/R4/operation-patient-everything.html): a searchset
// Bundle with the patient (first, on the first page), every resource of
// the patient's compartment as R4 defines it (type by type in name order,
// then by id: one Find per compartment type over the compartment index,
// each candidate checked exactly), and, as includes of the first page, the
// resources the patient references (general practitioners, managing
// organisation, linked patients that are not members). AuditEvents are
// left out: they record accesses to the record, not the record. _since and
// _type filter all but the patient; _count pages with next links carrying
// a keyset cursor bound to the query, the path and the caller, so a page
// costs what the page costs whatever the size of the record; _summary and
// _elements shape the entries. Every page checks the caller's access
// again: types without read scope are left out, and a caller bound to
// another patient gets 404.
func PatientEverything(ctx context.Context, h *Handler, r *Request) (*Response, error) {
	if r.Type != "Patient" || r.ID == "" || (r.Method != http.MethodGet && r.Method != http.MethodPost) {
		return nil, outcome.New(outcome.NotSupported, "$everything is GET Patient/{id}/$everything").WithStatus(http.StatusNotFound)
	}
	pat, err := readTarget(ctx, h, r)
	if err != nil {
		return nil, err
	}
	q, err := parseCaseQuery(h, r, "Patient/"+r.ID+"/$everything", everythingCanon...)
	if err != nil {
		return nil, err
	}
	stored, err := h.o.Store.Types(ctx)
	if err != nil {
		return nil, err
	}
	slices.Sort(stored)
	isMember := func(res *store.Resource) bool {
		return res.Key() != pat.Key() && search.InCompartment(res.Index, r.ID)
	}
	w := &memberWalk{
		types: slices.DeleteFunc(stored, func(typ string) bool {
			// AuditEvents record accesses to the record, not the record
			// itself (they are read with their own scope, by search).
			return typ == "AuditEvent" || search.PatientCompartmentParams(typ) == nil || (q.types != nil && !q.types[typ]) ||
				(r.Access != nil && r.Access.Allow(ActionRead, typ) != nil)
		}),
		filter: func(typ string) (*store.Filter, error) {
			return withSince(search.PatientCompartmentFilter(typ, r.ID), q.since), nil
		},
		accept: func(res *store.Resource) bool {
			return !res.Deleted && isMember(res) && q.wants(res) && h.visible(r, ActionRead, res)
		},
	}
	// What the patient references goes with the patient, on the first page.
	follow := func(first bool, _ []*store.Resource) ([]*store.Resource, error) {
		if !first {
			return nil, nil
		}
		pm, err := mapping.Decode(pat.JSON)
		if err != nil {
			return nil, err
		}
		have := map[string]bool{pat.Key(): true}
		var refs []string
		for _, el := range []string{"generalPractitioner", "managingOrganization", "link"} {
			for _, ref := range referencesIn(pm[el]) {
				if !have[ref] {
					have[ref] = true
					refs = append(refs, ref)
				}
			}
		}
		found, err := fetchKeys(ctx, h, refs)
		if err != nil {
			return nil, err
		}
		return slices.DeleteFunc(found, func(res *store.Resource) bool {
			return res.Deleted || isMember(res) || !q.wants(res) || !readable(h, r, res)
		}), nil
	}
	return everythingPage(ctx, h, r, q, pat, w, follow)
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
