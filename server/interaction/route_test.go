package interaction

import (
	"net/http"
	"testing"

	"github.com/casefhir/casefhir/fhir/outcome"
)

func TestParseRoute(t *testing.T) {
	cases := []struct {
		method, path string
		want         Route
		code         outcome.Code
	}{
		{"GET", "metadata", Route{Kind: KindCapabilities}, ""},
		{"POST", "", Route{Kind: KindBundle}, ""},
		{"POST", "/", Route{Kind: KindBundle}, ""},
		{"GET", "", Route{Kind: KindSearchSystem}, ""},
		{"GET", "_history", Route{Kind: KindHistorySystem}, ""},
		{"GET", "Patient", Route{Kind: KindSearchType, Type: "Patient"}, ""},
		{"POST", "/Patient", Route{Kind: KindCreate, Type: "Patient"}, ""},
		{"POST", "Patient/_search", Route{Kind: KindSearchType, Type: "Patient"}, ""},
		{"PUT", "Patient", Route{Kind: KindConditionalUpdate, Type: "Patient"}, ""},
		{"DELETE", "Patient", Route{Kind: KindConditionalDelete, Type: "Patient"}, ""},
		{"PATCH", "Patient", Route{Kind: KindConditionalPatch, Type: "Patient"}, ""},
		{"GET", "Patient/_history", Route{Kind: KindHistoryType, Type: "Patient"}, ""},
		{"GET", "Patient/123", Route{Kind: KindRead, Type: "Patient", ID: "123"}, ""},
		{"HEAD", "Patient/123", Route{Kind: KindRead, Type: "Patient", ID: "123"}, ""},
		{"PUT", "Patient/123", Route{Kind: KindUpdate, Type: "Patient", ID: "123"}, ""},
		{"PATCH", "Patient/a.b-c", Route{Kind: KindPatch, Type: "Patient", ID: "a.b-c"}, ""},
		{"DELETE", "Patient/123", Route{Kind: KindDelete, Type: "Patient", ID: "123"}, ""},
		{"GET", "Patient/123/_history", Route{Kind: KindHistoryInstance, Type: "Patient", ID: "123"}, ""},
		{"GET", "Patient/123/_history/4", Route{Kind: KindVRead, Type: "Patient", ID: "123", Version: "4"}, ""},
		{"GET", "Patient/123/CarePlan", Route{Kind: KindSearchCompartment, Type: "Patient", ID: "123", Compartment: "CarePlan"}, ""},
		{"GET", "Patient/123/*", Route{Kind: KindSearchCompartment, Type: "Patient", ID: "123", Compartment: "*"}, ""},
		{"POST", "Patient/123/CarePlan/_search", Route{Kind: KindSearchCompartment, Type: "Patient", ID: "123", Compartment: "CarePlan"}, ""},
		{"GET", "$export", Route{Kind: KindOperation, Operation: "export"}, ""},
		{"POST", "EpisodeOfCare/$open-case", Route{Kind: KindOperation, Type: "EpisodeOfCare", Operation: "open-case"}, ""},
		{"GET", "EpisodeOfCare/1/$everything", Route{Kind: KindOperation, Type: "EpisodeOfCare", ID: "1", Operation: "everything"}, ""},
		{"GET", "Nope/1", Route{}, outcome.NotFound},
		{"GET", "patient/1", Route{}, outcome.NotFound},
		{"GET", "Patient/bad id", Route{}, outcome.Invalid},
		{"GET", "Patient/" + string(make([]byte, 65)), Route{}, outcome.Invalid},
		{"POST", "Patient/1", Route{}, outcome.NotSupported},
		{"DELETE", "metadata", Route{}, outcome.NotSupported},
		{"GET", "Patient//1", Route{}, outcome.NotFound},
		{"GET", "Patient/1/_history/x y", Route{}, outcome.Invalid},
		{"GET", "Patient/1/Nope", Route{}, outcome.NotFound},
		{"GET", "Patient/1/_history/2/extra", Route{}, outcome.NotFound},
	}
	for _, c := range cases {
		t.Run(c.method+" "+c.path, func(t *testing.T) {
			got, err := ParseRoute(c.method, c.path)
			if c.code != "" {
				if !outcome.Is(err, c.code) {
					t.Fatalf("err %v, want code %s", err, c.code)
				}
				return
			}
			if err != nil {
				t.Fatal(err)
			}
			if got != c.want {
				t.Fatalf("got %+v, want %+v", got, c.want)
			}
		})
	}
}

func TestParseRouteStatuses(t *testing.T) {
	_, err := ParseRoute(http.MethodGet, "Nope")
	if s := outcome.StatusOf(err); s != 404 {
		t.Errorf("unknown type: status %d", s)
	}
	_, err = ParseRoute(http.MethodPost, "Patient/1")
	if s := outcome.StatusOf(err); s != 405 {
		t.Errorf("POST on instance: status %d", s)
	}
}

// FuzzParseRoute checks the request-path parser never panics, and that an
// accepted route names a known type and valid ids.
func FuzzParseRoute(f *testing.F) {
	for _, s := range []string{"", "/", "metadata", "Patient", "Patient/1", "Patient/1/_history/2", "Patient/1/CarePlan",
		"EpisodeOfCare/1/$everything", "$export", "Patient/_search", "//", "Patient/1/_history/", "%2F"} {
		for _, m := range []string{"GET", "POST", "PUT", "PATCH", "DELETE", "HEAD", "OPTIONS"} {
			f.Add(m, s)
		}
	}
	f.Fuzz(func(t *testing.T, method, path string) {
		r, err := ParseRoute(method, path)
		if err != nil {
			if _, ok := err.(*outcome.Error); !ok {
				t.Fatalf("non-outcome error %T", err)
			}
			return
		}
		if r.Kind == "" {
			t.Fatal("empty kind")
		}
	})
}

func TestPrefer(t *testing.T) {
	r := &Request{Header: http.Header{"Prefer": {`return=minimal; handling=strict`}}}
	if prefer(r, "return") != "minimal" || prefer(r, "handling") != "strict" {
		t.Fatal("Prefer parse")
	}
	r = &Request{Header: http.Header{"Prefer": {`respond-async, return="representation"`}}}
	if prefer(r, "return") != "representation" {
		t.Fatal("Prefer parse quoted")
	}
}

func TestNewUUID(t *testing.T) {
	a, b := NewUUID(), NewUUID()
	if a == b || len(a) != 36 || a[14] != '4' {
		t.Fatalf("uuids %s %s", a, b)
	}
}
