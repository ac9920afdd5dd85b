package interaction

import (
	"bytes"
	"context"
	"encoding/json"
	"net/http"
	"net/url"
	"strconv"
	"strings"

	"github.com/casefhir/casefhir/fhir"
	"github.com/casefhir/casefhir/fhir/outcome"
	"github.com/casefhir/casefhir/fhir/store"
)

// Transaction runs a transaction Bundle as
// https://hl7.org/fhir/R4/http.html#transaction specifies, all or nothing.
//
// The processing rules (https://hl7.org/fhir/R4/http.html#trules): entries
// run in the order DELETE, POST, PUT/PATCH, GET (request order within each
// group); every urn:uuid:/urn:oid: fullUrl (and the fullUrl of every
// created resource) gets its server id before anything runs, and every
// reference to it in the Bundle is rewritten (reference values, uri-typed
// values such as extension values, and href/src attributes in narrative);
// conditional references (Patient?identifier=...) are resolved, and fail
// the transaction unless they match exactly one resource.
//
// Every entry goes through the same interaction code as a single request
// (hooks, validation, finalisation, indexing), against an overlay of the
// store that records the new versions instead of writing them; reads in
// the transaction see the overlay. When every entry has succeeded the
// versions are stored at once with store.Transactional.Apply. The first
// entry that fails fails the transaction with its OperationOutcome, its
// expression naming the entry (Bundle.entry[i]), and nothing is stored.
// A resource may be written by one entry only. Searches inside a
// transaction see the state before it.
func Transaction(ctx context.Context, h *Handler, r *Request, b *BundleIn) (*Response, error) {
	ts, ok := h.o.Store.(store.Transactional)
	if !ok {
		return nil, outcome.New(outcome.NotSupported, "this store cannot apply transactions atomically")
	}
	for _, e := range b.Entries {
		if e.Err != nil {
			return nil, entryError(e.Index, e.Err)
		}
		if e.Req.Kind == KindPatch || e.Req.Kind == KindConditionalPatch {
			body, err := BinaryPatchBody(e.Req.Body)
			if err != nil {
				return nil, entryError(e.Index, err)
			}
			e.Req.Body = body
		}
	}

	// Ids first, so every reference can be rewritten before anything runs.
	tx := &txRun{h: h, r: r, ids: map[string]string{}, assigned: make([]string, len(b.Entries)), conds: map[string]string{}}
	for _, e := range b.Entries {
		if err := tx.assignID(ctx, e); err != nil {
			return nil, entryError(e.Index, err)
		}
	}
	for _, e := range b.Entries {
		if e.Req.Kind == KindPatch || e.Req.Kind == KindConditionalPatch || len(e.Req.Body) == 0 {
			continue
		}
		body, err := tx.rewrite(ctx, e.Req.Body)
		if err != nil {
			return nil, entryError(e.Index, err)
		}
		e.Req.Body = body
	}

	// Run every entry against the overlay, in processing order.
	ov := &txStore{Store: h.o.Store, pending: map[string]*store.Resource{}, owner: map[string]int{}}
	// The resources that updates and creates will read, in one read per
	// type rather than one per entry.
	keys := map[string][]string{}
	for _, e := range b.Entries {
		switch {
		case e.Req.Kind == KindUpdate && e.Req.ID != "":
			keys[e.Req.Type] = append(keys[e.Req.Type], e.Req.ID)
		case e.Req.Kind == KindCreate && tx.assigned[e.Index] != "":
			keys[e.Req.Type] = append(keys[e.Req.Type], tx.assigned[e.Index])
		}
	}
	if err := ov.prefetch(ctx, keys); err != nil {
		return nil, err
	}
	th := &Handler{o: h.o, tx: &TxContext{Pending: ov.pending}}
	th.o.Store = ov
	var nextID string
	th.o.NewID = func() string {
		if id := nextID; id != "" {
			nextID = ""
			return id
		}
		return h.o.NewID()
	}
	resps := make([]*Response, len(b.Entries))
	for _, group := range [][]Kind{
		{KindDelete, KindConditionalDelete},
		{KindCreate, KindOperation},
		{KindUpdate, KindConditionalUpdate, KindPatch, KindConditionalPatch},
		nil, // everything else: reads, searches, history
	} {
		for _, e := range b.Entries {
			if resps[e.Index] != nil || !kindIn(e.Req.Kind, group) {
				continue
			}
			if group == nil && e.Req.Method != http.MethodGet && e.Req.Method != http.MethodHead {
				return nil, entryError(e.Index, outcome.New(outcome.NotSupported, "the entry's method is not allowed for its url"))
			}
			ov.entry = e.Index
			nextID = tx.assigned[e.Index]
			resp, err := th.Do(ctx, e.Req)
			nextID = ""
			if err != nil {
				return nil, entryError(e.Index, err)
			}
			if resp.Stream != nil {
				var buf bytes.Buffer
				if err := resp.Stream(&buf); err != nil {
					return nil, entryError(e.Index, err)
				}
				resp.Body, resp.Stream = buf.Bytes(), nil
			}
			if want := tx.assigned[e.Index]; want != "" && e.Req.Kind == KindCreate {
				if got := resp.Header.Get("Location"); got != "" && !strings.Contains(got, "/"+e.Req.Type+"/"+want+"/") {
					return nil, entryError(e.Index, outcome.New(outcome.Conflict,
						"the resources matching the entry's ifNoneExist changed during the transaction; retry"))
				}
			}
			resps[e.Index] = resp
		}
	}

	if err := ts.Apply(ctx, ov.writes); err != nil {
		if k := store.ConflictKey(err); k != "" {
			if i, ok := ov.owner[k]; ok {
				return nil, entryError(i, err)
			}
		}
		return nil, err
	}

	for _, e := range b.Entries {
		observeEntry(r, e.Req, resps[e.Index], nil)
	}
	bw := NewBundleWriter("transaction-response", NewUUID(), fhir.FormatInstant(h.o.Now()), -1, nil)
	for _, e := range b.Entries {
		bw.Add(ResponseEntry(e.Req, resps[e.Index]))
	}
	return &Response{Status: http.StatusOK, Header: http.Header{}, Body: bw.Bytes()}, nil
}

