package mapping

import (
	"crypto/rand"
	"fmt"
	"time"

	"github.com/casefhir/casefhir/fhir"
)

// OpenCaseParams are the inputs of $open-case.
type OpenCaseParams struct {
	// Referral is the ServiceRequest that assigns the case ("ServiceRequest/id"). Required.
	Referral string
	// ReferralResource is the stored referral, when the server could read
	// it; its subject is the default patient.
	ReferralResource map[string]any
	// Patient ("Patient/id"); defaults to the referral's subject.
	Patient string
	// CareManager ("Practitioner/id") and ManagingOrganization
	// ("Organization/id") are optional.
	CareManager, ManagingOrganization string
	// Category (case-category) and Model (case-management-model) are
	// optional Codings.
	Category, Model map[string]any
	// Now is the opening time.
	Now time.Time
	// NewUUID returns a fresh UUID for the urn:uuid: cross references;
	// nil means random (version 4).
	NewUUID func() string
}

// OpenCaseResult is what $open-case writes as one transaction. The
// resources reference each other by their urn:uuid: full URLs, which the
// transaction rewrites to the assigned ids.
type OpenCaseResult struct {
	Episode, CareTeam, Task          map[string]any
	EpisodeURN, CareTeamURN, TaskURN string
}

const opOpenCase = "mapping.OpenCase"

// OpenCase builds the resources of $open-case: the EpisodeOfCare (planned,
// phase screening, referralRequest = the referral, with its histories
// started), its CareTeam with the case manager (role SNOMED CT 768832004)
// and an intake Task, both linked to the case. Bad parameters are 400; a
// patient other than the referral's subject is a 422 same-patient.
func OpenCase(p OpenCaseParams) (*OpenCaseResult, error) {
	ref, ok := fhir.ParseReference(p.Referral)
	if !ok || ref.Type != "ServiceRequest" {
		return nil, invalid(opOpenCase, "referral must reference a ServiceRequest", "Parameters.parameter('referral')")
	}
	referral := ref.Local()
	subject := ""
	if p.ReferralResource != nil {
		if r, ok := fhir.ParseReference(refString(p.ReferralResource["subject"])); ok && r.Type == "Patient" {
			subject = r.Local()
		}
	}
	patient := subject
	if p.Patient != "" {
		r, ok := fhir.ParseReference(p.Patient)
		if !ok || r.Type != "Patient" {
			return nil, invalid(opOpenCase, "patient must reference a Patient", "Parameters.parameter('patient')")
		}
		patient = r.Local()
		if subject != "" && subject != patient {
			v := &violations{}
			v.add(RuleSamePatient, "Parameters.parameter('patient')",
				"the patient must be the referral's subject ("+subject+"); leave patient out to use it")
			return nil, v.err(opOpenCase)
		}
	}
	if patient == "" {
		return nil, invalid(opOpenCase, "give a patient: the referral has no Patient subject", "Parameters.parameter('patient')")
	}
	careManager, err := optionalRef(p.CareManager, "careManager", "Practitioner")
	if err != nil {
		return nil, err
	}
	org, err := optionalRef(p.ManagingOrganization, "managingOrganization", "Organization")
	if err != nil {
		return nil, err
	}
	category, err := codingCode(p.Category, "category", SystemCategory, isCategory)
	if err != nil {
		return nil, err
	}
	model, err := codingCode(p.Model, "model", SystemModel, isModel)
	if err != nil {
		return nil, err
	}
	newUUID := p.NewUUID
	if newUUID == nil {
		newUUID = randomUUID
	}
	res := &OpenCaseResult{
		EpisodeURN:  "urn:uuid:" + newUUID(),
		CareTeamURN: "urn:uuid:" + newUUID(),
		TaskURN:     "urn:uuid:" + newUUID(),
	}
	at := formatTime(p.Now)
	link := []any{map[string]any{"url": ExtEpisodeOfCare, "valueReference": reference(res.EpisodeURN)}}

	eoc := map[string]any{
		"resourceType": "EpisodeOfCare",
		"extension": []any{
			map[string]any{"url": ExtPhase, "valueCoding": phaseCoding(PhaseScreening)},
			phaseHistoryEntry(PhaseScreening, at),
		},
		"status":          StatusPlanned,
		"statusHistory":   []any{map[string]any{"status": StatusPlanned, "period": map[string]any{"start": at}}},
		"patient":         reference(patient),
		"period":          map[string]any{"start": at},
		"referralRequest": []any{reference(referral)},
		"team":            []any{reference(res.CareTeamURN)},
	}
	var types []any
	if category != "" {
		types = append(types, map[string]any{"coding": []any{coding(SystemCategory, category, categoryDisplay[category])}})
	}
	if model != "" {
		types = append(types, map[string]any{"coding": []any{coding(SystemModel, model, modelDisplay[model])}})
	}
	if len(types) > 0 {
		eoc["type"] = types
	}
	if org != "" {
		eoc["managingOrganization"] = reference(org)
	}
	if careManager != "" {
		eoc["careManager"] = reference(careManager)
	}
	res.Episode = eoc

	team := map[string]any{
		"resourceType": "CareTeam",
		"extension":    link,
		"status":       "active",
		"name":         "Case management team",
		"subject":      reference(patient),
		"period":       map[string]any{"start": at},
	}
	if careManager != "" {
		team["participant"] = []any{map[string]any{
			"role": []any{map[string]any{"coding": []any{
				coding(SystemSNOMED, CodeCaseManagerRole, "Case manager")}}},
			"member": reference(careManager),
		}}
	}
	if org != "" {
		team["managingOrganization"] = []any{reference(org)}
	}
	res.CareTeam = team

	task := map[string]any{
		"resourceType": "Task",
		"extension":    cloneValue(link),
		"basedOn":      []any{reference(referral)},
		"status":       "requested",
		"intent":       "order",
		"priority":     "routine",
		"code": map[string]any{
			"coding": []any{phaseCoding(PhaseScreening)},
			"text":   "Case intake",
		},
		"description":  "Screen the referred patient for case management.",
		"focus":        reference(res.EpisodeURN),
		"for":          reference(patient),
		"authoredOn":   at,
		"lastModified": at,
	}
	if careManager != "" {
		task["owner"] = reference(careManager)
	}
	res.Task = task
	return res, nil
}

