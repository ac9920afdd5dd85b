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
	"github.com/casefhir/casefhir/fhir/search"
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
// $timeline, and where the page starts.
type caseQuery struct {
	since time.Time
	types map[string]bool // nil: all
	count int
	// scope is the operation's path below the base; canon the canonical
	// query its cursors are bound to (with the caller).
	scope string
	canon url.Values
	// from is where the previous page ended (nil on the first page).
	from *position
}

// parseCaseQuery reads _since, _type and _count, and checks the cursor of
// a following page against the canonical query (the keys of canonKeys as
// given, and _count), the operation's path (scope) and the caller.
func parseCaseQuery(h *Handler, r *Request, scope string, canonKeys ...string) (*caseQuery, error) {
	q := &caseQuery{scope: scope, canon: url.Values{}}
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
	if q.count, err = h.count(r.Query); err != nil {
		return nil, err
	}
	for _, k := range canonKeys {
		if vs := r.Query[k]; len(vs) > 0 && strings.Join(vs, ",") != "" {
			q.canon.Set(k, strings.Join(vs, ","))
		}
	}
	q.canon.Set("_count", strconv.Itoa(q.count))
	if tok := r.Query.Get(CursorParam); tok != "" {
		p, err := h.o.Cursors.Check(tok, scope, q.canon.Encode(), r)
		if err != nil {
			return nil, err
		}
		q.from = &p
	}
	return q, nil
}

// links returns the self link of this page and, when next is set, the
// link to the page after next.
func (q *caseQuery) links(h *Handler, r *Request, next *position) []Link {
	base := r.BaseURL + "/" + q.scope
	self := base + "?" + q.canon.Encode()
	if tok := r.Query.Get(CursorParam); tok != "" {
		self = pageLink(base, q.canon, tok)
	}
	links := []Link{{Relation: "self", URL: self}}
	if next != nil {
		links = append(links, Link{Relation: "next", URL: pageLink(base, q.canon, h.o.Cursors.Make(q.scope, q.canon.Encode(), r, *next))})
	}
	return links
}

func (q *caseQuery) wants(res *store.Resource) bool {
	if q.types != nil && !q.types[res.Type] {
		return false
	}
	return q.since.IsZero() || !res.LastUpdated.Before(q.since)
}

// everythingCanon are the parameters an $everything cursor is bound to
// (besides _count).
var everythingCanon = []string{"_since", "_type", "_summary", "_elements"}

// memberWalk reads the members (search mode match) of an $everything page
// by keyset: the types in name order, each by id ascending, starting after
// the previous page's last member. Candidates are read in batches (the
// page size and one more, then doubling up to 1,000 while the exact check
// rejects some), so a page costs what the page costs.
type memberWalk struct {
	types []string
	// filter is what the database narrows a type's candidates with;
	// accept checks a candidate exactly (and the caller's access).
	filter func(typ string) (*store.Filter, error)
	accept func(*store.Resource) bool
}

var byID = []store.SortKey{{Path: store.PathID}}

// page returns up to want members after from (from the start when from is
// nil or holds no type), and whether more follow.
func (w *memberWalk) page(ctx context.Context, h *Handler, from *position, want int) ([]*store.Resource, bool, error) {
	start := 0
	var after *store.Position
	if from != nil && from.Type != "" {
		// The first type at or after the cursor's (the list may have
		// changed since: a type that is gone is simply passed).
		start, _ = slices.BinarySearch(w.types, from.Type)
		if start < len(w.types) && w.types[start] == from.Type {
			after = &store.Position{Values: []any{from.ID}, ID: from.ID}
		}
	}
	var out []*store.Resource
	for i := start; i < len(w.types) && len(out) <= want; i++ {
		typ := w.types[i]
		f, err := w.filter(typ)
		if err != nil {
			return nil, false, err
		}
		batch := max(want+1-len(out), 1)
		for len(out) <= want {
			cur, err := h.o.Store.Find(ctx, typ, f, store.FindOptions{Sort: byID, Limit: batch, After: after})
			if err != nil {
				return nil, false, err
			}
			n := 0
			for len(out) <= want {
				res, err := cur.Next(ctx)
				if err != nil {
					_ = cur.Close(context.WithoutCancel(ctx))
					return nil, false, err
				}
				if res == nil {
					break
				}
				n++
				after = &store.Position{Values: []any{res.ID}, ID: res.ID}
				if w.accept(res) {
					out = append(out, res)
				}
			}
			if err := cur.Close(context.WithoutCancel(ctx)); err != nil {
				return nil, false, err
			}
			if n < batch {
				break
			}
			batch = min(batch*2, 1000)
		}
		after = nil
	}
	more := len(out) > want
	if more {
		out = out[:want]
	}
	return out, more, nil
}

