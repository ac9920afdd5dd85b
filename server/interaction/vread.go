package interaction

import (
	"context"

	"github.com/casefhir/casefhir/fhir/outcome"
)

// VRead implements https://hl7.org/fhir/R4/http.html#vread.
func (h *Handler) VRead(ctx context.Context, r *Request) (*Response, error) {
	if err := allow(r, ActionRead, r.Type); err != nil {
		return nil, err
	}
	v, ok := parseVersion(r.Version)
	if !ok {
		return nil, outcome.New(outcome.NotFound, "version not found").WithDiagnostics("no version " + r.Version)
	}
	// The compartment is judged on the current version, as for read.
	if _, err := h.readVisible(ctx, r, r.Type, r.ID); err != nil {
		return nil, err
	}
	res, err := h.o.Store.VRead(ctx, r.Type, r.ID, v)
	if err != nil {
		return nil, err
	}
	if res.Deleted {
		return nil, deletedError(res)
	}
	// ... and on the version asked for: a version from when the resource
	// lay outside the compartment (or scope restrictions) is not shown.
	if !h.visible(r, ActionRead, res) {
		return nil, outcome.New(outcome.NotFound, "version not found").WithDiagnostics("no version " + r.Version)
	}
	if wantsRaw(r) {
		return binaryRaw(res)
	}
	return h.resourceResponse(r, res)
}
