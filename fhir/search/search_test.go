package search

import (
	"encoding/json"
	"errors"
	"net/url"
	"os"
	"path/filepath"
	"sort"
	"strconv"
	"strings"
	"sync"
	"testing"

	"github.com/casefhir/casefhir/fhir/outcome"
	"github.com/casefhir/casefhir/fhir/store"
)

// projectParams mirrors the project's own SearchParameters (conformance
// publishes them; fhir/... must not import conformance).
const projectParams = `{"resourceType":"Bundle","type":"collection","entry":[
{"resource":{"resourceType":"SearchParameter","url":"https://casefhir.org/fhir/SearchParameter/Observation-episode-of-care","code":"episode-of-care","base":["Observation"],"type":"reference","target":["EpisodeOfCare"],
 "expression":"Observation.extension('http://hl7.org/fhir/StructureDefinition/workflow-episodeOfCare').value"}},
{"resource":{"resourceType":"SearchParameter","url":"https://casefhir.org/fhir/SearchParameter/Encounter-episode-of-care","code":"episode-of-care","base":["Encounter"],"type":"reference","target":["EpisodeOfCare"],"expression":"Encounter.episodeOfCare"}},
{"resource":{"resourceType":"SearchParameter","url":"https://casefhir.org/fhir/SearchParameter/EpisodeOfCare-phase","code":"phase","base":["EpisodeOfCare"],"type":"token",
 "expression":"EpisodeOfCare.extension('https://casefhir.org/fhir/StructureDefinition/case-phase').value"}},
{"resource":{"resourceType":"SearchParameter","url":"https://casefhir.org/fhir/SearchParameter/EpisodeOfCare-team","code":"team","base":["EpisodeOfCare"],"type":"reference","target":["CareTeam"],"expression":"EpisodeOfCare.team"}},
{"resource":{"resourceType":"SearchParameter","url":"https://casefhir.org/fhir/SearchParameter/RiskAssessment-status","code":"status","base":["RiskAssessment"],"type":"token","expression":"RiskAssessment.status"}}
]}`

var (
	regOnce sync.Once
	regVal  *Registry
	regErr  error
)

func testRegistry(t testing.TB) *Registry {
	t.Helper()
	regOnce.Do(func() {
		b, err := os.ReadFile("../../conformance/artefacts/search-parameters.json")
		if err != nil {
			regErr = err
			return
		}
		regVal, regErr = NewRegistry(b, []byte(projectParams))
	})
	if regErr != nil {
		t.Fatal(regErr)
	}
	return regVal
}