// everythingPage reads one page of an $everything: the focal resource
// first on the first page, then the members after the cursor, then what
// follow(page, members) returns as includes. It renders a searchset
// Bundle (no total: counting would cost every member) whose next link
// carries the last member's place.
func everythingPage(ctx context.Context, h *Handler, r *Request, q *caseQuery, focal *store.Resource, w *memberWalk,
	follow func(first bool, members []*store.Resource) ([]*store.Resource, error)) (*Response, error) {
	var members []*store.Resource
	var next *position
	first := q.from == nil
	if q.count > 0 {
		want := q.count
		if first {
			want--
		}
		page, more, err := w.page(ctx, h, q.from, want)
		if err != nil {
			return nil, err
		}
		members = page
		if more {
			next = &position{}
			if len(page) > 0 {
				last := page[len(page)-1]
				next = &position{Type: last.Type, ID: last.ID}
			}
		}
	}
	var included []*store.Resource
	if q.count > 0 {
		var err error
		if included, err = follow(first, members); err != nil {
			return nil, err
		}
	}
	bw := NewBundleWriter("searchset", NewUUID(), fhir.FormatInstant(h.o.Now().UTC()), -1, q.links(h, r, next))
	add := func(res *store.Resource, mode string) error {
		body, err := shape(r, res.JSON)
		if err != nil {
			return err
		}
		bw.Add(Entry{FullURL: r.BaseURL + "/" + res.Key(), Resource: body, SearchMode: mode})
		return nil
	}
	if first && q.count > 0 {
		if err := add(focal, "match"); err != nil {
			return nil, err
		}
	}
	for _, res := range members {
		if err := add(res, "match"); err != nil {
			return nil, err
		}
	}
	for _, res := range included {
		if err := add(res, "include"); err != nil {
			return nil, err
		}
	}
	return &Response{Status: http.StatusOK, Header: http.Header{}, Body: bw.Bytes()}, nil
}

// Everything implements GET EpisodeOfCare/{id}/$everything
// (https://casefhir.org/fhir/OperationDefinition/EpisodeOfCare-everything,
// after the R5 http://hl7.org/fhir/OperationDefinition/EpisodeOfCare-everything):
// a searchset Bundle with the case (first, on the first page), every
// resource linked to it (type by type in name order, then by id: one Find
// per type over the episode-of-care index, each candidate checked
// exactly), and, as includes of each page, the people, organisations,
// CareTeams and Coverage the case (first page) and the page's members
// reference (one Find per type; a referenced resource that is itself
// linked to the case is a member, not an include). _since and _type filter
// all but the case; _count pages with next links carrying a keyset cursor
// bound to the query, the path and the caller. Every page checks the
// caller's access again: only what the caller may read is returned.
// Entries are the stored JSON, spliced verbatim (or shaped by _summary and
// _elements).
func (c *CaseRules) Everything(ctx context.Context, h *Handler, r *Request) (*Response, error) {
	cur, err := c.readCase(ctx, h, r, "everything")
	if err != nil {
		return nil, err
	}
	q, err := parseCaseQuery(h, r, "EpisodeOfCare/"+r.ID+"/$everything", everythingCanon...)
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
	// The link query of each type, for the walk and to tell members from
	// includes.
	links := map[string]*search.Query{}
	for _, typ := range types {
		lq, err := c.Registry.Parse(typ, url.Values{caseLinkParam: {"EpisodeOfCare/" + r.ID}}, true)
		if err != nil {
			return nil, err
		}
		lq.Base = c.Base
		links[typ] = lq
	}
	isMember := func(res *store.Resource) bool {
		lq := links[res.Type]
		return lq != nil && res.Key() != cur.Key() && lq.Matches(res.Index)
	}
	w := &memberWalk{
		types: slices.DeleteFunc(slices.Clone(types), func(t string) bool {
			return (q.types != nil && !q.types[t]) || (r.Access != nil && r.Access.Allow(ActionRead, t) != nil)
		}),
		filter: func(typ string) (*store.Filter, error) {
			return withSince(links[typ].Filter(), q.since), nil
		},
		accept: func(res *store.Resource) bool {
			return isMember(res) && q.wants(res) && h.visible(r, ActionRead, res)
		},
	}
	caseRefs := mapping.EverythingFollows(eoc, nil)
	follow := func(first bool, members []*store.Resource) ([]*store.Resource, error) {
		maps, err := decodeAll(members)
		if err != nil {
			return nil, err
		}
		keys := mapping.EverythingFollows(eoc, maps)
		if !first {
			// The case's own references went with the case, on the first page.
			keys = slices.DeleteFunc(keys, func(k string) bool { _, found := slices.BinarySearch(caseRefs, k); return found })
		}
		found, err := fetchKeys(ctx, h, keys)
		if err != nil {
			return nil, err
		}
		return slices.DeleteFunc(found, func(res *store.Resource) bool {
			return isMember(res) || !q.wants(res) || !readable(h, r, res)
		}), nil
	}
	return everythingPage(ctx, h, r, q, cur, w, follow)
}

