package interaction

import (
	"context"
	"net/http"

	"github.com/casefhir/casefhir/fhir/outcome"
)

// Capabilities implements https://hl7.org/fhir/R4/http.html#capabilities:
// the CapabilityStatement generated from what this server implements.
func (h *Handler) Capabilities(ctx context.Context, r *Request) (*Response, error) {
	if h.o.Capabilities == nil {
		return nil, outcome.New(outcome.Exception, "no capability statement configured")
	}
	return &Response{Status: http.StatusOK, Header: http.Header{}, Body: h.o.Capabilities(r.BaseURL)}, nil
}
