package interaction

import (
	"context"
	"net/http"
	"net/url"
	"strconv"
	"time"

	"github.com/casefhir/casefhir/fhir"
	"github.com/casefhir/casefhir/fhir/outcome"
	"github.com/casefhir/casefhir/fhir/store"
)

// History implements https://hl7.org/fhir/R4/http.html#history at instance,
// type and system level, with _since, _at, _count and keyset paging: the
// next link carries a tamper-evident cursor holding the last version's
// place in the history order (store.VersionKey), so a page costs one page
// and versions written meanwhile (newer, so before the cursor) never shift
// the pages that follow.
func (h *Handler) History(ctx context.Context, r *Request) (*Response, error) {
	q := store.HistoryQuery{Type: r.Type, ID: r.ID}
	if r.Kind == KindHistorySystem {
		q.Type = ""
	}
	var err error
	if q.Since, err = instantParam(r.Query, "_since"); err != nil {
		return nil, err
	}
	if q.At, err = instantParam(r.Query, "_at"); err != nil {
		return nil, err
	}
	count, err := h.count(r.Query)
	if err != nil {
		return nil, err
	}
	canon := url.Values{}
	for _, k := range []string{"_since", "_at"} {
		if v := r.Query.Get(k); v != "" {
			canon.Set(k, v)
		}
	}
	canon.Set("_count", strconv.Itoa(count))
	scope := historyPath(r)
	if tok := r.Query.Get(CursorParam); tok != "" {
		p, err := h.o.Cursors.Check(tok, scope, canon.Encode(), r)
		if err != nil {
			return nil, err
		}
		q.After = &store.VersionKey{LastUpdated: p.At, Type: p.Type, ID: p.ID, VersionID: p.Version}
	}
	q.Limit = count + 1

	// Access: reading history needs read on the type(s); a patient-bounded
	// caller sees only versions inside the compartment.
	switch {
	case r.Kind == KindHistoryInstance:
		if err := allow(r, ActionRead, r.Type); err != nil {
			return nil, err
		}
		if _, err := h.readVisible(ctx, r, r.Type, r.ID); err != nil {
			return nil, err
		}
	case r.Kind == KindHistoryType:
		if err := allow(r, ActionRead, r.Type); err != nil {
			return nil, err
		}
	}
	versions, err := h.o.Store.History(ctx, q)
	if err != nil {
		return nil, err
	}
	more := len(versions) > count
	if more {
		versions = versions[:count]
	}

	base := r.BaseURL + "/" + scope
	links := []Link{{Relation: "self", URL: base + "?" + canon.Encode()}}
	if tok := r.Query.Get(CursorParam); tok != "" {
		links[0].URL = pageLink(base, canon, tok)
	}
	if more && len(versions) > 0 {
		k := store.KeyOf(versions[len(versions)-1])
		cur := h.o.Cursors.Make(scope, canon.Encode(), r, position{Type: k.Type, ID: k.ID, Version: k.VersionID, At: k.LastUpdated})
		links = append(links, Link{Relation: "next", URL: pageLink(base, canon, cur)})
	}
	bw := NewBundleWriter("history", NewUUID(), fhir.FormatInstant(h.o.Now()), -1, links)
	for _, v := range versions {
		if !h.historyVisible(r, v) {
			continue
		}
		e := Entry{FullURL: r.BaseURL + "/" + v.Type + "/" + v.ID}
		e.Response = &EntryResponse{
			Etag:         fhir.FormatETag(fhir.VersionString(v.VersionID)),
			LastModified: fhir.FormatInstant(v.LastUpdated),
		}
		switch {
		case v.Deleted:
			e.Request = &EntryRequest{Method: http.MethodDelete, URL: v.Type + "/" + v.ID}
			e.Response.Status = "204"
		case v.VersionID == 1:
			e.Resource = v.JSON
			e.Request = &EntryRequest{Method: http.MethodPost, URL: v.Type}
			e.Response.Status = "201"
			e.Response.Location = location(r.BaseURL, v)
		default:
			e.Resource = v.JSON
			e.Request = &EntryRequest{Method: http.MethodPut, URL: v.Type + "/" + v.ID}
			e.Response.Status = "200"
			e.Response.Location = location(r.BaseURL, v)
		}
		bw.Add(e)
	}
	return &Response{Status: http.StatusOK, Header: http.Header{}, Body: bw.Bytes()}, nil
}

// historyVisible applies scopes and the patient compartment to one version
// of a type- or system-level history.
func (h *Handler) historyVisible(r *Request, v *store.Resource) bool {
	if r.Access == nil {
		return true
	}
	if r.Access.Allow(ActionRead, v.Type) != nil {
		return false
	}
	if v.Deleted {
		_, bounded := r.Access.Compartment(ActionRead, v.Type)
		return !bounded && len(r.Access.Restrictions(ActionRead, v.Type)) == 0
	}
	// Every version is judged on its own: one from when the resource lay
	// in another patient's compartment is not shown.
	return h.visible(r, ActionRead, v)
}

// historyPath is the path of a history below the base ("_history",
// "Patient/_history", "Patient/1/_history").
func historyPath(r *Request) string {
	p := ""
	if r.Type != "" && r.Kind != KindHistorySystem {
		p = r.Type + "/"
		if r.ID != "" {
			p += r.ID + "/"
		}
	}
	return p + "_history"
}

// count reads _count, bounded by the handler's limits.
func (h *Handler) count(q url.Values) (int, error) {
	s := q.Get("_count")
	if s == "" {
		return h.o.DefaultCount, nil
	}
	n, err := strconv.Atoi(s)
	if err != nil || n < 0 {
		return 0, outcome.New(outcome.Invalid, "invalid _count").WithDiagnostics("_count must be a non-negative integer")
	}
	if n > h.o.MaxCount {
		n = h.o.MaxCount
	}
	return n, nil
}

// instantParam parses a FHIR instant or dateTime query parameter.
func instantParam(q url.Values, name string) (time.Time, error) {
	s := q.Get(name)
	if s == "" {
		return time.Time{}, nil
	}
	for _, layout := range []string{time.RFC3339Nano, "2006-01-02T15:04:05Z07:00", "2006-01-02T15:04Z07:00", "2006-01-02", "2006-01", "2006"} {
		if t, err := time.Parse(layout, s); err == nil {
			return t.UTC(), nil
		}
	}
	return time.Time{}, outcome.New(outcome.Invalid, "invalid instant parameter").WithDiagnostics(name + " must be a FHIR instant")
}
