package interaction

import (
	"context"
	"crypto/rand"
	"encoding/hex"
	"io"
	"net/http"
	"net/url"
	"strconv"
	"strings"
	"time"

	"github.com/casefhir/casefhir/fhir"
	"github.com/casefhir/casefhir/fhir/codec"
	"github.com/casefhir/casefhir/fhir/outcome"
	"github.com/casefhir/casefhir/fhir/store"
)

// Request is one FHIR interaction, from HTTP or from a Bundle entry.
type Request struct {
	Route
	Method string
	Query  url.Values
	// Header holds the request headers that matter to FHIR semantics
	// (If-Match, If-None-Match, If-Modified-Since, If-None-Exist, Prefer,
	// Content-Type, Accept). Keys are canonical.
	Header http.Header
	Body   []byte
	// BaseURL is the public FHIR base, without a trailing slash.
	BaseURL string
	// Access is who asks and what they may do; nil means unrestricted
	// (auth off, or an internal call).
	Access Access
	// ObserveEntry, when set on a batch or transaction request, is told the
	// outcome of every batch entry and of every entry of a committed
	// transaction (e.g. to audit each one); err is nil on success. It runs
	// before the Bundle's response is returned.
	ObserveEntry func(entry *Request, status int, err error)
}

// Response is the outcome of a successful interaction.
type Response struct {
	Status int
	Header http.Header
	// Body is a JSON resource (or nil for no content).
	Body []byte
	// Stream, when set instead of Body, writes a large JSON body.
	Stream func(w io.Writer) error
}

// Indexer extracts search values from a resource at write time.
type Indexer interface {
	Extract(typ string, resource []byte) (map[string]any, error)
}

// Resolver finds the current resources matching a search query; it serves
// the conditional interactions (create, update, patch, delete) and
// conditional references.
type Resolver interface {
	Resolve(ctx context.Context, typ string, query url.Values, access Access) ([]*store.Resource, error)
}

// Options configure a Handler.
type Options struct {
	Store    store.Store
	Codec    *codec.Codec
	Indexer  Indexer
	Resolver Resolver
	// Hooks run on every write path, in order, before the resource is stored.
	Hooks []WriteHook
	// Now returns the current time; defaults to time.Now.
	Now func() time.Time
	// NewID returns a new logical id; defaults to a random UUID.
	NewID func() string
	// DefaultCount and MaxCount bound page sizes (defaults 50 and 1000).
	DefaultCount, MaxCount int
	// Capabilities renders the CapabilityStatement.
	Capabilities func(baseURL string) []byte
	// Operations are the FHIR operations: keyed "Type/name" for an
	// operation on a type or its instances, or "name" (without '$') for one
	// that applies at any level; the typed key wins.
	Operations map[string]Operation
	// Search runs type, system and compartment searches.
	Search Searcher
	// MaxBundleEntries limits batch and transaction size (0: 10000).
	MaxBundleEntries int
	// Transaction runs transaction Bundles.
	Transaction TransactionFunc
	// Cursors make and check paging cursors (default: a random key for
	// this process; a deployment of several instances shares one, see
	// CursorKey).
	Cursors *Cursors
}

// Operation is a FHIR operation ($name) handler.
type Operation func(ctx context.Context, h *Handler, r *Request) (*Response, error)

// Searcher runs searches (package search's executor).
type Searcher interface {
	Search(ctx context.Context, h *Handler, r *Request) (*Response, error)
}

// Handler runs FHIR interactions over a store.
type Handler struct {
	o Options
	// tx is set on the handler a transaction's entries run on.
	tx *TxContext
}

// New returns a Handler.
func New(o Options) *Handler {
	if o.Now == nil {
		o.Now = time.Now
	}
	if o.NewID == nil {
		o.NewID = NewUUID
	}
	if o.DefaultCount == 0 {
		o.DefaultCount = 50
	}
	if o.MaxCount == 0 {
		o.MaxCount = 1000
	}
	if o.MaxBundleEntries == 0 {
		o.MaxBundleEntries = 10000
	}
	if o.Cursors == nil {
		key, _ := CursorKey(context.Background(), nil, o.Now())
		o.Cursors = NewCursors(key)
	}
	return &Handler{o: o}
}

// Store returns the handler's store.
func (h *Handler) Store() store.Store { return h.o.Store }

// Codec returns the handler's codec.
func (h *Handler) Codec() *codec.Codec { return h.o.Codec }

// Options returns the handler's options.
func (h *Handler) Options() Options { return h.o }

