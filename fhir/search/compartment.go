package search

import "github.com/casefhir/casefhir/fhir/store"

// The Patient compartment rules (https://hl7.org/fhir/R4/compartmentdefinition-patient.html)
// are owned here, once: which resources lie in a patient's compartment
// (extracted at write time under KeyCompartment as "Patient/<id>"
// strings; a Patient is in its own), the store filter selecting them and
// the exact check. Searches, reads, writes, access checks and bulk export
// all use these.

// PatientRef returns the local reference "Patient/<id>".
func PatientRef(patientID string) string { return "Patient/" + patientID }

// InPatientCompartment reports whether res lies in the compartment of
// Patient/patientID. A tombstone (no index) lies in none but its own.
func InPatientCompartment(res *store.Resource, patientID string) bool {
	if res.Type == "Patient" && res.ID == patientID {
		return true
	}
	return InCompartment(res.Index, patientID)
}

// InCompartment reports whether an index places its resource in the
// compartment of Patient/patientID.
func InCompartment(index map[string]any, patientID string) bool {
	return has(strs(index[KeyCompartment]), PatientRef(patientID))
}

// InAnyPatientCompartment reports whether res lies in the compartment of
// any patient, or of one of members ("Patient/<id>" references) when
// members is not nil.
func InAnyPatientCompartment(res *store.Resource, members map[string]bool) bool {
	if res.Type == "Patient" && (members == nil || members[PatientRef(res.ID)]) {
		return true
	}
	for _, ref := range strs(res.Index[KeyCompartment]) {
		if members == nil || members[ref] {
			return true
		}
	}
	return false
}

// PatientCompartmentFilter returns the store filter selecting the
// resources of typ in the compartment of Patient/patientID (exact: the
// Patient itself carries its own compartment).
func PatientCompartmentFilter(typ, patientID string) *store.Filter {
	f := store.Eq(KeyCompartment, PatientRef(patientID))
	if typ == "Patient" {
		return store.Or(f, store.Eq(store.PathID, patientID))
	}
	return f
}

// PatientCompartmentsFilter returns the store filter selecting resources
// in the compartment of any of the patients (a reference list of at most
// max entries; beyond that, and for nil, resources in any patient's
// compartment, a superset to check with InAnyPatientCompartment).
func PatientCompartmentsFilter(patientIDs []string, max int) *store.Filter {
	if patientIDs == nil || len(patientIDs) > max {
		return store.Exists(KeyCompartment, true)
	}
	if len(patientIDs) == 0 {
		return &store.Filter{Op: store.OpOr} // matches nothing
	}
	refs := make([]any, len(patientIDs))
	for i, p := range patientIDs {
		refs[i] = PatientRef(p)
	}
	return store.In(KeyCompartment, refs...)
}

// ReferencesTo returns the store filter selecting resources whose
// reference parameter code (a parameter of typ) points at one of refs
// ("Type/id"); ok is false when typ has no such reference parameter.
func (r *Registry) ReferencesTo(typ, code string, refs ...any) (*store.Filter, bool) {
	p, ok := r.Lookup(typ, code)
	if !ok || p.Type != TypeReference {
		return nil, false
	}
	return store.In(p.Key()+"."+kRef, refs...), true
}
