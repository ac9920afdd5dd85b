package codec

import (
	"encoding/json"
	"net/http"
	"reflect"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/casefhir/casefhir/fhir/outcome"
)

type wantIssue struct {
	code outcome.Code
	expr string // "" for none
}

func issuesOf(t *testing.T, err error) []wantIssue {
	t.Helper()
	e := outcome.As(err)
	if e.HTTPStatus() != http.StatusBadRequest {
		t.Errorf("status %d, want 400", e.HTTPStatus())
	}
	var got []wantIssue
	for _, is := range e.AllIssues() {
		w := wantIssue{code: is.Code}
		if len(is.Expression) > 0 {
			w.expr = is.Expression[0]
		}
		got = append(got, w)
		if is.Detail == "" {
			t.Errorf("issue %v without detail", w)
		}
	}
	return got
}

func TestDecodeRejects(t *testing.T) {
	c := newCodec(t)
	S, V, R, I := outcome.Structure, outcome.Value, outcome.Required, outcome.Invariant
	tests := []struct {
		name string
		body string
		want []wantIssue
	}{
		{"empty body", ``, []wantIssue{{S, ""}}},
		{"whitespace body", " \n", []wantIssue{{S, ""}}},
		{"array", `[{"resourceType":"Patient"}]`, []wantIssue{{S, ""}}},
		{"string", `"Patient"`, []wantIssue{{S, ""}}},
		{"truncated", `{"resourceType":"Patient"`, []wantIssue{{S, ""}}},
		{"trailing data", `{"resourceType":"Patient"} {}`, []wantIssue{{S, ""}}},
		{"missing resourceType", `{"id":"x"}`, []wantIssue{{S, ""}}},
		{"resourceType not a string", `{"resourceType":1}`, []wantIssue{{S, ""}}},
		{"unknown resourceType", `{"resourceType":"Foo"}`, []wantIssue{{S, "Foo"}}},
		{"unknown element", `{"resourceType":"Patient","foo":1}`, []wantIssue{{S, "Patient.foo"}}},
		{"wrong case element", `{"resourceType":"Patient","Gender":"male"}`, []wantIssue{{S, "Patient.Gender"}}},
		{"duplicate property", `{"resourceType":"Patient","gender":"male","gender":"female"}`, []wantIssue{{S, "Patient.gender"}}},
		{"wrong JSON type string", `{"resourceType":"Patient","name":[{"given":["a",1]}]}`, []wantIssue{{S, "Patient.name[0].given[1]"}}},
		{"wrong JSON type boolean", `{"resourceType":"Patient","active":"true"}`, []wantIssue{{S, "Patient.active"}}},
		{"wrong JSON type integer", `{"resourceType":"Patient","multipleBirthInteger":"2"}`, []wantIssue{{S, "Patient.multipleBirthInteger"}}},
		{"object for array", `{"resourceType":"Patient","name":{"family":"x"}}`, []wantIssue{{S, "Patient.name"}}},
		{"bad code", `{"resourceType":"Patient","gender":"robot"}`, []wantIssue{{V, "Patient.gender"}}},
		{"bad date", `{"resourceType":"Patient","birthDate":"2020-13-01"}`, []wantIssue{{V, "Patient.birthDate"}}},
		{"dateTime for date", `{"resourceType":"Patient","birthDate":"2020-01-01T10:00:00Z"}`, []wantIssue{{V, "Patient.birthDate"}}},
		{"bad id", `{"resourceType":"Patient","id":"a b"}`, []wantIssue{{V, "Patient.id"}}},
		{"empty id", `{"resourceType":"Patient","id":""}`, []wantIssue{{V, "Patient.id"}}},
		{"empty string", `{"resourceType":"Patient","name":[{"family":""}]}`, []wantIssue{{V, "Patient.name[0].family"}}},
		{"empty object", `{"resourceType":"Patient","name":[{}]}`, []wantIssue{{I, "Patient.name[0]"}}},
		{"empty array", `{"resourceType":"Patient","name":[]}`, []wantIssue{{S, "Patient.name"}}},
		{"null", `{"resourceType":"Patient","gender":null}`, []wantIssue{{S, "Patient.gender"}}},
		{"unaligned null", `{"resourceType":"Patient","name":[{"given":["a",null]}]}`, []wantIssue{{S, "Patient.name[0].given"}}},
		{"bad decimal", `{"resourceType":"Observation","status":"final","code":{"text":"x"},"valueQuantity":{"value":"x"}}`,
			[]wantIssue{{S, "Observation.valueQuantity.value"}}},
		{"two choice values", `{"resourceType":"Observation","status":"final","code":{"text":"x"},"valueQuantity":{"value":1},"valueString":"a"}`,
			[]wantIssue{{S, "Observation.value"}}},
		{"two choice values snake", `{"resourceType":"Patient","multipleBirthInteger":1,"multipleBirthBoolean":true}`,
			[]wantIssue{{S, "Patient.multipleBirth"}}},
		{"reference type", `{"resourceType":"Observation","status":"final","code":{"text":"x"},"subject":{"reference":"Medication/1"}}`,
			[]wantIssue{{V, "Observation.subject"}}},
		{"required", `{"resourceType":"Observation","code":{"text":"x"}}`, []wantIssue{{R, "Observation.status"}}},
		{"required in backbone and choice", `{"resourceType":"Observation","status":"final","code":{"text":"x"},"component":[{"valueString":"a"}]}`,
			[]wantIssue{{R, "Observation.component[0].code"}}},
		{"required in choice type", `{"resourceType":"Observation","status":"final","code":{"text":"x"},"valueSampledData":{"data":"1"}}`,
			[]wantIssue{{R, "Observation.valueSampledData.origin"}, {R, "Observation.valueSampledData.period"}, {R, "Observation.valueSampledData.dimensions"}}},
		{"primitive extension", `{"resourceType":"Patient","_birthDate":{"extension":[{"url":"x","valueString":1}]}}`,
			[]wantIssue{{S, "Patient.birthDate.extension[0].valueString"}}},
		{"contained unknown element", `{"resourceType":"Patient","contained":[{"resourceType":"Observation","id":"o","foo":1}]}`,
			[]wantIssue{{S, "Patient.contained[0].foo"}}},
		{"contained required and invariants", `{"resourceType":"Patient","contained":[{"resourceType":"Observation","id":"o","code":{"text":"x"},"meta":{"versionId":"1"},"contained":[{"resourceType":"Patient","id":"p"}]}]}`,
			[]wantIssue{{R, "Patient.contained[0].status"}, {I, "Patient.contained[0].contained"}, {I, "Patient.contained[0].meta"}}},
		{"bundle entry", `{"resourceType":"Bundle","type":"collection","entry":[{"resource":{"resourceType":"Observation","code":{"text":"x"}}}]}`,
			[]wantIssue{{R, "Bundle.entry[0].resource.status"}}},
		{"too deep", `{"resourceType":"Patient","extension":` + strings.Repeat(`[{"extension":`, 60) + `[]` + strings.Repeat(`}]`, 60) + `}`,
			[]wantIssue{{S, ""}}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			p, err := c.Decode([]byte(tt.body))
			if err == nil {
				t.Fatalf("accepted: %+v", p)
			}
			got := issuesOf(t, err)
			if !reflect.DeepEqual(got, tt.want) {
				t.Errorf("got %v, want %v", got, tt.want)
			}
		})
	}
}

