package mapping

import (
	"cmp"
	"slices"
	"time"

	"github.com/casefhir/casefhir/fhir"
)

// followTypes are the types $everything follows from linked resources:
// the people, organisations, places and coverage the case's resources
// name. Other referenced resources of the patient are in the result only
// when linked to the case themselves.
var followTypes = map[string]bool{
	"Patient": true, "Practitioner": true, "PractitionerRole": true, "Organization": true,
	"RelatedPerson": true, "CareTeam": true, "Coverage": true, "Location": true,
	"HealthcareService": true, "Device": true, "Medication": true, "Endpoint": true,
}

// EverythingFollows returns, sorted and deduplicated, the "Type/id"
// references $everything adds to the case and its linked resources:
//
//   - every reference of the case itself (patient, care manager, managing
//     organisation, CareTeams, referral, diagnoses, accounts);
//   - references of linked resources to people, organisations, places,
//     devices, medications, CareTeams and Coverage.
//
// Patients other than the case's own are never followed, nor are
// resources already in the set (the case and linked) or references that
// are not Type/id (contained, urn, logical).
func EverythingFollows(eoc map[string]any, linked []map[string]any) []string {
	have := map[string]bool{Key(eoc): true}
	for _, r := range linked {
		have[Key(r)] = true
	}
	casePatient := refLocal(Patient(eoc))
	out := map[string]bool{}
	add := func(s string, follow func(typ string) bool) {
		r, ok := fhir.ParseReference(s)
		if !ok || r.Type == "" || (r.Base != "") {
			return
		}
		k := r.Local()
		if have[k] || (r.Type == "Patient" && k != casePatient) || !follow(r.Type) {
			return
		}
		out[k] = true
	}
	walkReferences(eoc, func(s string) { add(s, func(string) bool { return true }) })
	for _, r := range linked {
		walkReferences(r, func(s string) { add(s, func(t string) bool { return followTypes[t] }) })
	}
	keys := make([]string, 0, len(out))
	for k := range out {
		keys = append(keys, k)
	}
	slices.Sort(keys)
	return keys
}

// CaseTypes returns the types $everything and $timeline look for linked
// resources in: [LinkableTypes] (which includes Encounter).
func CaseTypes() []string { return LinkableTypes() }

// TimelineKey orders one resource version on a case's timeline.
type TimelineKey struct {
	LastUpdated time.Time
	Type, ID    string
	VersionID   int64
}

// CompareTimeline orders versions oldest first by meta.lastUpdated; ties
// (same instant) go by type, id and version so that the order is stable
// and a resource's versions stay in sequence.
func CompareTimeline(a, b TimelineKey) int {
	if c := a.LastUpdated.Compare(b.LastUpdated); c != 0 {
		return c
	}
	return cmp.Or(cmp.Compare(a.Type, b.Type), cmp.Compare(a.ID, b.ID), cmp.Compare(a.VersionID, b.VersionID))
}

// SortTimeline sorts items into timeline order, using key to read each.
func SortTimeline[T any](items []T, key func(T) TimelineKey) {
	slices.SortStableFunc(items, func(a, b T) int { return CompareTimeline(key(a), key(b)) })
}
