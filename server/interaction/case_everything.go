package interaction

import (
	"bytes"
	"context"
	"net/http"
	"net/url"
	"slices"
	"strconv"
	"strings"
	"time"

	"github.com/casefhir/casefhir/fhir"
	"github.com/casefhir/casefhir/fhir/outcome"
	"github.com/casefhir/casefhir/fhir/store"
	"github.com/casefhir/casefhir/mapping"
)

// caseLinkParam is the project search parameter that links a resource to
// its case (https://casefhir.org/fhir/SearchParameter/<Type>-episode-of-care).
const caseLinkParam = "episode-of-care"

// caseLinkedTypes returns the types that can be linked to a case and have
// the episode-of-care search parameter, restricted to types with stored
// data when the store can tell.
func (c *CaseRules) caseLinkedTypes(ctx context.Context, h *Handler) ([]string, error) {
	var out []string
	for _, t := range mapping.CaseTypes() {
		if _, ok := c.Registry.Lookup(t, caseLinkParam); ok {
			out = append(out, t)
		}
	}
	stored, err := h.o.Store.Types(ctx)
	if err != nil {
		return nil, err
	}
	return slices.DeleteFunc(out, func(t string) bool { return !slices.Contains(stored, t) }), nil
}

// readCase reads the case of an instance-level case operation, checking
// the caller may read it.
func (c *CaseRules) readCase(ctx context.Context, h *Handler, r *Request, name string) (*store.Resource, error) {
	if r.Type != "EpisodeOfCare" || r.ID == "" || (r.Method != http.MethodGet && r.Method != http.MethodPost) {
		return nil, outcome.New(outcome.NotSupported, "$"+name+" is GET EpisodeOfCare/{id}/$"+name).WithStatus(http.StatusNotFound)
	}
	if c.Registry == nil {
		return nil, outcome.New(outcome.Exception, "case operations need the search registry")
	}
	return readTarget(ctx, h, r)
}

// readTarget reads the instance an instance-level operation runs on, as
// a read would: read scope on its type, within the caller's access, and
// 410 when it was deleted.
func readTarget(ctx context.Context, h *Handler, r *Request) (*store.Resource, error) {
	if err := allow(r, ActionRead, r.Type); err != nil {
		return nil, err
	}
	cur, err := h.readVisible(ctx, r, r.Type, r.ID)
	if err != nil {
		return nil, err
	}
	if cur.Deleted {
		return nil, deletedError(cur)
	}
	return cur, nil
}

// readable reports whether the caller may read res (scope and compartment).
func readable(h *Handler, r *Request, res *store.Resource) bool {
	if r.Access != nil && r.Access.Allow(ActionRead, res.Type) != nil {
		return false
	}
	return h.visible(r, ActionRead, res)
}

// linkedTo returns the current resources of the given types linked to the
// case: one Find per type over the episode-of-care index, each candidate
// checked exactly. Types the caller may not read are skipped.
func (c *CaseRules) linkedTo(ctx context.Context, h *Handler, r *Request, caseID string, types []string, opt store.FindOptions) ([]*store.Resource, error) {
	var out []*store.Resource
	for _, typ := range types {
		if r.Access != nil && r.Access.Allow(ActionRead, typ) != nil {
			continue
		}
		q, err := c.Registry.Parse(typ, url.Values{caseLinkParam: {"EpisodeOfCare/" + caseID}}, true)
		if err != nil {
			return nil, err
		}
		q.Base = c.Base
		err = findEach(ctx, h, typ, q.Filter(), opt, func(res *store.Resource) {
			if q.Matches(res.Index) && h.visible(r, ActionRead, res) {
				out = append(out, res)
			}
		})
		if err != nil {
			return nil, err
		}
	}
	return out, nil
}

// findEach runs one Find and calls fn for every result.
func findEach(ctx context.Context, h *Handler, typ string, f *store.Filter, opt store.FindOptions, fn func(*store.Resource)) error {
	cur, err := h.o.Store.Find(ctx, typ, f, opt)
	if err != nil {
		return err
	}
	defer func() { _ = cur.Close(context.WithoutCancel(ctx)) }()
	for {
		res, err := cur.Next(ctx)
		if err != nil {
			return err
		}
		if res == nil {
			return nil
		}
		fn(res)
	}
}

// fetchKeys reads the current versions of "Type/id" keys, one Find per
// type.
func fetchKeys(ctx context.Context, h *Handler, keys []string) ([]*store.Resource, error) {
	byType := map[string][]any{}
	var types []string
	for _, k := range keys {
		typ, id, ok := strings.Cut(k, "/")
		if !ok || !fhir.IsResourceType(typ) {
			continue
		}
		if _, seen := byType[typ]; !seen {
			types = append(types, typ)
		}
		byType[typ] = append(byType[typ], id)
	}
	slices.Sort(types)
	var out []*store.Resource
	for _, typ := range types {
		err := findEach(ctx, h, typ, store.In(store.PathID, byType[typ]...), store.FindOptions{}, func(res *store.Resource) {
			out = append(out, res)
		})
		if err != nil {
			return nil, err
		}
	}
	return out, nil
}