var fixtures = []string{
	`{"resourceType":"Patient","id":"p1","meta":{"lastUpdated":"2024-07-01T10:00:00.123Z","tag":[{"system":"http://x","code":"t1"}],"profile":["http://example.org/StructureDefinition/p|1.0"]},
	  "identifier":[{"system":"urn:mrn","value":"123","type":{"coding":[{"system":"http://terminology.hl7.org/CodeSystem/v2-0203","code":"MR"}],"text":"Medical record number"}}],
	  "name":[{"family":"Müller","given":["José","Ana"]}],"gender":"male","birthDate":"1980-05","active":true,
	  "telecom":[{"system":"phone","value":"555-1234"}],"managingOrganization":{"reference":"Organization/org1"}}`,
	`{"resourceType":"Patient","id":"p2","meta":{"lastUpdated":"2024-05-01T00:00:00Z"},"name":[{"family":"Smith","given":["John"]}],"gender":"female","birthDate":"1990-01-01","deceasedDateTime":"2020-02-02T10:00:00Z"}`,
	`{"resourceType":"Patient","id":"p3","gender":"other","birthDate":"1980-05-20","managingOrganization":{"reference":"http://elsewhere.org/fhir/Organization/org1"}}`,
	`{"resourceType":"Organization","id":"org1","name":"Acme Health"}`,
	`{"resourceType":"Observation","id":"o1","status":"final",
	  "extension":[{"url":"http://hl7.org/fhir/StructureDefinition/workflow-episodeOfCare","valueReference":{"reference":"EpisodeOfCare/e1"}}],
	  "code":{"coding":[{"system":"http://loinc.org","code":"29463-7","display":"Body Weight"}],"text":"Body weight"},
	  "subject":{"reference":"Patient/p1"},"effectiveDateTime":"2024-03-01T10:00:00+02:00",
	  "valueQuantity":{"value":72.5,"unit":"kg","system":"http://unitsofmeasure.org","code":"kg"}}`,
	`{"resourceType":"Observation","id":"o2","status":"final","code":{"coding":[{"system":"http://loinc.org","code":"8867-4"}]},
	  "subject":{"reference":"Patient/p2"},"effectivePeriod":{"start":"2023-12-31T22:00:00Z","end":"2024-01-01T02:00:00Z"},
	  "valueQuantity":{"value":60,"unit":"beats/min","system":"http://unitsofmeasure.org","code":"/min"},
	  "component":[{"code":{"coding":[{"system":"http://loinc.org","code":"8480-6"}]},"valueQuantity":{"value":120,"system":"http://unitsofmeasure.org","code":"mm[Hg]"}},
	               {"code":{"coding":[{"system":"http://loinc.org","code":"8462-4"}]},"valueQuantity":{"value":80,"system":"http://unitsofmeasure.org","code":"mm[Hg]"}}]}`,
	`{"resourceType":"Observation","id":"o3","status":"preliminary","code":{"coding":[{"system":"http://snomed.info/sct","code":"260385009"},{"system":"http://loinc.org","code":"5778-6"}]},
	  "subject":{"reference":"Group/g1"},"performer":[{"reference":"Patient/p1"},{"identifier":{"system":"urn:npi","value":"999"}}],"valueString":"Négatif"}`,
	`{"resourceType":"EpisodeOfCare","id":"e1","status":"active","patient":{"reference":"Patient/p1"},"team":[{"reference":"CareTeam/t1"}],
	  "extension":[{"url":"https://casefhir.org/fhir/StructureDefinition/case-phase","valueCoding":{"system":"https://casefhir.org/fhir/CodeSystem/case-phase","code":"monitoring"}}],
	  "period":{"start":"2024-01-01"}}`,
	`{"resourceType":"Encounter","id":"enc1","status":"in-progress","subject":{"reference":"Patient/p1"},"episodeOfCare":[{"reference":"EpisodeOfCare/e1"}],"period":{"start":"2024-02-01T09:00:00Z"}}`,
	`{"resourceType":"RiskAssessment","id":"ra1","status":"final","subject":{"reference":"Patient/p1"},"prediction":[{"probabilityDecimal":0.25},{"probabilityRange":{"low":{"value":0.1},"high":{"value":0.3}}}]}`,
	`{"resourceType":"PlanDefinition","id":"pd1","status":"active","url":"http://example.org/fhir/PlanDefinition/weight","version":"2",
	  "relatedArtifact":[{"type":"depends-on","resource":"http://example.org/fhir/Library/lib|1.0"}]}`,
}

type indexed struct {
	typ, id string
	index   map[string]any
}

func loadFixtures(t testing.TB, r *Registry) []indexed {
	t.Helper()
	var out []indexed
	for _, f := range fixtures {
		var head struct {
			ResourceType, ID string
		}
		if err := json.Unmarshal([]byte(f), &head); err != nil {
			t.Fatalf("fixture: %v", err)
		}
		idx, err := r.Extract(head.ResourceType, []byte(f))
		if err != nil {
			t.Fatalf("Extract %s/%s: %v", head.ResourceType, head.ID, err)
		}
		// Round-trip through JSON-like values the way a store gives them back is
		// the identity here: the index holds only JSON-like values.
		out = append(out, indexed{head.ResourceType, head.ID, idx})
	}
	return out
}

// run executes q over the fixtures like the server's executor: it resolves
// chains and _has by running the inner queries, narrows with the compiled
// filter (checked to never lose a match) and decides with Matches.
func run(t *testing.T, q *Query, all []indexed) []string {
	t.Helper()
	for _, c := range q.Pending() {
		var refs []string
		if c.Has != nil {
			for _, id := range runIDs(t, c.Has.Inner, all) {
				for _, res := range all {
					if res.typ+"/"+res.id == id {
						refs = append(refs, LocalRefs(res.index, c.Has.Param)...)
					}
				}
			}
		} else {
			for _, inner := range c.Chain {
				refs = append(refs, runIDs(t, inner, all)...)
			}
		}
		c.Resolve(refs)
	}
	f := q.Filter()
	var ids []string
	for _, res := range all {
		if res.typ != q.Type {
			continue
		}
		m := q.Matches(res.index)
		sr := &store.Resource{Type: res.typ, ID: res.id, Index: res.index}
		if m && !f.Match(sr) {
			t.Errorf("filter %s loses %s/%s", dumpFilter(f), res.typ, res.id)
		}
		if m {
			ids = append(ids, res.id)
		}
	}
	sort.Strings(ids)
	return ids
}

