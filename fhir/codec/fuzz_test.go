package codec

import (
	"os"
	"path/filepath"
	"testing"
	"time"

	"github.com/casefhir/casefhir/fhir/outcome"
)

// FuzzDecode checks Decode never panics, errors are 400 *outcome.Error
// values, and whatever it accepts finalizes and re-decodes.
func FuzzDecode(f *testing.F) {
	files, _ := filepath.Glob("testdata/examples/*.json")
	for _, fn := range files {
		b, err := os.ReadFile(fn)
		if err != nil {
			f.Fatal(err)
		}
		f.Add(b)
	}
	for _, s := range []string{
		``, `{}`, `[]`, `null`, `{"resourceType":"Patient"}`, `{"resourceType":"Patient"`,
		`{"resourceType":"Patient","name":[{"given":["a",null],"_given":[null,{"id":"x"}]}]}`,
		`{"resourceType":"Patient","name":[null]}`, `{"resourceType":"Patient","gender":null,"gender":"x"}`,
		`{"resourceType":"Patient","contained":[{"resourceType":"Patient","contained":[{"resourceType":"Patient"}]}]}`,
		`{"resourceType":"Observation","status":"final","code":{"text":"x"},"valueQuantity":{"value":1e400}}`,
		`{"resourceType":"Bundle","type":"collection","entry":[{"resource":{"resourceType":"Bundle","type":"collection"}}]}`,
		`{"resourceType":"Patient","birthDate":"2020-02-30","_active":{"id":"\u0000"}}`,
		"{\"resourceType\":\"Patient\",\"gender\":\"\xff\"}",
	} {
		f.Add([]byte(s))
	}
	c, err := New()
	if err != nil {
		f.Fatal(err)
	}
	f.Fuzz(func(t *testing.T, body []byte) {
		tm := time.AfterFunc(3*time.Second, func() { os.WriteFile("/tmp/hang-decode.bin", body, 0o644) })
		defer tm.Stop()
		p, err := c.Decode(body)
		if err != nil {
			e, ok := err.(*outcome.Error)
			if !ok {
				t.Fatalf("error of type %T", err)
			}
			if e.HTTPStatus() != 400 {
				t.Fatalf("status %d: %v", e.HTTPStatus(), e)
			}
			return
		}
		out, err := c.Finalize(p, "f", 1, time.Unix(0, 0))
		if err != nil {
			t.Fatalf("finalize: %v", err)
		}
		if _, err := c.Decode(out); err != nil {
			t.Fatalf("stored form %s does not re-decode: %v", out, err)
		}
		for _, m := range []string{SummaryTrue, SummaryText, SummaryData} {
			if _, err := Summary(out, m); err != nil {
				t.Fatalf("summary %s: %v", m, err)
			}
		}
	})
}

// FuzzApplyJSONPatch checks ApplyJSONPatch never panics, fails only with
// *outcome.Error, and returns valid JSON.
func FuzzApplyJSONPatch(f *testing.F) {
	doc := []byte(`{"resourceType":"Patient","name":[{"given":["a","b"]}],"a~b":{"c/d":1}}`)
	for _, p := range []string{
		`[]`, `[{"op":"add","path":"/name/0/given/-","value":"c"}]`,
		`[{"op":"remove","path":"/name/0/given/0"}]`, `[{"op":"replace","path":"/a~0b/c~1d","value":2}]`,
		`[{"op":"move","from":"/name","path":"/x"}]`, `[{"op":"copy","from":"/name/0","path":"/name/-"}]`,
		`[{"op":"test","path":"/a~0b/c~1d","value":1.0}]`, `[{"op":"move","from":"/name","path":"/name/0"}]`,
		`[{"op":"add","path":"","value":[]}]`, `[{"op":"test","path":"/a~0b/c~1d","value":1e99999999}]`,
	} {
		f.Add(doc, []byte(p))
	}
	f.Fuzz(func(t *testing.T, doc, patch []byte) {
		out, err := ApplyJSONPatch(doc, patch)
		if err != nil {
			if _, ok := err.(*outcome.Error); !ok {
				t.Fatalf("error of type %T", err)
			}
			return
		}
		if _, err := decodeAny(out); err != nil {
			t.Fatalf("invalid JSON out: %s", out)
		}
	})
}
