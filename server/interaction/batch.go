package interaction

import (
	"context"
	"encoding/json"
	"net/http"
	"net/url"
	"strconv"
	"strings"

	"github.com/casefhir/casefhir/fhir"
	"github.com/casefhir/casefhir/fhir/outcome"
)

// bundleIn is the part of an incoming Bundle the server reads itself.
type bundleIn struct {
	ResourceType string        `json:"resourceType"`
	Type         string        `json:"type"`
	Entry        []bundleEntry `json:"entry"`
}

type bundleEntry struct {
	FullURL  string          `json:"fullUrl"`
	Resource json.RawMessage `json:"resource"`
	Request  *struct {
		Method          string `json:"method"`
		URL             string `json:"url"`
		IfNoneMatch     string `json:"ifNoneMatch"`
		IfModifiedSince string `json:"ifModifiedSince"`
		IfMatch         string `json:"ifMatch"`
		IfNoneExist     string `json:"ifNoneExist"`
	} `json:"request"`
}

// TransactionFunc runs a transaction Bundle (see transaction.go).
type TransactionFunc func(ctx context.Context, h *Handler, r *Request, b *BundleIn) (*Response, error)

// BundleType is the type of a Bundle posted to the base.
type BundleType string

// The Bundle types the base accepts.
const (
	BundleBatch       BundleType = "batch"
	BundleTransaction BundleType = "transaction"
)

// BundleIn is a parsed batch or transaction Bundle.
type BundleIn struct {
	Type    BundleType
	Entries []*EntryIn
}

// EntryIn is one batch/transaction entry, parsed into a Request.
type EntryIn struct {
	Index   int
	FullURL string
	Req     *Request
	// Err is set when the entry itself is malformed.
	Err error
}

// Bundle implements https://hl7.org/fhir/R4/http.html#transaction for
// batch and transaction Bundles posted to the base.
func (h *Handler) Bundle(ctx context.Context, r *Request) (*Response, error) {
	b, err := h.ParseBundle(r)
	if err != nil {
		return nil, err
	}
	switch b.Type {
	case BundleBatch:
		return h.Batch(ctx, r, b)
	case BundleTransaction:
		if h.o.Transaction == nil {
			return nil, outcome.New(outcome.NotSupported, "transactions are not supported")
		}
		return h.o.Transaction(ctx, h, r, b)
	}
	return nil, outcome.New(outcome.Invalid, "a Bundle posted to the base must be of type batch or transaction").
		WithExpression("Bundle.type")
}

// ParseBundle reads a batch/transaction Bundle and turns each entry into a
// Request. Entry URLs may be relative, with or without a leading '/', or
// absolute on this server's base.
func (h *Handler) ParseBundle(r *Request) (*BundleIn, error) {
	var in bundleIn
	if err := json.Unmarshal(r.Body, &in); err != nil {
		return nil, outcome.New(outcome.Structure, "the request body is not a valid Bundle").WithDiagnostics(err.Error())
	}
	if in.ResourceType != "Bundle" {
		return nil, outcome.New(outcome.Invalid, "the request body must be a Bundle").WithExpression("resourceType")
	}
	if len(in.Entry) > h.o.MaxBundleEntries {
		return nil, outcome.Errorf(outcome.TooCostly, "the Bundle has more than %d entries", h.o.MaxBundleEntries).
			WithStatus(http.StatusRequestEntityTooLarge)
	}
	out := &BundleIn{Type: BundleType(in.Type)}
	for i, e := range in.Entry {
		ei := &EntryIn{Index: i, FullURL: e.FullURL}
		out.Entries = append(out.Entries, ei)
		expr := "Bundle.entry[" + strconv.Itoa(i) + "]"
		if e.Request == nil || e.Request.Method == "" || e.Request.URL == "" {
			ei.Err = outcome.New(outcome.Required, "the entry has no request method and url").WithExpression(expr + ".request")
			continue
		}
		raw := e.Request.URL
		if strings.HasPrefix(raw, r.BaseURL+"/") {
			raw = strings.TrimPrefix(raw, r.BaseURL)
		} else if ref, ok := fhir.ParseReference(raw); ok && ref.Base != "" && ref.Version == "" {
			// An absolute Type/id URL of another base (e.g. a canonical
			// resource's own URL): the resource is written here.
			raw = ref.Local()
		}
		path, query, _ := strings.Cut(raw, "?")
		method := strings.ToUpper(e.Request.Method)
		route, err := ParseRoute(method, path)
		if err != nil {
			ei.Err = err
			continue
		}
		if route.Kind == KindBundle {
			ei.Err = outcome.New(outcome.NotSupported, "nested batch or transaction entries are not supported").WithExpression(expr + ".request")
			continue
		}
		q, err := url.ParseQuery(query)
		if err != nil {
			ei.Err = outcome.New(outcome.Invalid, "the entry url has a malformed query").WithExpression(expr + ".request.url")
			continue
		}
		hdr := http.Header{}
		set := func(k, v string) {
			if v != "" {
				hdr.Set(k, v)
			}
		}
		set("If-None-Match", e.Request.IfNoneMatch)
		set("If-Modified-Since", e.Request.IfModifiedSince)
		set("If-Match", e.Request.IfMatch)
		set("If-None-Exist", e.Request.IfNoneExist)
		set("Prefer", r.Header.Get("Prefer"))
		if method == http.MethodPatch {
			// A JSON Patch travels as a Binary resource in a Bundle.
			set("Content-Type", "application/json-patch+json")
		}
		ei.Req = &Request{Route: route, Method: method, Query: q, Header: hdr, Body: e.Resource,
			BaseURL: r.BaseURL, Access: r.Access}
	}
	return out, nil
}

