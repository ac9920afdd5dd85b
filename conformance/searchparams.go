package conformance

import (
	_ "embed"
	"encoding/json"
)

// officialSearchParameters is the complete R4 (4.0.1) SearchParameter
// Bundle as published, with insignificant whitespace removed (json.Compact).
//
//go:embed artefacts/search-parameters.json
var officialSearchParameters []byte

// SearchParameters returns the official R4 SearchParameter Bundle (JSON).
// The caller must not modify the returned bytes.
func SearchParameters() []byte { return officialSearchParameters }

// caseBase is the canonical base of the project's artefacts.
const caseBase = "https://casefhir.org/fhir"

// episodeLinkedTypes carry the workflow-episodeOfCare extension linking
// them to their case (case model section 2).
var episodeLinkedTypes = []string{
	"CarePlan", "CareTeam", "RiskAssessment", "Goal", "Task", "Appointment", "ServiceRequest",
	"Condition", "Observation", "ClinicalImpression", "Communication", "Coverage",
	"QuestionnaireResponse", "DocumentReference", "Procedure", "MedicationRequest",
}

type caseSearchParam struct {
	ResourceType string   `json:"resourceType"`
	ID           string   `json:"id"`
	URL          string   `json:"url"`
	Version      string   `json:"version"`
	Name         string   `json:"name"`
	Status       string   `json:"status"`
	Experimental bool     `json:"experimental"`
	Publisher    string   `json:"publisher"`
	Description  string   `json:"description"`
	Code         string   `json:"code"`
	Base         []string `json:"base"`
	Type         string   `json:"type"`
	Expression   string   `json:"expression"`
	XPathUsage   string   `json:"xpathUsage"`
	Target       []string `json:"target,omitempty"`
}

func newCaseSearchParam(typ, code, kind, expr, desc string, target ...string) caseSearchParam {
	id := typ + "-" + code
	return caseSearchParam{
		ResourceType: "SearchParameter", ID: id, URL: caseBase + "/SearchParameter/" + id,
		Version: "1.0.0", Name: code, Status: "active", Publisher: "casefhir",
		Description: desc, Code: code, Base: []string{typ}, Type: kind, Expression: expr,
		XPathUsage: "normal", Target: target,
	}
}

// caseSearchParams lists the project's own SearchParameters.
func caseSearchParams() []caseSearchParam {
	var out []caseSearchParam
	for _, t := range episodeLinkedTypes {
		out = append(out, newCaseSearchParam(t, "episode-of-care", "reference",
			t+".extension('http://hl7.org/fhir/StructureDefinition/workflow-episodeOfCare').value",
			"The case (EpisodeOfCare) this "+t+" belongs to", "EpisodeOfCare"))
	}
	out = append(out,
		newCaseSearchParam("Encounter", "episode-of-care", "reference", "Encounter.episodeOfCare",
			"The case (EpisodeOfCare) this Encounter belongs to", "EpisodeOfCare"),
		newCaseSearchParam("EpisodeOfCare", "phase", "token",
			"EpisodeOfCare.extension('"+caseBase+"/StructureDefinition/case-phase').value",
			"The case-management phase of the case"),
		newCaseSearchParam("EpisodeOfCare", "team", "reference", "EpisodeOfCare.team",
			"The care team of the case", "CareTeam"),
		newCaseSearchParam("RiskAssessment", "status", "token", "RiskAssessment.status",
			"The status of the risk assessment"),
	)
	return out
}

// CaseSearchParameterList returns the project's SearchParameters, one JSON
// resource each (served read-only and listed in the CapabilityStatement).
func CaseSearchParameterList() [][]byte {
	list := caseSearchParams()
	out := make([][]byte, len(list))
	for i, p := range list {
		b, err := json.Marshal(p)
		if err != nil { // cannot happen: strings and slices only
			panic(err)
		}
		out[i] = b
	}
	return out
}

// CaseSearchParameters returns the project's SearchParameters as a Bundle
// of type collection, the form search.NewRegistry reads alongside
// SearchParameters().
func CaseSearchParameters() []byte {
	type entry struct {
		FullURL  string          `json:"fullUrl"`
		Resource json.RawMessage `json:"resource"`
	}
	list := caseSearchParams()
	b := struct {
		ResourceType string  `json:"resourceType"`
		ID           string  `json:"id"`
		Type         string  `json:"type"`
		Entry        []entry `json:"entry"`
	}{ResourceType: "Bundle", ID: "casefhir-search-parameters", Type: "collection"}
	for i, raw := range CaseSearchParameterList() {
		b.Entry = append(b.Entry, entry{FullURL: list[i].URL, Resource: raw})
	}
	out, err := json.Marshal(b)
	if err != nil { // cannot happen
		panic(err)
	}
	return out
}
