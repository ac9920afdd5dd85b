package interaction

import (
	"context"
	"mime"
	"net/http"

	"github.com/casefhir/casefhir/fhir/codec"
	"github.com/casefhir/casefhir/fhir/outcome"
	"github.com/casefhir/casefhir/fhir/store"
)

// Patch implements https://hl7.org/fhir/R4/http.html#patch with JSON Patch
// (application/json-patch+json). The patched resource is validated like any
// other write.
func (h *Handler) Patch(ctx context.Context, r *Request) (*Response, error) {
	if err := allow(r, ActionUpdate, r.Type); err != nil {
		return nil, err
	}
	if err := checkPatchType(r); err != nil {
		return nil, err
	}
	cur, err := h.readVisible(ctx, r, r.Type, r.ID)
	if err != nil {
		return nil, err
	}
	return h.patch(ctx, r, cur)
}

func (h *Handler) patch(ctx context.Context, r *Request, cur *store.Resource) (*Response, error) {
	if cur.Deleted {
		return nil, deletedError(cur)
	}
	if err := checkIfMatch(r, cur); err != nil {
		return nil, err
	}
	body, err := codec.ApplyJSONPatch(cur.JSON, r.Body)
	if err != nil {
		return nil, err
	}
	parsed, err := h.decode(body, r.Type)
	if err != nil {
		return nil, err
	}
	if parsed.ID != cur.ID {
		return nil, outcome.New(outcome.Invalid, "a patch may not change the resource id").WithExpression(r.Type + ".id")
	}
	return h.updateTo(ctx, r, cur.ID, body, parsed, cur)
}

func checkPatchType(r *Request) error {
	mt, _, _ := mime.ParseMediaType(r.Header.Get("Content-Type"))
	if mt != "application/json-patch+json" {
		return outcome.New(outcome.NotSupported, "PATCH supports JSON Patch (application/json-patch+json) only").
			WithStatus(http.StatusUnsupportedMediaType)
	}
	return nil
}

// ConditionalPatch implements https://hl7.org/fhir/R4/http.html#patch on a
// search: exactly one match is patched.
func (h *Handler) ConditionalPatch(ctx context.Context, r *Request) (*Response, error) {
	if err := allow(r, ActionUpdate, r.Type); err != nil {
		return nil, err
	}
	if err := checkPatchType(r); err != nil {
		return nil, err
	}
	if len(r.Query) == 0 {
		return nil, outcome.New(outcome.Invalid, "a conditional patch needs search criteria")
	}
	matches, err := h.resolve(ctx, r, r.Type, r.Query)
	if err != nil {
		return nil, err
	}
	switch len(matches) {
	case 0:
		return nil, outcome.New(outcome.NotFound, "no resource matches the criteria")
	case 1:
		return h.patch(ctx, r, matches[0])
	}
	return nil, outcome.New(outcome.MultipleMatches, "the criteria match more than one resource")
}