func TestDecodeAllIssues(t *testing.T) {
	c := newCodec(t)
	_, err := c.Decode([]byte(`{"resourceType":"Patient","name":[{"given":["a",1]}],"gender":"robot",` +
		`"birthDate":"2020-13-01","foo":1,"active":"yes"}`))
	got := map[wantIssue]bool{}
	for _, w := range issuesOf(t, err) {
		got[w] = true
	}
	for _, w := range []wantIssue{
		{outcome.Structure, "Patient.name[0].given[1]"}, {outcome.Value, "Patient.gender"},
		{outcome.Value, "Patient.birthDate"}, {outcome.Structure, "Patient.foo"}, {outcome.Structure, "Patient.active"},
	} {
		if !got[w] {
			t.Errorf("missing issue %v in %v", w, got)
		}
	}
	if len(got) != 5 {
		t.Errorf("got %d issues, want 5", len(got))
	}
}

func TestDecodeDetailIsPHIFree(t *testing.T) {
	c := newCodec(t)
	const secret = "Zyxwvut"
	for _, body := range []string{
		`{"resourceType":"Patient","gender":"` + secret + `"}`,
		`{"resourceType":"Patient","birthDate":"` + secret + `"}`,
		`{"resourceType":"Patient","active":"` + secret + `"}`,
		`{"resourceType":"` + secret + `"}`,
		`{"resourceType":"Patient","name":[{"family":"` + secret + `"}],"x":1}`,
		`{"resourceType":"Patient","name":[{"family":"` + secret + `"`,
	} {
		_, err := c.Decode([]byte(body))
		e := outcome.As(err)
		if strings.Contains(e.Error(), secret) {
			t.Errorf("Error() leaks content: %s", e.Error())
		}
		for _, is := range e.AllIssues() {
			if strings.Contains(is.Detail, secret) {
				t.Errorf("Detail leaks content: %q", is.Detail)
			}
		}
	}
}

