package server_test

import (
	"encoding/json"
	"net/url"
	"slices"
	"sort"
	"strings"
	"testing"
	"time"

	"github.com/casefhir/casefhir/server/servertest"
)

// The end-to-end search test seeds a purpose-built data set over HTTP (PUT
// with fixed ids) and checks, per row, the exact set of search.mode=match
// ids (and of includes) over every page. Expectations follow FHIR R4
// search (https://hl7.org/fhir/R4/search.html); ids are unique across
// types so rows list bare ids.

const (
	e2eLOINC      = "http://loinc.org"
	e2eSCT        = "http://snomed.info/sct"
	e2eUCUM       = "http://unitsofmeasure.org"
	e2eMRN        = "urn:sys:mrn"
	e2eV20203     = "http://terminology.hl7.org/CodeSystem/v2-0203"
	e2eEpisodeExt = "http://hl7.org/fhir/StructureDefinition/workflow-episodeOfCare"
)

func e2eSeed() []string {
	glucose := `{"coding":[{"system":"http://loinc.org","code":"2339-0","display":"Glucose"}]}`
	lab := `[{"coding":[{"system":"http://terminology.hl7.org/CodeSystem/observation-category","code":"laboratory"}]}]`
	vital := `[{"coding":[{"system":"http://terminology.hl7.org/CodeSystem/observation-category","code":"vital-signs"}]}]`
	obs := func(id, subject, code, cat, rest string) string {
		s := `{"resourceType":"Observation","id":"` + id + `","status":"final","category":` + cat + `,"code":` + code
		if subject != "" {
			s += `,"subject":{"reference":"Patient/` + subject + `"}`
		}
		if rest != "" {
			s += "," + rest
		}
		return s + "}"
	}
	qty := func(v, unit, system, code string) string {
		s := `"valueQuantity":{"value":` + v
		if unit != "" {
			s += `,"unit":"` + unit + `"`
		}
		if system != "" {
			s += `,"system":"` + system + `"`
		}
		if code != "" {
			s += `,"code":"` + code + `"`
		}
		return s + "}"
	}
	loinc := func(code string) string {
		return `{"coding":[{"system":"http://loinc.org","code":"` + code + `"}]}`
	}
	carePlan := func(id, eoc string) string {
		ext := ""
		if eoc != "" {
			ext = `"extension":[{"url":"` + e2eEpisodeExt + `","valueReference":{"reference":"EpisodeOfCare/` + eoc + `"}}],`
		}
		return `{"resourceType":"CarePlan","id":"` + id + `",` + ext + `"status":"active","intent":"plan","subject":{"reference":"Patient/pat-mueller"}}`
	}
	return []string{
		`{"resourceType":"Organization","id":"org-a","name":"Acme Health"}`,
		`{"resourceType":"Organization","id":"org-b","name":"Beta Clinic","partOf":{"reference":"Organization/org-a"}}`,

		`{"resourceType":"Patient","id":"pat-mueller",
		  "meta":{"tag":[{"system":"urn:tags","code":"vip"}],"profile":["http://example.org/StructureDefinition/special-patient"]},
		  "identifier":[{"type":{"coding":[{"system":"` + e2eV20203 + `","code":"MR"}]},"system":"urn:sys:mrn","value":"M1"},{"system":"urn:sys:ssn","value":"111"}],
		  "name":[{"use":"official","family":"Müller","given":["Hans"]},{"use":"nickname","given":["Hansi"]}],
		  "telecom":[{"system":"phone","value":"555-0101"},{"system":"email","value":"hans@example.org"}],
		  "gender":"male","birthDate":"1974","active":true,"managingOrganization":{"reference":"Organization/org-b"}}`,
		`{"resourceType":"Patient","id":"pat-muller","identifier":[{"system":"urn:sys:mrn","value":"M2"}],
		  "name":[{"family":"MULLER","given":["Anna"]}],"gender":"female","active":false,"birthDate":"1974-12",
		  "managingOrganization":{"reference":"Organization/org-a"}}`,
		`{"resourceType":"Patient","id":"pat-jose","identifier":[{"system":"urn:sys:mrn","value":"M3"}],
		  "name":[{"family":"García","given":["José"]}],"telecom":[{"system":"phone","value":"555-0103"}],
		  "gender":"male","birthDate":"1974-12-25"}`,
		`{"resourceType":"Patient","id":"pat-smith","name":[{"family":"Smith","given":["John"]}],"gender":"unknown","birthDate":"1975-01-01"}`,
		`{"resourceType":"Patient","id":"pat-klein","name":[{"family":"Kleinmüller","given":["Eva"]}],"gender":"female","birthDate":"1985-06-15"}`,
		`{"resourceType":"Patient","id":"pat-nobirth","name":[{"family":"Mullerson"}]}`,

		`{"resourceType":"Encounter","id":"enc-1","status":"finished","class":{"system":"http://terminology.hl7.org/CodeSystem/v3-ActCode","code":"AMB"},"subject":{"reference":"Patient/pat-jose"}}`,
		`{"resourceType":"Encounter","id":"enc-2","status":"finished","class":{"system":"http://terminology.hl7.org/CodeSystem/v3-ActCode","code":"AMB"},"subject":{"reference":"Patient/pat-mueller"}}`,

		// Quantities: 5.4 has the implicit range [5.35, 5.45).
		obs("obs-q1", "pat-mueller", glucose, lab, qty("5.40", "mmol/L", e2eUCUM, "mmol/L")),
		obs("obs-q2", "pat-muller", glucose, lab, qty("5.35", "mmol/L", e2eUCUM, "mmol/L")),
		obs("obs-q3", "pat-mueller", glucose, lab, qty("5.45", "mmol/L", e2eUCUM, "mmol/L")),
		obs("obs-q4", "pat-jose", glucose, lab, qty("5.4", "mg/dL", e2eUCUM, "mg/dL")),
		obs("obs-q5", "pat-smith", loinc("8310-5"), vital, qty("98.6", "degF", e2eUCUM, "[degF]")),
		obs("obs-q6", "pat-muller", glucose, lab, qty("5.4", "mmol/L", "", "")),

		// Dates: zones, precisions, periods straddling a year, open periods.
		obs("obs-d1", "pat-mueller", loinc("29463-7"), vital, `"encounter":{"reference":"Encounter/enc-1"},"effectiveDateTime":"2024-03-01T23:30:00-05:00"`),
		obs("obs-d2", "pat-jose", loinc("8302-2"), vital, `"encounter":{"reference":"Encounter/enc-2"},"effectiveDateTime":"2024-03-01T10:00:00+02:00"`),
		obs("obs-d3", "pat-muller", loinc("8302-2"), vital, `"effectiveDateTime":"2024-03"`),
		obs("obs-p1", "pat-mueller", loinc("8302-2"), vital, `"effectivePeriod":{"start":"2023-12-30","end":"2024-01-02"}`),
		obs("obs-p2", "pat-smith", loinc("8302-2"), vital, `"effectivePeriod":{"start":"2023-06-01"}`),
		obs("obs-p3", "pat-jose", loinc("8302-2"), vital, `"effectivePeriod":{"end":"2022-05-01"}`),

		// Components, several codings, a code without system, a logical reference.
		obs("obs-bp", "pat-mueller", loinc("85354-9"), vital, `"component":[
		  {"code":{"coding":[{"system":"http://loinc.org","code":"8480-6"}]},"valueQuantity":{"value":120,"unit":"mmHg","system":"`+e2eUCUM+`","code":"mm[Hg]"}},
		  {"code":{"coding":[{"system":"http://loinc.org","code":"8462-4"}]},"valueQuantity":{"value":80,"unit":"mmHg","system":"`+e2eUCUM+`","code":"mm[Hg]"}}]`),
		obs("obs-multi", "pat-jose", `{"coding":[{"system":"http://loinc.org","code":"8867-4","display":"Heart rate"},{"system":"http://snomed.info/sct","code":"364075005"}],"text":"Heart rate"}`, vital, ""),
		obs("obs-nosys", "pat-muller", `{"coding":[{"code":"HR-LOCAL","display":"Local pulse"}]}`, vital, ""),
		obs("obs-logical", "", loinc("8867-4"), vital, `"subject":{"identifier":{"system":"urn:sys:mrn","value":"M9"}}`),

		`{"resourceType":"Condition","id":"cond-1","code":{"coding":[{"system":"http://snomed.info/sct","code":"44054006"}]},"subject":{"reference":"Patient/pat-mueller"},"encounter":{"reference":"Encounter/enc-2"}}`,
		`{"resourceType":"Condition","id":"cond-2","code":{"coding":[{"system":"http://snomed.info/sct","code":"38341003"}]},"subject":{"reference":"Patient/pat-jose"}}`,

		`{"resourceType":"ValueSet","id":"vs-colors","url":"http://example.org/fhir/ValueSet/colors","status":"active"}`,
		`{"resourceType":"ValueSet","id":"vs-warm","url":"http://example.org/fhir/ValueSet/colors/warm","status":"active"}`,
		`{"resourceType":"ValueSet","id":"vs-other","url":"http://other.example.org/fhir/ValueSet/colors","status":"active"}`,

		// number: a decimal and a Range.
		`{"resourceType":"RiskAssessment","id":"ra-1","status":"final","subject":{"reference":"Patient/pat-jose"},"prediction":[{"probabilityDecimal":0.25}]}`,
		`{"resourceType":"RiskAssessment","id":"ra-2","status":"final","subject":{"reference":"Patient/pat-smith"},"prediction":[{"probabilityRange":{"low":{"value":0.2},"high":{"value":0.4}}}]}`,
		`{"resourceType":"RiskAssessment","id":"ra-3","status":"final","subject":{"reference":"Patient/pat-smith"},"prediction":[{"probabilityDecimal":0.05},{"probabilityDecimal":0.9}]}`,

		`{"resourceType":"EpisodeOfCare","id":"eoc-1","status":"active","patient":{"reference":"Patient/pat-mueller"}}`,
		carePlan("cp-1", "eoc-1"),
		carePlan("cp-2", "eoc-1"),
		carePlan("cp-3", ""),
	}
}

