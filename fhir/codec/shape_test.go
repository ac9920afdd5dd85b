package codec

import (
	"bytes"
	"encoding/json"
	bcrpb "github.com/google/fhir/go/proto/google/fhir/proto/r4/core/resources/bundle_and_contained_resource_go_proto"
	"google.golang.org/protobuf/reflect/protoreflect"
	"os"
	"reflect"
	"sort"
	"strings"
	"testing"
	"time"

	"github.com/casefhir/casefhir/fhir/outcome"
)

func stored(t testing.TB, c *Codec, body []byte) []byte {
	t.Helper()
	p, err := c.Decode(body)
	if err != nil {
		t.Fatal(err)
	}
	out, err := c.Finalize(p, "s1", 1, time.Date(2024, 1, 1, 0, 0, 0, 0, time.UTC))
	if err != nil {
		t.Fatal(err)
	}
	return out
}

func topKeys(t *testing.T, b []byte) []string {
	t.Helper()
	var m map[string]json.RawMessage
	if err := json.Unmarshal(b, &m); err != nil {
		t.Fatalf("invalid JSON %s: %v", b, err)
	}
	var ks []string
	for k := range m {
		ks = append(ks, k)
	}
	sort.Strings(ks)
	return ks
}

func hasSubsetted(t *testing.T, b []byte) bool {
	t.Helper()
	var r struct {
		Meta struct {
			Tag []struct{ System, Code string }
		}
	}
	if err := json.Unmarshal(b, &r); err != nil {
		t.Fatal(err)
	}
	n := 0
	for _, tg := range r.Meta.Tag {
		if tg.System == SubsettedSystem && tg.Code == SubsettedCode {
			n++
		}
	}
	if n > 1 {
		t.Errorf("SUBSETTED tag %d times", n)
	}
	return n == 1
}

const shapePatient = `{"resourceType":"Patient","id":"p","meta":{"tag":[{"system":"http://t","code":"a"}]},
	"text":{"status":"generated","div":"<div xmlns=\"http://www.w3.org/1999/xhtml\">x</div>"},
	"identifier":[{"value":"1"}],"active":true,"name":[{"family":"F"}],"gender":"female","birthDate":"1990-01-01",
	"_birthDate":{"extension":[{"url":"http://x","valueString":"y"}]},"deceasedBoolean":false,"maritalStatus":{"text":"M"},
	"contact":[{"name":{"family":"C"}}],"link":[{"other":{"reference":"Patient/q"},"type":"seealso"}],
	"modifierExtension":[{"url":"http://m","valueBoolean":true}]}`

func TestSummary(t *testing.T) {
	c := newCodec(t)
	s := stored(t, c, []byte(shapePatient))
	tests := []struct {
		mode string
		keys []string
	}{
		{SummaryTrue, []string{"_birthDate", "active", "birthDate", "deceasedBoolean", "gender", "id", "identifier", "link", "meta", "modifierExtension", "name", "resourceType"}},
		{SummaryText, []string{"id", "meta", "resourceType", "text"}},
		{SummaryData, []string{"_birthDate", "active", "birthDate", "contact", "deceasedBoolean", "gender", "id", "identifier", "link", "maritalStatus", "meta", "modifierExtension", "name", "resourceType"}},
	}
	for _, tt := range tests {
		t.Run(tt.mode, func(t *testing.T) {
			out, err := Summary(s, tt.mode)
			if err != nil {
				t.Fatal(err)
			}
			if got := topKeys(t, out); !reflect.DeepEqual(got, tt.keys) {
				t.Errorf("keys %v\nwant %v", got, tt.keys)
			}
			if !hasSubsetted(t, out) {
				t.Errorf("no SUBSETTED tag: %s", out)
			}
			if !strings.Contains(string(out), `"code":"a","system":"http://t"`) {
				t.Errorf("client tag lost: %s", out)
			}
			// The result is still a valid resource.
			if _, err := c.Decode(out); err != nil {
				t.Errorf("summary does not decode: %v", err)
			}
			// Applying twice adds one tag only.
			again, err := Summary(out, tt.mode)
			if err != nil || !hasSubsetted(t, again) {
				t.Errorf("second pass: %v", err)
			}
		})
	}
	if out, err := Summary(s, SummaryFalse); err != nil || string(out) != string(s) {
		t.Errorf("false changed the resource: %v", err)
	}
	for _, m := range []string{SummaryCount, "yes", ""} {
		if _, err := Summary(s, m); !outcome.Is(err, outcome.Invalid) || outcome.StatusOf(err) != 400 {
			t.Errorf("mode %q: %v", m, err)
		}
	}
	if _, err := Summary([]byte(`[1]`), SummaryTrue); err == nil {
		t.Error("non-object accepted")
	}
}

