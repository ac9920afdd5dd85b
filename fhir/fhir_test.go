package fhir

import (
	"strings"
	"testing"
	"time"
)

func TestIsValidID(t *testing.T) {
	for _, ok := range []string{"a", "123", "a-b.c", strings.Repeat("x", 64)} {
		if !IsValidID(ok) {
			t.Errorf("%q rejected", ok)
		}
	}
	for _, bad := range []string{"", "a b", "a/b", "a_b", strings.Repeat("x", 65), "ü"} {
		if IsValidID(bad) {
			t.Errorf("%q accepted", bad)
		}
	}
}

func TestResourceTypes(t *testing.T) {
	if n := len(ResourceTypes()); n != 146 {
		t.Fatalf("%d types", n)
	}
	for _, ok := range []string{"Patient", "EpisodeOfCare", "CarePlan", "RiskAssessment", "Coverage", "Bundle"} {
		if !IsResourceType(ok) {
			t.Errorf("%s not a type", ok)
		}
	}
	for _, bad := range []string{"patient", "Resource", "DomainResource", "", "Foo"} {
		if IsResourceType(bad) {
			t.Errorf("%s is a type", bad)
		}
	}
}

func TestETag(t *testing.T) {
	cases := map[string]string{`W/"3"`: "3", `"3"`: "3", `3`: "3", ` W/"12" `: "12", `w/"4"`: "4"}
	for in, want := range cases {
		if got, ok := ParseETag(in); !ok || got != want {
			t.Errorf("ParseETag(%q) = %q %v", in, got, ok)
		}
	}
	for _, bad := range []string{"", `W/"`, `W/""`, `"a`, `"a b"`} {
		if _, ok := ParseETag(bad); ok {
			t.Errorf("ParseETag(%q) accepted", bad)
		}
	}
	if FormatETag("7") != `W/"7"` {
		t.Error("FormatETag")
	}
}

func TestFormatInstant(t *testing.T) {
	tm := time.Date(2024, 1, 2, 3, 4, 5, 678e6, time.FixedZone("x", 3600))
	if got := FormatInstant(tm); got != "2024-01-02T02:04:05.678Z" {
		t.Fatal(got)
	}
}

func TestParseReference(t *testing.T) {
	cases := []struct {
		in   string
		want Reference
		ok   bool
	}{
		{"Patient/123", Reference{Type: "Patient", ID: "123"}, true},
		{"Patient/123/_history/2", Reference{Type: "Patient", ID: "123", Version: "2"}, true},
		{"http://x.org/fhir/Patient/1", Reference{Base: "http://x.org/fhir", Type: "Patient", ID: "1"}, true},
		{"https://x.org/Patient/1/_history/9", Reference{Base: "https://x.org", Type: "Patient", ID: "1", Version: "9"}, true},
		{"#c1", Reference{Fragment: "c1"}, true},
		{"urn:uuid:61ebe359-bfdc-4613-8bf2-c5e300945f0a", Reference{URN: "urn:uuid:61ebe359-bfdc-4613-8bf2-c5e300945f0a"}, true},
		{"urn:oid:1.2.3", Reference{URN: "urn:oid:1.2.3"}, true},
		{"", Reference{}, false},
		{"Patient", Reference{}, false},
		{"Nope/1", Reference{}, false},
		{"Patient/1 2", Reference{}, false},
		{"Patient/1/_history", Reference{}, false},
		{"http:///Patient/1", Reference{}, false},
	}
	for _, c := range cases {
		got, ok := ParseReference(c.in)
		c.want.Raw = c.in
		if ok != c.ok || (ok && got != c.want) {
			t.Errorf("ParseReference(%q) = %+v %v, want %+v %v", c.in, got, ok, c.want, c.ok)
		}
	}
	r, _ := ParseReference("Patient/1/_history/2")
	if r.Local() != "Patient/1" {
		t.Error(r.Local())
	}
}

// FuzzParseReference: never panics; an accepted Type/id reference has a
// known type and valid ids.
func FuzzParseReference(f *testing.F) {
	for _, s := range []string{"Patient/1", "Patient/1/_history/2", "http://a/b/Patient/1", "#x", "urn:uuid:1", "://", "http://[::1]/Patient/1"} {
		f.Add(s)
	}
	f.Fuzz(func(t *testing.T, s string) {
		r, ok := ParseReference(s)
		if !ok || r.Type == "" {
			return
		}
		if !IsResourceType(r.Type) || !IsValidID(r.ID) || (r.Version != "" && !IsValidID(r.Version)) {
			t.Fatalf("accepted bad reference %q: %+v", s, r)
		}
	})
}

// FuzzParseETag: never panics; an accepted tag round-trips.
func FuzzParseETag(f *testing.F) {
	for _, s := range []string{`W/"1"`, `"2"`, "3", `W/"`, `""`, "*"} {
		f.Add(s)
	}
	f.Fuzz(func(t *testing.T, s string) {
		v, ok := ParseETag(s)
		if !ok {
			return
		}
		if v2, ok2 := ParseETag(FormatETag(v)); !ok2 || v2 != v {
			t.Fatalf("%q -> %q does not round-trip", s, v)
		}
	})
}
