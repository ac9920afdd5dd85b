package codec

import (
	"encoding/json"
	"reflect"
	"testing"

	"github.com/casefhir/casefhir/fhir/outcome"
)

func jsonValue(t *testing.T, b []byte) any {
	t.Helper()
	var v any
	if err := json.Unmarshal(b, &v); err != nil {
		t.Fatalf("invalid JSON %s: %v", b, err)
	}
	return v
}

func TestApplyJSONPatch(t *testing.T) {
	doc := `{"a":{"b":[1,2,3]},"c":"x","m~n":1,"s/t":2}`
	tests := []struct {
		name, patch, want string
	}{
		{"add member", `[{"op":"add","path":"/d","value":{"e":null}}]`, `{"a":{"b":[1,2,3]},"c":"x","m~n":1,"s/t":2,"d":{"e":null}}`},
		{"add replaces member", `[{"op":"add","path":"/c","value":1}]`, `{"a":{"b":[1,2,3]},"c":1,"m~n":1,"s/t":2}`},
		{"add array insert", `[{"op":"add","path":"/a/b/1","value":9}]`, `{"a":{"b":[1,9,2,3]},"c":"x","m~n":1,"s/t":2}`},
		{"add array append", `[{"op":"add","path":"/a/b/-","value":4}]`, `{"a":{"b":[1,2,3,4]},"c":"x","m~n":1,"s/t":2}`},
		{"add at end index", `[{"op":"add","path":"/a/b/3","value":4}]`, `{"a":{"b":[1,2,3,4]},"c":"x","m~n":1,"s/t":2}`},
		{"remove", `[{"op":"remove","path":"/a/b/0"},{"op":"remove","path":"/c"}]`, `{"a":{"b":[2,3]},"m~n":1,"s/t":2}`},
		{"replace", `[{"op":"replace","path":"/a/b/2","value":"z"}]`, `{"a":{"b":[1,2,"z"]},"c":"x","m~n":1,"s/t":2}`},
		{"escapes", `[{"op":"replace","path":"/m~0n","value":5},{"op":"remove","path":"/s~1t"}]`, `{"a":{"b":[1,2,3]},"c":"x","m~n":5}`},
		{"move", `[{"op":"move","from":"/c","path":"/a/c"}]`, `{"a":{"b":[1,2,3],"c":"x"},"m~n":1,"s/t":2}`},
		{"move in array", `[{"op":"move","from":"/a/b/0","path":"/a/b/-"}]`, `{"a":{"b":[2,3,1]},"c":"x","m~n":1,"s/t":2}`},
		{"copy", `[{"op":"copy","from":"/a","path":"/z"},{"op":"add","path":"/z/b/-","value":7}]`, `{"a":{"b":[1,2,3]},"z":{"b":[1,2,3,7]},"c":"x","m~n":1,"s/t":2}`},
		{"test ok", `[{"op":"test","path":"/a","value":{"b":[1.0,2,3e0]}},{"op":"test","path":"/c","value":"x"}]`, doc},
		{"replace root", `[{"op":"replace","path":"","value":{"q":1}}]`, `{"q":1}`},
		{"empty patch", `[]`, doc},
		{"number kept", `[{"op":"add","path":"/n","value":1.50}]`, `{"a":{"b":[1,2,3]},"c":"x","m~n":1,"s/t":2,"n":1.50}`},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			out, err := ApplyJSONPatch([]byte(doc), []byte(tt.patch))
			if err != nil {
				t.Fatal(err)
			}
			if !reflect.DeepEqual(jsonValue(t, out), jsonValue(t, []byte(tt.want))) {
				t.Errorf("got %s, want %s", out, tt.want)
			}
		})
	}
}

func TestApplyJSONPatchErrors(t *testing.T) {
	doc := `{"a":{"b":[1,2,3]},"c":"x"}`
	tests := []struct {
		name, patch string
		code        outcome.Code
		status      int
	}{
		{"not JSON", `[{`, outcome.Structure, 400},
		{"not an array", `{"op":"add"}`, outcome.Structure, 400},
		{"unknown op", `[{"op":"frob","path":"/a"}]`, outcome.Invalid, 400},
		{"missing path", `[{"op":"remove"}]`, outcome.Invalid, 400},
		{"missing value", `[{"op":"add","path":"/x"}]`, outcome.Invalid, 400},
		{"missing from", `[{"op":"move","path":"/x"}]`, outcome.Invalid, 400},
		{"bad pointer", `[{"op":"remove","path":"a"}]`, outcome.Invalid, 400},
		{"bad escape", `[{"op":"remove","path":"/a~2"}]`, outcome.Invalid, 400},
		{"missing member", `[{"op":"remove","path":"/nope"}]`, outcome.Invalid, 400},
		{"replace missing", `[{"op":"replace","path":"/nope","value":1}]`, outcome.Invalid, 400},
		{"add under missing", `[{"op":"add","path":"/nope/x","value":1}]`, outcome.Invalid, 400},
		{"index out of range", `[{"op":"add","path":"/a/b/5","value":1}]`, outcome.Invalid, 400},
		{"leading zero index", `[{"op":"remove","path":"/a/b/01"}]`, outcome.Invalid, 400},
		{"dash on remove", `[{"op":"remove","path":"/a/b/-"}]`, outcome.Invalid, 400},
		{"through primitive", `[{"op":"add","path":"/c/x","value":1}]`, outcome.Invalid, 400},
		{"move into child", `[{"op":"move","from":"/a","path":"/a/b/0"}]`, outcome.Invalid, 400},
		{"remove root", `[{"op":"remove","path":""}]`, outcome.Invalid, 400},
		{"test failed", `[{"op":"test","path":"/c","value":"y"}]`, outcome.Processing, 422},
		{"test type differs", `[{"op":"test","path":"/a/b/0","value":"1"}]`, outcome.Processing, 422},
		{"test missing path", `[{"op":"test","path":"/zz","value":1}]`, outcome.Invalid, 400},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			_, err := ApplyJSONPatch([]byte(doc), []byte(tt.patch))
			if !outcome.Is(err, tt.code) || outcome.StatusOf(err) != tt.status {
				t.Errorf("got %v (status %d), want %s %d", err, outcome.StatusOf(err), tt.code, tt.status)
			}
		})
	}
	if _, err := ApplyJSONPatch([]byte(`{"a":`), []byte(`[]`)); !outcome.Is(err, outcome.Structure) {
		t.Errorf("bad document: %v", err)
	}
}

// TestPatchThenDecode is the PATCH flow: patch the stored form, then Decode
// so FHIR validation runs on the result.
func TestPatchThenDecode(t *testing.T) {
	c := newCodec(t)
	s := stored(t, c, []byte(`{"resourceType":"Patient","gender":"male","name":[{"given":["A"]}]}`))
	out, err := ApplyJSONPatch(s, []byte(`[{"op":"replace","path":"/gender","value":"female"},{"op":"add","path":"/name/0/given/-","value":"B"}]`))
	if err != nil {
		t.Fatal(err)
	}
	p, err := c.Decode(out)
	if err != nil {
		t.Fatal(err)
	}
	b, _ := c.Encode(p.Msg)
	if !reflect.DeepEqual(jsonValue(t, b).(map[string]any)["gender"], "female") {
		t.Errorf("patched: %s", b)
	}
	bad, err := ApplyJSONPatch(s, []byte(`[{"op":"replace","path":"/gender","value":"robot"}]`))
	if err != nil {
		t.Fatal(err)
	}
	if _, err := c.Decode(bad); !outcome.Is(err, outcome.Value) {
		t.Errorf("invalid patched resource: %v", err)
	}
}