func TestSummaryMandatory(t *testing.T) {
	c := newCodec(t)
	s := stored(t, c, []byte(`{"resourceType":"Observation","status":"final","code":{"text":"x"},"valueQuantity":{"value":1},"note":[{"text":"n"}],"interpretation":[{"text":"i"}]}`))
	out, err := Summary(s, SummaryTrue)
	if err != nil {
		t.Fatal(err)
	}
	if got, want := topKeys(t, out), []string{"code", "id", "meta", "resourceType", "status", "valueQuantity"}; !reflect.DeepEqual(got, want) {
		t.Errorf("true: %v, want %v", got, want)
	}
	out, err = Summary(s, SummaryText)
	if err != nil {
		t.Fatal(err)
	}
	if got, want := topKeys(t, out), []string{"code", "id", "meta", "resourceType", "status"}; !reflect.DeepEqual(got, want) {
		t.Errorf("text: %v, want %v", got, want)
	}
}

func TestElements(t *testing.T) {
	c := newCodec(t)
	s := stored(t, c, []byte(shapePatient))
	out, err := Elements(s, []string{"name", "Patient.birthDate", " deceased", "nosuch"})
	if err != nil {
		t.Fatal(err)
	}
	if got, want := topKeys(t, out), []string{"_birthDate", "birthDate", "deceasedBoolean", "id", "meta", "name", "resourceType"}; !reflect.DeepEqual(got, want) {
		t.Errorf("keys %v, want %v", got, want)
	}
	if !hasSubsetted(t, out) {
		t.Error("no SUBSETTED tag")
	}
	obs := stored(t, c, []byte(`{"resourceType":"Observation","status":"final","code":{"text":"x"},"valueString":"v"}`))
	out, err = Elements(obs, []string{"value"})
	if err != nil {
		t.Fatal(err)
	}
	if got, want := topKeys(t, out), []string{"code", "id", "meta", "resourceType", "status", "valueString"}; !reflect.DeepEqual(got, want) {
		t.Errorf("keys %v, want %v", got, want)
	}
}

func TestShapeWithoutMeta(t *testing.T) {
	out, err := Elements([]byte(`{"resourceType":"Patient","id":"x","gender":"male"}`), nil)
	if err != nil {
		t.Fatal(err)
	}
	if string(out) != `{"resourceType":"Patient","id":"x","meta":{"tag":[`+string(subsettedTag)+`]}}` {
		t.Errorf("got %s", out)
	}
}

func TestShapeKeepsOrder(t *testing.T) {
	in := []byte(`{"resourceType":"Patient","id":"x","meta":{"versionId":"1"},"name":[{"family":"a\"b"}],"gender":"male","text":{"status":"empty","div":"<div/>"}}`)
	out, err := Summary(in, SummaryData)
	if err != nil {
		t.Fatal(err)
	}
	want := `{"resourceType":"Patient","id":"x","meta":{"tag":[` + string(subsettedTag) + `],"versionId":"1"},"name":[{"family":"a\"b"}],"gender":"male"}`
	if string(out) != want {
		t.Errorf("got  %s\nwant %s", out, want)
	}
}

func TestPretty(t *testing.T) {
	if got := string(Pretty([]byte(`{"a":[1,2]}`))); got != "{\n  \"a\": [\n    1,\n    2\n  ]\n}" {
		t.Errorf("got %q", got)
	}
	if got := string(Pretty([]byte(`{bad`))); got != `{bad` {
		t.Errorf("invalid JSON changed: %q", got)
	}
}