func runIDs(t *testing.T, q *Query, all []indexed) []string {
	var out []string
	for _, id := range run(t, q, all) {
		out = append(out, q.Type+"/"+id)
	}
	return out
}

func dumpFilter(f *store.Filter) string {
	b, _ := json.Marshal(f)
	return string(b)
}

func TestSearch(t *testing.T) {
	r := testRegistry(t)
	all := loadFixtures(t, r)
	tests := []struct {
		typ, query string
		want       string // comma-separated ids
	}{
		// string: starts-with, case and accent insensitive; :exact; :contains
		{"Patient", "name=muller", "p1"},
		{"Patient", "name=MÜL", "p1"},
		{"Patient", "name=jose", "p1"},
		{"Patient", "name=jose%20ana", "p1"},
		{"Patient", "name=jose%20m", ""},
		{"Patient", "name=smith,muller", "p1,p2"},
		{"Patient", "name=smith&name=john", "p2"},
		{"Patient", "name=smith&name=jose", ""},
		{"Patient", "name:exact=Müller", "p1"},
		{"Patient", "name:exact=muller", ""},
		{"Patient", "name:contains=ll", "p1"},
		{"Patient", "family=smi", "p2"},
		{"Patient", "name:missing=true", "p3"},
		{"Patient", "name:missing=false", "p1,p2"},
		{"Organization", "name=acme%20h", "org1"},
		{"Observation", "value-string=negatif", "o3"},
		// date: partial dates, prefixes, straddling periods, time zones
		{"Patient", "birthdate=1980", "p1,p3"},
		{"Patient", "birthdate=1980-05", "p1,p3"},
		{"Patient", "birthdate=1980-05-20", "p3"},
		{"Patient", "birthdate=gt1980-05-20", "p1,p2"},
		{"Patient", "birthdate=lt1980-05-20", "p1"},
		{"Patient", "birthdate=ge1990", "p2"},
		{"Patient", "birthdate=le1980-05", "p1,p3"},
		{"Patient", "birthdate=sa1980", "p2"},
		{"Patient", "birthdate=eb1990", "p1,p3"},
		{"Patient", "birthdate=ne1980", "p2"},
		{"Patient", "birthdate=ap1990-01-01", "p2"},
		{"Patient", "birthdate=ge1980-01-01&birthdate=lt1985", "p1,p3"},
		{"Patient", "death-date=2020-02-02", "p2"},
		{"Observation", "date=2024-03-01", "o1"},
		{"Observation", "date=2024-03-01T08:00:00Z", "o1"},
		{"Observation", "date=2024-03-01T10:00:00%2B02:00", "o1"},
		{"Observation", "date=2024-03-01T09:00:00%2B02:00", ""},
		{"Observation", "date=2024", "o1"},
		{"Observation", "date=2023", ""},
		{"Observation", "date=ge2024-01-01", "o1,o2"},
		{"Observation", "date=lt2024", "o2"},
		{"Observation", "date=gt2023-12-31", "o1,o2"},
		{"Observation", "date=eb2024-01-01", ""},
		{"Observation", "date:missing=true", "o3"},
		{"EpisodeOfCare", "date=ge2030", "e1"}, // open-ended period
		{"EpisodeOfCare", "date=lt2024", ""},
		{"Encounter", "date=2024-02-01", ""}, // open period is not contained in a day
		{"Encounter", "date=ge2024-02-01", "enc1"},
		{"Patient", "_lastUpdated=gt2024-06", "p1"},
		{"Patient", "_lastUpdated=2024-07-01T10:00:00.123Z", "p1"},
		// token
		{"Patient", "gender=male", "p1"},
		{"Patient", "gender=|male", "p1"},
		{"Patient", "gender=male,female", "p1,p2"},
		{"Patient", "gender:not=male", "p2,p3"},
		{"Patient", "gender:not=male,female", "p3"},
		{"Patient", "active=true", "p1"},
		{"Patient", "identifier=urn:mrn|123", "p1"},
		{"Patient", "identifier=123", "p1"},
		{"Patient", "identifier=urn:mrn|", "p1"},
		{"Patient", "identifier=urn:other|123", ""},
		{"Patient", "identifier:of-type=http://terminology.hl7.org/CodeSystem/v2-0203|MR|123", "p1"},
		{"Patient", "identifier:text=medical", "p1"},
		{"Patient", "phone=555-1234", "p1"},
		{"Patient", "_tag=http://x|t1", "p1"},
		{"Patient", "_id=p1,p3", "p1,p3"},
		{"Observation", "code=http://loinc.org|29463-7", "o1"},
		{"Observation", "code=29463-7,5778-6", "o1,o3"},
		{"Observation", "code=http://snomed.info/sct|", "o3"},
		{"Observation", "code:text=body", "o1"},
		{"Observation", "code:text=weight", "o1"},
		{"Observation", "code:text=eight", ""},
		{"Observation", "status=final&code=8867-4", "o2"},
		{"EpisodeOfCare", "phase=https://casefhir.org/fhir/CodeSystem/case-phase|monitoring", "e1"},
		{"RiskAssessment", "status=final", "ra1"},
		// quantity and number
		{"Observation", "value-quantity=72.5", "o1"},
		{"Observation", "value-quantity=73", "o1"},
		{"Observation", "value-quantity=72", ""},
		{"Observation", "value-quantity=gt70", "o1"},
		{"Observation", "value-quantity=lt70", "o2"},
		{"Observation", "value-quantity=ge60", "o1,o2"},
		{"Observation", "value-quantity=le60", "o2"},
		{"Observation", "value-quantity=ne60", "o1"},
		{"Observation", "value-quantity=ap66", "o1,o2"},
		{"Observation", "value-quantity=72.5|http://unitsofmeasure.org|kg", "o1"},
		{"Observation", "value-quantity=72.5||kg", "o1"},
		{"Observation", "value-quantity=72.5|http://unitsofmeasure.org|g", ""},
		{"Observation", "component-value-quantity=120", "o2"},
		{"Observation", "combo-value-quantity=80", "o2"},
		{"Observation", "value-quantity=7.25e1", "o1"},
		{"RiskAssessment", "probability=0.25", "ra1"},
		{"RiskAssessment", "probability=gt0.29", "ra1"},
		{"RiskAssessment", "probability=gt0.3", ""},
		// composite
		{"Observation", "code-value-quantity=http://loinc.org|29463-7$72.5", "o1"},
		{"Observation", "code-value-quantity=http://loinc.org|8867-4$72.5", ""},
		{"Observation", "component-code-value-quantity=http://loinc.org|8480-6$gt100", "o2"},
		{"Observation", "component-code-value-quantity=http://loinc.org|8462-4$gt100", ""},
		// reference
		{"Observation", "subject=Patient/p1", "o1"},
		{"Observation", "subject=p1", "o1"},
		{"Observation", "subject:Patient=p1", "o1"},
		{"Observation", "patient=p1", "o1"},
		{"Observation", "subject=Group/g1", "o3"},
		{"Observation", "patient=Group/g1", ""},
		{"Observation", "performer=Patient/p1", "o3"},
		{"Observation", "performer:identifier=urn:npi|999", "o3"},
		{"Observation", "episode-of-care=EpisodeOfCare/e1", "o1"},
		{"Encounter", "episode-of-care=e1", "enc1"},
		{"EpisodeOfCare", "team=CareTeam/t1", "e1"},
		{"Patient", "organization=http://elsewhere.org/fhir/Organization/org1", "p3"},
		{"Patient", "organization=http://localhost/fhir/Organization/org1", "p1"},
		{"PlanDefinition", "depends-on=http://example.org/fhir/Library/lib", "pd1"},
		{"PlanDefinition", "depends-on=http://example.org/fhir/Library/lib|1.0", "pd1"},
		{"PlanDefinition", "depends-on:below=http://example.org/fhir/Library", "pd1"},
		// uri
		{"PlanDefinition", "url=http://example.org/fhir/PlanDefinition/weight", "pd1"},
		{"PlanDefinition", "url:below=http://example.org/fhir", "pd1"},
		{"PlanDefinition", "url:above=http://example.org/fhir/PlanDefinition/weight/extra", "pd1"},
		{"PlanDefinition", "url=http://example.org/fhir", ""},
		{"Patient", "_profile=http://example.org/StructureDefinition/p", "p1"},
		// chains and reverse chains
		{"Observation", "subject:Patient.name=muller", "o1"},
		{"Observation", "patient.name=smith", "o2"},
		{"Observation", "subject.name=smith", "o2"},
		{"Observation", "subject:Patient.organization.name=acme", "o1"},
		{"Observation", "subject:Patient.organization:Organization.name=nope", ""},
		{"Patient", "_has:Observation:patient:code=29463-7", "p1"},
		{"Patient", "_has:Observation:subject:status=final", "p1,p2"},
		{"Patient", "_has:Observation:patient:_has:EpisodeOfCare:patient:status=active", ""},
		{"Organization", "_has:Patient:organization:_has:Observation:patient:code=29463-7", "org1"},
		// escaping
		{"Patient", `name=mu\,x`, ""},
	}
	for _, tt := range tests {
		t.Run(tt.typ+"?"+tt.query, func(t *testing.T) {
			vals, err := url.ParseQuery(tt.query)
			if err != nil {
				t.Fatal(err)
			}
			q, err := r.Parse(tt.typ, vals, true)
			if err != nil {
				t.Fatalf("Parse: %v (%s)", err, outcome.As(err).Diagnostics)
			}
			q.Base = "http://localhost/fhir"
			got := strings.Join(run(t, q, all), ",")
			if got != tt.want {
				t.Errorf("got [%s], want [%s]", got, tt.want)
			}
		})
	}
}

