package codec

import (
	"testing"

	"github.com/casefhir/casefhir/fhir/outcome"
)

func TestDbg(t *testing.T) {
	c := newCodec(t)
	for _, in := range []string{
		``, `  `, `[]`, `"x"`, `{`, `{"resourceType":"Patient"} x`,
		`{"resourceType":"Patient","name":[{"given":["a",1]}],"gender":"robot","birthDate":"2020-13-01","foo":1,"active":"yes"}`,
		`{"resourceType":"Patient","gender":null}`,
		`{"resourceType":"Patient","name":[{}]}`,
		`{"resourceType":"Patient","name":[]}`,
		`{"resourceType":"Patient","name":[{"family":""}]}`,
		`{"resourceType":"Patient","id":"a b"}`,
		`{"resourceType":"Patient","id":""}`,
		`{"resourceType":"Observation","status":"final","code":{"text":"x"},"valueQuantity":{"value":"x"}}`,
		`{"resourceType":"Observation","code":{"text":"x"},"valueQuantity":{"value":1},"valueString":"a"}`,
		`{"resourceType":"Observation","status":"final","code":{"text":"x"},"subject":{"reference":"Medication/1"}}`,
		`{"resourceType":"Observation","status":"final","code":{"text":"x"},"component":[{"valueString":"a"}],"valueSampledData":{"data":"1"}}`,
		`{"resourceType":"Patient","contained":[{"resourceType":"Observation","id":"o","foo":1}]}`,
		`{"resourceType":"Patient","contained":[{"resourceType":"Observation","id":"o","code":{"text":"x"},"meta":{"versionId":"1"},"contained":[{"resourceType":"Patient","id":"p"}]}]}`,
		`{"resourceType":"Patient","_birthDate":{"extension":[{"url":"x","valueString":1}]}}`,
		`{"resourceType":"Patient","name":[{"given":["a","b"],"_given":[null,{"id":"x"}]}]}`,
		`{"resourceType":"Foo"}`, `{"id":"x"}`, `{"resourceType":1}`,
		`{"resourceType":"Patient","gender":"male","gender":"female","Active":true}`,
		`{"resourceType":"Bundle","type":"collection","entry":[{"resource":{"resourceType":"Observation","code":{"text":"x"},"valueSampledData":{"data":"1"},"subject":{"reference":"Medication/2"}}}]}`,
		`{"resourceType":"Bundle","type":"collection","entry":[{"resource":{"resourceType":"Observation","foo":1}}]}`,
		`{"resourceType":"Patient","managingOrganization":{"reference":"Patient/1"},"link":[{"other":{"reference":"Patient/1"}}]}`,
		`{"resourceType":"Patient","birthDate":"1990-01-01","multipleBirthInteger":"2","deceasedBoolean":"true"}`,
	} {
		_, err := c.Decode([]byte(in))
		t.Logf("IN %s", in)
		if err == nil {
			t.Logf("   OK")
			continue
		}
		e := outcome.As(err)
		for _, is := range e.AllIssues() {
			t.Logf("   %d %s %q %v | %s", e.HTTPStatus(), is.Code, is.Detail, is.Expression, is.Diagnostics)
		}
	}
}

func TestDbg2(t *testing.T) {
	c := newCodec(t)
	for _, in := range []string{
		`{"resourceType":"Patient","name":[{"given":["a","b"],"_given":[null,{"id":"x"}]}]}`,
		`{"resourceType":"Patient","name":[{"given":["a",null],"_given":[null,{"extension":[{"url":"http://x","valueString":"q"}]}]}]}`,
		`{"resourceType":"Patient","name":[null]}`,
		`{"resourceType":"Patient","name":[{"given":["a",null]}]}`,
		`{"resourceType":"Patient","extension":[{"url":"x","valueString":"y"}], "name":[{"given":[["a"]]}]}`,
	} {
		p, err := c.Decode([]byte(in))
		t.Logf("IN %s", in)
		if err == nil {
			b, _ := c.Encode(p.Msg)
			t.Logf("   OK %s", b)
			continue
		}
		e := outcome.As(err)
		for _, is := range e.AllIssues() {
			t.Logf("   %d %s %q %v | %s", e.HTTPStatus(), is.Code, is.Detail, is.Expression, is.Diagnostics)
		}
	}
}
