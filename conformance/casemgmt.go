package conformance

import (
	"embed"
	"encoding/json"
	"io/fs"
	"path"
	"sort"
	"strings"
)

// CaseBase is the canonical base of every case-management artefact.
const CaseBase = "https://casefhir.org/fhir"

// Canonical URLs of the case-management OperationDefinitions.
const (
	OpTransition = CaseBase + "/OperationDefinition/EpisodeOfCare-transition"
	OpEverything = CaseBase + "/OperationDefinition/EpisodeOfCare-everything"
	OpOpenCase   = CaseBase + "/OperationDefinition/EpisodeOfCare-open-case"
	OpTimeline   = CaseBase + "/OperationDefinition/EpisodeOfCare-timeline"
)

//go:embed artefacts/casemgmt/*.json
var caseFS embed.FS

const caseDir = "artefacts/casemgmt"

// Artefact is one embedded case-management conformance resource.
type Artefact struct {
	// ResourceType is CodeSystem, ValueSet, StructureDefinition or
	// OperationDefinition.
	ResourceType string
	// ID is the logical id the resource is served under.
	ID string
	// URL is its canonical URL.
	URL string
	// JSON is the resource. Callers must not modify it.
	JSON []byte
}

// CaseArtefacts returns the case-management CodeSystems, ValueSets,
// extension StructureDefinitions and OperationDefinitions, each as its FHIR
// JSON, sorted by file name (resource type, then id). Each call returns
// fresh copies.
func CaseArtefacts() [][]byte {
	list := CaseArtefactList()
	out := make([][]byte, len(list))
	for i, a := range list {
		out[i] = a.JSON
	}
	return out
}

// CaseArtefactList is CaseArtefacts with the identifying fields parsed.
// Each call returns fresh copies.
func CaseArtefactList() []Artefact {
	names, err := fs.Glob(caseFS, caseDir+"/*.json")
	if err != nil { // the pattern is constant and valid
		panic("conformance: " + err.Error())
	}
	sort.Strings(names)
	out := make([]Artefact, 0, len(names))
	for _, n := range names {
		b, err := caseFS.ReadFile(n)
		if err != nil { // embedded files are always readable
			panic("conformance: " + err.Error())
		}
		var head struct {
			ResourceType string `json:"resourceType"`
			ID           string `json:"id"`
			URL          string `json:"url"`
		}
		if err := json.Unmarshal(b, &head); err != nil {
			// The tests guarantee every embedded file parses.
			panic("conformance: " + path.Base(n) + ": " + err.Error())
		}
		out = append(out, Artefact{ResourceType: head.ResourceType, ID: head.ID, URL: head.URL, JSON: b})
	}
	return out
}

// CaseArtefact returns the artefact with the given canonical URL (a
// "|version" suffix is ignored), or false.
func CaseArtefact(url string) (Artefact, bool) {
	url, _, _ = strings.Cut(url, "|")
	for _, a := range CaseArtefactList() {
		if a.URL == url {
			return a, true
		}
	}
	return Artefact{}, false
}

// CaseOperations lists the case-management operations per resource type,
// for CapabilityStatement.rest.resource.operation.
func CaseOperations() map[string][]OperationRef {
	return map[string][]OperationRef{
		"EpisodeOfCare": {
			{Name: "transition", Definition: OpTransition},
			{Name: "everything", Definition: OpEverything},
			{Name: "open-case", Definition: OpOpenCase},
			{Name: "timeline", Definition: OpTimeline},
		},
	}
}
