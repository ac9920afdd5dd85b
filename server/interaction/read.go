package interaction

import (
	"context"
	"net/http"
	"net/url"
	"strings"
	"time"

	"github.com/casefhir/casefhir/fhir"
	"github.com/casefhir/casefhir/fhir/codec"
	"github.com/casefhir/casefhir/fhir/outcome"
	"github.com/casefhir/casefhir/fhir/search"
	"github.com/casefhir/casefhir/fhir/store"
)

// Read implements https://hl7.org/fhir/R4/http.html#read, with conditional
// read (If-None-Match, If-Modified-Since: 304), _summary and _elements.
func (h *Handler) Read(ctx context.Context, r *Request) (*Response, error) {
	if err := allow(r, ActionRead, r.Type); err != nil {
		return nil, err
	}
	read := h.o.Store.Read
	if !accessReadsIndex(r, ActionRead, r.Type) {
		// Nothing below looks at search values: the store need not
		// decode them.
		read = func(ctx context.Context, typ, id string) (*store.Resource, error) {
			return store.ReadJSON(ctx, h.o.Store, typ, id)
		}
	}
	res, err := h.readVisibleWith(ctx, r, r.Type, r.ID, read)
	if err != nil {
		return nil, err
	}
	if res.Deleted {
		return nil, deletedError(res)
	}
	if wantsRaw(r) {
		return binaryRaw(res)
	}
	return h.resourceResponse(r, res)
}

// readVisible reads the current version of Type/id as the caller may see
// it: outside the caller's patient compartment it does not exist (404).
func (h *Handler) readVisible(ctx context.Context, r *Request, typ, id string) (*store.Resource, error) {
	return h.readVisibleWith(ctx, r, typ, id, h.o.Store.Read)
}

// readVisibleWith is readVisible with read as the store's read.
func (h *Handler) readVisibleWith(ctx context.Context, r *Request, typ, id string, read func(context.Context, string, string) (*store.Resource, error)) (*store.Resource, error) {
	res, err := read(ctx, typ, id)
	if err != nil {
		return nil, err
	}
	if !h.visible(r, ActionRead, res) || (typ == "Binary" && !h.binaryContextVisible(ctx, r, res)) {
		return nil, notFound(typ, id)
	}
	return res, nil
}

// accessReadsIndex reports whether visible(r, a, res) looks at the search
// values of a resource of typ: for a caller bounded to a patient
// compartment, one with granular restrictions on typ, and for Binary
// (its security context). Otherwise a read may skip them.
func accessReadsIndex(r *Request, a Action, typ string) bool {
	if r.Access == nil {
		return false
	}
	if typ == "Binary" {
		return true
	}
	if _, bounded := r.Access.Compartment(a, typ); bounded {
		return true
	}
	return len(r.Access.Restrictions(a, typ)) > 0
}

// visible reports whether res lies within the caller's compartment for a
// and matches the caller's granular scope restrictions for a on its type.
func (h *Handler) visible(r *Request, a Action, res *store.Resource) bool {
	return inCompartment(r, a, res) && h.matchesRestrictions(r, a, res)
}

// inCompartment reports whether res lies within the caller's compartment
// for a (always, for a caller not bounded to a patient).
func inCompartment(r *Request, a Action, res *store.Resource) bool {
	if r.Access == nil {
		return true
	}
	if res.Type == "Binary" && !binaryContextAllowed(r, res) {
		return false
	}
	pid, bounded := r.Access.Compartment(a, res.Type)
	if !bounded {
		return true
	}
	return search.InPatientCompartment(res, pid)
}

// RestrictionMatcher evaluates granular scope restrictions (sets of search
// parameters, OR-ed) against a resource's index values. The search
// executor implements it.
type RestrictionMatcher interface {
	MatchRestrictions(typ string, sets []url.Values, index map[string]any) bool
}

// matchesRestrictions reports whether res matches the caller's granular
// scope restrictions for a on its type. A tombstone (no index) matches no
// restriction; without a matcher restrictions match nothing.
func (h *Handler) matchesRestrictions(r *Request, a Action, res *store.Resource) bool {
	if r.Access == nil {
		return true
	}
	sets := r.Access.Restrictions(a, res.Type)
	if len(sets) == 0 {
		return true
	}
	var m RestrictionMatcher
	if x, ok := h.o.Search.(RestrictionMatcher); ok {
		m = x
	} else if x, ok := h.o.Resolver.(RestrictionMatcher); ok {
		m = x
	}
	if m == nil || res.Deleted || res.Index == nil {
		return false
	}
	return m.MatchRestrictions(res.Type, sets, res.Index)
}

func notFound(typ, id string) error {
	return outcome.New(outcome.NotFound, "resource not found").
		WithDiagnostics(typ + "/" + id + " is not known")
}

func deletedError(res *store.Resource) error {
	return outcome.New(outcome.Deleted, "resource deleted").
		WithDiagnostics(res.Type+"/"+res.ID+" was deleted").
		WithHeader("ETag", fhir.FormatETag(fhir.VersionString(res.VersionID))).
		WithHeader("Last-Modified", res.LastUpdated.UTC().Format(http.TimeFormat))
}

// resourceResponse renders one stored version with conditional-read and
// shaping rules.
func (h *Handler) resourceResponse(r *Request, res *store.Resource) (*Response, error) {
	resp := &Response{Status: http.StatusOK, Header: http.Header{}}
	versionHeaders(resp.Header, res)
	if notModified(r, res) {
		resp.Status = http.StatusNotModified
		return resp, nil
	}
	body, err := shape(r, res.JSON)
	if err != nil {
		return nil, err
	}
	resp.Body = body
	return resp, nil
}

// notModified applies If-None-Match and If-Modified-Since.
func notModified(r *Request, res *store.Resource) bool {
	if inm := r.Header.Get("If-None-Match"); inm != "" {
		return etagMatches(inm, fhir.VersionString(res.VersionID))
	}
	if ims := r.Header.Get("If-Modified-Since"); ims != "" {
		t, err := http.ParseTime(ims)
		if err != nil {
			if t2, err2 := time.Parse(time.RFC3339, ims); err2 == nil {
				t, err = t2, nil
			}
		}
		if err == nil && !res.LastUpdated.Truncate(time.Second).After(t) {
			return true
		}
	}
	return false
}

// shape applies _summary and _elements to stored JSON.
func shape(r *Request, js []byte) ([]byte, error) {
	if s := r.Query.Get("_summary"); s != "" && s != "false" {
		return codec.Summary(js, s)
	}
	if els := r.Query["_elements"]; len(els) > 0 {
		var list []string
		for _, e := range els {
			for _, x := range strings.Split(e, ",") {
				if x = strings.TrimSpace(x); x != "" {
					list = append(list, x)
				}
			}
		}
		return codec.Elements(js, list)
	}
	return js, nil
}
