package interaction

import (
	"context"
	"encoding/json"
	"net/http"
	"net/url"
	"sort"
	"strconv"
	"strings"

	"github.com/casefhir/casefhir/fhir"
	"github.com/casefhir/casefhir/fhir/codec"
	"github.com/casefhir/casefhir/fhir/outcome"
	"github.com/casefhir/casefhir/fhir/search"
	"github.com/casefhir/casefhir/fhir/store"
)

// SearchExecutor runs type, compartment and whole-system searches
// (https://hl7.org/fhir/R4/search.html) on a store, and resolves the
// queries of conditional interactions. The database narrows with the
// compiled filter (index values only); every candidate is then checked
// exactly; the sorted list of matching ids is kept as a snapshot so that
// paging visits every match exactly once whatever is written meanwhile,
// and any server instance can serve the next page.
type SearchExecutor struct {
	Registry *search.Registry
	// Store serves Resolve (conditional interactions); Search uses the
	// Handler's store.
	Store store.Store
	// MaxMatches bounds the matches one search may collect (0: 10000);
	// a search matching more is refused as too costly.
	MaxMatches int
	// MaxIncludeRounds bounds _include:iterate / _revinclude:iterate (0: 3).
	MaxIncludeRounds int
}

// snapshotKind is the store.Job kind of a search result snapshot.
const snapshotKind = "search-snapshot"

type snapshot struct {
	Keys  []string `json:"keys"`  // "Type/id" in result order
	Query string   `json:"query"` // canonical query (self link parameters)
	Path  string   `json:"path"`  // path below the base of the self link
	Types []string `json:"types"` // searched types
}

type hit struct {
	typ, id  string
	index    map[string]any
	sortVals []any
}

func (x *SearchExecutor) maxMatches() int {
	if x.MaxMatches > 0 {
		return x.MaxMatches
	}
	return 100000
}

// Search implements Searcher.
func (x *SearchExecutor) Search(ctx context.Context, h *Handler, r *Request) (*Response, error) {
	if id := r.Query.Get("_snapshot"); id != "" {
		return x.page(ctx, h, r, id)
	}
	strict := strings.EqualFold(prefer(r, "handling"), "strict")
	types, path, err := x.searchTypes(ctx, h, r)
	if err != nil {
		return nil, err
	}
	parseType := ""
	if r.Kind != KindSearchSystem && len(types) == 1 {
		parseType = types[0]
	}
	q, err := x.Registry.Parse(parseType, r.Query, strict)
	if err != nil {
		return nil, err
	}
	q.Base = r.BaseURL
	if r.Kind == KindSearchSystem && len(q.Types) > 0 {
		types = q.Types
	}
	count, err := h.count(r.Query)
	if err != nil {
		return nil, err
	}
	var hits []hit
	for _, typ := range types {
		if err := allow(r, ActionSearch, typ); err != nil {
			if r.Kind == KindSearchSystem && len(q.Types) == 0 || r.Kind == KindSearchCompartment && r.Compartment == "*" {
				continue // whole-system or whole-compartment search: only the types the caller may search
			}
			return nil, err
		}
		tq := q.ForType(typ)
		found, err := x.matches(ctx, h, r, typ, tq, compartmentOf(r), false)
		if err != nil {
			return nil, err
		}
		hits = append(hits, found...)
		if len(hits) > x.maxMatches() {
			return nil, outcome.New(outcome.TooCostly, "the search matches too many resources; narrow it").WithStatus(http.StatusForbidden)
		}
	}
	sortHits(q, hits)
	keys := make([]string, len(hits))
	for i, h := range hits {
		keys[i] = h.typ + "/" + h.id
	}
	self := q.SelfParams()
	total := -1
	// _count=0 asks for no entries: the count is known already, and there
	// is no further page to link to.
	if q.Total == "accurate" || q.Total == "estimate" || q.Summary == "count" || count == 0 {
		total = len(keys)
	}
	snap := &snapshot{Keys: keys, Query: self.Encode(), Path: path, Types: types}
	snapID := ""
	if len(keys) > count && count > 0 && q.Summary != "count" {
		if js, ok := h.o.Store.(store.JobStore); ok {
			snapID = NewUUID()
			data, _ := json.Marshal(snap)
			now := h.o.Now().UTC()
			err := js.CreateJob(ctx, &store.Job{ID: snapID, Kind: snapshotKind, Owner: owner(r), Status: "ready",
				Finished: true, Created: now, Updated: now, Data: data})
			if err != nil {
				return nil, err
			}
		}
	}
	return x.render(ctx, h, r, q, snap, snapID, 0, count, total)
}