// TestSummaryTableNames checks every path of the embedded Σ table names
// an element of its type (a choice by its base), level by level.
func TestSummaryTableNames(t *testing.T) {
	var check func(path string, n *sumNode, md protoreflect.MessageDescriptor)
	check = func(path string, n *sumNode, md protoreflect.MessageDescriptor) {
		for name, kid := range n.kids {
			f := md.Fields().ByJSONName(name)
			if f == nil {
				t.Errorf("%s.%s is not an element", path, name)
				continue
			}
			if len(kid.kids) > 0 && f.Message() != nil {
				check(path+"."+name, kid, f.Message())
			}
		}
	}
	tables := summaryTables()
	if len(tables) != 146 {
		t.Errorf("%d types in the summary table, want 146", len(tables))
	}
	for typ, root := range tables {
		md := descriptorOf(typ)
		if md == nil {
			t.Errorf("unknown type %s", typ)
			continue
		}
		check(typ, root, md)
	}
}

// TestSummaryTableIsTheSharedOne: the embedded copy equals the shared
// definitions (when they are checked out beside the repository).
func TestSummaryTableIsTheSharedOne(t *testing.T) {
	shared, err := os.ReadFile("../../../shared/fhir-r4/definitions/summary-elements.json")
	if err != nil {
		t.Skipf("shared definitions not available: %v", err)
	}
	if !bytes.Equal(shared, summaryJSON) {
		t.Error("fhir/codec/summary_elements.json differs from ../shared/fhir-r4/definitions/summary-elements.json")
	}
}

func TestShapeOfficialExamples(t *testing.T) {
	c := newCodec(t)
	lenient, _ := NewWithOptions(Options{AllowAnyReferenceType: true})
	for _, f := range exampleFiles(t) {
		body, err := os.ReadFile(f)
		if err != nil {
			t.Fatal(err)
		}
		s := stored(t, lenient, body)
		for _, m := range []string{SummaryTrue, SummaryText, SummaryData} {
			out, err := Summary(s, m)
			if err != nil {
				t.Errorf("%s %s: %v", f, m, err)
				continue
			}
			if _, err := lenient.Decode(out); err != nil {
				t.Errorf("%s _summary=%s does not decode: %v", f, m, err)
			}
		}
	}
	_ = c
}

// descriptorOf returns the message descriptor of a resource type, or nil.
func descriptorOf(typ string) protoreflect.MessageDescriptor {
	od := (&bcrpb.ContainedResource{}).ProtoReflect().Descriptor().Oneofs().ByName("oneof_resource")
	for i := 0; i < od.Fields().Len(); i++ {
		if md := od.Fields().Get(i).Message(); string(md.Name()) == typ {
			return md
		}
	}
	return nil
}

// TestSummaryNested: _summary=true keeps exactly the Σ elements of a type
// outside the old hand-kept table, nested levels included.
func TestSummaryNested(t *testing.T) {
	stored := []byte(`{"resourceType":"Coverage","id":"c1","meta":{"versionId":"1"},"text":{"status":"generated","div":"<div xmlns=\"http://www.w3.org/1999/xhtml\">x</div>"},` +
		`"status":"active","beneficiary":{"reference":"Patient/p"},"payor":[{"reference":"Organization/o"}],"subrogation":true,` +
		`"class":[{"type":{"text":"group"},"value":"G1","name":"Group 1","extension":[{"url":"http://x","valueString":"y"}]}],` +
		`"costToBeneficiary":[{"type":{"text":"copay"},"valueMoney":{"value":5,"currency":"EUR"},"exception":[{"type":{"text":"t"},"period":{"start":"2020"}}]}],` +
		`"contract":[{"reference":"Contract/k"}]}`)
	out, err := Summary(stored, SummaryTrue)
	if err != nil {
		t.Fatal(err)
	}
	var got map[string]any
	if err := json.Unmarshal(out, &got); err != nil {
		t.Fatal(err)
	}
	for _, gone := range []string{"text", "subrogation", "contract"} {
		if _, ok := got[gone]; ok {
			t.Errorf("%s kept: %s", gone, out)
		}
	}
	for _, kept := range []string{"status", "beneficiary", "payor", "class", "costToBeneficiary"} {
		if _, ok := got[kept]; !ok {
			t.Errorf("%s dropped: %s", kept, out)
		}
	}
	class := got["class"].([]any)[0].(map[string]any)
	if _, ok := class["extension"]; ok || class["value"] != "G1" || class["name"] != "Group 1" {
		t.Errorf("class not reduced to its Σ elements: %v", class)
	}
	cost := got["costToBeneficiary"].([]any)[0].(map[string]any)
	if cost["valueMoney"] == nil || cost["exception"] == nil {
		t.Errorf("costToBeneficiary lost Σ elements: %v", cost)
	}
}
