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
// type and system level, with _since, _at, _count and stable paging: the
// first page fixes a snapshot time (_before) so later writes never shift
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
	if q.Before, err = instantParam(r.Query, "_before"); err != nil {
		return nil, err
	}
	if q.Before.IsZero() {
		// The first page includes the current millisecond; waiting until it
		// has passed keeps versions written after this request (stamped
		// later) out of every page of this history.
		now := h.o.Now().UTC()
		q.Before = now.Truncate(time.Millisecond).Add(time.Millisecond)
		time.Sleep(q.Before.Sub(now))
	}
	count, err := h.count(r.Query)
	if err != nil {
		return nil, err
	}
	offset := 0
	if s := r.Query.Get("_offset"); s != "" {
		if offset, err = strconv.Atoi(s); err != nil || offset < 0 {
			return nil, outcome.New(outcome.Invalid, "invalid _offset")
		}
	}
	q.Limit, q.Offset = count+1, offset

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

	links := []Link{{Relation: "self", URL: h.pageURL(r, q.Before, offset, count)}}
	if more {
		links = append(links, Link{Relation: "next", URL: h.pageURL(r, q.Before, offset+count, count)})
	}
	if offset > 0 {
		prev := offset - count
		if prev < 0 {
			prev = 0
		}
		links = append(links, Link{Relation: "previous", URL: h.pageURL(r, q.Before, prev, count)})
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

func (h *Handler) pageURL(r *Request, before time.Time, offset, count int) string {
	q := url.Values{}
	for _, k := range []string{"_since", "_at"} {
		if v := r.Query.Get(k); v != "" {
			q.Set(k, v)
		}
	}
	q.Set("_before", fhir.FormatInstant(before))
	q.Set("_count", strconv.Itoa(count))
	if offset > 0 {
		q.Set("_offset", strconv.Itoa(offset))
	}
	p := r.BaseURL
	if r.Type != "" && r.Kind != KindHistorySystem {
		p += "/" + r.Type
		if r.ID != "" {
			p += "/" + r.ID
		}
	}
	return p + "/_history?" + q.Encode()
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