// Transaction returns the transaction Bundle that creates the case's
// resources (POST entries with their urn:uuid: full URLs).
func (r *OpenCaseResult) Transaction() map[string]any {
	entry := func(urn string, res map[string]any) any {
		return map[string]any{
			"fullUrl":  urn,
			"resource": res,
			"request":  map[string]any{"method": "POST", "url": ResourceType(res)},
		}
	}
	return map[string]any{
		"resourceType": "Bundle",
		"type":         "transaction",
		"entry": []any{
			entry(r.EpisodeURN, r.Episode),
			entry(r.CareTeamURN, r.CareTeam),
			entry(r.TaskURN, r.Task),
		},
	}
}

func optionalRef(s, name, typ string) (string, error) {
	if s == "" {
		return "", nil
	}
	r, ok := fhir.ParseReference(s)
	if !ok || r.Type != typ {
		return "", invalid(opOpenCase, name+" must reference a "+typ, "Parameters.parameter('"+name+"')")
	}
	return r.Local(), nil
}

var categoryDisplay = map[string]string{
	CategoryAcute: "Acute", CategoryIntermediate: "Intermediate", CategoryLongTerm: "Long-term",
}

var modelDisplay = map[string]string{
	ModelBrokerage: "Brokerage", ModelClinical: "Clinical", ModelStrengthsBased: "Strengths-based", ModelIntensive: "Intensive",
}

func isCategory(c string) bool { _, ok := categoryDisplay[c]; return ok }
func isModel(c string) bool    { _, ok := modelDisplay[c]; return ok }

func randomUUID() string {
	var b [16]byte
	_, _ = rand.Read(b[:]) // crypto/rand.Read never fails
	b[6] = b[6]&0x0f | 0x40
	b[8] = b[8]&0x3f | 0x80
	return fmt.Sprintf("%x-%x-%x-%x-%x", b[0:4], b[4:6], b[6:8], b[8:10], b[10:16])
}
