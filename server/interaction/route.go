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

// segKind is what one segment of a route pattern matches.
type segKind int

const (
	segLit      segKind = iota // the literal text
	segType                    // a resource type (404 when unknown)
	segID                      // a logical id (400 when malformed)
	segVersion                 // a version id (400 when malformed)
	segOp                      // $name: an operation
	segCompType                // a resource type or "*" (a compartment search target)
	segCompOnly                // a resource type (a compartment _search target)
)

type segment struct {
	kind segKind
	text string // for segLit
}

// routeRow is one row of the route table: a path pattern below the base
// and the interaction each method means on it. anyMethod, when set, takes
// every method. A method not listed makes a strict row answer 405;
// otherwise the next rows are tried.
type routeRow struct {
	path      []segment
	methods   map[string]Kind
	anyMethod Kind
	strict    bool
}

func lit(s string) segment { return segment{kind: segLit, text: s} }

var (
	pType    = segment{kind: segType}
	pID      = segment{kind: segID}
	pVersion = segment{kind: segVersion}
	pOp      = segment{kind: segOp}
)

// routeTable lists the FHIR REST paths (https://hl7.org/fhir/R4/http.html)
// in match order.
var routeTable = []routeRow{
	{path: nil, strict: true, methods: map[string]Kind{http.MethodPost: KindBundle, http.MethodGet: KindSearchSystem}},
	{path: []segment{lit("metadata")}, strict: true, methods: map[string]Kind{http.MethodGet: KindCapabilities}},
	{path: []segment{lit("_history")}, strict: true, methods: map[string]Kind{http.MethodGet: KindHistorySystem}},
	{path: []segment{lit("_search")}, methods: map[string]Kind{http.MethodPost: KindSearchSystem}},
	{path: []segment{pOp}, anyMethod: KindOperation},
	{path: []segment{pType}, strict: true, methods: map[string]Kind{http.MethodGet: KindSearchType, http.MethodPost: KindCreate,
		http.MethodPut: KindConditionalUpdate, http.MethodPatch: KindConditionalPatch, http.MethodDelete: KindConditionalDelete}},
	{path: []segment{pType, lit("_search")}, strict: true, methods: map[string]Kind{http.MethodPost: KindSearchType}},
	{path: []segment{pType, lit("_history")}, strict: true, methods: map[string]Kind{http.MethodGet: KindHistoryType}},
	{path: []segment{pType, pOp}, anyMethod: KindOperation},
	{path: []segment{pType, pID}, strict: true, methods: map[string]Kind{http.MethodGet: KindRead, http.MethodHead: KindRead,
		http.MethodPut: KindUpdate, http.MethodPatch: KindPatch, http.MethodDelete: KindDelete}},
	{path: []segment{pType, pID, lit("_history")}, strict: true, methods: map[string]Kind{http.MethodGet: KindHistoryInstance}},
	{path: []segment{pType, pID, lit("_history"), pVersion}, strict: true, methods: map[string]Kind{http.MethodGet: KindVRead, http.MethodHead: KindVRead}},
	{path: []segment{pType, pID, pOp}, anyMethod: KindOperation},
	{path: []segment{pType, pID, {kind: segCompType}}, strict: true, methods: map[string]Kind{http.MethodGet: KindSearchCompartment}},
	{path: []segment{pType, pID, {kind: segCompOnly}, lit("_search")}, methods: map[string]Kind{http.MethodPost: KindSearchCompartment}},
}

// ParseRoute maps an HTTP method and a path relative to the FHIR base
// (leading '/' optional, no query) to a Route, by the first row of
// routeTable whose pattern fits. The type and id of a path are checked
// before its method, the rest after. Unknown types, bad ids and
// unsupported method/path pairs are *outcome.Error values.
func ParseRoute(method, path string) (Route, error) {
	path = strings.Trim(path, "/")
	var segs []string
	if path != "" {
		segs = strings.Split(path, "/")
	}
	for _, s := range segs {
		if s == "" {
			return Route{}, outcome.New(outcome.NotFound, "empty path segment").WithStatus(http.StatusNotFound)
		}
	}
	for _, row := range routeTable {
		if !row.fits(segs) {
			continue
		}
		kind, ok := row.methods[method]
		if row.anyMethod != "" {
			kind, ok = row.anyMethod, true
		}
		if !ok && !row.strict {
			continue
		}
		var r Route
		for i, p := range row.path {
			if err := p.bindResource(&r, segs[i]); err != nil {
				return Route{}, err
			}
		}
		if !ok {
			return Route{}, outcome.Errorf(outcome.NotSupported, "%s is not supported on this path", method)
		}
		for i, p := range row.path {
			if err := p.bindRest(&r, segs[i]); err != nil {
				return Route{}, err
			}
		}
		r.Kind = kind
		return r, nil
	}
	if len(segs) >= 2 {
		var r Route
		for i, p := range []segment{pType, pID} {
			if err := p.bindResource(&r, segs[i]); err != nil {
				return Route{}, err
			}
		}
	}
	return Route{}, outcome.New(outcome.NotFound, "unknown path").WithStatus(http.StatusNotFound)
}

// fits reports whether segs have the row's shape: its length, literals
// and operation segments.
func (row *routeRow) fits(segs []string) bool {
	if len(row.path) != len(segs) {
		return false
	}
	for i, p := range row.path {
		switch p.kind {
		case segLit:
			if segs[i] != p.text {
				return false
			}
		case segOp:
			if len(segs[i]) < 2 || segs[i][0] != '$' {
				return false
			}
		}
	}
	return true
}

// bindResource checks and records the type and id segments.
func (p segment) bindResource(r *Route, s string) error {
	switch p.kind {
	case segType:
		if err := checkType(s); err != nil {
			return err
		}
		r.Type = s
	case segID:
		if !fhir.IsValidID(s) {
			return outcome.New(outcome.Invalid, "invalid resource id").WithDiagnostics("invalid id: " + s)
		}
		r.ID = s
	}
	return nil
}

// bindRest checks and records the segments after the method check.
func (p segment) bindRest(r *Route, s string) error {
	switch p.kind {
	case segVersion:
		if !fhir.IsValidID(s) {
			return outcome.New(outcome.Invalid, "invalid version id")
		}
		r.Version = s
	case segOp:
		r.Operation = s[1:]
	case segCompType, segCompOnly:
		if s != "*" || p.kind == segCompOnly {
			if err := checkType(s); err != nil {
				return err
			}
		}
		r.Compartment = s
	}
	return nil
}

func checkType(t string) error {
	if !fhir.IsResourceType(t) {
		return outcome.New(outcome.NotFound, "unknown resource type").WithStatus(http.StatusNotFound).
			WithDiagnostics("unknown resource type: " + t)
	}
	return nil
}