func TestCompartment(t *testing.T) {
	r := testRegistry(t)
	all := loadFixtures(t, r)
	got := map[string][]string{}
	for _, res := range all {
		for _, p := range []string{"p1", "p2", "p3"} {
			if InCompartment(res.index, p) {
				if !PatientCompartmentFilter(res.typ, p).Match(&store.Resource{Type: res.typ, ID: res.id, Index: res.index}) {
					t.Errorf("compartment filter loses %s/%s", res.typ, res.id)
				}
				got[p] = append(got[p], res.typ+"/"+res.id)
			}
		}
	}
	want := map[string][]string{
		"p1": {"Patient/p1", "Observation/o1", "Observation/o3", "EpisodeOfCare/e1", "Encounter/enc1", "RiskAssessment/ra1"},
		"p2": {"Patient/p2", "Observation/o2"},
		"p3": {"Patient/p3"},
	}
	for p, w := range want {
		if strings.Join(got[p], " ") != strings.Join(w, " ") {
			t.Errorf("%s: got %v, want %v", p, got[p], w)
		}
	}
}

func TestSort(t *testing.T) {
	r := testRegistry(t)
	all := loadFixtures(t, r)
	for _, tt := range []struct{ sort, want string }{
		{"birthdate", "p1 p3 p2"},
		{"-birthdate", "p2 p1 p3"}, // 1980-05 ends after 1980-05-20
		{"name", "p1 p2 p3"},       // ana < john (smallest name); missing last
		{"-name", "p2 p1 p3"},      // smith > muller (largest name)
		{"gender,-birthdate", "p2 p1 p3"},
	} {
		q, err := r.Parse("Patient", url.Values{"_sort": {tt.sort}}, true)
		if err != nil {
			t.Fatal(err)
		}
		var pats []indexed
		for _, res := range all {
			if res.typ == "Patient" {
				pats = append(pats, res)
			}
		}
		sort.SliceStable(pats, func(i, j int) bool {
			for k, key := range q.Sort {
				a, b := q.SortValue(pats[i].index, k), q.SortValue(pats[j].index, k)
				c := CompareSort(a, b)
				if key.Desc && a != nil && b != nil {
					c = -c
				}
				if c != 0 {
					return c < 0
				}
			}
			return pats[i].id < pats[j].id
		})
		var ids []string
		for _, p := range pats {
			ids = append(ids, p.id)
		}
		if got := strings.Join(ids, " "); got != tt.want {
			t.Errorf("_sort=%s: got %s, want %s", tt.sort, got, tt.want)
		}
	}
}

