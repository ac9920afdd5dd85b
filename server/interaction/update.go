package interaction

import (
	"context"
	"net/http"

	"github.com/casefhir/casefhir/fhir"
	"github.com/casefhir/casefhir/fhir/codec"
	"github.com/casefhir/casefhir/fhir/outcome"
	"github.com/casefhir/casefhir/fhir/store"
)

// Update implements https://hl7.org/fhir/R4/http.html#update, including
// update-as-create with a client-chosen id (201) and optimistic locking
// with If-Match (412 on a stale version).
func (h *Handler) Update(ctx context.Context, r *Request) (*Response, error) {
	parsed, err := h.decode(r.Body, r.Type)
	if err != nil {
		return nil, err
	}
	if parsed.ID == "" {
		return nil, outcome.New(outcome.Required, "the resource in an update must have an id").WithExpression(r.Type + ".id")
	}
	if parsed.ID != r.ID {
		return nil, outcome.New(outcome.Invalid, "the resource id does not match the id in the URL").WithExpression(r.Type + ".id")
	}
	return h.updateTo(ctx, r, r.ID, r.Body, parsed, nil)
}

// updateTo writes body as the next version of Type/id. prev, when known,
// is the current version the caller already read.
func (h *Handler) updateTo(ctx context.Context, r *Request, id string, body []byte, parsed *codec.Parsed, prev *store.Resource) (*Response, error) {
	if prev == nil {
		cur, err := h.o.Store.Read(ctx, r.Type, id)
		switch {
		case outcome.Is(err, outcome.NotFound):
		case err != nil:
			return nil, err
		default:
			prev = cur
		}
	}
	action := ActionUpdate
	if prev == nil || prev.Deleted {
		action = ActionCreate
	}
	if err := allow(r, action, r.Type); err != nil {
		return nil, err
	}
	if prev != nil && !prev.Deleted && !h.visible(r, ActionUpdate, prev) {
		return nil, outcome.New(outcome.Forbidden, "the resource lies outside the patient compartment the access token is bound to")
	}
	if err := checkIfMatch(r, prev); err != nil {
		return nil, err
	}
	w := &Write{Type: r.Type, ID: id, Prev: prev, Body: body, Access: r.Access}
	p, err := h.prepare(ctx, w, parsed)
	if err != nil {
		return nil, err
	}
	if err := h.checkStoredCompartment(r, action, p.res); err != nil {
		return nil, err
	}
	if err := h.commit(ctx, p); err != nil {
		if outcome.Is(err, outcome.Duplicate) {
			return nil, outcome.New(outcome.Conflict, "the resource was created concurrently; retry")
		}
		return nil, err
	}
	status := http.StatusOK
	if action == ActionCreate {
		status = http.StatusCreated
	}
	return h.writeResponse(r, p.res, status), nil
}

// checkIfMatch applies If-Match against the current version.
func checkIfMatch(r *Request, cur *store.Resource) error {
	im := r.Header.Get("If-Match")
	if im == "" {
		return nil
	}
	v, ok := fhir.ParseETag(im)
	if !ok {
		return outcome.New(outcome.Invalid, "malformed If-Match header")
	}
	if cur == nil || fhir.VersionString(cur.VersionID) != v {
		return outcome.New(outcome.Conflict, "the resource has changed since the version given in If-Match").
			WithStatus(http.StatusPreconditionFailed)
	}
	return nil
}

// ConditionalUpdate implements https://hl7.org/fhir/R4/http.html#cond-update.
func (h *Handler) ConditionalUpdate(ctx context.Context, r *Request) (*Response, error) {
	if len(r.Query) == 0 {
		return nil, outcome.New(outcome.Invalid, "a conditional update needs search criteria")
	}
	parsed, err := h.decode(r.Body, r.Type)
	if err != nil {
		return nil, err
	}
	unlock, err := h.o.Store.Lock(ctx, conditionalKey(r.Type, r.Query), conditionalLockTTL)
	if err != nil {
		return nil, err
	}
	defer func() { _ = unlock(context.WithoutCancel(ctx)) }()
	matches, err := h.resolve(ctx, r, r.Type, r.Query)
	if err != nil {
		return nil, err
	}
	switch len(matches) {
	case 0:
		id := parsed.ID
		if id == "" {
			id = h.o.NewID()
		}
		return h.updateTo(ctx, r, id, r.Body, parsed, nil)
	case 1:
		m := matches[0]
		if parsed.ID != "" && parsed.ID != m.ID {
			return nil, outcome.New(outcome.Invalid, "the resource id does not match the resource found by the criteria").WithExpression(r.Type + ".id")
		}
		return h.updateTo(ctx, r, m.ID, r.Body, parsed, m)
	default:
		return nil, outcome.New(outcome.MultipleMatches, "the criteria match more than one resource")
	}
}
