package mapping

import (
	"context"
	"maps"
	"slices"
	"strings"

	"github.com/casefhir/casefhir/fhir"
)

// patientElements maps a resource type to the elements (dotted paths; an
// array at any step is entered) whose Patient references must equal the
// case's patient. Types not listed use subject and patient.
var patientElements = map[string][]string{
	"Account":                     {"subject"},
	"AdverseEvent":                {"subject"},
	"AllergyIntolerance":          {"patient"},
	"Appointment":                 {"participant.actor"},
	"AppointmentResponse":         {"actor"},
	"CarePlan":                    {"subject"},
	"CareTeam":                    {"subject"},
	"ChargeItem":                  {"subject"},
	"Claim":                       {"patient"},
	"ClaimResponse":               {"patient"},
	"ClinicalImpression":          {"subject"},
	"Communication":               {"subject"},
	"CommunicationRequest":        {"subject"},
	"Composition":                 {"subject"},
	"Condition":                   {"subject"},
	"Consent":                     {"patient"},
	"Coverage":                    {"beneficiary"},
	"CoverageEligibilityRequest":  {"patient"},
	"CoverageEligibilityResponse": {"patient"},
	"DetectedIssue":               {"patient"},
	"DeviceRequest":               {"subject"},
	"DeviceUseStatement":          {"subject"},
	"DiagnosticReport":            {"subject"},
	"DocumentReference":           {"subject"},
	"Encounter":                   {"subject"},
	"EnrollmentRequest":           {"candidate"},
	"ExplanationOfBenefit":        {"patient"},
	"FamilyMemberHistory":         {"patient"},
	"Flag":                        {"subject"},
	"Goal":                        {"subject"},
	"ImagingStudy":                {"subject"},
	"Immunization":                {"patient"},
	"List":                        {"subject"},
	"Media":                       {"subject"},
	"MedicationAdministration":    {"subject"},
	"MedicationDispense":          {"subject"},
	"MedicationRequest":           {"subject"},
	"MedicationStatement":         {"subject"},
	"NutritionOrder":              {"patient"},
	"Observation":                 {"subject"},
	"Procedure":                   {"subject"},
	"QuestionnaireResponse":       {"subject"},
	"RequestGroup":                {"subject"},
	"RiskAssessment":              {"subject"},
	"ServiceRequest":              {"subject"},
	"Specimen":                    {"subject"},
	"SupplyDelivery":              {"patient"},
	"Task":                        {"for"},
	"VisionPrescription":          {"patient"},
}

// PatientElements returns the elements of a resource type that carry its
// patient (e.g. Task: for, Coverage: beneficiary, Appointment:
// participant.actor).
func PatientElements(typ string) []string {
	if els, ok := patientElements[typ]; ok {
		return slices.Clone(els)
	}
	return []string{"subject", "patient"}
}

// LinkableTypes returns, sorted, the resource types the case-model links to
// a case and whose patient element is known (every type of
// [PatientElements]' table). Any other type may carry the link extension
// too; its patient is then looked for in subject and patient.
func LinkableTypes() []string {
	return slices.Sorted(maps.Keys(patientElements))
}

// PatientRefs returns the Patient references ("Patient/id", normalised)
// found in a resource's patient elements.
func PatientRefs(typ string, res map[string]any) []string {
	var out []string
	for _, path := range PatientElements(typ) {
		for _, v := range valuesAt(res, strings.Split(path, ".")) {
			if r, ok := fhir.ParseReference(refString(v)); ok && r.Type == "Patient" {
				out = append(out, r.Local())
			}
		}
	}
	return out
}

// valuesAt returns the values at a dotted path, entering arrays.
func valuesAt(v any, path []string) []any {
	if len(path) == 0 {
		if arr, ok := v.([]any); ok {
			return arr
		}
		return []any{v}
	}
	switch x := v.(type) {
	case map[string]any:
		e, ok := x[path[0]]
		if !ok {
			return nil
		}
		return valuesAt(e, path[1:])
	case []any:
		var out []any
		for _, e := range x {
			out = append(out, valuesAt(e, path)...)
		}
		return out
	}
	return nil
}

