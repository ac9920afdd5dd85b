package interaction

import (
	"context"
	"crypto/sha256"
	"encoding/hex"
	"net/http"
	"strings"

	"github.com/casefhir/casefhir/fhir"
	"github.com/casefhir/casefhir/fhir/outcome"
)

// Capabilities implements https://hl7.org/fhir/R4/http.html#capabilities:
// the CapabilityStatement generated from what this server implements, with
// _summary and _elements, and a weak ETag of the representation so that a
// client can revalidate it with If-None-Match (304).
func (h *Handler) Capabilities(ctx context.Context, r *Request) (*Response, error) {
	if h.o.Capabilities == nil {
		return nil, outcome.New(outcome.Exception, "no capability statement configured")
	}
	body, err := shape(r, h.o.Capabilities(r.BaseURL))
	if err != nil {
		return nil, err
	}
	sum := sha256.Sum256(body)
	tag := hex.EncodeToString(sum[:12])
	resp := &Response{Status: http.StatusOK, Header: http.Header{}}
	resp.Header.Set("ETag", fhir.FormatETag(tag))
	if etagMatches(r.Header.Get("If-None-Match"), tag) {
		resp.Status = http.StatusNotModified
		return resp, nil
	}
	resp.Body = body
	return resp, nil
}

// etagMatches reports whether an If-None-Match header names tag (or *).
func etagMatches(inm, tag string) bool {
	for _, t := range strings.Split(inm, ",") {
		t = strings.TrimSpace(t)
		if t == "*" {
			return true
		}
		if v, ok := fhir.ParseETag(t); ok && v == tag {
			return true
		}
	}
	return false
}

// Versions implements GET [base]/$versions
// (https://hl7.org/fhir/R4/capabilitystatement-operation-versions.html):
// the FHIR versions this server supports and its default, as Parameters.
func Versions(_ context.Context, _ *Handler, r *Request) (*Response, error) {
	if r.Type != "" || r.ID != "" || (r.Method != http.MethodGet && r.Method != http.MethodHead) {
		return nil, outcome.New(outcome.NotSupported, "$versions is GET [base]/$versions").WithStatus(http.StatusNotFound)
	}
	body := []byte(`{"resourceType":"Parameters","parameter":[{"name":"version","valueCode":"4.0"},{"name":"default","valueCode":"4.0"}]}`)
	return &Response{Status: http.StatusOK, Header: http.Header{}, Body: body}, nil
}

// Public reports whether the route is answered without a token and left
// out of the audit trail: the CapabilityStatement and $versions, which
// describe the server and carry no data.
func (r Route) Public() bool {
	return r.Kind == KindCapabilities || (r.Kind == KindOperation && r.Type == "" && r.Operation == "versions")
}
