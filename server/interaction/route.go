package interaction

import (
	"net/http"
	"strings"

	"github.com/casefhir/casefhir/fhir"
	"github.com/casefhir/casefhir/fhir/outcome"
)

// Kind names a FHIR interaction.
type Kind string

// The interactions.
const (
	KindRead              Kind = "read"
	KindVRead             Kind = "vread"
	KindUpdate            Kind = "update"
	KindPatch             Kind = "patch"
	KindDelete            Kind = "delete"
	KindHistoryInstance   Kind = "history-instance"
	KindHistoryType       Kind = "history-type"
	KindHistorySystem     Kind = "history-system"
	KindCreate            Kind = "create"
	KindSearchType        Kind = "search-type"
	KindSearchSystem      Kind = "search-system"
	KindSearchCompartment Kind = "search-compartment"
	KindCapabilities      Kind = "capabilities"
	KindBundle            Kind = "bundle" // a Bundle posted to the base: BundleIn.Type says batch or transaction
	KindOperation         Kind = "operation"
	// Conditional forms (type-level URL with a query).
	KindConditionalUpdate Kind = "conditional-update"
	KindConditionalPatch  Kind = "conditional-patch"
	KindConditionalDelete Kind = "conditional-delete"
)

// Route is the parsed target of a request: method plus the path below the
// FHIR base.
type Route struct {
	Kind      Kind
	Type      string
	ID        string
	Version   string
	Operation string // without '$'
	// Compartment is the target type of a compartment search
	// (Patient/1/CarePlan: Type Patient, ID 1, Compartment CarePlan; "*" for all).
	Compartment string
}

// ParseRoute maps an HTTP method and a path relative to the FHIR base
// (leading '/' optional, no query) to a Route. Unknown types, bad ids and
// unsupported method/path pairs are *outcome.Error values.
func ParseRoute(method, path string) (Route, error) {
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
	checkType := func(t string) error {
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
		if err := checkType(seg[0]); err != nil {
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
	if err := checkType(seg[0]); err != nil {
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
			if err := checkType(seg[2]); err != nil {
				return Route{}, err
			}
		}
		r.Kind, r.Compartment = KindSearchCompartment, seg[2]
		return r, nil
	case len(seg) == 4 && seg[3] == "_search" && method == http.MethodPost:
		if err := checkType(seg[2]); err != nil {
			return Route{}, err
		}
		r.Kind, r.Compartment = KindSearchCompartment, seg[2]
		return r, nil
	}
	return Route{}, outcome.New(outcome.NotFound, "unknown path").WithStatus(http.StatusNotFound)
}