func TestParseErrors(t *testing.T) {
	r := testRegistry(t)
	tests := []struct {
		typ, query string
		strict     bool
		code       outcome.Code
	}{
		{"Patient", "birthdate=1980-13", false, outcome.Invalid},
		{"Patient", "birthdate=xx", false, outcome.Invalid},
		{"Patient", "birthdate=2024-02-30", false, outcome.Invalid},
		{"Observation", "value-quantity=abc", false, outcome.Invalid},
		{"Observation", "value-quantity=1|2", false, outcome.Invalid},
		{"Observation", "code-value-quantity=a", false, outcome.Invalid},
		{"Patient", "gender=a|b|c", false, outcome.Invalid},
		{"Patient", "name:missing=maybe", false, outcome.Invalid},
		{"Patient", "_count=-1", false, outcome.Invalid},
		{"Patient", "_total=some", false, outcome.Invalid},
		{"Patient", "_summary=yes", false, outcome.Invalid},
		{"Patient", "_include=Patient", false, outcome.Invalid},
		{"Observation", "subject=Patient/", false, outcome.Invalid},
		{"Observation", "subject:Patient=Group/g1", false, outcome.Invalid},
		{"Patient", "foo=bar", true, outcome.NotSupported},
		{"Patient", "name:text=x", true, outcome.NotSupported},
		{"Patient", "_text=x", true, outcome.NotSupported},
		{"Patient", "_sort=foo", true, outcome.NotSupported},
		{"Patient", "_include=Patient:name", true, outcome.NotSupported},
		{"Observation", "subject.foo=x", true, outcome.NotSupported},
		{"Patient", "_has:Observation:nope:code=x", true, outcome.NotSupported},
		{"", "_type=Nope", false, outcome.Invalid},
		{"", "name=x", true, outcome.NotSupported},
	}
	for _, tt := range tests {
		t.Run(tt.query, func(t *testing.T) {
			vals, _ := url.ParseQuery(tt.query)
			_, err := r.Parse(tt.typ, vals, tt.strict)
			var oe *outcome.Error
			if !errors.As(err, &oe) {
				t.Fatalf("err = %v, want *outcome.Error", err)
			}
			if oe.Code != tt.code || oe.HTTPStatus() != 400 {
				t.Errorf("code %s status %d, want %s 400", oe.Code, oe.HTTPStatus(), tt.code)
			}
			// Details are PHI-free: never the value itself.
			for _, v := range vals {
				for _, s := range v {
					if len(s) > 2 && strings.Contains(oe.Detail, s) {
						t.Errorf("Detail %q contains the value %q", oe.Detail, s)
					}
				}
			}
		})
	}
}

