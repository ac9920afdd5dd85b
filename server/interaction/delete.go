package interaction

import (
	"context"
	"net/http"

	"github.com/casefhir/casefhir/fhir/outcome"
	"github.com/casefhir/casefhir/fhir/store"
)

// Delete implements https://hl7.org/fhir/R4/http.html#delete. A delete
// stores a tombstone version: reads answer 410, history stays readable.
// Deleting what does not exist (or is already deleted) succeeds.
func (h *Handler) Delete(ctx context.Context, r *Request) (*Response, error) {
	if err := allow(r, ActionDelete, r.Type); err != nil {
		return nil, err
	}
	cur, err := h.o.Store.Read(ctx, r.Type, r.ID)
	if outcome.Is(err, outcome.NotFound) {
		return deletedResponse(r, nil), nil
	}
	if err != nil {
		return nil, err
	}
	return h.deleteVersion(ctx, r, cur)
}

func (h *Handler) deleteVersion(ctx context.Context, r *Request, cur *store.Resource) (*Response, error) {
	if cur.Deleted {
		return deletedResponse(r, cur), nil
	}
	if !h.visible(r, ActionDelete, cur) {
		return nil, notFound(cur.Type, cur.ID)
	}
	if err := checkIfMatch(r, cur); err != nil {
		return nil, err
	}
	p, err := h.prepare(ctx, &Write{Type: cur.Type, ID: cur.ID, Prev: cur, Delete: true, Access: r.Access}, nil)
	if err != nil {
		return nil, err
	}
	if err := h.commit(ctx, p); err != nil {
		return nil, err
	}
	return deletedResponse(r, p.res), nil
}

func deletedResponse(r *Request, res *store.Resource) *Response {
	resp := &Response{Status: http.StatusNoContent, Header: http.Header{}}
	if res != nil {
		versionHeaders(resp.Header, res)
	}
	if prefer(r, "return") == "OperationOutcome" {
		resp.Status = http.StatusOK
		resp.Body = outcome.Info("the resource is deleted")
	}
	return resp
}

// ConditionalDelete implements https://hl7.org/fhir/R4/http.html#3.1.0.7.1
// in single-match mode: no match succeeds, several matches are 412.
func (h *Handler) ConditionalDelete(ctx context.Context, r *Request) (*Response, error) {
	if err := allow(r, ActionDelete, r.Type); err != nil {
		return nil, err
	}
	if len(r.Query) == 0 {
		return nil, outcome.New(outcome.Invalid, "a conditional delete needs search criteria")
	}
	matches, err := h.resolve(ctx, r, r.Type, r.Query)
	if err != nil {
		return nil, err
	}
	switch len(matches) {
	case 0:
		return deletedResponse(r, nil), nil
	case 1:
		return h.deleteVersion(ctx, r, matches[0])
	}
	return nil, outcome.New(outcome.MultipleMatches, "the criteria match more than one resource")
}
