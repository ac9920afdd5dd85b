package interaction

import (
	"context"
	"crypto/hmac"
	"crypto/rand"
	"crypto/sha256"
	"encoding/base64"
	"encoding/json"
	"net/http"
	"strings"
	"time"

	"github.com/casefhir/casefhir/fhir/outcome"
	"github.com/casefhir/casefhir/fhir/store"
)

// CursorParam is the query parameter of a paging link that carries the
// cursor: where the previous page ended.
const CursorParam = "_cursor"

// position is where a page ended: the searched type (multi-type searches
// and the $everything operations page type by type), and the last row's
// place in the sort order (sort values and id), or, for history and
// $timeline, the last version's key.
type position struct {
	Type    string
	Values  []any
	ID      string
	Version int64     // history: the version id
	At      time.Time // history: the version's lastUpdated
}

type wireValue struct {
	S *string  `json:"s,omitempty"`
	N *float64 `json:"n,omitempty"`
	T string   `json:"t,omitempty"`
	B *bool    `json:"b,omitempty"`
}

type wirePosition struct {
	Type    string      `json:"y,omitempty"`
	Values  []wireValue `json:"v,omitempty"`
	ID      string      `json:"i,omitempty"`
	Version int64       `json:"n,omitempty"`
	At      string      `json:"a,omitempty"`
}

// Cursors makes and checks the opaque, tamper-evident paging cursors of
// searches, histories and case operations. A cursor is the position where
// a page ended, authenticated by an HMAC over the position, the canonical
// query, the searched path and the caller's identity: a cursor used with
// another query, on another path or by another caller, or altered, is
// refused with 400. Nothing is stored per search, so any server instance
// sharing the key serves any page.
type Cursors struct {
	key []byte
}

// NewCursors returns cursors authenticated with key (at least 16 bytes).
func NewCursors(key []byte) *Cursors { return &Cursors{key: append([]byte(nil), key...)} }

// cursorKeyJob is the job record holding a deployment's cursor key.
const cursorKeyJob = "casefhir-cursor-key"

// CursorKey returns the deployment's cursor key: a random secret created
// on first start as a job record in js, so every instance sharing the store
// shares it. With no JobStore it is random for this process (cursors then
// work only on the instance that made them).
func CursorKey(ctx context.Context, js store.JobStore, now time.Time) ([]byte, error) {
	fresh := make([]byte, 32)
	if _, err := rand.Read(fresh); err != nil {
		return nil, outcome.Wrap(err, outcome.Exception, "interaction.CursorKey", "no randomness")
	}
	if js == nil {
		return fresh, nil
	}
	if j, err := js.GetJob(ctx, cursorKeyJob); err == nil && len(j.Data) >= 16 {
		return j.Data, nil
	} else if err != nil && !outcome.Is(err, outcome.NotFound) {
		return nil, err
	}
	now = now.UTC().Truncate(time.Millisecond)
	err := js.CreateJob(ctx, &store.Job{ID: cursorKeyJob, Kind: "settings", Status: "ready", Finished: true,
		Created: now, Updated: now, Data: fresh})
	if err == nil {
		return fresh, nil
	}
	if !outcome.Is(err, outcome.Duplicate) && !outcome.Is(err, outcome.Conflict) {
		return nil, err
	}
	// Another instance created it first: use that one.
	j, err := js.GetJob(ctx, cursorKeyJob)
	if err != nil {
		return nil, err
	}
	return j.Data, nil
}

// caller identifies whom a cursor belongs to: the token's subject and
// client id ("" with auth off).
func caller(r *Request) string {
	if r.Access == nil {
		return ""
	}
	id := r.Access.Subject()
	if c, ok := r.Access.(interface{ ClientID() string }); ok {
		id += "\x00" + c.ClientID()
	}
	return id
}

func (c *Cursors) mac(scope, query, who string, payload []byte) []byte {
	m := hmac.New(sha256.New, c.key)
	for _, s := range []string{scope, query, who} {
		m.Write([]byte(s))
		m.Write([]byte{0})
	}
	m.Write(payload)
	return m.Sum(nil)[:20]
}

// Make returns the cursor for p under scope (the searched path), the
// canonical query and the caller.
func (c *Cursors) Make(scope, query string, r *Request, p position) string {
	w := wirePosition{Type: p.Type, ID: p.ID, Version: p.Version}
	if !p.At.IsZero() {
		w.At = p.At.UTC().Format(time.RFC3339Nano)
	}
	for _, v := range p.Values {
		var wv wireValue
		switch x := v.(type) {
		case string:
			wv.S = &x
		case float64:
			wv.N = &x
		case time.Time:
			wv.T = x.UTC().Format(time.RFC3339Nano)
		case bool:
			wv.B = &x
		}
		w.Values = append(w.Values, wv)
	}
	payload, _ := json.Marshal(w)
	return base64.RawURLEncoding.EncodeToString(payload) + "." +
		base64.RawURLEncoding.EncodeToString(c.mac(scope, query, caller(r), payload))
}

// Check verifies a cursor made by Make for the same scope, query and
// caller and returns its position; anything else is a 400.
func (c *Cursors) Check(token, scope, query string, r *Request) (position, error) {
	bad := outcome.New(outcome.Invalid, "the paging cursor is not valid for this query and caller").
		WithStatus(http.StatusBadRequest)
	p64, m64, ok := strings.Cut(token, ".")
	if !ok {
		return position{}, bad
	}
	payload, err1 := base64.RawURLEncoding.DecodeString(p64)
	sum, err2 := base64.RawURLEncoding.DecodeString(m64)
	if err1 != nil || err2 != nil || !hmac.Equal(sum, c.mac(scope, query, caller(r), payload)) {
		return position{}, bad
	}
	var w wirePosition
	if err := json.Unmarshal(payload, &w); err != nil {
		return position{}, bad
	}
	p := position{Type: w.Type, ID: w.ID, Version: w.Version}
	if w.At != "" {
		t, err := time.Parse(time.RFC3339Nano, w.At)
		if err != nil {
			return position{}, bad
		}
		p.At = t
	}
	for _, wv := range w.Values {
		switch {
		case wv.S != nil:
			p.Values = append(p.Values, *wv.S)
		case wv.N != nil:
			p.Values = append(p.Values, *wv.N)
		case wv.B != nil:
			p.Values = append(p.Values, *wv.B)
		case wv.T != "":
			t, err := time.Parse(time.RFC3339Nano, wv.T)
			if err != nil {
				return position{}, bad
			}
			p.Values = append(p.Values, t)
		default:
			p.Values = append(p.Values, nil)
		}
	}
	return p, nil
}