// decodeAll decodes the stored JSON of rs.
func decodeAll(rs []*store.Resource) ([]map[string]any, error) {
	out := make([]map[string]any, 0, len(rs))
	for _, res := range rs {
		m, err := mapping.Decode(res.JSON)
		if err != nil {
			return nil, err
		}
		out = append(out, m)
	}
	return out, nil
}

// withSince narrows f to resources updated at or after since (when set).
func withSince(f *store.Filter, since time.Time) *store.Filter {
	if since.IsZero() {
		return f
	}
	return store.And(f, store.Gte(store.PathLastUpdated, since))
}

// maxTimeline bounds the versions (and linked resources) one $timeline
// page reads: the store's history is newest first, so a page of the
// oldest-first timeline reads the versions of the case's resources from
// the cursor on. Beyond it the page is refused (403 too-costly), never
// truncated; _since narrows it.
const maxTimeline = 10000

// Timeline implements GET EpisodeOfCare/{id}/$timeline
// (https://casefhir.org/fhir/OperationDefinition/EpisodeOfCare-timeline):
// a history Bundle, oldest first, with one entry per version of the case
// and of every resource linked to it, ordered by meta.lastUpdated (then
// type, id and version). A linked resource's versions from before it was
// linked to the case are left out. _since keeps versions updated at or
// after it; _type narrows the linked types (the case is always there).
// _count pages with next links whose keyset cursor holds the last
// version's (lastUpdated, type, id, version), bound to the query, the path
// and the caller; each page reads the histories of the case's resources
// from the cursor's instant on, at most maxTimeline versions. Every page
// checks the caller's access again: only what the caller may read is
// returned.
func (c *CaseRules) Timeline(ctx context.Context, h *Handler, r *Request) (*Response, error) {
	cur, err := c.readCase(ctx, h, r, "timeline")
	if err != nil {
		return nil, err
	}
	q, err := parseCaseQuery(h, r, "EpisodeOfCare/"+r.ID+"/$timeline", "_since", "_type")
	if err != nil {
		return nil, err
	}
	var after *mapping.TimelineKey
	since := q.since
	if q.from != nil {
		after = &mapping.TimelineKey{LastUpdated: q.from.At, Type: q.from.Type, ID: q.from.ID, VersionID: q.from.Version}
		if q.from.At.After(since) {
			since = q.from.At
		}
	}
	var versions []*store.Resource
	if q.count > 0 {
		if versions, err = c.timelineVersions(ctx, h, r, cur, q, since, after); err != nil {
			return nil, err
		}
	}
	var next *position
	if len(versions) > q.count {
		versions = versions[:q.count]
		k := store.KeyOf(versions[len(versions)-1])
		next = &position{Type: k.Type, ID: k.ID, Version: k.VersionID, At: k.LastUpdated}
	}
	bw := NewBundleWriter("history", NewUUID(), fhir.FormatInstant(h.o.Now().UTC()), -1, q.links(h, r, next))
	for _, v := range versions {
		bw.Add(historyEntry(r.BaseURL, v))
	}
	return &Response{Status: http.StatusOK, Header: http.Header{}, Body: bw.Bytes()}, nil
}

// timelineVersions returns, in timeline order, up to q.count+1 of the
// case's versions updated at or after since and after the key after: the
// versions of the case and of the resources now linked to it (one History
// per resource), those of a linked resource only while it linked to the
// case, and only what the caller may read.
func (c *CaseRules) timelineVersions(ctx context.Context, h *Handler, r *Request, cur *store.Resource, q *caseQuery, since time.Time, after *mapping.TimelineKey) ([]*store.Resource, error) {
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
	tooCostly := outcome.New(outcome.TooCostly, "the case's timeline has too many versions for one page; narrow it with _since").
		WithStatus(http.StatusForbidden)
	if len(linked) >= maxTimeline {
		return nil, tooCostly
	}
	key := func(v *store.Resource) mapping.TimelineKey {
		return mapping.TimelineKey{LastUpdated: v.LastUpdated, Type: v.Type, ID: v.ID, VersionID: v.VersionID}
	}
	link := []byte("EpisodeOfCare/" + r.ID)
	read := 0
	var versions []*store.Resource
	for _, s := range append([]*store.Resource{cur}, linked...) {
		hist, err := h.o.Store.History(ctx, store.HistoryQuery{Type: s.Type, ID: s.ID, Since: since, Limit: maxTimeline + 1 - read})
		if err != nil {
			return nil, err
		}
		if read += len(hist); read > maxTimeline {
			return nil, tooCostly
		}
		for _, v := range hist {
			if after != nil && mapping.CompareTimeline(key(v), *after) <= 0 {
				continue
			}
			if s.Type != "EpisodeOfCare" && !v.Deleted && !linksTo(v, r.ID, link) {
				continue
			}
			if !h.visible(r, ActionRead, v) {
				continue
			}
			versions = append(versions, v)
		}
	}
	mapping.SortTimeline(versions, key)
	if len(versions) > q.count+1 {
		versions = versions[:q.count+1]
	}
	return versions, nil
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