func kindIn(k Kind, ks []Kind) bool {
	if ks == nil {
		return true
	}
	for _, x := range ks {
		if x == k {
			return true
		}
	}
	return false
}

// entryError names the failing entry in the outcome's primary issue.
func entryError(i int, err error) error {
	oe := outcome.As(err)
	c := *oe
	c.Expression = append([]string{"Bundle.entry[" + strconv.Itoa(i) + "]"}, oe.Expression...)
	return &c
}

// txRun is the state of one transaction's id assignment and rewriting.
type txRun struct {
	h *Handler
	r *Request
	// ids maps each fullUrl (and local form) to rewrite to "Type/id".
	ids map[string]string
	// assigned is the id an entry's create or update-as-create gets.
	assigned []string
	// conds caches resolved conditional references.
	conds map[string]string
}

// assignID decides the server id of a POST or PUT entry before anything
// runs (https://hl7.org/fhir/R4/http.html#trules): a new id for a create
// (or the match of its ifNoneExist), the URL's id for a PUT, the match of
// a conditional update's criteria.
func (tx *txRun) assignID(ctx context.Context, e *EntryIn) error {
	req := e.Req
	var id string
	switch req.Kind {
	case KindCreate:
		id = tx.h.o.NewID()
		if cond := req.Header.Get("If-None-Exist"); cond != "" {
			q, err := parseConditional(cond)
			if err != nil {
				return err
			}
			m, err := tx.match(ctx, req.Type, q, "the ifNoneExist criteria match more than one resource")
			if err != nil {
				return err
			}
			if m != nil {
				tx.mapURL(e.FullURL, req.Type, m.ID)
				return nil
			}
		}
		tx.assigned[e.Index] = id
		tx.mapURL(e.FullURL, req.Type, id)
		if ref, ok := fhir.ParseReference(e.FullURL); ok && ref.Type == req.Type && ref.ID != "" {
			// An absolute fullUrl of a created resource: the Bundle's
			// relative references to it are rewritten too.
			tx.ids[req.Type+"/"+ref.ID] = req.Type + "/" + id
		}
	case KindUpdate:
		id = req.ID
		if isURN(e.FullURL) {
			tx.mapURL(e.FullURL, req.Type, id)
		}
	case KindConditionalUpdate:
		m, err := tx.match(ctx, req.Type, req.Query, "the criteria match more than one resource")
		if err != nil {
			return err
		}
		if m != nil {
			id = m.ID
		} else {
			var peek struct {
				ID string `json:"id"`
			}
			_ = json.Unmarshal(req.Body, &peek)
			if id = peek.ID; id == "" {
				id = tx.h.o.NewID()
				tx.assigned[e.Index] = id
			}
		}
		if isURN(e.FullURL) {
			tx.mapURL(e.FullURL, req.Type, id)
		}
	}
	return nil
}

func (tx *txRun) mapURL(fullURL, typ, id string) {
	if fullURL != "" {
		tx.ids[fullURL] = typ + "/" + id
	}
}

func isURN(s string) bool {
	return strings.HasPrefix(s, "urn:uuid:") || strings.HasPrefix(s, "urn:oid:")
}

// match resolves criteria to at most one resource (nil: none).
func (tx *txRun) match(ctx context.Context, typ string, q url.Values, many string) (*store.Resource, error) {
	ms, err := tx.h.resolve(ctx, tx.r, typ, q)
	if err != nil {
		return nil, err
	}
	switch len(ms) {
	case 0:
		return nil, nil
	case 1:
		return ms[0], nil
	}
	return nil, outcome.New(outcome.MultipleMatches, many)
}

