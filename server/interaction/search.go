package interaction

import (
	"context"
	"fmt"
	"net/http"
	"net/url"
	"slices"
	"sort"
	"strings"

	"github.com/casefhir/casefhir/fhir"
	"github.com/casefhir/casefhir/fhir/codec"
	"github.com/casefhir/casefhir/fhir/outcome"
	"github.com/casefhir/casefhir/fhir/search"
	"github.com/casefhir/casefhir/fhir/store"
)

// SearchExecutor runs type, compartment and whole-system searches
// (https://hl7.org/fhir/R4/search.html) on a store, and resolves the
// queries of conditional interactions.
//
// A page costs what the page costs: the database filters with the
// compiled filter, sorts by the sort values extracted at write time and
// walks from the keyset cursor; every candidate is then checked exactly
// (and against the caller's access), and more rows are read until the page
// is full. Nothing is stored per search: the next link carries an opaque,
// tamper-evident cursor (Cursors), so any instance serves any page.
type SearchExecutor struct {
	Registry *search.Registry
	// Store serves Resolve (conditional interactions); Search uses the
	// Handler's store.
	Store store.Store
	// MaxInnerMatches bounds the matches of one chained or _has inner
	// search (0: DefaultMaxInnerMatches); more is refused as too costly.
	MaxInnerMatches int
	// MaxIncludeRounds bounds _include:iterate / _revinclude:iterate (0: 3).
	MaxIncludeRounds int
}

// DefaultMaxInnerMatches is the default bound of the id or reference set a
// chain or _has inner search may produce.
const DefaultMaxInnerMatches = 10000

func (x *SearchExecutor) maxInner() int {
	if x.MaxInnerMatches > 0 {
		return x.MaxInnerMatches
	}
	return DefaultMaxInnerMatches
}

