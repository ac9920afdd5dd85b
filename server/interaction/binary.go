package interaction

import (
	"context"
	"encoding/base64"
	"encoding/json"
	"io"
	"mime"
	"net/http"
	"strings"

	"github.com/casefhir/casefhir/fhir"
	"github.com/casefhir/casefhir/fhir/search"
	"github.com/casefhir/casefhir/fhir/store"
)

// Binary as documents (https://hl7.org/fhir/R4/binary.html#rest): a raw
// upload is stored as a Binary resource (the server wraps it, see
// BinaryFromRaw), a read whose Accept is not a FHIR format answers the raw
// bytes with the Binary's contentType, and Binary.securityContext governs
// access: a caller may read a Binary only if it may read the resource its
// securityContext names.

// securityContextKey is the index key holding a Binary's securityContext
// reference ("Type/id"), set at write time.
const securityContextKey = "_securityContext"

// binaryFields is the part of a stored Binary the server reads itself.
type binaryFields struct {
	ContentType     string `json:"contentType"`
	SecurityContext *struct {
		Reference string `json:"reference"`
	} `json:"securityContext"`
	Data string `json:"data"`
}

// BinaryFromRaw returns the FHIR JSON of a Binary holding raw content of
// contentType (with id when given, and securityContext when the client
// named one with X-Security-Context), reading raw to its end.
func BinaryFromRaw(raw io.Reader, contentType, id, securityContext string) ([]byte, error) {
	var b strings.Builder
	b.WriteString(`{"resourceType":"Binary",`)
	if id != "" {
		b.WriteString(`"id":` + quote(id) + `,`)
	}
	b.WriteString(`"contentType":` + quote(contentType) + `,`)
	if securityContext != "" {
		b.WriteString(`"securityContext":{"reference":` + quote(securityContext) + `},`)
	}
	b.WriteString(`"data":"`)
	enc := base64.NewEncoder(base64.StdEncoding, &b)
	if _, err := io.Copy(enc, raw); err != nil {
		return nil, err
	}
	if err := enc.Close(); err != nil {
		return nil, err
	}
	b.WriteString(`"}`)
	return []byte(b.String()), nil
}

func quote(s string) string {
	q, _ := json.Marshal(s)
	return string(q)
}

// IsFHIRMediaType reports whether a Content-Type is one of the FHIR JSON
// formats (or JSON Patch / form posts) the FHIR API reads as resources.
func IsFHIRMediaType(ct string) bool {
	mt, _, _ := mime.ParseMediaType(ct)
	switch strings.ToLower(mt) {
	case "", "application/fhir+json", "application/json", "application/json+fhir", "application/json-patch+json",
		"application/x-www-form-urlencoded":
		return true
	}
	return false
}

// wantsRaw reports whether a Binary read asks for the raw content: an
// Accept that names no FHIR format (and no _format).
func wantsRaw(r *Request) bool {
	if r.Type != "Binary" || r.Query.Get("_format") != "" {
		return false
	}
	acc := r.Header.Get("Accept")
	if acc == "" {
		return false
	}
	for _, part := range strings.Split(acc, ",") {
		mt, _, _ := mime.ParseMediaType(strings.TrimSpace(part))
		switch strings.ToLower(mt) {
		case "application/fhir+json", "application/json", "application/json+fhir", "*/*", "application/*":
			return false
		}
	}
	return true
}

// binaryRaw answers a stored Binary as its raw content, streamed.
func binaryRaw(res *store.Resource) (*Response, error) {
	var b binaryFields
	if err := json.Unmarshal(res.JSON, &b); err != nil {
		return nil, err
	}
	resp := &Response{Status: http.StatusOK, Header: http.Header{}}
	versionHeaders(resp.Header, res)
	ct := b.ContentType
	if ct == "" {
		ct = "application/octet-stream"
	}
	resp.Header.Set("Content-Type", ct)
	data := b.Data
	resp.Stream = func(w io.Writer) error {
		_, err := io.Copy(w, base64.NewDecoder(base64.StdEncoding, strings.NewReader(data)))
		return err
	}
	return resp, nil
}

// binaryIndex records, at write time, a Binary's securityContext and the
// patient compartments of the resource it names, so that searches and
// history apply the same access rule as reads.
func (h *Handler) binaryIndex(ctx context.Context, w *Write, js []byte, idx map[string]any) map[string]any {
	var b binaryFields
	if json.Unmarshal(js, &b) != nil || b.SecurityContext == nil {
		return idx
	}
	ref, ok := fhir.ParseReference(b.SecurityContext.Reference)
	if !ok || ref.Type == "" || ref.Base != "" {
		return idx
	}
	if idx == nil {
		idx = map[string]any{}
	}
	key := ref.Type + "/" + ref.ID
	idx[securityContextKey] = key
	if ref.Type == "Patient" {
		idx[search.KeyCompartment] = []any{key}
		return idx
	}
	var target *store.Resource
	if w.Batch != nil {
		target = w.Batch.Pending[key]
	}
	if target == nil {
		target, _ = h.o.Store.Read(ctx, ref.Type, ref.ID)
	}
	if target != nil && target.Index != nil {
		if c, ok := target.Index[search.KeyCompartment]; ok {
			idx[search.KeyCompartment] = c
		}
	}
	return idx
}

// binaryContextAllowed reports whether the caller may see a Binary by its
// securityContext: it must be allowed to read the named resource's type.
// A Binary without securityContext follows the plain Binary rules.
func binaryContextAllowed(r *Request, res *store.Resource) bool {
	key, _ := res.Index[securityContextKey].(string)
	if key == "" || r.Access == nil {
		return true
	}
	typ, _, _ := strings.Cut(key, "/")
	return r.Access.Allow(ActionRead, typ) == nil
}

// binaryContextVisible checks, on a read, that the resource a Binary's
// securityContext names is readable by the caller now (it exists, and lies
// within the caller's compartment and restrictions).
func (h *Handler) binaryContextVisible(ctx context.Context, r *Request, res *store.Resource) bool {
	key, _ := res.Index[securityContextKey].(string)
	if key == "" || r.Access == nil {
		return true
	}
	typ, id, _ := strings.Cut(key, "/")
	if r.Access.Allow(ActionRead, typ) != nil {
		return false
	}
	target, err := h.o.Store.Read(ctx, typ, id)
	if err != nil || target.Deleted {
		return false
	}
	return h.visible(r, ActionRead, target)
}