// rewrite replaces, in one resource's JSON, the references to the
// Bundle's fullUrls by the assigned "Type/id" and resolves conditional
// references. The body is returned unchanged when nothing applies.
func (tx *txRun) rewrite(ctx context.Context, body []byte) ([]byte, error) {
	if !bytes.Contains(body, []byte("urn:")) && !bytes.Contains(body, []byte("?")) && !tx.mayReferToURLs(body) {
		return body, nil
	}
	dec := json.NewDecoder(bytes.NewReader(body))
	dec.UseNumber()
	var v any
	if err := dec.Decode(&v); err != nil {
		return body, nil // the codec reports it
	}
	changed := false
	v, err := tx.walk(ctx, v, "", &changed)
	if err != nil || !changed {
		return body, err
	}
	var buf bytes.Buffer
	enc := json.NewEncoder(&buf)
	enc.SetEscapeHTML(false)
	if err := enc.Encode(v); err != nil {
		return nil, outcome.Wrap(err, outcome.Exception, "interaction.Transaction", "re-encoding a resource failed")
	}
	return bytes.TrimSuffix(buf.Bytes(), []byte("\n")), nil
}

// mayReferToURLs reports whether body may contain one of the non-urn keys
// of tx.ids (absolute fullUrls, or local references to created resources).
func (tx *txRun) mayReferToURLs(body []byte) bool {
	for k := range tx.ids {
		if !isURN(k) && bytes.Contains(body, []byte(k)) {
			return true
		}
	}
	return false
}

func (tx *txRun) walk(ctx context.Context, v any, key string, changed *bool) (any, error) {
	switch x := v.(type) {
	case map[string]any:
		for k, e := range x {
			nv, err := tx.walk(ctx, e, k, changed)
			if err != nil {
				return nil, err
			}
			x[k] = nv
		}
		return x, nil
	case []any:
		for i, e := range x {
			nv, err := tx.walk(ctx, e, key, changed)
			if err != nil {
				return nil, err
			}
			x[i] = nv
		}
		return x, nil
	case string:
		switch {
		case key == "div":
			if s, ok := tx.rewriteNarrative(x); ok {
				*changed = true
				return s, nil
			}
		case key == "id" || key == "value":
			// The resource id and Identifier.value (a string) are data.
		default:
			if to, ok := tx.ids[x]; ok {
				*changed = true
				return to, nil
			}
			if key == "reference" && isConditionalRef(x) {
				to, err := tx.resolveRef(ctx, x)
				if err != nil {
					return nil, err
				}
				*changed = true
				return to, nil
			}
		}
	}
	return v, nil
}

// rewriteNarrative rewrites href="..." and src="..." attribute values of
// the XHTML narrative that name a Bundle fullUrl.
func (tx *txRun) rewriteNarrative(div string) (string, bool) {
	var b strings.Builder
	changed := false
	rest := div
	for {
		i := indexAttr(rest)
		if i < 0 {
			break
		}
		q := rest[i-1] // the opening quote
		end := strings.IndexByte(rest[i:], q)
		if end < 0 {
			break
		}
		val := rest[i : i+end]
		b.WriteString(rest[:i])
		if to, ok := tx.ids[val]; ok {
			b.WriteString(to)
			changed = true
		} else {
			b.WriteString(val)
		}
		rest = rest[i+end:]
	}
	if !changed {
		return div, false
	}
	b.WriteString(rest)
	return b.String(), true
}

// indexAttr returns the start of the next href/src attribute value in s.
func indexAttr(s string) int {
	best := -1
	for _, a := range []string{`href="`, `href='`, `src="`, `src='`} {
		if i := strings.Index(s, a); i >= 0 && (best < 0 || i+len(a) < best) {
			best = i + len(a)
		}
	}
	return best
}

// isConditionalRef reports whether a reference value is a search
// (Type?criteria), https://hl7.org/fhir/R4/http.html#trules.
func isConditionalRef(s string) bool {
	i := strings.IndexByte(s, '?')
	return i > 0 && !strings.Contains(s[:i], "/") && !strings.Contains(s[:i], ":")
}

// resolveRef resolves a conditional reference to "Type/id"; no match or
// several fail the transaction.
func (tx *txRun) resolveRef(ctx context.Context, ref string) (string, error) {
	if to, ok := tx.conds[ref]; ok {
		return to, nil
	}
	typ, query, _ := strings.Cut(ref, "?")
	if !fhir.IsResourceType(typ) {
		return "", outcome.New(outcome.Invalid, "a conditional reference names an unknown resource type")
	}
	q, err := url.ParseQuery(query)
	if err != nil || len(q) == 0 {
		return "", outcome.New(outcome.Invalid, "a conditional reference has malformed criteria")
	}
	ms, err := tx.h.resolve(ctx, tx.r, typ, q)
	if err != nil {
		return "", err
	}
	switch len(ms) {
	case 0:
		return "", outcome.New(outcome.NotFound, "a conditional reference matches no resource").
			WithStatus(http.StatusPreconditionFailed).WithDiagnostics(ref)
	case 1:
		to := typ + "/" + ms[0].ID
		tx.conds[ref] = to
		return to, nil
	}
	return "", outcome.New(outcome.MultipleMatches, "a conditional reference matches more than one resource").WithDiagnostics(ref)
}