func TestLenient(t *testing.T) {
	r := testRegistry(t)
	vals, _ := url.ParseQuery("name=smith&foo=bar&_text=x&_sort=-birthdate,nope&_count=10&_include=Patient:organization&_revinclude:iterate=Observation:patient&_total=accurate")
	q, err := r.Parse("Patient", vals, false)
	if err != nil {
		t.Fatal(err)
	}
	if got := strings.Join(q.Unknown, ","); got != "_sort,_text,foo" {
		t.Errorf("Unknown = %s", got)
	}
	self := q.SelfParams()
	want := "_count=10&_include=Patient%3Aorganization&_revinclude%3Aiterate=Observation%3Apatient&_sort=-birthdate&_total=accurate&name=smith"
	if got := self.Encode(); got != want {
		t.Errorf("SelfParams = %s\nwant          %s", got, want)
	}
	if len(q.RevInclude) != 1 || !q.RevInclude[0].Iterate || q.RevInclude[0].Source != "Observation" {
		t.Errorf("RevInclude = %+v", q.RevInclude)
	}
	if !q.HasCount || q.Count != 10 || q.Total != "accurate" {
		t.Errorf("count/total = %v %d %s", q.HasCount, q.Count, q.Total)
	}
}

func TestSystemSearch(t *testing.T) {
	r := testRegistry(t)
	all := loadFixtures(t, r)
	vals, _ := url.ParseQuery("_type=Patient,Observation&subject=Patient/p1&_lastUpdated=gt2000")
	if _, err := r.Parse("", vals, true); err == nil {
		t.Error("want error: subject is not defined on Patient")
	}
	vals, _ = url.ParseQuery("_type=Patient,Observation&_id=p1,o1")
	q, err := r.Parse("", vals, true)
	if err != nil {
		t.Fatal(err)
	}
	var got []string
	for _, typ := range q.Types {
		sub := q.ForType(typ)
		for _, res := range all {
			if res.typ == typ && sub.Matches(res.index) {
				got = append(got, typ+"/"+res.id)
			}
		}
	}
	if strings.Join(got, " ") != "Patient/p1 Observation/o1" {
		t.Errorf("got %v", got)
	}
	if s := q.SelfParams().Encode(); s != "_id=p1%2Co1&_type=Patient%2CObservation" {
		t.Errorf("self = %s", s)
	}
}