// searchTypes returns the types to search and the self-link path.
func (x *SearchExecutor) searchTypes(ctx context.Context, h *Handler, r *Request) ([]string, string, error) {
	switch r.Kind {
	case KindSearchType:
		return []string{r.Type}, r.Type, nil
	case KindSearchCompartment:
		if r.Type != "Patient" {
			return nil, "", outcome.New(outcome.NotSupported, "only Patient compartments are supported").WithStatus(http.StatusBadRequest)
		}
		path := r.Type + "/" + r.ID + "/" + r.Compartment
		if r.Compartment != "*" {
			if search.PatientCompartmentParams(r.Compartment) == nil && r.Compartment != "Patient" {
				return nil, "", outcome.New(outcome.Invalid, "the type is not in the Patient compartment").WithDiagnostics(r.Compartment)
			}
			return []string{r.Compartment}, path, nil
		}
		var types []string
		for _, t := range fhir.ResourceTypes() {
			if search.PatientCompartmentParams(t) != nil {
				types = append(types, t)
			}
		}
		return types, path, nil
	}
	if ts := r.Query.Get("_type"); ts != "" {
		return nil, "", nil // the parsed query carries the types
	}
	types, err := h.o.Store.Types(ctx)
	if err != nil {
		return nil, "", err
	}
	sort.Strings(types)
	return types, "", nil
}

func compartmentOf(r *Request) string {
	if r.Kind == KindSearchCompartment {
		return r.ID
	}
	return ""
}

func owner(r *Request) string {
	if r.Access == nil {
		return ""
	}
	return r.Access.Subject()
}

// matches returns the resources of typ matching q (and the compartment
// of Patient/pid when pid is set), as index-only records.
//
// Only the sort values of each hit are kept, not its whole index, unless
// keepIndex asks for it (a _has inner search reads references from it):
// a large result costs little memory.
func (x *SearchExecutor) matches(ctx context.Context, h *Handler, r *Request, typ string, q *search.Query, pid string, keepIndex bool) ([]hit, error) {
	if err := x.resolve(ctx, h, r, q, 0); err != nil {
		return nil, err
	}
	f := q.Filter()
	if pid != "" {
		f = store.And(f, store.Or(search.CompartmentFilter(pid), store.Eq(store.PathID, pidIfPatient(typ, pid))))
	}
	restr, err := x.restrictions(r, typ)
	if err != nil {
		return nil, err
	}
	cur, err := h.o.Store.Find(ctx, typ, f, store.FindOptions{IndexOnly: true})
	if err != nil {
		return nil, err
	}
	defer cur.Close(ctx)
	var out []hit
	for {
		res, err := cur.Next(ctx)
		if err != nil {
			return nil, err
		}
		if res == nil {
			return out, nil
		}
		if !q.Matches(res.Index) {
			continue
		}
		if pid != "" && !(typ == "Patient" && res.ID == pid) && !search.InCompartment(res.Index, pid) {
			continue
		}
		if !inCompartment(r, ActionSearch, res) || !restrictionsMatch(restr, res.Index) {
			continue
		}
		ht := hit{typ: typ, id: res.ID}
		if keepIndex {
			ht.index = res.Index
		}
		if len(q.Sort) > 0 {
			ht.sortVals = make([]any, len(q.Sort))
			for k := range q.Sort {
				ht.sortVals[k] = q.SortValue(res.Index, k)
			}
		}
		out = append(out, ht)
		if len(out) > x.maxMatches() {
			return nil, outcome.New(outcome.TooCostly, "the search matches too many resources; narrow it").WithStatus(http.StatusForbidden)
		}
	}
}

func pidIfPatient(typ, pid string) any {
	if typ == "Patient" {
		return pid
	}
	return "\x00" // matches no id
}

// restrictions parses the caller's granular scope restrictions for typ.
func (x *SearchExecutor) restrictions(r *Request, typ string) ([]*search.Query, error) {
	if r.Access == nil {
		return nil, nil
	}
	var out []*search.Query
	for _, v := range r.Access.Restrictions(ActionSearch, typ) {
		q, err := x.Registry.Parse(typ, v, false)
		if err != nil {
			return nil, outcome.New(outcome.Forbidden, "a scope restriction cannot be evaluated")
		}
		out = append(out, q)
	}
	return out, nil
}

