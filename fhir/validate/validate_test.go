package validate

import (
	"os"
	"path/filepath"
	"reflect"
	"testing"

	"github.com/casefhir/casefhir/fhir/codec"
	"github.com/casefhir/casefhir/fhir/outcome"
)

func decode(t *testing.T, c *codec.Codec, body string) *codec.Parsed {
	t.Helper()
	p, err := c.Decode([]byte(body))
	if err != nil {
		t.Fatalf("decode %s: %v", body, err)
	}
	return p
}

func TestResource(t *testing.T) {
	c, err := codec.New()
	if err != nil {
		t.Fatal(err)
	}
	tests := []struct {
		name  string
		body  string
		codes []outcome.Code
		exprs []string
	}{
		{"ok", `{"resourceType":"Patient","id":"p1","managingOrganization":{"reference":"Organization/1"},
			"generalPractitioner":[{"reference":"#c1"},{"reference":"urn:uuid:12345678-1234-1234-1234-123456789012"},
			{"reference":"Practitioner/1/_history/2"},{"reference":"http://x.org/fhir/Practitioner/9"},
			{"reference":"urn:oid:1.2.3.4"},{"reference":"https://example.org/some/other/thing"}],
			"text":{"status":"generated","div":"<div xmlns=\"http://www.w3.org/1999/xhtml\">x</div>"}}`, nil, nil},
		{"relative not Type/id", `{"resourceType":"Patient","generalPractitioner":[{"reference":"weird thing"}]}`,
			[]outcome.Code{outcome.Value}, []string{"Patient.generalPractitioner[0].reference"}},
		{"unknown type", `{"resourceType":"Patient","managingOrganization":{"reference":"Foo/1"}}`,
			[]outcome.Code{outcome.Value}, []string{"Patient.managingOrganization.reference"}},
		{"bad uuid", `{"resourceType":"Patient","managingOrganization":{"reference":"urn:uuid:nope"}}`,
			[]outcome.Code{outcome.Value}, []string{"Patient.managingOrganization.reference"}},
		{"bad oid", `{"resourceType":"Patient","managingOrganization":{"reference":"urn:oid:9.01"}}`,
			[]outcome.Code{outcome.Value}, []string{"Patient.managingOrganization.reference"}},
		{"absolute wrong type", `{"resourceType":"Patient","managingOrganization":{"reference":"http://x.org/fhir/Patient/1"}}`,
			[]outcome.Code{outcome.Value}, []string{"Patient.managingOrganization.reference"}},
		{"choice reference", `{"resourceType":"Observation","status":"final","code":{"text":"x"},
			"extension":[{"url":"http://x","valueReference":{"reference":"bad ref"}}]}`,
			[]outcome.Code{outcome.Value}, []string{"Observation.extension[0].valueReference.reference"}},
		{"nested", `{"resourceType":"Observation","status":"final","code":{"text":"x"},
			"component":[{"code":{"text":"c"},"valueString":"v"}],"subject":{"reference":"Patient/1","identifier":{"assigner":{"reference":"x y"}}}}`,
			[]outcome.Code{outcome.Value}, []string{"Observation.subject.identifier.assigner.reference"}},
		{"contained", `{"resourceType":"Patient","contained":[{"resourceType":"Organization","id":"o1","partOf":{"reference":"no good"}}],
			"managingOrganization":{"reference":"#o1"}}`,
			[]outcome.Code{outcome.Value}, []string{"Patient.contained[0].partOf.reference"}},
		{"bundle entry", `{"resourceType":"Bundle","type":"collection","entry":[{"fullUrl":"urn:uuid:12345678-1234-1234-1234-123456789012",
			"resource":{"resourceType":"Patient","managingOrganization":{"reference":"Foo/1"}}}]}`,
			[]outcome.Code{outcome.Value}, []string{"Bundle.entry[0].resource.managingOrganization.reference"}},
		{"div", `{"resourceType":"Patient","text":{"status":"generated","div":"plain text"}}`,
			[]outcome.Code{outcome.Value}, []string{"Patient.text.div"}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			err := Resource(decode(t, c, tt.body))
			var codes []outcome.Code
			var exprs []string
			if err != nil {
				e := outcome.As(err)
				if e.HTTPStatus() != 400 {
					t.Errorf("status %d", e.HTTPStatus())
				}
				for _, is := range e.AllIssues() {
					codes = append(codes, is.Code)
					exprs = append(exprs, is.Expression...)
				}
			}
			if !reflect.DeepEqual(codes, tt.codes) || !reflect.DeepEqual(exprs, tt.exprs) {
				t.Errorf("got %v %v, want %v %v (%v)", codes, exprs, tt.codes, tt.exprs, err)
			}
		})
	}
}

func TestCreateUpdate(t *testing.T) {
	c, err := codec.New()
	if err != nil {
		t.Fatal(err)
	}
	p := decode(t, c, `{"resourceType":"Patient","id":"a1"}`)
	if err := Create(p, "Patient"); err != nil {
		t.Errorf("create: %v", err)
	}
	if err := Create(p, "Observation"); !outcome.Is(err, outcome.Invalid) {
		t.Errorf("create with other type: %v", err)
	}
	if err := Update(p, "Patient", "a1"); err != nil {
		t.Errorf("update: %v", err)
	}
	if err := Update(p, "Patient", "a2"); !outcome.Is(err, outcome.Invalid) || outcome.StatusOf(err) != 400 {
		t.Errorf("update id mismatch: %v", err)
	}
	noID := decode(t, c, `{"resourceType":"Patient"}`)
	if err := Update(noID, "Patient", "a1"); !outcome.Is(err, outcome.Required) {
		t.Errorf("update without id: %v", err)
	}
	if err := Update(p, "Patient", "bad id"); !outcome.Is(err, outcome.Invalid) {
		t.Errorf("update bad URL id: %v", err)
	}
	if err := Resource(nil); err == nil {
		t.Error("nil resource accepted")
	}
}

// TestOfficialExamples checks that validate accepts every official example
// codec accepts.
func TestOfficialExamples(t *testing.T) {
	c, err := codec.NewWithOptions(codec.Options{AllowAnyReferenceType: true})
	if err != nil {
		t.Fatal(err)
	}
	files, _ := filepath.Glob("../../../shared/fhir-r4/examples/*/*.json")
	if len(files) == 0 {
		t.Skip("no official examples")
	}
	for _, f := range files {
		b, err := os.ReadFile(f)
		if err != nil {
			t.Fatal(err)
		}
		p, err := c.Decode(b)
		if err != nil {
			t.Fatalf("%s: %v", f, err)
		}
		if err := Resource(p); err != nil {
			for _, is := range outcome.As(err).AllIssues() {
				t.Errorf("%s: %s %v %s", filepath.Base(f), is.Detail, is.Expression, is.Diagnostics)
			}
		}
	}
}
