package interaction

import (
	"context"
	"net/http"
	"net/url"
	"sort"
	"strings"
	"time"

	"github.com/casefhir/casefhir/fhir/outcome"
	"github.com/casefhir/casefhir/fhir/search"
	"github.com/casefhir/casefhir/fhir/store"
)

// conditionalLockTTL bounds how long a crashed conditional create can hold
// its query's lease.
const conditionalLockTTL = 30 * time.Second

// Create implements https://hl7.org/fhir/R4/http.html#create, including
// conditional create (If-None-Exist). Concurrent identical conditional
// creates make exactly one resource: the query's lease in the store
// serialises them across server instances.
func (h *Handler) Create(ctx context.Context, r *Request) (*Response, error) {
	if err := allow(r, ActionCreate, r.Type); err != nil {
		return nil, err
	}
	parsed, err := h.decode(r.Body, r.Type)
	if err != nil {
		return nil, err
	}
	if cond := r.Header.Get("If-None-Exist"); cond != "" {
		q, err := parseConditional(cond)
		if err != nil {
			return nil, err
		}
		unlock, err := h.o.Store.Lock(ctx, conditionalKey(r.Type, q), conditionalLockTTL)
		if err != nil {
			return nil, err
		}
		defer func() { _ = unlock(context.WithoutCancel(ctx)) }()
		matches, err := h.resolve(ctx, r, r.Type, q)
		if err != nil {
			return nil, err
		}
		switch len(matches) {
		case 0:
		case 1:
			resp := h.writeResponse(r, matches[0], http.StatusOK)
			return resp, nil
		default:
			return nil, outcome.New(outcome.MultipleMatches, "the If-None-Exist criteria match more than one resource")
		}
	}
	w := &Write{Type: r.Type, ID: h.o.NewID(), Body: r.Body, Access: r.Access}
	p, err := h.prepare(ctx, w, parsed)
	if err != nil {
		return nil, err
	}
	if err := h.checkStoredCompartment(r, ActionCreate, p.res); err != nil {
		return nil, err
	}
	if err := h.commit(ctx, p); err != nil {
		return nil, err
	}
	return h.writeResponse(r, p.res, http.StatusCreated), nil
}

// parseConditional parses the query of a conditional interaction.
func parseConditional(s string) (url.Values, error) {
	s = strings.TrimPrefix(s, "?")
	if i := strings.Index(s, "?"); i >= 0 { // "Patient?identifier=..." form
		s = s[i+1:]
	}
	q, err := url.ParseQuery(s)
	if err != nil || len(q) == 0 {
		return nil, outcome.New(outcome.Invalid, "invalid conditional criteria")
	}
	return q, nil
}

// conditionalKey is the lease name for a conditional query: the type plus
// the query in canonical (sorted) form.
func conditionalKey(typ string, q url.Values) string {
	keys := make([]string, 0, len(q))
	for k := range q {
		keys = append(keys, k)
	}
	sort.Strings(keys)
	var b strings.Builder
	b.WriteString("cond:")
	b.WriteString(typ)
	for _, k := range keys {
		vs := append([]string(nil), q[k]...)
		sort.Strings(vs)
		for _, v := range vs {
			b.WriteString("&")
			b.WriteString(url.QueryEscape(k))
			b.WriteString("=")
			b.WriteString(url.QueryEscape(v))
		}
	}
	return b.String()
}

// resolve runs a conditional query; matches outside the caller's
// compartment are not seen.
func (h *Handler) resolve(ctx context.Context, r *Request, typ string, q url.Values) ([]*store.Resource, error) {
	if h.o.Resolver == nil {
		return nil, outcome.New(outcome.NotSupported, "conditional interactions need search")
	}
	res, err := h.o.Resolver.Resolve(ctx, typ, q, r.Access)
	if err != nil {
		return nil, err
	}
	out := res[:0]
	for _, x := range res {
		if h.visible(r, ActionRead, x) {
			out = append(out, x)
		}
	}
	return out, nil
}

// checkStoredCompartment rejects a write whose result would lie outside
// the caller's patient compartment: a patient-bounded caller can neither
// create nor move resources out of (or into another) compartment.
func (h *Handler) checkStoredCompartment(r *Request, a Action, res *store.Resource) error {
	if r.Access == nil {
		return nil
	}
	if pid, bounded := r.Access.Compartment(a, res.Type); bounded && !search.InPatientCompartment(res, pid) {
		return outcome.New(outcome.Forbidden, "the resource would lie outside the patient compartment the access token is bound to")
	}
	if !h.matchesRestrictions(r, a, res) {
		return outcome.New(outcome.Forbidden, "the resource would not match the granular restrictions of the access token's scopes")
	}
	return nil
}