// Batch runs each entry independently, in order; one failure never aborts
// the others.
func (h *Handler) Batch(ctx context.Context, r *Request, b *BundleIn) (*Response, error) {
	bw := NewBundleWriter("batch-response", NewUUID(), fhir.FormatInstant(h.o.Now()), -1, nil)
	for _, e := range b.Entries {
		if e.Err != nil {
			bw.Add(ErrorEntry(e.Err))
			continue
		}
		if e.Req.Kind == KindPatch || e.Req.Kind == KindConditionalPatch {
			body, err := BinaryPatchBody(e.Req.Body)
			if err != nil {
				bw.Add(ErrorEntry(err))
				continue
			}
			e.Req.Body = body
		}
		resp, err := h.Do(ctx, e.Req)
		observeEntry(r, e.Req, resp, err)
		if err != nil {
			bw.Add(ErrorEntry(err))
			continue
		}
		bw.Add(ResponseEntry(e.Req, resp))
	}
	return &Response{Status: http.StatusOK, Header: http.Header{}, Body: bw.Bytes()}, nil
}

// ErrorEntry renders a failed entry.
func ErrorEntry(err error) Entry {
	status, body := outcome.Render(err)
	return Entry{Response: &EntryResponse{Status: strconv.Itoa(status) + " " + http.StatusText(status), Outcome: body}}
}

// ResponseEntry renders a successful entry.
func ResponseEntry(req *Request, resp *Response) Entry {
	e := Entry{Response: &EntryResponse{Status: strconv.Itoa(resp.Status) + " " + http.StatusText(resp.Status)}}
	if resp.Header != nil {
		e.Response.Location = resp.Header.Get("Location")
		e.Response.Etag = resp.Header.Get("ETag")
		if lm := resp.Header.Get("Last-Modified"); lm != "" {
			if t, err := http.ParseTime(lm); err == nil {
				e.Response.LastModified = fhir.FormatInstant(t)
			}
		}
	}
	if len(resp.Body) > 0 {
		if strings.Contains(string(resp.Body[:min(len(resp.Body), 64)]), `"OperationOutcome"`) {
			e.Response.Outcome = resp.Body
		} else {
			e.Resource = resp.Body
		}
	}
	if loc := e.Response.Location; loc != "" {
		if i := strings.Index(loc, "/_history/"); i >= 0 {
			e.FullURL = loc[:i]
		}
	}
	return e
}

// BinaryPatchBody unwraps a JSON Patch sent in a Bundle entry as a Binary
// resource (base64 data); a bare JSON array is accepted too.
func BinaryPatchBody(raw []byte) ([]byte, error) {
	trim := strings.TrimSpace(string(raw))
	if strings.HasPrefix(trim, "[") {
		return raw, nil
	}
	var bin struct {
		ResourceType string `json:"resourceType"`
		ContentType  string `json:"contentType"`
		Data         []byte `json:"data"`
	}
	if err := json.Unmarshal(raw, &bin); err != nil || bin.ResourceType != "Binary" {
		return nil, outcome.New(outcome.NotSupported, "a PATCH entry must carry a JSON Patch as a Binary resource").
			WithStatus(http.StatusUnsupportedMediaType)
	}
	return bin.Data, nil
}