func TestDecodeAccepts(t *testing.T) {
	c := newCodec(t)
	for _, body := range []string{
		// null aligns a primitive array with its extensions.
		`{"resourceType":"Patient","name":[{"given":["a","b"],"_given":[null,{"id":"x"}]}]}`,
		`{"resourceType":"Patient","name":[{"given":["a",null],"_given":[null,{"extension":[{"url":"http://x","valueString":"q"}]}]}]}`,
		`{"resourceType":"Patient","birthDate":"2020-01-01","_birthDate":{"extension":[{"url":"x","valueString":"y"}]}}`,
		` {"resourceType":"Patient"} `,
		"\xef\xbb\xbf{\"resourceType\":\"Patient\"}",
	} {
		p, err := c.Decode([]byte(body))
		if err != nil {
			t.Errorf("%s: %v", body, err)
			continue
		}
		if p.Type != "Patient" {
			t.Errorf("type %q", p.Type)
		}
	}
}

func TestFinalize(t *testing.T) {
	c := newCodec(t)
	p, err := c.Decode([]byte(`{"resourceType":"Patient","id":"client","meta":{"versionId":"77","lastUpdated":"2000-01-01T00:00:00Z",` +
		`"source":"http://src","profile":["http://p"],"tag":[{"system":"http://t","code":"a"}],"security":[{"system":"http://s","code":"R"}]},"gender":"male"}`))
	if err != nil {
		t.Fatal(err)
	}
	if p.ID != "client" {
		t.Errorf("ID %q", p.ID)
	}
	at := time.Date(2024, 1, 2, 3, 4, 5, 678_900_000, time.FixedZone("x", 3600))
	out, err := c.Finalize(p, "srv1", 2, at)
	if err != nil {
		t.Fatal(err)
	}
	want := `{"resourceType":"Patient","id":"srv1","meta":{"lastUpdated":"2024-01-02T02:04:05.678Z","profile":["http://p"],` +
		`"security":[{"code":"R","system":"http://s"}],"source":"http://src","tag":[{"code":"a","system":"http://t"}],"versionId":"2"},"gender":"male"}`
	if string(out) != want {
		t.Errorf("stored form\n got %s\nwant %s", out, want)
	}
	if p.ID != "srv1" {
		t.Errorf("ID after Finalize %q", p.ID)
	}
	enc, err := c.Encode(p.Msg)
	if err != nil || string(enc) != want {
		t.Errorf("Encode = %s, %v", enc, err)
	}
	if _, err := c.Finalize(nil, "x", 1, at); err == nil {
		t.Error("Finalize(nil) succeeded")
	}
}

func TestConcurrentUse(t *testing.T) {
	c := newCodec(t)
	bodies := [][]byte{
		[]byte(`{"resourceType":"Patient","name":[{"family":"a"}],"gender":"female"}`),
		[]byte(`{"resourceType":"Observation","status":"final","code":{"text":"x"},"valueQuantity":{"value":1.5}}`),
		[]byte(`{"resourceType":"Patient","gender":"robot"}`),
	}
	var wg sync.WaitGroup
	for g := 0; g < 8; g++ {
		wg.Add(1)
		go func(g int) {
			defer wg.Done()
			for i := 0; i < 50; i++ {
				b := bodies[(g+i)%len(bodies)]
				p, err := c.Decode(b)
				if err != nil {
					continue
				}
				out, err := c.Finalize(p, "id", int64(i), time.Now())
				if err != nil {
					t.Error(err)
					return
				}
				var m map[string]any
				if err := json.Unmarshal(out, &m); err != nil {
					t.Error(err)
				}
			}
		}(g)
	}
	wg.Wait()
}