// MatchRestrictions implements RestrictionMatcher: index matches at least
// one of the sets (a set that cannot be evaluated matches nothing).
func (x *SearchExecutor) MatchRestrictions(typ string, sets []url.Values, index map[string]any) bool {
	for _, v := range sets {
		q, err := x.Registry.Parse(typ, v, false)
		if err == nil && q.Matches(index) {
			return true
		}
	}
	return false
}

func restrictionsMatch(rs []*search.Query, index map[string]any) bool {
	if len(rs) == 0 {
		return true
	}
	for _, q := range rs {
		if q.Matches(index) {
			return true
		}
	}
	return false
}

// resolve turns chained and _has clauses into reference sets by running
// the inner searches (index only), innermost first.
func (x *SearchExecutor) resolve(ctx context.Context, h *Handler, r *Request, q *search.Query, depth int) error {
	for _, c := range q.Pending() {
		var refs []string
		inners := c.Chain
		if c.Has != nil {
			inners = []*search.Query{c.Has.Inner}
		}
		for _, inner := range inners {
			inner.Base = q.Base
			// A chain or _has runs a search of the inner type: it needs
			// the scope to search it, and sees only what that allows.
			if err := allow(r, ActionSearch, inner.Type); err != nil {
				return err
			}
			found, err := x.matches(ctx, h, r, inner.Type, inner, "", c.Has != nil)
			if err != nil {
				return err
			}
			for _, f := range found {
				if c.Has != nil {
					for _, ref := range search.LocalRefs(f.index, c.Has.Param) {
						if strings.HasPrefix(ref, q.Type+"/") {
							refs = append(refs, ref)
						}
					}
				} else {
					refs = append(refs, f.typ+"/"+f.id)
				}
			}
		}
		c.Resolve(refs)
	}
	return nil
}

// sortHits orders hits by the query's _sort keys (missing values last),
// then by type and id, so the order is total and repeatable.
func sortHits(q *search.Query, hits []hit) {
	sort.SliceStable(hits, func(i, j int) bool {
		for k, key := range q.Sort {
			a, b := hits[i].sortVals[k], hits[j].sortVals[k]
			c := search.CompareSort(a, b)
			if key.Desc && a != nil && b != nil {
				c = -c
			}
			if c != 0 {
				return c < 0
			}
		}
		if hits[i].typ != hits[j].typ {
			return hits[i].typ < hits[j].typ
		}
		return hits[i].id < hits[j].id
	})
}

// page serves a further page of a stored snapshot.
func (x *SearchExecutor) page(ctx context.Context, h *Handler, r *Request, id string) (*Response, error) {
	js, ok := h.o.Store.(store.JobStore)
	if !ok {
		return nil, outcome.New(outcome.NotFound, "search result not found")
	}
	job, err := js.GetJob(ctx, id)
	if err != nil || job.Kind != snapshotKind || job.Owner != owner(r) {
		return nil, outcome.New(outcome.NotFound, "search result not found or expired").WithStatus(http.StatusGone)
	}
	var snap snapshot
	if err := json.Unmarshal(job.Data, &snap); err != nil {
		return nil, outcome.Wrap(err, outcome.Exception, "interaction.Search", "corrupt search snapshot")
	}
	offset, _ := strconv.Atoi(r.Query.Get("_offset"))
	if offset < 0 {
		offset = 0
	}
	count, err := h.count(r.Query)
	if err != nil {
		return nil, err
	}
	vals, _ := url.ParseQuery(snap.Query)
	typ := ""
	if len(snap.Types) == 1 && r.Kind != KindSearchSystem {
		typ = snap.Types[0]
	}
	q, err := x.Registry.Parse(typ, vals, false)
	if err != nil {
		return nil, err
	}
	q.Base = r.BaseURL
	total := -1
	if q.Total == "accurate" || q.Total == "estimate" {
		total = len(snap.Keys)
	}
	return x.render(ctx, h, r, q, &snap, id, offset, count, total)
}

