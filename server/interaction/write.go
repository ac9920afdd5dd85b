package interaction

import (
	"bytes"
	"context"
	"net/http"

	"github.com/casefhir/casefhir/fhir/codec"
	"github.com/casefhir/casefhir/fhir/outcome"
	"github.com/casefhir/casefhir/fhir/store"
	"github.com/casefhir/casefhir/fhir/validate"
)

// Write is a resource version about to be stored, as seen by WriteHooks.
type Write struct {
	Type, ID string
	// Prev is the current version (nil on create; may be a tombstone).
	Prev *store.Resource
	// Delete is true for a delete (Body nil).
	Delete bool
	// Body is the resource JSON as the client sent it (after patching).
	// A hook may replace it; the handler then parses and validates it again.
	Body []byte
	// Access is the caller.
	Access Access
	// Batch is the transaction the write belongs to, if any.
	Batch *TxContext
	// CaseChecked is set by a case operation ($transition) that already
	// ran the case rules on Body: the case-rules hook does not check (and
	// re-time) it again. Replacing the body clears it.
	CaseChecked bool
	changed     bool
}

// Replace sets a new body for the write.
func (w *Write) Replace(body []byte) {
	if !bytes.Equal(body, w.Body) {
		w.Body = body
		w.changed = true
		w.CaseChecked = false
	}
}

// TxContext identifies a transaction in progress (for hooks that must see
// the transaction's other writes).
type TxContext struct {
	// Pending maps "Type/id" to resources written earlier in the same
	// transaction, not yet visible in the store.
	Pending map[string]*store.Resource
}

// WriteHook sees every write, on every path (create, update, patch, delete,
// transaction entries, operations), before it is stored. It may reject the
// write with an *outcome.Error or replace the body.
type WriteHook func(ctx context.Context, h *Handler, w *Write) error

// prepared is a version ready to be stored.
type prepared struct {
	res  *store.Resource
	prev *store.Resource
}

// prepare runs hooks, finalises and indexes one version. parsed may be nil
// when body has not been decoded yet.
func (h *Handler) prepare(ctx context.Context, w *Write, parsed *codec.Parsed) (*prepared, error) {
	if w.Batch == nil {
		w.Batch = h.tx
	}
	for _, hook := range h.o.Hooks {
		if err := hook(ctx, h, w); err != nil {
			return nil, err
		}
	}
	version := int64(1)
	if w.Prev != nil {
		version = w.Prev.VersionID + 1
	}
	res := &store.Resource{Type: w.Type, ID: w.ID, VersionID: version, LastUpdated: h.now(w.Prev)}
	if w.Delete {
		res.Deleted = true
		return &prepared{res: res, prev: w.Prev}, nil
	}
	if parsed == nil || w.changed {
		p, err := h.decode(w.Body, w.Type)
		if err != nil {
			return nil, err
		}
		parsed = p
	}
	js, err := h.o.Codec.Finalize(parsed, w.ID, version, res.LastUpdated)
	if err != nil {
		return nil, err
	}
	res.JSON = js
	if h.o.Indexer != nil {
		idx, err := h.o.Indexer.Extract(w.Type, js)
		if err != nil {
			return nil, err
		}
		res.Index = idx
	}
	if w.Type == "Binary" {
		res.Index = h.binaryIndex(ctx, w, js, res.Index)
	}
	return &prepared{res: res, prev: w.Prev}, nil
}

// commit stores a prepared version.
func (h *Handler) commit(ctx context.Context, p *prepared) error {
	if p.prev == nil {
		return h.o.Store.Create(ctx, p.res)
	}
	return h.o.Store.Update(ctx, p.res, p.prev)
}

// decode parses and validates body, checking its type matches typ.
func (h *Handler) decode(body []byte, typ string) (*codec.Parsed, error) {
	if len(bytes.TrimSpace(body)) == 0 {
		return nil, outcome.New(outcome.Required, "request body is empty")
	}
	p, err := h.o.Codec.Decode(body)
	if err != nil {
		return nil, err
	}
	if err := validate.Resource(p); err != nil {
		return nil, err
	}
	if typ != "" && p.Type != typ {
		return nil, outcome.New(outcome.Invalid, "resource type does not match the request URL").
			WithDiagnostics("expected " + typ + ", got " + p.Type).WithExpression("resourceType")
	}
	return p, nil
}

// writeResponse renders the result of a write per the Prefer header.
func (h *Handler) writeResponse(r *Request, res *store.Resource, status int) *Response {
	resp := &Response{Status: status, Header: http.Header{}}
	versionHeaders(resp.Header, res)
	if !res.Deleted {
		resp.Header.Set("Location", location(r.BaseURL, res))
	}
	switch prefer(r, "return") {
	case "minimal":
	case "OperationOutcome":
		resp.Body = outcome.Info("the write succeeded")
	default:
		if !res.Deleted {
			resp.Body = res.JSON
		}
	}
	return resp
}
