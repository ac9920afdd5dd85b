package interaction

import (
	"net/http"
	"strings"
	"testing"

	"github.com/casefhir/casefhir/fhir"
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
		"EpisodeOfCare/1/$everything", "$export", "Patient/_search", "//", "Patient/1/_history/", "%2F",
		"_search", "_history", "$", "Patient/$", "Patient/1/*", "Patient/1/*/_search", "Patient/1/CarePlan/_search",
		"Patient/bad id/x/y", "Nope/1/_history/2", "Patient/1/_history/x y", "Patient/1/Nope", "Patient/1/$op",
		"Patient/_history", "metadata/x", "Patient/1/_history/2/extra", "$versions"} {
		for _, m := range []string{"GET", "POST", "PUT", "PATCH", "DELETE", "HEAD", "OPTIONS"} {
			f.Add(m, s)
		}
	}
	f.Fuzz(func(t *testing.T, method, path string) {
		r, err := ParseRoute(method, path)
		want, werr := parseRouteNested(method, path)
		if r != want || (err != nil) != (werr != nil) ||
			(err != nil && (outcome.As(err).Code != outcome.As(werr).Code || outcome.StatusOf(err) != outcome.StatusOf(werr))) {
			t.Fatalf("%s %q: table %+v %v, nested switches %+v %v", method, path, r, err, want, werr)
		}
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

// parseRouteNested is the nested-switch ParseRoute the route table
// replaced, kept as the oracle of FuzzParseRoute: both must agree on every
// input.
func parseRouteNested(method, path string) (Route, error) {
	path = strings.Trim(path, "/")
	var seg []string
	if path != "" {
		seg = strings.Split(path, "/")
	}
	for _, s := range seg {
		if s == "" {
			return Route{}, outcome.New(outcome.NotFound, "empty path segment").WithStatus(http.StatusNotFound)
		}
	}
	bad := func() (Route, error) {
		return Route{}, outcome.Errorf(outcome.NotSupported, "%s is not supported on this path", method)
	}
	op := func(s string) (string, bool) {
		if strings.HasPrefix(s, "$") && len(s) > 1 {
			return s[1:], true
		}
		return "", false
	}
	checkTypeOld := func(t string) error {
		if !fhir.IsResourceType(t) {
			return outcome.New(outcome.NotFound, "unknown resource type").WithStatus(http.StatusNotFound).
				WithDiagnostics("unknown resource type: " + t)
		}
		return nil
	}
	checkID := func(id string) error {
		if !fhir.IsValidID(id) {
			return outcome.New(outcome.Invalid, "invalid resource id").WithDiagnostics("invalid id: " + id)
		}
		return nil
	}
	switch len(seg) {
	case 0:
		switch method {
		case http.MethodPost:
			return Route{Kind: KindBundle}, nil
		case http.MethodGet:
			return Route{Kind: KindSearchSystem}, nil
		}
		return bad()
	case 1:
		if seg[0] == "metadata" {
			if method == http.MethodGet {
				return Route{Kind: KindCapabilities}, nil
			}
			return bad()
		}
		if seg[0] == "_history" {
			if method == http.MethodGet {
				return Route{Kind: KindHistorySystem}, nil
			}
			return bad()
		}
		if seg[0] == "_search" && method == http.MethodPost {
			return Route{Kind: KindSearchSystem}, nil
		}
		if o, ok := op(seg[0]); ok {
			return Route{Kind: KindOperation, Operation: o}, nil
		}
		if err := checkTypeOld(seg[0]); err != nil {
			return Route{}, err
		}
		r := Route{Type: seg[0]}
		switch method {
		case http.MethodGet:
			r.Kind = KindSearchType
		case http.MethodPost:
			r.Kind = KindCreate
		case http.MethodPut:
			r.Kind = KindConditionalUpdate
		case http.MethodPatch:
			r.Kind = KindConditionalPatch
		case http.MethodDelete:
			r.Kind = KindConditionalDelete
		default:
			return bad()
		}
		return r, nil
	}
	if err := checkTypeOld(seg[0]); err != nil {
		return Route{}, err
	}
	r := Route{Type: seg[0]}
	if len(seg) == 2 {
		switch {
		case seg[1] == "_search":
			if method != http.MethodPost {
				return bad()
			}
			r.Kind = KindSearchType
			return r, nil
		case seg[1] == "_history":
			if method != http.MethodGet {
				return bad()
			}
			r.Kind = KindHistoryType
			return r, nil
		}
		if o, ok := op(seg[1]); ok {
			r.Kind, r.Operation = KindOperation, o
			return r, nil
		}
		if err := checkID(seg[1]); err != nil {
			return Route{}, err
		}
		r.ID = seg[1]
		switch method {
		case http.MethodGet, http.MethodHead:
			r.Kind = KindRead
		case http.MethodPut:
			r.Kind = KindUpdate
		case http.MethodPatch:
			r.Kind = KindPatch
		case http.MethodDelete:
			r.Kind = KindDelete
		default:
			return bad()
		}
		return r, nil
	}
	if err := checkID(seg[1]); err != nil {
		return Route{}, err
	}
	r.ID = seg[1]
	switch {
	case len(seg) == 3 && seg[2] == "_history":
		if method != http.MethodGet {
			return bad()
		}
		r.Kind = KindHistoryInstance
		return r, nil
	case len(seg) == 4 && seg[2] == "_history":
		if method != http.MethodGet && method != http.MethodHead {
			return bad()
		}
		if !fhir.IsValidID(seg[3]) {
			return Route{}, outcome.New(outcome.Invalid, "invalid version id")
		}
		r.Kind, r.Version = KindVRead, seg[3]
		return r, nil
	case len(seg) == 3:
		if o, ok := op(seg[2]); ok {
			r.Kind, r.Operation = KindOperation, o
			return r, nil
		}
		if method != http.MethodGet {
			return bad()
		}
		if seg[2] != "*" {
			if err := checkTypeOld(seg[2]); err != nil {
				return Route{}, err
			}
		}
		r.Kind, r.Compartment = KindSearchCompartment, seg[2]
		return r, nil
	case len(seg) == 4 && seg[3] == "_search" && method == http.MethodPost:
		if err := checkTypeOld(seg[2]); err != nil {
			return Route{}, err
		}
		r.Kind, r.Compartment = KindSearchCompartment, seg[2]
		return r, nil
	}
	return Route{}, outcome.New(outcome.NotFound, "unknown path").WithStatus(http.StatusNotFound)
}