// render writes the searchset page [offset, offset+count) of snap.
func (x *SearchExecutor) render(ctx context.Context, h *Handler, r *Request, q *search.Query, snap *snapshot, snapID string, offset, count, total int) (*Response, error) {
	base := r.BaseURL
	if snap.Path != "" {
		base += "/" + snap.Path
	}
	selfURL := base
	if snap.Query != "" {
		selfURL += "?" + snap.Query
	}
	pageURL := func(off int) string {
		v := url.Values{"_snapshot": {snapID}, "_count": {strconv.Itoa(count)}}
		if off > 0 {
			v.Set("_offset", strconv.Itoa(off))
		}
		return base + "?" + v.Encode()
	}
	links := []Link{{Relation: "self", URL: selfURL}}
	if snapID != "" {
		if offset > 0 {
			links[0].URL = pageURL(offset)
		}
		if count > 0 && offset+count < len(snap.Keys) {
			links = append(links, Link{Relation: "next", URL: pageURL(offset + count)})
		}
		if offset > 0 && count > 0 {
			links = append(links, Link{Relation: "previous", URL: pageURL(max(offset-count, 0))})
		}
	}
	bw := NewBundleWriter("searchset", NewUUID(), fhir.FormatInstant(h.o.Now()), total, links)
	if q.Summary == "count" {
		return &Response{Status: http.StatusOK, Header: http.Header{}, Body: bw.Bytes()}, nil
	}
	end := min(offset+count, len(snap.Keys))
	var keys []string
	if offset < end {
		keys = snap.Keys[offset:end]
	}
	page, err := x.fetch(ctx, h, keys)
	if err != nil {
		return nil, err
	}
	seen := map[string]bool{}
	var matched []*store.Resource
	pv := x.pageVisibility(r)
	for _, k := range keys {
		res := page[k]
		if res == nil {
			continue // deleted since the snapshot
		}
		if !pv(h, res) {
			// The snapshot may come from another token of the same
			// subject, or the resource changed since: the page shows only
			// what the current caller may search.
			continue
		}
		seen[k] = true
		matched = append(matched, res)
	}
	included, err := x.includes(ctx, h, r, q, matched, seen)
	if err != nil {
		return nil, err
	}
	add := func(res *store.Resource, mode string) error {
		body, err := x.shape(q, res.JSON)
		if err != nil {
			return err
		}
		bw.Add(Entry{FullURL: r.BaseURL + "/" + res.Type + "/" + res.ID, Resource: body, SearchMode: mode})
		return nil
	}
	for _, res := range matched {
		if err := add(res, "match"); err != nil {
			return nil, err
		}
	}
	for _, res := range included {
		if err := add(res, "include"); err != nil {
			return nil, err
		}
	}
	if len(q.Unknown) > 0 {
		bw.Add(Entry{Resource: outcome.Resource(outcome.Issue{Severity: outcome.Warning, Code: outcome.NotSupported,
			Detail: "some search parameters were ignored", Diagnostics: strings.Join(q.Unknown, ", ")}), SearchMode: "outcome"})
	}
	return &Response{Status: http.StatusOK, Header: http.Header{}, Body: bw.Bytes()}, nil
}

func (x *SearchExecutor) shape(q *search.Query, js []byte) ([]byte, error) {
	if q.Summary != "" && q.Summary != "false" {
		return codec.Summary(js, q.Summary)
	}
	if len(q.Elements) > 0 {
		return codec.Elements(js, q.Elements)
	}
	return js, nil
}

// fetch reads the current versions of "Type/id" keys, one query per type.
func (x *SearchExecutor) fetch(ctx context.Context, h *Handler, keys []string) (map[string]*store.Resource, error) {
	byType := map[string][]any{}
	var order []string
	for _, k := range keys {
		t, id, _ := strings.Cut(k, "/")
		if _, ok := byType[t]; !ok {
			order = append(order, t)
		}
		byType[t] = append(byType[t], id)
	}
	out := make(map[string]*store.Resource, len(keys))
	for _, t := range order {
		if err := x.find(ctx, h, t, store.In(store.PathID, byType[t]...), func(res *store.Resource) {
			out[res.Key()] = res
		}); err != nil {
			return nil, err
		}
	}
	return out, nil
}