func TestRegistry(t *testing.T) {
	r := testRegistry(t)
	p, ok := r.Lookup("Observation", "code-value-quantity")
	if !ok || p.Type != TypeComposite || len(p.Components) != 2 || p.Components[0].Type != TypeToken || p.Components[1].Type != TypeQuantity {
		t.Fatalf("composite: %+v", p)
	}
	for _, code := range []string{"_id", "_lastUpdated", "_tag", "_profile", "_security", "_source"} {
		if p, ok := r.Lookup("CarePlan", code); !ok || !p.Supported() {
			t.Errorf("%s not supported", code)
		}
	}
	for _, code := range []string{"_text", "_content", "_query"} {
		if p, ok := r.Lookup("CarePlan", code); !ok || p.Supported() {
			t.Errorf("%s: want known but unsupported", code)
		}
	}
	if p, ok := r.Lookup("Location", "near"); !ok || p.Supported() {
		t.Error("near: want known but unsupported")
	}
	if p, ok := r.Lookup("CarePlan", "patient"); !ok || p.URL != "http://hl7.org/fhir/SearchParameter/clinical-patient" {
		t.Errorf("CarePlan patient: %+v", p)
	}
	if p, ok := r.Lookup("EpisodeOfCare", "phase"); !ok || p.URL != "https://casefhir.org/fhir/SearchParameter/EpisodeOfCare-phase" {
		t.Errorf("phase: %+v", p)
	}
	unsupported := 0
	total := 0
	for _, typ := range []string{"Patient", "Observation", "CarePlan", "EpisodeOfCare", "Task", "Coverage"} {
		for _, p := range r.Params(typ) {
			total++
			if !p.Supported() {
				unsupported++
			}
		}
	}
	if unsupported != 6*3 { // _text, _content, _query on each
		t.Errorf("%d of %d unsupported", unsupported, total)
	}
	if len(r.IndexPaths("Patient")) < 20 {
		t.Errorf("IndexPaths: %v", r.IndexPaths("Patient"))
	}
}

// eachExample calls fn with the file, type and extracted index of every
// official R4 example (skipping the test when they are not available).
func eachExample(t *testing.T, r *Registry, fn func(file, typ string, idx map[string]any)) {
	t.Helper()
	files, _ := filepath.Glob("../../../shared/fhir-r4/examples/*/*.json")
	if len(files) == 0 {
		t.Skip("R4 examples not available")
	}
	for _, f := range files {
		b, err := os.ReadFile(f)
		if err != nil {
			t.Fatal(err)
		}
		typ := filepath.Base(filepath.Dir(f))
		idx, err := r.Extract(typ, b)
		if err != nil {
			t.Errorf("%s: %v", f, err)
			continue
		}
		fn(f, typ, idx)
	}
}

// TestExamples extracts every official R4 example and checks a few values.
func TestExamples(t *testing.T) {
	r := testRegistry(t)
	byKey := map[string]map[string]any{}
	eachExample(t, r, func(f, _ string, idx map[string]any) {
		if _, err := json.Marshal(idx); err != nil {
			t.Errorf("%s: index not JSON-like: %v", f, err)
		}
		byKey[strings.TrimSuffix(filepath.Base(f), ".json")] = idx
	})
	check := func(typ, key, query string, want bool) {
		t.Helper()
		vals, _ := url.ParseQuery(query)
		q, err := r.Parse(typ, vals, true)
		if err != nil {
			t.Fatalf("%s: %v", query, err)
		}
		idx := byKey[key]
		if idx == nil {
			t.Fatalf("no example %s", key)
		}
		if got := q.Matches(idx); got != want {
			t.Errorf("%s ? %s = %v, want %v", key, query, got, want)
		}
		if want && !q.Filter().Match(&store.Resource{ID: strings.TrimPrefix(key, typ+"-"), Index: idx}) {
			t.Errorf("%s ? %s: filter loses it", key, query)
		}
	}
	check("Patient", "Patient-example", "name=peter", true)
	check("Patient", "Patient-example", "family=chalmers&given=jim", true)
	check("Patient", "Patient-example", "birthdate=1974-12-25", true)
	check("Patient", "Patient-example", "identifier=urn:oid:1.2.36.146.595.217.0.1|12345", true)
	check("Patient", "Patient-example", "address-city=PleasantVille", true)
	check("Patient", "Patient-example", "gender=female", false)
	check("Observation", "Observation-example", "code=http://loinc.org|29463-7", true)
	check("Observation", "Observation-example", "value-quantity=185|http://unitsofmeasure.org|[lb_av]", true)
	check("Observation", "Observation-example", "subject=Patient/example", true)
	check("Observation", "Observation-example", "date=2016-03-28", true)
	check("Observation", "Observation-blood-pressure", "component-code-value-quantity=http://loinc.org|8480-6$107", true)
	check("Observation", "Observation-blood-pressure", "component-code-value-quantity=http://loinc.org|8462-4$107", false)
	check("EpisodeOfCare", "EpisodeOfCare-example", "status=active&type=hacc&patient=example", true)
	check("CarePlan", "CarePlan-example", "subject=Patient/example", true)
	check("Condition", "Condition-example", "code=http://snomed.info/sct|39065001", true)
	check("Condition", "Condition-f201", "onset-date=2013-04", true)
	check("Task", "Task-example1", "owner=Organization/1832473e-2fe0-452d-abe9-3cdb9879522f", true)
	check("Coverage", "Coverage-9876B1", "beneficiary=Patient/4", true)
}