var (
	e2eAllObs = []string{"obs-q1", "obs-q2", "obs-q3", "obs-q4", "obs-q5", "obs-q6", "obs-d1", "obs-d2", "obs-d3",
		"obs-p1", "obs-p2", "obs-p3", "obs-bp", "obs-multi", "obs-nosys", "obs-logical"}
	e2eAllPat = []string{"pat-mueller", "pat-muller", "pat-jose", "pat-smith", "pat-klein", "pat-nobirth"}
)

func e2eExcept(all []string, drop ...string) []string {
	var out []string
	for _, s := range all {
		if !slices.Contains(drop, s) {
			out = append(out, s)
		}
	}
	return out
}

// e2eResult is what a search returned over all its pages.
type e2eResult struct {
	match, include []string // in page order
	matchTypes     []string // resourceType of each match
	totals         []any    // Bundle.total of each page (nil when absent)
	pages          int
	entries        []map[string]any // match entries' resources
	self           string
}

// e2eFetch runs a search and follows next links, failing on any non-200
// page, on a duplicate match, or on a loop.
func e2eFetch(t *testing.T, s *servertest.Server, method, path, body string, hdr ...string) e2eResult {
	t.Helper()
	var res e2eResult
	seen := map[string]bool{}
	for res.pages < 50 {
		r := s.Do(t, method, path, e2eBody(body), hdr...)
		if r.Status != 200 {
			t.Fatalf("%s %s: status %d: %s", method, path, r.Status, r.Body)
		}
		m := r.JSON()
		if m["resourceType"] != "Bundle" || m["type"] != "searchset" {
			t.Fatalf("%s %s: not a searchset: %s", method, path, r.Body)
		}
		res.pages++
		res.totals = append(res.totals, m["total"])
		next := ""
		links, _ := m["link"].([]any)
		for _, l := range links {
			lm, _ := l.(map[string]any)
			switch lm["relation"] {
			case "next":
				next, _ = lm["url"].(string)
			case "self":
				if res.pages == 1 {
					res.self, _ = lm["url"].(string)
				}
			}
		}
		entries, _ := m["entry"].([]any)
		for _, e := range entries {
			em, _ := e.(map[string]any)
			rs, _ := em["resource"].(map[string]any)
			sm, _ := em["search"].(map[string]any)
			id, _ := rs["id"].(string)
			switch sm["mode"] {
			case "match":
				if seen[id] {
					t.Errorf("%s %s: %s returned twice", method, path, id)
				}
				seen[id] = true
				res.match = append(res.match, id)
				rt, _ := rs["resourceType"].(string)
				res.matchTypes = append(res.matchTypes, rt)
				res.entries = append(res.entries, rs)
			case "include":
				if !slices.Contains(res.include, id) {
					res.include = append(res.include, id)
				}
			}
		}
		if next == "" {
			return res
		}
		method, path, body, hdr = "GET", next, "", nil
	}
	t.Fatalf("%s %s: more than 50 pages", method, path)
	return res
}