// Search implements Searcher.
func (x *SearchExecutor) Search(ctx context.Context, h *Handler, r *Request) (*Response, error) {
	strict := strings.EqualFold(prefer(r, "handling"), "strict")
	types, path, err := x.searchTypes(ctx, h, r)
	if err != nil {
		return nil, err
	}
	parseType := ""
	if r.Kind != KindSearchSystem && len(types) == 1 {
		parseType = types[0]
	}
	q, err := x.Registry.Parse(parseType, withoutCursor(r.Query), strict)
	if err != nil {
		return nil, err
	}
	q.Base = r.BaseURL
	if r.Kind == KindSearchSystem && len(q.Types) > 0 {
		// Types are paged one after the other in a fixed (name) order.
		types = slices.Sorted(slices.Values(q.Types))
	}
	count, err := h.count(r.Query)
	if err != nil {
		return nil, err
	}
	// Only the types the caller may search: a whole-system or
	// whole-compartment search leaves the others out; a search naming a
	// type it may not search is refused.
	var allowed []string
	for _, typ := range types {
		if err := allow(r, ActionSearch, typ); err != nil {
			if r.Kind == KindSearchSystem && len(q.Types) == 0 || r.Kind == KindSearchCompartment && r.Compartment == "*" {
				continue
			}
			return nil, err
		}
		allowed = append(allowed, typ)
	}
	self := q.SelfParams()
	canon := self.Encode()
	var from *position
	if tok := r.Query.Get(CursorParam); tok != "" {
		p, err := h.o.Cursors.Check(tok, path, canon, r)
		if err != nil {
			return nil, err
		}
		from = &p
	}
	total := -1
	// _count=0 asks for the total only.
	if q.Total == "accurate" || q.Total == "estimate" || q.Summary == "count" || count == 0 {
		n, err := x.count(ctx, h, r, q, allowed)
		if err != nil {
			return nil, err
		}
		total = int(n)
	}
	base := r.BaseURL
	if path != "" {
		base += "/" + path
	}
	selfURL := base
	if canon != "" {
		selfURL += "?" + canon
	}
	links := []Link{{Relation: "self", URL: selfURL}}
	if from != nil {
		links[0].URL = pageLink(base, self, r.Query.Get(CursorParam))
	}
	if q.Summary == "count" || count == 0 {
		bw := NewBundleWriter("searchset", NewUUID(), fhir.FormatInstant(h.o.Now()), total, links)
		return &Response{Status: http.StatusOK, Header: http.Header{}, Body: bw.Bytes()}, nil
	}
	matched, last, more, err := x.page(ctx, h, r, q, allowed, from, count)
	if err != nil {
		return nil, err
	}
	if more {
		links = append(links, Link{Relation: "next", URL: pageLink(base, self, h.o.Cursors.Make(path, canon, r, last))})
	}
	bw := NewBundleWriter("searchset", NewUUID(), fhir.FormatInstant(h.o.Now()), total, links)
	seen := map[string]bool{}
	for _, res := range matched {
		seen[res.Key()] = true
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

// withoutCursor returns q without the paging cursor (which is not a search
// parameter).
func withoutCursor(q url.Values) url.Values {
	if _, ok := q[CursorParam]; !ok {
		return q
	}
	c := make(url.Values, len(q))
	for k, v := range q {
		if k != CursorParam {
			c[k] = v
		}
	}
	return c
}

// pageLink is the URL of the page after a cursor: the canonical query
// plus the cursor.
func pageLink(base string, self url.Values, cursor string) string {
	v := make(url.Values, len(self)+1)
	for k, vs := range self {
		v[k] = vs
	}
	v.Set(CursorParam, cursor)
	return base + "?" + v.Encode()
}

// page reads one page of matches: the types in their fixed order, each in
// the query's sort order, starting after from. It returns the matches, the
// position of the last one and whether any match follows it.
func (x *SearchExecutor) page(ctx context.Context, h *Handler, r *Request, q *search.Query, types []string, from *position, count int) ([]*store.Resource, position, bool, error) {
	var matched []*store.Resource
	var last position
	start := 0
	if from != nil {
		start = slices.Index(types, from.Type)
		if start < 0 {
			return nil, last, false, outcome.New(outcome.Invalid, "the paging cursor is not valid for this query and caller").WithStatus(http.StatusBadRequest)
		}
	}
	more := false
	for i := start; i < len(types) && !more; i++ {
		typ := types[i]
		tq := q.ForType(typ)
		sort := tq.StoreSort()
		var after *store.Position
		if from != nil && i == start {
			if len(from.Values) != len(sort) {
				return nil, last, false, outcome.New(outcome.Invalid, "the paging cursor is not valid for this query and caller").WithStatus(http.StatusBadRequest)
			}
			after = &store.Position{Values: from.Values, ID: from.ID}
		}
		err := x.scan(ctx, h, r, typ, tq, compartmentOf(r), sort, after, count+1-len(matched), false, func(res *store.Resource, pos store.Position) bool {
			if len(matched) == count {
				more = true
				return false
			}
			matched = append(matched, res)
			last = position{Type: typ, Values: pos.Values, ID: pos.ID}
			return true
		})
		if err != nil {
			return nil, last, false, err
		}
	}
	return matched, last, more, nil
}

// scan calls fn for each exact match of q on typ (in the compartment of
// Patient/pid when pid is set, and visible to the caller), in the order of
// sort, starting after after, until fn returns false or there are no more.
// It reads rows from the database in batches, the first of want rows, and
// more (larger) batches when the exact check rejected candidates.
func (x *SearchExecutor) scan(ctx context.Context, h *Handler, r *Request, typ string, q *search.Query, pid string, sort []store.SortKey, after *store.Position, want int, indexOnly bool, fn func(*store.Resource, store.Position) bool) error {
	if err := x.resolve(ctx, h, r, q, 0); err != nil {
		return err
	}
	f, err := x.filter(r, typ, q, pid)
	if err != nil {
		return err
	}
	restr, err := x.restrictions(r, typ)
	if err != nil {
		return err
	}
	batch := max(want, 1)
	for {
		cur, err := h.o.Store.Find(ctx, typ, f, store.FindOptions{Sort: sort, Limit: batch, After: after, IndexOnly: indexOnly})
		if err != nil {
			return err
		}
		n := 0
		for {
			res, err := cur.Next(ctx)
			if err != nil {
				_ = cur.Close(ctx)
				return err
			}
			if res == nil {
				break
			}
			n++
			pos := store.PositionOf(res, sort)
			after = &pos
			if !q.Matches(res.Index) {
				continue
			}
			if pid != "" && !search.InPatientCompartment(res, pid) {
				continue
			}
			if !inCompartment(r, ActionSearch, res) || !restrictionsMatch(restr, res.Index) {
				continue
			}
			if !fn(res, pos) {
				return cur.Close(ctx)
			}
		}
		if err := cur.Close(ctx); err != nil {
			return err
		}
		if n < batch {
			return nil
		}
		batch = min(batch*2, 1000)
	}
}

// filter compiles q for typ with what narrows it besides: the compartment
// searched, the caller's patient compartment and granular restrictions.
// Counts use it as is.
func (x *SearchExecutor) filter(r *Request, typ string, q *search.Query, pid string) (*store.Filter, error) {
	f := q.Filter()
	if pid != "" {
		f = store.And(f, search.PatientCompartmentFilter(typ, pid))
	}
	if r.Access != nil {
		if cp, bounded := r.Access.Compartment(ActionSearch, typ); bounded {
			f = store.And(f, search.PatientCompartmentFilter(typ, cp))
		}
		restr, err := x.restrictions(r, typ)
		if err != nil {
			return nil, err
		}
		if len(restr) > 0 {
			var alts []*store.Filter
			for _, rq := range restr {
				alts = append(alts, rq.Filter())
			}
			f = store.And(f, store.Or(alts...))
		}
	}
	return f, nil
}

// count answers _total and _summary=count: the database's count of the
// compiled filter on every type. The compiled filter is exact for every
// parameter type and modifier but :contains and :text on strings and
// tokens, :missing on composite parameters and the precision ranges of
// ap dates and numbers, where the database may count candidates the exact
// check would reject.
func (x *SearchExecutor) count(ctx context.Context, h *Handler, r *Request, q *search.Query, types []string) (int64, error) {
	var total int64
	for _, typ := range types {
		tq := q.ForType(typ)
		if err := x.resolve(ctx, h, r, tq, 0); err != nil {
			return 0, err
		}
		f, err := x.filter(r, typ, tq, compartmentOf(r))
		if err != nil {
			return 0, err
		}
		n, err := h.o.Store.Count(ctx, typ, f)
		if err != nil {
			return 0, err
		}
		total += n
	}
	return total, nil
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
// the inner searches (index only), innermost first. An inner search may
// produce at most MaxInnerMatches ids or references; more is refused with
// 403 too-costly, never truncated.
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
			var tooMany bool
			err := x.scan(ctx, h, r, inner.Type, inner, "", nil, nil, 1000, true, func(res *store.Resource, _ store.Position) bool {
				if c.Has != nil {
					for _, ref := range search.LocalRefs(res.Index, c.Has.Param) {
						if strings.HasPrefix(ref, q.Type+"/") {
							refs = append(refs, ref)
						}
					}
				} else {
					refs = append(refs, res.Key())
				}
				tooMany = len(refs) > x.maxInner()
				return !tooMany
			})
			if err != nil {
				return err
			}
			if tooMany {
				return outcome.New(outcome.TooCostly, fmt.Sprintf("a chained or _has parameter matches more than %d resources; narrow it", x.maxInner())).
					WithStatus(http.StatusForbidden)
			}
		}
		c.Resolve(refs)
	}
	return nil
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
			f, ok := x.Registry.ReferencesTo(inc.Source, inc.Param, targets...)
			if !ok {
				continue
			}
			err := x.find(ctx, h, inc.Source, f, func(res *store.Resource) {
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
	// Two matches are enough to tell one from several.
	var out []*store.Resource
	err = x.scan(ctx, h, r, typ, q, "", nil, nil, 2, false, func(res *store.Resource, _ store.Position) bool {
		out = append(out, res)
		return len(out) < 2
	})
	if err != nil {
		return nil, err
	}
	return out, nil
}