func TestNormalize(t *testing.T) {
	for in, want := range map[string]string{
		"Müller": "muller", "  José  Ana ": "jose ana", "Straße": "strasse", "ÅNGSTRÖM": "angstrom", "plain": "plain",
		"Øre": "ore", "Nguyễn": "nguyen",
	} {
		if got := normalize(in); got != want {
			t.Errorf("normalize(%q) = %q, want %q", in, got, want)
		}
	}
}

func TestParseDate(t *testing.T) {
	for _, tt := range []struct{ in, lo, hi string }{
		{"2024", "2024-01-01T00:00:00Z", "2025-01-01T00:00:00Z"},
		{"2024-02", "2024-02-01T00:00:00Z", "2024-03-01T00:00:00Z"},
		{"2024-02-29", "2024-02-29T00:00:00Z", "2024-03-01T00:00:00Z"},
		{"2024-03-01T10:00:00+02:00", "2024-03-01T08:00:00Z", "2024-03-01T08:00:01Z"},
		{"2024-03-01T10:00Z", "2024-03-01T10:00:00Z", "2024-03-01T10:01:00Z"},
		{"2024-03-01T10:00:00.1234Z", "2024-03-01T10:00:00.123Z", "2024-03-01T10:00:00.124Z"},
	} {
		dr, ok := parseDate(tt.in)
		if !ok {
			t.Errorf("%s: not parsed", tt.in)
			continue
		}
		if got := dr.lo.Format("2006-01-02T15:04:05.999Z07:00"); got != tt.lo {
			t.Errorf("%s: lo %s, want %s", tt.in, got, tt.lo)
		}
		if got := dr.hi.Format("2006-01-02T15:04:05.999Z07:00"); got != tt.hi {
			t.Errorf("%s: hi %s, want %s", tt.in, got, tt.hi)
		}
	}
	for _, bad := range []string{"", "20", "2023-02-29", "2024-1", "2024-01-01T25:00:00Z", "2024-01-01T10:00:00+2", "0000", "2024-01-01X"} {
		if _, ok := parseDate(bad); ok {
			t.Errorf("%q parsed", bad)
		}
	}
}

func TestParseNumberBounds(t *testing.T) {
	for _, tt := range []struct {
		in     string
		lo, hi string // the decimals the bounds must equal as float64
	}{
		{"5.4", "5.35", "5.45"},
		{"5.40", "5.395", "5.405"},
		{"100", "99.5", "100.5"},
		{"-0.3", "-0.35", "-0.25"},
		{"+2.1", "2.05", "2.15"},
		{"1e2", "50", "150"},
		{"1.5e-3", "0.00145", "0.00155"},
	} {
		n, ok := parseNumber(tt.in)
		if !ok {
			t.Errorf("%s: not parsed", tt.in)
			continue
		}
		lo, _ := strconv.ParseFloat(tt.lo, 64)
		hi, _ := strconv.ParseFloat(tt.hi, 64)
		if n.lo != lo || n.hi != hi {
			t.Errorf("%s: [%v, %v), want [%v, %v)", tt.in, n.lo, n.hi, lo, hi)
		}
	}
	if n, ok := parseNumber("1e-99999"); !ok || n.v != 0 {
		t.Errorf("1e-99999: %v %v", n, ok)
	}
}