// caseQuery holds the common parameters of the $everything operations and
// $timeline.
type caseQuery struct {
	since time.Time
	types map[string]bool // nil: all
	count int
	skip  int
}

func parseCaseQuery(h *Handler, r *Request, paged bool) (*caseQuery, error) {
	q := &caseQuery{}
	var err error
	if q.since, err = instantParam(r.Query, "_since"); err != nil {
		return nil, err
	}
	for _, v := range r.Query["_type"] {
		for _, t := range strings.Split(v, ",") {
			t = strings.TrimSpace(t)
			if t == "" {
				continue
			}
			if !fhir.IsResourceType(t) {
				return nil, outcome.New(outcome.Invalid, "invalid _type").WithDiagnostics("unknown resource type in _type")
			}
			if q.types == nil {
				q.types = map[string]bool{}
			}
			q.types[t] = true
		}
	}
	if !paged {
		return q, nil
	}
	if q.count, err = h.count(r.Query); err != nil {
		return nil, err
	}
	if s := r.Query.Get("_offset"); s != "" {
		if q.skip, err = strconv.Atoi(s); err != nil || q.skip < 0 {
			return nil, outcome.New(outcome.Invalid, "invalid _offset")
		}
	}
	return q, nil
}

func (q *caseQuery) wants(res *store.Resource) bool {
	if q.types != nil && !q.types[res.Type] {
		return false
	}
	return q.since.IsZero() || !res.LastUpdated.Before(q.since)
}

// Everything implements GET EpisodeOfCare/{id}/$everything
// (https://casefhir.org/fhir/OperationDefinition/EpisodeOfCare-everything,
// after the R5 http://hl7.org/fhir/OperationDefinition/EpisodeOfCare-everything):
// a searchset Bundle with the case (always first), every resource linked
// to it (one Find per linked type over the episode-of-care index), and the
// people, organisations, CareTeams and Coverage the case and those
// resources reference (one Find per type). _since and _type filter all but
// the case; _count pages with next links (_offset). Only what the caller
// may read is returned. Entries are the stored JSON, spliced verbatim.
func (c *CaseRules) Everything(ctx context.Context, h *Handler, r *Request) (*Response, error) {
	cur, err := c.readCase(ctx, h, r, "everything")
	if err != nil {
		return nil, err
	}
	q, err := parseCaseQuery(h, r, true)
	if err != nil {
		return nil, err
	}
	eoc, err := mapping.Decode(cur.JSON)
	if err != nil {
		return nil, err
	}
	types, err := c.caseLinkedTypes(ctx, h)
	if err != nil {
		return nil, err
	}
	linked, err := c.linkedTo(ctx, h, r, r.ID, types, store.FindOptions{})
	if err != nil {
		return nil, err
	}
	slices.SortStableFunc(linked, func(a, b *store.Resource) int { return strings.Compare(a.Key(), b.Key()) })
	linkedMaps := make([]map[string]any, 0, len(linked))
	for _, res := range linked {
		m, err := mapping.Decode(res.JSON)
		if err != nil {
			return nil, err
		}
		linkedMaps = append(linkedMaps, m)
	}
	followed, err := fetchKeys(ctx, h, mapping.EverythingFollows(eoc, linkedMaps))
	if err != nil {
		return nil, err
	}
	slices.SortStableFunc(followed, func(a, b *store.Resource) int { return strings.Compare(a.Key(), b.Key()) })

	items := []everythingItem{{cur, "match"}}
	for _, res := range linked {
		if q.wants(res) {
			items = append(items, everythingItem{res, "match"})
		}
	}
	for _, res := range followed {
		if q.wants(res) && readable(h, r, res) {
			items = append(items, everythingItem{res, "include"})
		}
	}
	return everythingPage(h, r, q, r.BaseURL+"/EpisodeOfCare/"+r.ID+"/$everything", items)
}

// everythingItem is one resource of an $everything result.
type everythingItem struct {
	res  *store.Resource
	mode string // search mode: match or include
}

