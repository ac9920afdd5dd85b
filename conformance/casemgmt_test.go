package conformance

import (
	"encoding/json"
	"strings"
	"testing"
)

func TestCaseArtefactsParse(t *testing.T) {
	list := CaseArtefactList()
	if len(list) == 0 {
		t.Fatal("no case artefacts embedded")
	}
	seen := map[string]bool{}
	for _, a := range list {
		var m map[string]any
		if err := json.Unmarshal(a.JSON, &m); err != nil {
			t.Errorf("%s/%s: %v", a.ResourceType, a.ID, err)
			continue
		}
		switch a.ResourceType {
		case "CodeSystem", "ValueSet", "StructureDefinition", "OperationDefinition":
		default:
			t.Errorf("%s: unexpected resourceType %q", a.ID, a.ResourceType)
		}
		want := CaseBase + "/" + a.ResourceType + "/" + a.ID
		if a.URL != want {
			t.Errorf("%s/%s: url %q, want %q", a.ResourceType, a.ID, a.URL, want)
		}
		if seen[a.URL] {
			t.Errorf("duplicate url %s", a.URL)
		}
		seen[a.URL] = true
		if m["status"] != "active" {
			t.Errorf("%s: status %v", a.URL, m["status"])
		}
		if n, _ := m["name"].(string); n == "" || strings.ContainsAny(n, "- ") {
			t.Errorf("%s: name %q is not a computable name", a.URL, n)
		}
	}
	for _, u := range []string{
		"CodeSystem/case-phase", "CodeSystem/case-category", "CodeSystem/case-management-model",
		"CodeSystem/case-program", "CodeSystem/case-closure-reason", "CodeSystem/case-document",
		"CodeSystem/case-rule",
		"ValueSet/case-phase", "ValueSet/case-category", "ValueSet/case-management-model",
		"ValueSet/case-program", "ValueSet/case-closure-reason", "ValueSet/case-document",
		"ValueSet/case-rule",
		"StructureDefinition/case-phase", "StructureDefinition/case-phase-history",
		"StructureDefinition/case-closure-reason", "StructureDefinition/case-status-reason",
	} {
		if !seen[CaseBase+"/"+u] {
			t.Errorf("missing %s", u)
		}
	}
	for _, ops := range CaseOperations() {
		for _, op := range ops {
			if !seen[op.Definition] {
				t.Errorf("operation %s: no OperationDefinition %s", op.Name, op.Definition)
			}
		}
	}
}

func TestCaseArtefactLookup(t *testing.T) {
	a, ok := CaseArtefact(CaseBase + "/CodeSystem/case-phase|0.1.0")
	if !ok || a.ResourceType != "CodeSystem" || a.ID != "case-phase" {
		t.Fatalf("CaseArtefact = %+v, %v", a, ok)
	}
	if _, ok := CaseArtefact(CaseBase + "/CodeSystem/nope"); ok {
		t.Fatal("found a missing artefact")
	}
	// Fresh copies: modifying one result does not change the next.
	b := CaseArtefacts()
	b[0][0] = 'X'
	if CaseArtefacts()[0][0] == 'X' {
		t.Fatal("CaseArtefacts shares memory between calls")
	}
}

func TestCaseCodeSystemsComplete(t *testing.T) {
	for _, a := range CaseArtefactList() {
		if a.ResourceType != "CodeSystem" {
			continue
		}
		var cs struct {
			Count    int    `json:"count"`
			Content  string `json:"content"`
			ValueSet string `json:"valueSet"`
			Concept  []struct {
				Code, Display, Definition string
			} `json:"concept"`
		}
		if err := json.Unmarshal(a.JSON, &cs); err != nil {
			t.Fatal(err)
		}
		if cs.Content != "complete" || cs.Count != len(cs.Concept) {
			t.Errorf("%s: content %q count %d concepts %d", a.URL, cs.Content, cs.Count, len(cs.Concept))
		}
		if _, ok := CaseArtefact(cs.ValueSet); !ok {
			t.Errorf("%s: value set %s not published", a.URL, cs.ValueSet)
		}
		for _, c := range cs.Concept {
			if c.Code == "" || c.Display == "" || c.Definition == "" {
				t.Errorf("%s: incomplete concept %+v", a.URL, c)
			}
		}
	}
}

func TestCaseOperationDefinitions(t *testing.T) {
	want := map[string][]string{
		OpTransition: {"status:in:code", "phase:in:Coding", "reason:in:CodeableConcept", "effective:in:dateTime",
			"cascade:in:boolean", "dryRun:in:boolean", "return:out:EpisodeOfCare"},
		OpEverything: {"_since:in:instant", "_type:in:code", "_count:in:integer", "return:out:Bundle"},
		OpOpenCase: {"referral:in:Reference", "patient:in:Reference", "careManager:in:Reference",
			"managingOrganization:in:Reference", "category:in:Coding", "model:in:Coding", "return:out:Bundle"},
		OpTimeline: {"_since:in:instant", "_type:in:code", "_count:in:integer", "return:out:Bundle"},
	}
	for url, params := range want {
		a, ok := CaseArtefact(url)
		if !ok {
			t.Errorf("missing %s", url)
			continue
		}
		var od struct {
			Code      string   `json:"code"`
			Resource  []string `json:"resource"`
			Parameter []struct {
				Name, Use, Type string
			} `json:"parameter"`
		}
		if err := json.Unmarshal(a.JSON, &od); err != nil {
			t.Fatal(err)
		}
		var got []string
		for _, p := range od.Parameter {
			got = append(got, p.Name+":"+p.Use+":"+p.Type)
		}
		if strings.Join(got, ",") != strings.Join(params, ",") {
			t.Errorf("%s parameters:\n got %v\nwant %v", url, got, params)
		}
		if len(od.Resource) != 1 || od.Resource[0] != "EpisodeOfCare" {
			t.Errorf("%s: resource %v", url, od.Resource)
		}
	}
}
