package fhirpath

import (
	"bytes"
	"encoding/json"
	"os"
	"strings"
	"testing"
)

func decode(t testing.TB, s string) any {
	t.Helper()
	d := json.NewDecoder(strings.NewReader(s))
	d.UseNumber()
	var v any
	if err := d.Decode(&v); err != nil {
		t.Fatal(err)
	}
	return v
}

const obs = `{"resourceType":"Observation","id":"o1",
 "extension":[{"url":"http://hl7.org/fhir/StructureDefinition/workflow-episodeOfCare","valueReference":{"reference":"EpisodeOfCare/e1"}}],
 "code":{"coding":[{"system":"http://loinc.org","code":"29463-7"}]},
 "subject":{"reference":"Patient/p1"},
 "performer":[{"reference":"Practitioner/x"},{"reference":"http://other/fhir/Patient/p2/_history/3"}],
 "valueQuantity":{"value":72.5,"unit":"kg"},
 "component":[{"code":{"text":"a"},"valueString":"s"},{"code":{"text":"b"},"valueQuantity":{"value":1}}],
 "effectivePeriod":{"start":"2024-01-01"}}`

func TestEval(t *testing.T) {
	res := decode(t, obs)
	tests := []struct {
		expr string
		want string // JSON of the values
	}{
		{"Observation.code.coding.code", `["29463-7"]`},
		{"Patient.name", `null`},
		{"Observation.value as Quantity", `[{"unit":"kg","value":72.5}]`},
		{"(Observation.value as Quantity).unit", `["kg"]`},
		{"Observation.value.as(Quantity).value", `[72.5]`},
		{"Observation.value as string", `null`},
		{"Observation.component.value as Quantity", `[{"value":1}]`},
		{"Observation.component.value.ofType(string)", `["s"]`},
		{"Observation.subject.where(resolve() is Patient)", `[{"reference":"Patient/p1"}]`},
		{"Observation.performer.where(resolve() is Patient)", `[{"reference":"http://other/fhir/Patient/p2/_history/3"}]`},
		{"Observation.subject.where(resolve() is Group)", `null`},
		{"Observation.extension('http://hl7.org/fhir/StructureDefinition/workflow-episodeOfCare').value", `[{"reference":"EpisodeOfCare/e1"}]`},
		{"Observation.component.where(code.text = 'b').value", `[{"value":1}]`},
		{"Observation.component[1].code.text", `["b"]`},
		{"Observation.component.first().code.text", `["a"]`},
		{"Observation.component.code.text | Observation.code.coding.code", `["a","b","29463-7"]`},
		{"Observation.effective.exists() and Observation.issued.empty()", `[true]`},
		{"Observation.issued.exists().not()", `[true]`},
		{"Observation.value is Quantity", `[true]`},
		{"Observation.effective as Period", `[{"start":"2024-01-01"}]`},
		{"Observation.effective.as(DateTime)", `null`},
		{"AllergyIntolerance.patient | Observation.subject", `[{"reference":"Patient/p1"}]`},
		{"Observation.component.where(code.text = 'a' or code.text = 'b').count()", `[2]`},
	}
	for _, tt := range tests {
		t.Run(tt.expr, func(t *testing.T) {
			e, err := Parse(tt.expr)
			if err != nil {
				t.Fatal(err)
			}
			var vals []any
			for _, it := range e.Eval(res) {
				vals = append(vals, it.Value)
			}
			got, _ := json.Marshal(vals)
			if string(got) != tt.want {
				t.Errorf("got %s, want %s", got, tt.want)
			}
		})
	}
}

func TestForType(t *testing.T) {
	e := MustParse("AllergyIntolerance.patient | CarePlan.subject.where(resolve() is Patient) | (Observation.value as Quantity) | Resource.id")
	if got := e.ForType("Observation"); got == nil {
		t.Fatal("nil")
	} else if vals := got.Eval(decode(t, obs)); len(vals) != 2 {
		t.Errorf("got %v", vals)
	}
	if MustParse("Patient.name").ForType("Observation") != nil {
		t.Error("want nil")
	}
}

func TestParseErrors(t *testing.T) {
	for _, s := range []string{"", "a.", "a.where(", "'x", "a.memberOf('x')", "a[", "(a", "a.first(1)", "$foo", "a ! b"} {
		if _, err := Parse(s); err == nil {
			t.Errorf("Parse(%q): want error", s)
		}
	}
}

// TestOfficialExpressions parses every expression of the R4 SearchParameter bundle.
func TestOfficialExpressions(t *testing.T) {
	b, err := os.ReadFile("../../../shared/fhir-r4/definitions/search-parameters.json")
	if err != nil {
		t.Skip("R4 definitions not available:", err)
	}
	var bundle struct {
		Entry []struct {
			Resource struct {
				ID         string `json:"id"`
				Expression string `json:"expression"`
				Component  []struct {
					Expression string `json:"expression"`
				} `json:"component"`
			} `json:"resource"`
		} `json:"entry"`
	}
	if err := json.NewDecoder(bytes.NewReader(b)).Decode(&bundle); err != nil {
		t.Fatal(err)
	}
	n := 0
	for _, e := range bundle.Entry {
		exprs := []string{e.Resource.Expression}
		for _, c := range e.Resource.Component {
			exprs = append(exprs, c.Expression)
		}
		for _, x := range exprs {
			if x == "" {
				continue
			}
			if _, err := Parse(x); err != nil {
				t.Errorf("%s: %q: %v", e.Resource.ID, x, err)
			}
			n++
		}
	}
	if n < 1300 {
		t.Errorf("parsed only %d expressions", n)
	}
}

func FuzzParse(f *testing.F) {
	for _, s := range []string{
		"Patient.name", "Observation.value as Quantity", "a.where(resolve() is Patient)",
		"(A.b as C) | D.e[0].f", "x.extension('u').value", "a.exists() and b != false",
		"'a\\'b' = c", "1 + 2 * -3", "a.ofType(FHIR.Quantity)", "`div`.x",
	} {
		f.Add(s)
	}
	res := decode(f, obs)
	f.Fuzz(func(t *testing.T, s string) {
		e, err := Parse(s)
		if err != nil {
			return
		}
		_ = e.Eval(res)
		_ = e.ForType("Observation")
	})
}