// NewUUID returns a random (version 4) UUID string.
func NewUUID() string {
	var b [16]byte
	_, _ = rand.Read(b[:])
	b[6] = b[6]&0x0f | 0x40
	b[8] = b[8]&0x3f | 0x80
	var s [36]byte
	hex.Encode(s[0:8], b[0:4])
	s[8] = '-'
	hex.Encode(s[9:13], b[4:6])
	s[13] = '-'
	hex.Encode(s[14:18], b[6:8])
	s[18] = '-'
	hex.Encode(s[19:23], b[8:10])
	s[23] = '-'
	hex.Encode(s[24:], b[10:])
	return string(s[:])
}

// Do runs one interaction.
func (h *Handler) Do(ctx context.Context, r *Request) (*Response, error) {
	switch r.Kind {
	case KindRead:
		return h.Read(ctx, r)
	case KindVRead:
		return h.VRead(ctx, r)
	case KindCreate:
		return h.Create(ctx, r)
	case KindUpdate:
		return h.Update(ctx, r)
	case KindConditionalUpdate:
		return h.ConditionalUpdate(ctx, r)
	case KindPatch:
		return h.Patch(ctx, r)
	case KindConditionalPatch:
		return h.ConditionalPatch(ctx, r)
	case KindDelete:
		return h.Delete(ctx, r)
	case KindConditionalDelete:
		return h.ConditionalDelete(ctx, r)
	case KindHistoryInstance, KindHistoryType, KindHistorySystem:
		return h.History(ctx, r)
	case KindCapabilities:
		return h.Capabilities(ctx, r)
	case KindSearchType, KindSearchSystem, KindSearchCompartment:
		return h.Search(ctx, r)
	case KindBundle:
		return h.Bundle(ctx, r)
	case KindOperation:
		return h.Operation(ctx, r)
	}
	return nil, outcome.New(outcome.NotSupported, "interaction not supported")
}

// Search implements https://hl7.org/fhir/R4/http.html#search.
func (h *Handler) Search(ctx context.Context, r *Request) (*Response, error) {
	if h.o.Search == nil {
		return nil, outcome.New(outcome.NotSupported, "search is not supported")
	}
	return h.o.Search.Search(ctx, h, r)
}

// Operation dispatches a FHIR operation.
func (h *Handler) Operation(ctx context.Context, r *Request) (*Response, error) {
	op, ok := h.o.Operations[r.Type+"/"+r.Operation]
	if !ok {
		op, ok = h.o.Operations[r.Operation]
	}
	if !ok {
		return nil, outcome.New(outcome.NotSupported, "operation not supported").
			WithStatus(http.StatusNotFound).WithDiagnostics("unknown operation $" + r.Operation)
	}
	return op(ctx, h, r)
}

// now returns the write time: millisecond precision (what every backend
// stores), strictly after prev so versions order by time.
func (h *Handler) now(prev *store.Resource) time.Time {
	t := h.o.Now().UTC().Truncate(time.Millisecond)
	if prev != nil && !t.After(prev.LastUpdated) {
		t = prev.LastUpdated.Add(time.Millisecond)
	}
	return t
}

// location returns base/Type/id/_history/v.
func location(base string, res *store.Resource) string {
	return base + "/" + res.Type + "/" + res.ID + "/_history/" + fhir.VersionString(res.VersionID)
}

// versionHeaders sets ETag and Last-Modified for res.
func versionHeaders(hdr http.Header, res *store.Resource) {
	hdr.Set("ETag", fhir.FormatETag(fhir.VersionString(res.VersionID)))
	hdr.Set("Last-Modified", res.LastUpdated.UTC().Format(http.TimeFormat))
}

// parseVersion parses a version id as stored (a positive integer).
func parseVersion(s string) (int64, bool) {
	v, err := strconv.ParseInt(s, 10, 64)
	return v, err == nil && v > 0
}

// prefer returns the Prefer header's return= value.
func prefer(r *Request, key string) string {
	for _, part := range strings.Split(r.Header.Get("Prefer"), ";") {
		for _, p := range strings.Split(part, ",") {
			k, v, ok := strings.Cut(strings.TrimSpace(p), "=")
			if ok && strings.EqualFold(strings.TrimSpace(k), key) {
				return strings.Trim(strings.TrimSpace(v), `"`)
			}
		}
	}
	return ""
}

// observeEntry reports one entry's outcome to the Bundle request's
// ObserveEntry.
func observeEntry(bundle, entry *Request, resp *Response, err error) {
	if bundle.ObserveEntry == nil || entry == nil {
		return
	}
	status := 0
	switch {
	case err != nil:
		status = outcome.StatusOf(err)
	case resp != nil:
		status = resp.Status
	}
	bundle.ObserveEntry(entry, status, err)
}