func (x *SearchExecutor) find(ctx context.Context, h *Handler, typ string, f *store.Filter, fn func(*store.Resource)) error {
	cur, err := h.o.Store.Find(ctx, typ, f, store.FindOptions{})
	if err != nil {
		return err
	}
	defer cur.Close(ctx)
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

// includes resolves _include and _revinclude for the page, batched: one
// query per target type and round.
func (x *SearchExecutor) includes(ctx context.Context, h *Handler, r *Request, q *search.Query, page []*store.Resource, seen map[string]bool) ([]*store.Resource, error) {
	if len(q.Include) == 0 && len(q.RevInclude) == 0 {
		return nil, nil
	}
	rounds := x.MaxIncludeRounds
	if rounds <= 0 {
		rounds = 3
	}
	var out []*store.Resource
	current := page
	for round := 0; round < rounds && len(current) > 0; round++ {
		var next []*store.Resource
		// _include: references held by the current resources.
		want := map[string]bool{}
		for _, inc := range q.Include {
			if round > 0 && !inc.Iterate {
				continue
			}
			for _, res := range current {
				if inc.Source != "*" && inc.Source != res.Type {
					continue
				}
				codes := []string{inc.Param}
				if inc.Param == "*" {
					codes = codes[:0]
					for _, p := range x.Registry.ReferenceParams(res.Type) {
						codes = append(codes, p.Code)
					}
				}
				for _, code := range codes {
					for _, ref := range search.LocalRefs(res.Index, code) {
						if inc.Target != "" && !strings.HasPrefix(ref, inc.Target+"/") {
							continue
						}
						if !seen[ref] {
							want[ref] = true
						}
					}
				}
			}
		}
		keys := make([]string, 0, len(want))
		for k := range want {
			keys = append(keys, k)
		}
		sort.Strings(keys)
		got, err := x.fetch(ctx, h, keys)
		if err != nil {
			return nil, err
		}
		for _, k := range keys {
			if res := got[k]; res != nil && x.includeVisible(h, r, res) {
				seen[k] = true
				next = append(next, res)
			}
		}
		// _revinclude: resources pointing at the current ones.
		for _, inc := range q.RevInclude {
			if round > 0 && !inc.Iterate {
				continue
			}
			if inc.Source == "*" || inc.Param == "*" {
				continue // a wildcard reverse include would scan every type
			}
			var targets []any
			for _, res := range current {
				if inc.Target == "" || inc.Target == res.Type {
					targets = append(targets, res.Key())
				}
			}
			if len(targets) == 0 {
				continue
			}
			p, ok := x.Registry.Lookup(inc.Source, inc.Param)
			if !ok {
				continue
			}
			err := x.find(ctx, h, inc.Source, store.In(p.Key()+".r", targets...), func(res *store.Resource) {
				if k := res.Key(); !seen[k] && x.includeVisible(h, r, res) {
					seen[k] = true
					next = append(next, res)
				}
			})
			if err != nil {
				return nil, err
			}
		}
		out = append(out, next...)
		current = next
	}
	return out, nil
}

// includeVisible reports whether an _include/_revinclude target may be
// returned: read scope on its type, compartment and granular restrictions.
func (x *SearchExecutor) includeVisible(h *Handler, r *Request, res *store.Resource) bool {
	if r.Access == nil {
		return true
	}
	return r.Access.Allow(ActionRead, res.Type) == nil && h.visible(r, ActionRead, res)
}

// pageVisibility returns the check a page's matches pass: the caller may
// search the type, and the resource lies in its compartment and matches
// its restrictions (parsed once per type).
func (x *SearchExecutor) pageVisibility(r *Request) func(h *Handler, res *store.Resource) bool {
	if r.Access == nil {
		return func(*Handler, *store.Resource) bool { return true }
	}
	type verdict struct {
		ok    bool
		restr []*search.Query
	}
	byType := map[string]*verdict{}
	return func(h *Handler, res *store.Resource) bool {
		v := byType[res.Type]
		if v == nil {
			v = &verdict{ok: r.Access.Allow(ActionSearch, res.Type) == nil}
			if v.ok {
				restr, err := x.restrictions(r, res.Type)
				v.ok, v.restr = err == nil, restr
			}
			byType[res.Type] = v
		}
		return v.ok && inCompartment(r, ActionSearch, res) && restrictionsMatch(v.restr, res.Index)
	}
}

// Resolve implements Resolver for conditional interactions: the current
// resources of typ matching query (strict: an unknown parameter must not
// silently widen a conditional write).
func (x *SearchExecutor) Resolve(ctx context.Context, typ string, query url.Values, access Access) ([]*store.Resource, error) {
	if x.Store == nil {
		return nil, outcome.New(outcome.NotSupported, "conditional interactions need a store for search")
	}
	q, err := x.Registry.Parse(typ, query, true)
	if err != nil {
		return nil, err
	}
	h := &Handler{o: Options{Store: x.Store}}
	r := &Request{Access: access}
	hits, err := x.matches(ctx, h, r, typ, q, "", false)
	if err != nil {
		return nil, err
	}
	keys := make([]string, len(hits))
	for i, ht := range hits {
		keys[i] = ht.typ + "/" + ht.id
	}
	got, err := x.fetch(ctx, h, keys)
	if err != nil {
		return nil, err
	}
	out := make([]*store.Resource, 0, len(keys))
	for _, k := range keys {
		if res := got[k]; res != nil {
			out = append(out, res)
		}
	}
	return out, nil
}