// CaseLinks returns the case references of a resource: the valueReference
// of its workflow-episodeOfCare extensions and, for Encounter,
// Encounter.episodeOfCare. Reference strings are returned as written.
func CaseLinks(typ string, res map[string]any) []string {
	var out []string
	if typ == "Encounter" {
		for _, r := range objs(res, "episodeOfCare") {
			if s := str(r, "reference"); s != "" {
				out = append(out, s)
			}
		}
	}
	for _, e := range extensions(res, ExtEpisodeOfCare) {
		if s := refString(e["valueReference"]); s != "" {
			out = append(out, s)
		}
	}
	return out
}

// CaseIDs returns the ids of the EpisodeOfCares a resource is linked to
// (from [CaseLinks] shaped EpisodeOfCare/id), deduplicated, in order.
func CaseIDs(typ string, res map[string]any) []string {
	var out []string
	for _, l := range CaseLinks(typ, res) {
		if r, ok := fhir.ParseReference(l); ok && r.Type == "EpisodeOfCare" && !slices.Contains(out, r.ID) {
			out = append(out, r.ID)
		}
	}
	return out
}

const opLinked = "mapping.CheckLinkedWrite"

// CheckLinkedWrite checks a create (prev nil) or update of a resource of
// type typ against the rules for resources linked to a case:
//
//   - case-link: every case link is EpisodeOfCare/id and that EpisodeOfCare exists;
//   - same-patient: the resource's patient elements name the case's patient;
//   - closed-case: no new link to a finished, cancelled or entered-in-error case;
//   - careplan-active: a CarePlan is active only while the case is active or onhold.
//
// The last three hold for links to managed cases; a link to a plain
// EpisodeOfCare only has to resolve. An EpisodeOfCare, a delete (next nil)
// and a resource without a case link pass. Every broken rule is reported,
// one issue each, in one 422 *outcome.Error; errors of r are returned as
// they are.
func CheckLinkedWrite(ctx context.Context, typ string, prev, next map[string]any, r Reader) error {
	if typ == "EpisodeOfCare" || next == nil {
		return nil
	}
	links := CaseLinks(typ, next)
	if len(links) == 0 {
		return nil
	}
	old := map[string]bool{}
	for _, id := range CaseIDs(typ, prev) {
		old[id] = true
	}
	v := &violations{}
	linkExpr := typ + ".extension('" + ExtEpisodeOfCare + "')"
	if typ == "Encounter" {
		linkExpr = "Encounter.episodeOfCare"
	}
	seen := map[string]bool{}
	for _, l := range links {
		ref, ok := fhir.ParseReference(l)
		if !ok || ref.Type != "EpisodeOfCare" {
			v.add(RuleCaseLink, linkExpr, "link the resource to its case with a reference EpisodeOfCare/id")
			continue
		}
		if seen[ref.ID] {
			continue
		}
		seen[ref.ID] = true
		eoc, err := r.Episode(ctx, ref.ID)
		if err != nil && !notFound(err) {
			return err
		}
		if eoc == nil || notFound(err) {
			v.add(RuleCaseLink, linkExpr, "the case "+ref.Local()+" does not exist: link to an existing EpisodeOfCare")
			continue
		}
		if !IsManaged(eoc) {
			continue
		}
		casePatient := refLocal(Patient(eoc))
		var others []string
		for _, p := range PatientRefs(typ, next) {
			if p != casePatient && !slices.Contains(others, p) {
				others = append(others, p)
			}
		}
		if len(others) > 0 {
			v.add(RuleSamePatient, typ+"."+PatientElements(typ)[0],
				"a resource linked to "+ref.Local()+" must be about the case's patient ("+casePatient+"); it names "+join(others))
		}
		st := Status(eoc)
		if !old[ref.ID] && IsTerminal(st) {
			v.add(RuleClosedCase, linkExpr,
				"the case "+ref.Local()+" is "+st+": nothing new may be linked to it; link to an open case")
		}
		if typ == "CarePlan" && Status(next) == "active" && st != StatusActive && st != StatusOnhold {
			v.add(RuleCarePlanActive, "CarePlan.status",
				"a CarePlan may be active only while its case is active or onhold; "+ref.Local()+" is "+st+
					": keep the plan draft (or on-hold) until the case is active")
		}
	}
	return v.err(opLinked)
}