// everythingPage renders the page of items that _count and _offset select
// as a searchset Bundle with self, previous and next links on self (the
// operation's URL), the entries shaped by _summary and _elements.
func everythingPage(h *Handler, r *Request, q *caseQuery, self string, items []everythingItem) (*Response, error) {
	link := func(offset int) string {
		v := url.Values{}
		for _, k := range []string{"_since", "_summary", "_elements"} {
			if x := r.Query.Get(k); x != "" {
				v.Set(k, x)
			}
		}
		if len(r.Query["_type"]) > 0 {
			v.Set("_type", strings.Join(r.Query["_type"], ","))
		}
		v.Set("_count", strconv.Itoa(q.count))
		if offset > 0 {
			v.Set("_offset", strconv.Itoa(offset))
		}
		return self + "?" + v.Encode()
	}
	links := []Link{{Relation: "self", URL: link(q.skip)}}
	start := min(q.skip, len(items))
	end := min(start+q.count, len(items))
	if q.skip > 0 && q.count > 0 {
		links = append(links, Link{Relation: "previous", URL: link(max(0, q.skip-q.count))})
	}
	if q.count > 0 && end < len(items) {
		links = append(links, Link{Relation: "next", URL: link(end)})
	}
	bw := NewBundleWriter("searchset", NewUUID(), fhir.FormatInstant(h.o.Now().UTC()), len(items), links)
	for _, it := range items[start:end] {
		body, err := shape(r, it.res.JSON)
		if err != nil {
			return nil, err
		}
		bw.Add(Entry{FullURL: r.BaseURL + "/" + it.res.Key(), Resource: body, SearchMode: it.mode})
	}
	return &Response{Status: http.StatusOK, Header: http.Header{}, Body: bw.Bytes()}, nil
}

// Timeline implements GET EpisodeOfCare/{id}/$timeline
// (https://casefhir.org/fhir/OperationDefinition/EpisodeOfCare-timeline):
// a history Bundle, oldest first, with one entry per version of the case
// and of every resource linked to it, ordered by meta.lastUpdated. A linked
// resource's versions from before it was linked to the case are left out.
// _since keeps versions updated at or after it; _type narrows the linked
// types (the case is always there). Only what the caller may read is
// returned.
func (c *CaseRules) Timeline(ctx context.Context, h *Handler, r *Request) (*Response, error) {
	cur, err := c.readCase(ctx, h, r, "timeline")
	if err != nil {
		return nil, err
	}
	q, err := parseCaseQuery(h, r, false)
	if err != nil {
		return nil, err
	}
	types, err := c.caseLinkedTypes(ctx, h)
	if err != nil {
		return nil, err
	}
	if q.types != nil {
		types = slices.DeleteFunc(types, func(t string) bool { return !q.types[t] })
	}
	linked, err := c.linkedTo(ctx, h, r, r.ID, types, store.FindOptions{IndexOnly: true})
	if err != nil {
		return nil, err
	}
	subjects := append([]*store.Resource{cur}, linked...)
	link := []byte("EpisodeOfCare/" + r.ID)
	var versions []*store.Resource
	for _, s := range subjects {
		hist, err := h.o.Store.History(ctx, store.HistoryQuery{Type: s.Type, ID: s.ID, Since: q.since})
		if err != nil {
			return nil, err
		}
		for _, v := range hist {
			if s.Type != "EpisodeOfCare" && !v.Deleted && !linksTo(v, r.ID, link) {
				continue
			}
			if !h.visible(r, ActionRead, v) {
				continue
			}
			versions = append(versions, v)
		}
	}
	mapping.SortTimeline(versions, func(v *store.Resource) mapping.TimelineKey {
		return mapping.TimelineKey{LastUpdated: v.LastUpdated, Type: v.Type, ID: v.ID, VersionID: v.VersionID}
	})
	self := r.BaseURL + "/EpisodeOfCare/" + r.ID + "/$timeline"
	if len(r.Query) > 0 {
		self += "?" + r.Query.Encode()
	}
	bw := NewBundleWriter("history", NewUUID(), fhir.FormatInstant(h.o.Now().UTC()), len(versions), []Link{{Relation: "self", URL: self}})
	for _, v := range versions {
		bw.Add(historyEntry(r.BaseURL, v))
	}
	return &Response{Status: http.StatusOK, Header: http.Header{}, Body: bw.Bytes()}, nil
}

// linksTo reports whether a stored version links to the case caseID. The
// byte test is a cheap filter; the JSON is decoded only when it passes.
func linksTo(v *store.Resource, caseID string, needle []byte) bool {
	if !bytes.Contains(v.JSON, needle) {
		return false
	}
	m, err := mapping.Decode(v.JSON)
	if err != nil {
		return false
	}
	return slices.Contains(mapping.CaseIDs(v.Type, m), caseID)
}

// historyEntry renders one version as a history Bundle entry.
func historyEntry(base string, v *store.Resource) Entry {
	e := Entry{FullURL: base + "/" + v.Key(), Resource: v.JSON,
		Response: &EntryResponse{Etag: fhir.FormatETag(fhir.VersionString(v.VersionID)), LastModified: fhir.FormatInstant(v.LastUpdated)}}
	switch {
	case v.Deleted:
		e.Request = &EntryRequest{Method: http.MethodDelete, URL: v.Key()}
		e.Response.Status = "204 No Content"
	case v.VersionID == 1:
		e.Request = &EntryRequest{Method: http.MethodPost, URL: v.Type}
		e.Response.Status = "201 Created"
	default:
		e.Request = &EntryRequest{Method: http.MethodPut, URL: v.Key()}
		e.Response.Status = "200 OK"
	}
	return e
}