func e2eBody(b string) any {
	if b == "" {
		return nil
	}
	return b
}

func e2eSorted(ids []string) []string {
	out := slices.Clone(ids)
	sort.Strings(out)
	if out == nil {
		out = []string{}
	}
	return out
}

func TestSearchE2E(t *testing.T) {
	s := servertest.Start(t, servertest.Options{})
	t0 := time.Now().UTC().Add(-time.Second).Format("2006-01-02T15:04:05Z")
	for _, js := range e2eSeed() {
		var head struct{ ResourceType, ID string }
		if err := json.Unmarshal([]byte(js), &head); err != nil {
			t.Fatalf("seed: %v", err)
		}
		r := s.Do(t, "PUT", head.ResourceType+"/"+head.ID, js)
		if r.Status != 201 {
			t.Fatalf("seed %s/%s: status %d: %s", head.ResourceType, head.ID, r.Status, r.Body)
		}
	}
	// Touch pat-smith after a marker instant (ms precision) for _lastUpdated.
	time.Sleep(20 * time.Millisecond)
	t1 := time.Now().UTC().Format("2006-01-02T15:04:05.000Z")
	time.Sleep(20 * time.Millisecond)
	wantStatus(t, s.Do(t, "PUT", "Patient/pat-smith", `{"resourceType":"Patient","id":"pat-smith","name":[{"family":"Smith","given":["John"]}],"gender":"unknown","birthDate":"1975-01-01"}`), 200)

	mueller := []string{"obs-q1", "obs-q3", "obs-d1", "obs-p1", "obs-bp"}
	jose := []string{"obs-q4", "obs-d2", "obs-p3", "obs-multi"}

	rows := []struct {
		name    string
		query   string // path and query; {base}, {t0}, {t1} are replaced
		want    []string
		ordered bool
		incl    []string // nil: no includes expected
		count   bool     // the query pages (_count small): more than one page expected
		noAudit bool     // leave out AuditEvents (the server writes them as requests come)
	}{
		// ---- string: starts-with, case- and accent-insensitive; :exact; :contains
		{name: "string default accent+case", query: "Patient?name=muller", want: []string{"pat-mueller", "pat-muller", "pat-nobirth"}},
		{name: "string default query accents", query: "Patient?name=M%C3%9CLL", want: []string{"pat-mueller", "pat-muller", "pat-nobirth"}},
		{name: "string family accent in data", query: "Patient?family=garc", want: []string{"pat-jose"}},
		{name: "string given accent in query", query: "Patient?given=JOS%C3%89", want: []string{"pat-jose"}},
		{name: "string second name on resource", query: "Patient?name=hansi", want: []string{"pat-mueller"}},
		{name: "string is not contains", query: "Patient?name=uller", want: nil},
		{name: "string exact", query: "Patient?name:exact=M%C3%BCller", want: []string{"pat-mueller"}},
		{name: "string exact case", query: "Patient?family:exact=MULLER", want: []string{"pat-muller"}},
		{name: "string exact no fold", query: "Patient?family:exact=muller", want: nil},
		{name: "string contains", query: "Patient?name:contains=ULLER", want: []string{"pat-mueller", "pat-muller", "pat-nobirth", "pat-klein"}},
		{name: "string contains accent in query", query: "Patient?family:contains=%C3%BCLL", want: []string{"pat-mueller", "pat-muller", "pat-nobirth", "pat-klein"}},
		{name: "string OR", query: "Patient?family=muller,garcia", want: []string{"pat-mueller", "pat-muller", "pat-nobirth", "pat-jose"}},
		{name: "string AND across name parts", query: "Patient?name=hans&name=muller", want: []string{"pat-mueller"}},
		{name: "string AND other param", query: "Patient?name=muller&gender=female", want: []string{"pat-muller"}},
		{name: "string paged", query: "Patient?name=mul&_count=1", want: []string{"pat-mueller", "pat-muller", "pat-nobirth"}, count: true},

		// ---- token
		{name: "token code", query: "Patient?gender=male", want: []string{"pat-mueller", "pat-jose"}},
		{name: "token not includes missing", query: "Patient?gender:not=male", want: []string{"pat-muller", "pat-smith", "pat-klein", "pat-nobirth"}},
		{name: "token not OR", query: "Patient?gender:not=male,female", want: []string{"pat-smith", "pat-nobirth"}},
		{name: "token system|code", query: "Observation?code=http://loinc.org|8867-4", want: []string{"obs-multi", "obs-logical"}},
		{name: "token second coding", query: "Observation?code=http://snomed.info/sct|364075005", want: []string{"obs-multi"}},
		{name: "token code any system", query: "Observation?code=HR-LOCAL", want: []string{"obs-nosys"}},
		{name: "token |code no system", query: "Observation?code=|HR-LOCAL", want: []string{"obs-nosys"}},
		{name: "token |code has system", query: "Observation?code=|8867-4", want: nil},
		{name: "token system|", query: "Observation?code=http://snomed.info/sct|", want: []string{"obs-multi"}},
		{name: "token wrong system", query: "Observation?code=http://snomed.info/sct|8867-4", want: nil},
		{name: "token text", query: "Observation?code:text=heart", want: []string{"obs-multi"}},
		{name: "token text display", query: "Observation?code:text=PULSE", want: []string{"obs-nosys"}},
		{name: "token not code", query: "Observation?code:not=http://loinc.org|8302-2", want: e2eExcept(e2eAllObs, "obs-d2", "obs-d3", "obs-p1", "obs-p2", "obs-p3")},
		{name: "token and category", query: "Observation?category=laboratory&code=2339-0", want: []string{"obs-q1", "obs-q2", "obs-q3", "obs-q4", "obs-q6"}},
		{name: "identifier system|value", query: "Patient?identifier=urn:sys:mrn|M1", want: []string{"pat-mueller"}},
		{name: "identifier value", query: "Patient?identifier=M2", want: []string{"pat-muller"}},
		{name: "identifier second", query: "Patient?identifier=urn:sys:ssn|111", want: []string{"pat-mueller"}},
		{name: "identifier system|", query: "Patient?identifier=urn:sys:mrn|", want: []string{"pat-mueller", "pat-muller", "pat-jose"}},
		{name: "identifier OR", query: "Patient?identifier=urn:sys:mrn|M1,urn:sys:mrn|M3", want: []string{"pat-mueller", "pat-jose"}},
		{name: "identifier of-type", query: "Patient?identifier:of-type=" + e2eV20203 + "|MR|M1", want: []string{"pat-mueller"}},
		{name: "identifier of-type other value", query: "Patient?identifier:of-type=" + e2eV20203 + "|MR|111", want: nil},
		{name: "token boolean", query: "Patient?active=true", want: []string{"pat-mueller"}},
		{name: "token boolean not", query: "Patient?active:not=true", want: e2eExcept(e2eAllPat, "pat-mueller")},
		{name: "_id not", query: "Patient?_id:not=pat-jose,pat-smith", want: e2eExcept(e2eAllPat, "pat-jose", "pat-smith")},
		{name: "telecom system|value", query: "Patient?telecom=phone|555-0103", want: []string{"pat-jose"}},
		{name: "phone", query: "Patient?phone=555-0101", want: []string{"pat-mueller"}},
		{name: "email", query: "Patient?email=hans@example.org", want: []string{"pat-mueller"}},

		// ---- reference
		{name: "ref relative", query: "Observation?subject=Patient/pat-mueller", want: mueller},
		{name: "ref id only", query: "Observation?subject=pat-mueller", want: mueller},
		{name: "ref type modifier", query: "Observation?subject:Patient=pat-mueller", want: mueller},
		{name: "ref wrong type modifier", query: "Observation?subject:Group=pat-mueller", want: nil},
		{name: "ref absolute", query: "Observation?subject={base}/Patient/pat-mueller", want: mueller},
		{name: "ref single-target param", query: "Observation?patient=pat-jose", want: jose},
		{name: "ref absolute other server", query: "Observation?subject=http://other.example.org/fhir/Patient/pat-mueller", want: nil},
		{name: "ref OR", query: "Observation?subject=Patient/pat-mueller,Patient/pat-jose", want: append(slices.Clone(mueller), jose...)},
		{name: "ref identifier", query: "Observation?subject:identifier=urn:sys:mrn|M9", want: []string{"obs-logical"}},
		{name: "ref project episode-of-care", query: "CarePlan?episode-of-care=EpisodeOfCare/eoc-1", want: []string{"cp-1", "cp-2"}},
		{name: "ref project episode-of-care missing", query: "CarePlan?episode-of-care:missing=true", want: []string{"cp-3"}},

		// ---- date: partial dates against every prefix
		{name: "date eq year", query: "Patient?birthdate=1974", want: []string{"pat-mueller", "pat-muller", "pat-jose"}},
		{name: "date eq month", query: "Patient?birthdate=1974-12", want: []string{"pat-muller", "pat-jose"}},
		{name: "date eq day", query: "Patient?birthdate=eq1974-12-25", want: []string{"pat-jose"}},
		{name: "date ne", query: "Patient?birthdate=ne1974-12", want: []string{"pat-mueller", "pat-smith", "pat-klein"}},
		{name: "date gt", query: "Patient?birthdate=gt1974-12-25", want: []string{"pat-mueller", "pat-muller", "pat-smith", "pat-klein"}},
		{name: "date lt", query: "Patient?birthdate=lt1974-12", want: []string{"pat-mueller"}},
		{name: "date ge", query: "Patient?birthdate=ge1974-12-26", want: []string{"pat-mueller", "pat-muller", "pat-smith", "pat-klein"}},
		{name: "date le", query: "Patient?birthdate=le1974-12", want: []string{"pat-mueller", "pat-muller", "pat-jose"}},
		{name: "date sa", query: "Patient?birthdate=sa1974-06", want: []string{"pat-muller", "pat-jose", "pat-smith", "pat-klein"}},
		{name: "date eb", query: "Patient?birthdate=eb1975", want: []string{"pat-mueller", "pat-muller", "pat-jose"}},
		// ap is "approximately" at the server's discretion; 10% of the
		// distance from now (decades here) reaches 1975 but not 1985.
		{name: "date ap", query: "Patient?birthdate=ap1974-12-25", want: []string{"pat-mueller", "pat-muller", "pat-jose", "pat-smith"}},
		{name: "date missing", query: "Patient?birthdate:missing=true", want: []string{"pat-nobirth"}},
		{name: "date present", query: "Patient?birthdate:missing=false", want: e2eExcept(e2eAllPat, "pat-nobirth")},

		// ---- date: times with zones, periods straddling a boundary, open periods
		{name: "date year vs datetimes and periods", query: "Observation?date=2024", want: []string{"obs-d1", "obs-d2", "obs-d3"}},
		{name: "date ne year", query: "Observation?date=ne2024", want: []string{"obs-p1", "obs-p2", "obs-p3"}},
		{name: "date ge straddle", query: "Observation?date=ge2024-01-01", want: []string{"obs-d1", "obs-d2", "obs-d3", "obs-p1", "obs-p2"}},
		{name: "date le straddle", query: "Observation?date=le2023-12-31", want: []string{"obs-p1", "obs-p2", "obs-p3"}},
		{name: "date gt day with zones", query: "Observation?date=gt2024-03-01", want: []string{"obs-d1", "obs-d3", "obs-p2"}},
		{name: "date lt day", query: "Observation?date=lt2024-03-01", want: []string{"obs-p1", "obs-p2", "obs-p3"}},
		{name: "date sa", query: "Observation?date=sa2023-12-31", want: []string{"obs-d1", "obs-d2", "obs-d3"}},
		{name: "date eb", query: "Observation?date=eb2024-01-01", want: []string{"obs-p3"}},
		{name: "date eq instant other zone", query: "Observation?date=2024-03-02T04:30:00Z", want: []string{"obs-d1"}},
		{name: "date eq instant same zone", query: "Observation?date=2024-03-01T23:30:00-05:00", want: []string{"obs-d1"}},
		{name: "date eq minute with zone", query: "Observation?date=2024-03-01T10:00%2B02:00", want: []string{"obs-d2"}},
		{name: "date range AND", query: "Observation?date=ge2024-03-01T09:00:00Z&date=lt2024-03-02T05:00:00Z", want: []string{"obs-d1", "obs-d3", "obs-p2"}},
		{name: "date OR", query: "Observation?date=2024-03-02T04:30:00Z,eb2024-01-01", want: []string{"obs-d1", "obs-p3"}},

		// ---- quantity and number: prefixes and implicit precision
		{name: "quantity eq precision", query: "Observation?value-quantity=5.4", want: []string{"obs-q1", "obs-q2", "obs-q4", "obs-q6"}},
		{name: "quantity eq more precision", query: "Observation?value-quantity=5.40", want: []string{"obs-q1", "obs-q4", "obs-q6"}},
		{name: "quantity system|code", query: "Observation?value-quantity=5.4|" + e2eUCUM + "|mmol/L", want: []string{"obs-q1", "obs-q2"}},
		{name: "quantity ||unit", query: "Observation?value-quantity=5.4||mmol/L", want: []string{"obs-q1", "obs-q2", "obs-q6"}},
		{name: "quantity gt", query: "Observation?value-quantity=gt5.4", want: []string{"obs-q3", "obs-q5"}},
		{name: "quantity gt with units", query: "Observation?value-quantity=gt5.4|" + e2eUCUM + "|mmol/L", want: []string{"obs-q3"}},
		{name: "quantity le", query: "Observation?value-quantity=le5.4", want: []string{"obs-q1", "obs-q2", "obs-q4", "obs-q6"}},
		{name: "quantity lt units", query: "Observation?value-quantity=lt5.4|" + e2eUCUM + "|mmol/L", want: []string{"obs-q2"}},
		{name: "quantity ge", query: "Observation?value-quantity=ge98.6", want: []string{"obs-q5"}},
		{name: "quantity ne", query: "Observation?value-quantity=ne5.4", want: []string{"obs-q3", "obs-q5"}},
		// ap: within 10% of the value (the spec's recommendation).
		{name: "quantity ap", query: "Observation?value-quantity=ap5.4", want: []string{"obs-q1", "obs-q2", "obs-q3", "obs-q4", "obs-q6"}},
		{name: "quantity sa", query: "Observation?value-quantity=sa5.4", want: []string{"obs-q3", "obs-q5"}},
		{name: "quantity eb", query: "Observation?value-quantity=eb5.4", want: []string{"obs-q2"}},
		{name: "number eq", query: "RiskAssessment?probability=0.25", want: []string{"ra-1"}},
		// A Range matches eq only when the search range contains it.
		{name: "number eq range", query: "RiskAssessment?probability=0.32", want: nil},
		{name: "number gt range", query: "RiskAssessment?probability=gt0.3", want: []string{"ra-2", "ra-3"}},
		{name: "number lt", query: "RiskAssessment?probability=lt0.22", want: []string{"ra-2", "ra-3"}},
		{name: "number le decimal", query: "RiskAssessment?probability=le0.25", want: []string{"ra-1", "ra-2", "ra-3"}},
		{name: "number ge multi", query: "RiskAssessment?probability=ge0.5", want: []string{"ra-3"}},
		{name: "number AND multi", query: "RiskAssessment?probability=lt0.1&probability=gt0.8", want: []string{"ra-3"}},
		{name: "quantity exponent", query: "Observation?value-quantity=1e2", want: []string{"obs-q5"}},
		{name: "quantity missing", query: "Observation?value-quantity:missing=false", want: []string{"obs-q1", "obs-q2", "obs-q3", "obs-q4", "obs-q5", "obs-q6"}},
		{name: "composite code-value", query: "Observation?code-value-quantity=http://loinc.org|2339-0$gt5.4", want: []string{"obs-q3"}},
		{name: "composite code-value any system", query: "Observation?code-value-quantity=2339-0$le5.4", want: []string{"obs-q1", "obs-q2", "obs-q4", "obs-q6"}},
		// Both components of one tuple must hold: 120 is systolic, not diastolic.
		{name: "composite per component", query: "Observation?component-code-value-quantity=http://loinc.org|8462-4$gt100", want: nil},
		{name: "composite component", query: "Observation?component-code-value-quantity=http://loinc.org|8480-6$gt100", want: []string{"obs-bp"}},

		// ---- uri
		{name: "uri exact", query: "ValueSet?url=http://example.org/fhir/ValueSet/colors", want: []string{"vs-colors"}},
		{name: "uri below", query: "ValueSet?url:below=http://example.org/fhir/ValueSet/colors", want: []string{"vs-colors", "vs-warm"}},
		{name: "uri above", query: "ValueSet?url:above=http://example.org/fhir/ValueSet/colors/warm/extra", want: []string{"vs-colors", "vs-warm"}},

		// ---- common parameters
		{name: "_id", query: "Patient?_id=pat-jose,pat-smith", want: []string{"pat-jose", "pat-smith"}},
		{name: "_lastUpdated gt seed", query: "Patient?_lastUpdated=gt{t0}", want: e2eAllPat},
		{name: "_lastUpdated after marker", query: "Patient?_lastUpdated=gt{t1}", want: []string{"pat-smith"}},
		{name: "_lastUpdated le marker", query: "Patient?_lastUpdated=le{t1}", want: e2eExcept(e2eAllPat, "pat-smith")},
		{name: "_tag", query: "Patient?_tag=urn:tags|vip", want: []string{"pat-mueller"}},
		{name: "_tag code", query: "Patient?_tag=vip", want: []string{"pat-mueller"}},
		{name: "_tag not", query: "Patient?_tag:not=urn:tags|vip", want: e2eExcept(e2eAllPat, "pat-mueller")},
		{name: "_profile below", query: "Patient?_profile:below=http://example.org/StructureDefinition", want: []string{"pat-mueller"}},
		{name: "_profile", query: "Patient?_profile=http://example.org/StructureDefinition/special-patient", want: []string{"pat-mueller"}},
		{name: "organization missing", query: "Patient?organization:missing=true", want: []string{"pat-jose", "pat-smith", "pat-klein", "pat-nobirth"}},
		{name: "reference present", query: "Observation?encounter:missing=false", want: []string{"obs-d1", "obs-d2"}},
		{name: "gender missing", query: "Patient?gender:missing=true", want: []string{"pat-nobirth"}},

		// ---- chains
		{name: "chain with modifier", query: "Observation?subject:Patient.family:exact=Garc%C3%ADa", want: jose},
		{name: "chain no match via exact", query: "Observation?subject:Patient.family:exact=Garcia", want: nil},
		{name: "chain typed", query: "Observation?subject:Patient.name=garcia", want: jose},
		{name: "chain untyped", query: "Observation?subject.name=garcia", want: jose},
		{name: "chain identifier", query: "Observation?patient.identifier=urn:sys:mrn|M3", want: jose},
		{name: "chain two deep", query: "Observation?encounter.subject.name=garcia", want: []string{"obs-d1"}},
		{name: "chain two deep typed", query: "Observation?encounter.subject:Patient.family=m%C3%BCller", want: []string{"obs-d2"}},
		{name: "chain condition", query: "Condition?encounter.subject.given=hans", want: []string{"cond-1"}},
		{name: "chain OR values", query: "Observation?subject:Patient.identifier=M1,M3&code=8302-2", want: []string{"obs-p1", "obs-d2", "obs-p3"}},
		{name: "chain date", query: "Observation?subject:Patient.birthdate=1974-12&category=vital-signs", want: []string{"obs-d2", "obs-d3", "obs-p3", "obs-multi", "obs-nosys"}},

		// ---- reverse chains
		{name: "_has", query: "Patient?_has:Observation:subject:code=8867-4", want: []string{"pat-jose"}},
		{name: "_has patient param", query: "Patient?_has:Observation:patient:code=85354-9", want: []string{"pat-mueller"}},
		{name: "_has condition", query: "Patient?_has:Condition:subject:code=http://snomed.info/sct|38341003", want: []string{"pat-jose"}},
		{name: "_has nested", query: "Patient?_has:Encounter:subject:_has:Observation:encounter:code=29463-7", want: []string{"pat-jose"}},
		{name: "_has _id", query: "Patient?_has:Observation:subject:_id=obs-multi,obs-q2", want: []string{"pat-jose", "pat-muller"}},
		{name: "_has AND", query: "Patient?_has:Observation:subject:code=2339-0&gender=female", want: []string{"pat-muller"}},

		// ---- _include / _revinclude
		{name: "_include", query: "Patient?_id=pat-mueller&_include=Patient:organization", want: []string{"pat-mueller"}, incl: []string{"org-b"}},
		{name: "_include iterate", query: "Patient?_id=pat-mueller&_include=Patient:organization&_include:iterate=Organization:partof", want: []string{"pat-mueller"}, incl: []string{"org-b", "org-a"}},
		{name: "_include no iterate", query: "Patient?_id=pat-mueller&_include=Patient:organization&_include=Organization:partof", want: []string{"pat-mueller"}, incl: []string{"org-b"}},
		{name: "_include *", query: "Patient?_id=pat-mueller,pat-jose&_include=*", want: []string{"pat-mueller", "pat-jose"}, incl: []string{"org-b"}},
		{name: "_include target type", query: "Observation?_id=obs-d1&_include=Observation:encounter:Encounter&_include:iterate=Encounter:subject", want: []string{"obs-d1"}, incl: []string{"enc-1", "pat-jose"}},
		{name: "_include logical reference", query: "Observation?_id=obs-logical&_include=Observation:subject", want: []string{"obs-logical"}},
		{name: "_revinclude", query: "Organization?_id=org-a&_revinclude=Patient:organization", want: []string{"org-a"}, incl: []string{"pat-muller"}},
		{name: "_revinclude iterate", query: "Organization?_id=org-b&_revinclude=Patient:organization&_revinclude:iterate=Observation:subject", want: []string{"org-b"}, incl: append([]string{"pat-mueller"}, mueller...)},
		{name: "_revinclude episode-of-care", query: "EpisodeOfCare?_id=eoc-1&_revinclude=CarePlan:episode-of-care", want: []string{"eoc-1"}, incl: []string{"cp-1", "cp-2"}},
		{name: "_include paged", query: "Patient?identifier=urn:sys:mrn|&_include=Patient:organization&_count=1", want: []string{"pat-mueller", "pat-muller", "pat-jose"}, incl: []string{"org-a", "org-b"}, count: true},

		// ---- _sort (order checked) and paging
		{name: "_sort asc", query: "Patient?birthdate:missing=false&_sort=birthdate", ordered: true,
			want: []string{"pat-mueller", "pat-muller", "pat-jose", "pat-smith", "pat-klein"}},
		{name: "_sort desc", query: "Patient?_id=pat-smith,pat-klein,pat-jose&_sort=-birthdate", ordered: true,
			want: []string{"pat-klein", "pat-smith", "pat-jose"}},
		{name: "_sort two keys paged", query: "Patient?birthdate:missing=false&_sort=gender,birthdate&_count=2", ordered: true, count: true,
			want: []string{"pat-muller", "pat-klein", "pat-mueller", "pat-jose", "pat-smith"}},
		{name: "_sort two keys desc first", query: "Patient?birthdate:missing=false&_sort=-gender,birthdate", ordered: true,
			want: []string{"pat-smith", "pat-mueller", "pat-jose", "pat-muller", "pat-klein"}},
		{name: "_sort _id desc paged", query: "Patient?_sort=-_id&_count=4", ordered: true, count: true,
			want: []string{"pat-smith", "pat-nobirth", "pat-muller", "pat-mueller", "pat-klein", "pat-jose"}},
		// Dates sort by instant (UTC), not by their text.
		{name: "_sort date zones", query: "Observation?_id=obs-d1,obs-d2,obs-d3&_sort=date", ordered: true,
			want: []string{"obs-d3", "obs-d2", "obs-d1"}},
		{name: "_sort string", query: "Patient?_id=pat-jose,pat-smith,pat-klein&_sort=-family", ordered: true,
			want: []string{"pat-smith", "pat-klein", "pat-jose"}},
		{name: "_sort quantity desc paged", query: "Observation?_id=obs-q1,obs-q2,obs-q3,obs-q5&_sort=-value-quantity&_count=2", ordered: true, count: true,
			want: []string{"obs-q5", "obs-q3", "obs-q1", "obs-q2"}},

		// ---- where
		{name: "compartment", query: "Patient/pat-mueller/Observation", want: mueller},
		{name: "compartment with params", query: "Patient/pat-mueller/Observation?code=85354-9", want: []string{"obs-bp"}},
		{name: "compartment all types", query: "Patient/pat-mueller/*", noAudit: true,
			want: append([]string{"pat-mueller", "enc-2", "cond-1", "eoc-1", "cp-1", "cp-2", "cp-3"}, mueller...)},
		{name: "compartment condition", query: "Patient/pat-jose/Condition", want: []string{"cond-2"}},
		{name: "system _type", query: "{base}?_type=Patient,Observation&_id=pat-jose,obs-multi,cond-1", want: []string{"pat-jose", "obs-multi"}},
		{name: "system no _type", query: "{base}?_id=pat-jose,cond-1", want: []string{"pat-jose", "cond-1"}},
	}

	for _, row := range rows {
		t.Run(row.name, func(t *testing.T) {
			q := strings.NewReplacer("{base}", s.URL, "{t0}", t0, "{t1}", t1).Replace(row.query)
			res := e2eFetch(t, s, "GET", q, "")
			got, want := res.match, row.want
			if row.noAudit {
				got = nil
				for i, id := range res.match {
					if res.matchTypes[i] != "AuditEvent" {
						got = append(got, id)
					}
				}
			}
			if !row.ordered {
				got, want = e2eSorted(got), e2eSorted(want)
			}
			if want == nil {
				want = []string{}
			}
			if got == nil {
				got = []string{}
			}
			if !slices.Equal(got, want) {
				t.Errorf("%s\n  match %v\n  want  %v", row.query, got, want)
			}
			if gi, wi := e2eSorted(res.include), e2eSorted(row.incl); !slices.Equal(gi, wi) {
				t.Errorf("%s\n  include %v\n  want    %v", row.query, gi, wi)
			}
			if row.count && res.pages < 2 {
				t.Errorf("%s: %d page(s), want several", row.query, res.pages)
			}
		})
	}

	t.Run("_total and _summary=count", func(t *testing.T) {
		res := e2eFetch(t, s, "GET", "Patient?name=muller&_total=accurate&_count=1", "")
		for i, tot := range res.totals {
			if tot != float64(3) {
				t.Errorf("page %d total %v, want 3", i+1, tot)
			}
		}
		if len(res.match) != 3 {
			t.Errorf("matches %v", res.match)
		}
		cnt := e2eFetch(t, s, "GET", "Observation?code=2339-0&_summary=count", "")
		if len(cnt.totals) != 1 || cnt.totals[0] != float64(5) || len(cnt.match) != 0 {
			t.Errorf("_summary=count: totals %v, matches %v", cnt.totals, cnt.match)
		}
	})

	t.Run("_count=0", func(t *testing.T) {
		// No entries, and no next link (it could never advance).
		res := e2eFetch(t, s, "GET", "Patient?name=muller&_count=0", "")
		if res.pages != 1 || len(res.match) != 0 {
			t.Errorf("_count=0: %d pages, matches %v", res.pages, res.match)
		}
	})

	t.Run("_elements", func(t *testing.T) {
		res := e2eFetch(t, s, "GET", "Patient?_id=pat-mueller,pat-jose&_elements=name", "")
		if got := e2eSorted(res.match); !slices.Equal(got, []string{"pat-jose", "pat-mueller"}) {
			t.Fatalf("matches %v", got)
		}
		for _, e := range res.entries {
			if e["name"] == nil || e["gender"] != nil || e["birthDate"] != nil || e["identifier"] != nil {
				t.Errorf("_elements=name kept %v", e)
			}
			meta, _ := e["meta"].(map[string]any)
			if !strings.Contains(e2eJSON(meta["tag"]), "SUBSETTED") {
				t.Errorf("_elements result not tagged SUBSETTED: %v", meta)
			}
		}
	})

	t.Run("POST _search", func(t *testing.T) {
		res := e2eFetch(t, s, "POST", "Patient/_search", "name=muller&gender=female",
			"Content-Type", "application/x-www-form-urlencoded")
		if got := e2eSorted(res.match); !slices.Equal(got, []string{"pat-muller"}) {
			t.Errorf("matches %v", got)
		}
		res = e2eFetch(t, s, "POST", "Patient/_search?gender=male", "name=garcia",
			"Content-Type", "application/x-www-form-urlencoded")
		if got := e2eSorted(res.match); !slices.Equal(got, []string{"pat-jose"}) {
			t.Errorf("matches (query + body) %v", got)
		}
	})

	t.Run("strict and lenient", func(t *testing.T) {
		for _, q := range []string{"Patient?name=garcia&foo=bar", "Patient?name:foo=garcia", "Patient?name=garcia&_sort=foo",
			"Patient?_include=Patient:foo", "Patient?name.family=garcia", s.URL + "?name=garcia"} {
			r := s.Do(t, "GET", q, nil, "Prefer", "handling=strict")
			if r.Status != 400 || r.JSON()["resourceType"] != "OperationOutcome" {
				t.Errorf("strict %s: status %d: %s", q, r.Status, r.Body)
			}
		}
		res := e2eFetch(t, s, "GET", "Patient?name=garcia&foo=bar", "", "Prefer", "handling=lenient")
		if got := e2eSorted(res.match); !slices.Equal(got, []string{"pat-jose"}) {
			t.Errorf("lenient matches %v", got)
		}
		u, err := url.Parse(res.self)
		if err != nil || u.Query().Has("foo") || u.Query().Get("name") != "garcia" {
			t.Errorf("lenient self link %q", res.self)
		}
	})

	t.Run("paging while writing", func(t *testing.T) {
		// Keyset pages in creation order: every resource that does not
		// change is visited once, and one created meanwhile comes after
		// them (once).
		r := s.Do(t, "GET", "Patient?name=mul&_count=1", nil)
		wantStatus(t, r, 200)
		first := e2eFetch(t, s, "GET", "Patient?name=mul&_count=1", "")
		wantStatus(t, s.Do(t, "PUT", "Patient/pat-late", `{"resourceType":"Patient","id":"pat-late","name":[{"family":"Mulligan"}]}`), 201)
		var next string
		for _, l := range r.JSON()["link"].([]any) {
			if lm := l.(map[string]any); lm["relation"] == "next" {
				next = lm["url"].(string)
			}
		}
		if next == "" {
			t.Fatal("no next link")
		}
		rest := e2eFetch(t, s, "GET", next, "")
		entries, _ := r.JSON()["entry"].([]any)
		firstID := entries[0].(map[string]any)["resource"].(map[string]any)["id"].(string)
		paged := append([]string{firstID}, rest.match...)
		if want := append(e2eSorted(first.match), "pat-late"); !slices.Equal(e2eSorted(paged), e2eSorted(want)) || paged[len(paged)-1] != "pat-late" {
			t.Errorf("pages after a write: %v, want %v with pat-late last", paged, want)
		}
		if again := e2eFetch(t, s, "GET", "Patient?name=mul", ""); !slices.Contains(again.match, "pat-late") {
			t.Errorf("a new search misses the new resource: %v", again.match)
		}
		wantStatus(t, s.Do(t, "DELETE", "Patient/pat-late", nil), 204)
	})

	t.Run("malformed values", func(t *testing.T) {
		for _, q := range []string{
			"Patient?birthdate=1974-13",
			"Patient?birthdate=1974-02-30",
			"Patient?birthdate=xx1974",
			"Observation?date=2024-03-01T25:00:00Z",
			"Observation?value-quantity=five",
			"Observation?value-quantity=gt",
			"Observation?value-quantity=5.4|mg",
			"Observation?code-value-quantity=2339-0",
			"Patient?gender:missing=maybe",
			"Patient?_count=-1",
			"Observation?subject=Patient/",
		} {
			r := s.Do(t, "GET", q, nil)
			if r.Status != 400 || r.JSON()["resourceType"] != "OperationOutcome" {
				t.Errorf("%s: status %d, want 400 OperationOutcome: %s", q, r.Status, r.Body)
			}
		}
	})
}

func e2eJSON(v any) string {
	b, _ := json.Marshal(v)
	return string(b)
}
