package mongostore

import (
	"context"

	"go.mongodb.org/mongo-driver/v2/bson"

	"github.com/casefhir/casefhir/fhir/store"
)

// How Find orders rows where a sort value is missing.
//
// The contract (store.ComparePositions) puts a row without a value at a
// sort key after every row with one, in either direction; MongoDB sorts a
// missing value as null, the lowest of all: first ascending, last
// descending. Descending keys therefore sort right as they are. An
// ascending key on an Index path is "split": the rows are read as
// separate queries by whether they have a value there (the "presence"
// of the path), each sorted by the values it has, from an index:
//
//   - the plan walks the sort keys from the left; while the leading key is
//     split, its rows with a value come first (one group), and the rows
//     without one follow (the key is then constant and the next key leads);
//   - inside a group, the rows of the different presences of the other
//     split keys interleave, so the group merges their queries by
//     store.ComparePositions.
//
// So a sort on one ascending key is one query while the page is filled by
// rows that have the value, and one more for the page where they run out.
// Each query carries the keyset condition "after opt.After" rewritten for
// its presence (a query that can have no row after the position is not
// sent), a limit of what is still needed, and its sort (then _id).

// presence is whether the rows of a query have a value at a sort path.
type presence int

const (
	unknown presence = iota // not split: both (a descending key)
	present
	missing
)

// plan is one Find: the base query, the sort keys, and the split paths.
type plan struct {
	s     *Store
	typ   string
	base  bson.D
	opt   store.FindOptions
	after []any    // opt.After values, normalised (nil: none at that key)
	split []string // distinct Index paths of ascending keys
}

func newPlan(s *Store, typ string, f *store.Filter, opt store.FindOptions) *plan {
	p := &plan{s: s, typ: typ, base: query(f), opt: opt}
	seen := map[string]bool{}
	for _, k := range opt.Sort {
		if !k.Desc && !scalarPath(k.Path) && !seen[k.Path] {
			seen[k.Path] = true
			p.split = append(p.split, k.Path)
		}
	}
	if opt.After != nil {
		p.after = make([]any, len(opt.Sort))
		for i := range p.after {
			if i < len(opt.After.Values) {
				p.after[i] = normValue(opt.After.Values[i])
			}
		}
	}
	return p
}

// scalarPath reports whether path is one every document has, a scalar.
func scalarPath(path string) bool { return path == store.PathID || path == store.PathLastUpdated }

// groups returns the presences of the queries, group by group (see above).
func (p *plan) groups() [][]map[string]presence {
	fixed := map[string]presence{}
	var out [][]map[string]presence
	for i := 0; ; i++ {
		for i < len(p.opt.Sort) && fixed[p.opt.Sort[i].Path] == missing {
			i++ // constant in this group and after: a tie
		}
		var lead string
		if i < len(p.opt.Sort) && p.isSplit(p.opt.Sort[i].Path) {
			lead = p.opt.Sort[i].Path
		}
		var free []string
		for _, sp := range p.split {
			if _, ok := fixed[sp]; !ok && sp != lead {
				free = append(free, sp)
			}
		}
		var group []map[string]presence
		for mask := 0; mask < 1<<len(free); mask++ {
			m := make(map[string]presence, len(p.split))
			for k, v := range fixed {
				m[k] = v
			}
			for j, sp := range free {
				m[sp] = present
				if mask&(1<<j) != 0 {
					m[sp] = missing
				}
			}
			if lead != "" {
				m[lead] = present
			}
			group = append(group, m)
		}
		out = append(out, group)
		if lead == "" {
			return out
		}
		fixed[lead] = missing
	}
}

func (p *plan) isSplit(path string) bool {
	for _, sp := range p.split {
		if sp == path {
			return true
		}
	}
	return false
}

// state returns the presence of key path in a query of presences m.
func state(m map[string]presence, path string) presence {
	if scalarPath(path) {
		return present
	}
	return m[path]
}

// query returns the filter and sort of the query of presences m, and
// false when no row of it can come after opt.After.
func (p *plan) query(m map[string]presence) (bson.D, bson.D, bool) {
	parts := bson.A{p.base}
	for _, sp := range p.split {
		switch m[sp] {
		case present:
			parts = append(parts, bson.D{{Key: fieldPath(sp), Value: bson.D{{Key: "$ne", Value: nil}}}})
		case missing:
			parts = append(parts, bson.D{{Key: fieldPath(sp), Value: nil}})
		}
	}
	if p.opt.After != nil {
		c := p.afterCond(m)
		if c.never {
			return nil, nil, false
		}
		if !c.always {
			parts = append(parts, c.d)
		}
	}
	sort := make(bson.D, 0, len(p.opt.Sort)+1)
	seen := map[string]bool{}
	for _, k := range p.opt.Sort {
		f := fieldPath(k.Path)
		if seen[f] || state(m, k.Path) == missing {
			continue
		}
		seen[f] = true
		dir := 1
		if k.Desc {
			dir = -1
		}
		sort = append(sort, bson.E{Key: f, Value: dir})
	}
	if !seen[fID] {
		sort = append(sort, bson.E{Key: fID, Value: 1})
	}
	return bson.D{{Key: "$and", Value: parts}}, sort, true
}

// cond is a query condition that may be known to hold always or never.
type cond struct {
	d             bson.D
	always, never bool
}

var (
	always = cond{always: true}
	never  = cond{never: true}
)

func leafCond(d bson.D) cond { return cond{d: d} }

func and(cs ...cond) cond { return combine("$and", cs, never, always) }

func or(cs ...cond) cond { return combine("$or", cs, always, never) }

// combine joins cs with op; a condition like absorb decides the result, one
// like neutral drops out (and nothing left is neutral).
func combine(op string, cs []cond, absorb, neutral cond) cond {
	var parts bson.A
	for _, c := range cs {
		switch {
		case c.always == absorb.always && c.never == absorb.never:
			return absorb
		case c.always || c.never:
			// neutral
		default:
			parts = append(parts, c.d)
		}
	}
	switch len(parts) {
	case 0:
		return neutral
	case 1:
		return cond{d: parts[0].(bson.D)}
	}
	return cond{d: bson.D{{Key: op, Value: parts}}}
}

// afterCond is "the row comes strictly after opt.After" for rows of
// presences m: for some key, every earlier key ties and this one is after;
// or every key ties and the id is greater.
func (p *plan) afterCond(m map[string]presence) cond {
	var alts []cond
	ties := make([]cond, 0, len(p.opt.Sort)+1)
	for i, k := range p.opt.Sort {
		tie, after := p.keyCond(k, p.after[i], state(m, k.Path))
		alts = append(alts, and(append(ties[:len(ties):len(ties)], after)...))
		ties = append(ties, tie)
	}
	idAfter := leafCond(bson.D{{Key: fID, Value: bson.D{{Key: "$gt", Value: p.opt.After.ID}}}})
	alts = append(alts, and(append(ties, idAfter)...))
	return or(alts...)
}

// keyCond returns, for one sort key and the position's value pv there,
// the conditions "the row ties with pv" and "the row comes after pv", for
// rows of presence st at that key. A path may lead to several values:
// ascending order uses the smallest, descending the largest, so "ties"
// and "after" say so of all of them.
func (p *plan) keyCond(k store.SortKey, pv any, st presence) (tie, after cond) {
	f := fieldPath(k.Path)
	if pv == nil {
		switch st {
		case present:
			return never, never // rows with a value come before
		case missing:
			return always, never
		}
		return leafCond(bson.D{{Key: f, Value: nil}}), never
	}
	if st == missing {
		return never, always // rows without a value come after
	}
	v := bsonValue(pv)
	gt, lt, lte := "$gt", "$lt", "$lte"
	if k.Desc {
		gt, lt, lte = "$lt", "$gt", "$gte"
	}
	if scalarPath(k.Path) {
		tie = leafCond(bson.D{{Key: f, Value: v}})
		after = leafCond(bson.D{{Key: f, Value: bson.D{{Key: gt, Value: v}}}})
	} else {
		// Ascending: smallest == pv (some == pv, none < pv); smallest > pv
		// (some > pv, none <= pv). Descending mirrors it.
		tie = leafCond(bson.D{{Key: f, Value: bson.D{{Key: "$eq", Value: v}, {Key: "$not", Value: bson.D{{Key: lt, Value: v}}}}}})
		after = leafCond(bson.D{{Key: f, Value: bson.D{{Key: gt, Value: v}, {Key: "$not", Value: bson.D{{Key: lte, Value: v}}}}}})
	}
	if st == unknown {
		after = or(after, leafCond(bson.D{{Key: f, Value: nil}}))
	}
	return tie, after
}

// cursor runs the plan: one MongoDB cursor when there is one query,
// else a merge (see mergeCursor).
func (p *plan) cursor(ctx context.Context) (store.Cursor, error) {
	groups := p.groups()
	if len(groups) == 1 && len(groups[0]) == 1 {
		q, sort, ok := p.query(groups[0][0])
		if !ok {
			return emptyCursor{}, nil
		}
		return p.open(ctx, q, sort, p.opt.Skip, p.opt.Limit)
	}
	return &mergeCursor{p: p, groups: groups, skip: p.opt.Skip}, nil
}

func (p *plan) open(ctx context.Context, q, sort bson.D, skip, limit int) (*cursor, error) {
	mc, err := p.s.db.Collection(p.typ).Find(ctx, q, findOptions(sort, p.opt.IndexOnly, skip, limit))
	if err != nil {
		return nil, translate("mongostore.Find", err)
	}
	return &cursor{typ: p.typ, cur: mc, withJSON: !p.opt.IndexOnly, limit: limit}, nil
}

// mergeCursor reads the groups of a plan one after the other, opening a
// group's queries only when the previous group is exhausted, and merges
// the queries of a group in the contract's order. It applies Skip and
// Limit itself.
type mergeCursor struct {
	p      *plan
	groups [][]map[string]presence
	gi     int     // next group to open
	heads  []*head // the open group's queries
	skip   int
	n      int // rows returned
}

type head struct {
	c   *cursor
	r   *store.Resource
	pos store.Position
}

// Next implements store.Cursor.
func (m *mergeCursor) Next(ctx context.Context) (*store.Resource, error) {
	for {
		if m.p.opt.Limit > 0 && m.n >= m.p.opt.Limit {
			return nil, nil
		}
		r, err := m.next(ctx)
		if r == nil || err != nil {
			return nil, err
		}
		if m.skip > 0 {
			m.skip--
			continue
		}
		m.n++
		return r, nil
	}
}

func (m *mergeCursor) next(ctx context.Context) (*store.Resource, error) {
	for {
		best := -1
		for i, h := range m.heads {
			if h.r != nil && (best < 0 || store.ComparePositions(h.pos, m.heads[best].pos, m.p.opt.Sort) < 0) {
				best = i
			}
		}
		if best >= 0 {
			h := m.heads[best]
			r := h.r
			if err := m.advance(ctx, h); err != nil {
				return nil, err
			}
			return r, nil
		}
		if err := m.closeHeads(ctx); err != nil {
			return nil, err
		}
		if m.gi >= len(m.groups) {
			return nil, nil
		}
		if err := m.openGroup(ctx, m.groups[m.gi]); err != nil {
			return nil, err
		}
		m.gi++
	}
}

// openGroup sends the queries of one group, each limited to what the page
// still needs.
func (m *mergeCursor) openGroup(ctx context.Context, group []map[string]presence) error {
	limit := 0
	if m.p.opt.Limit > 0 {
		limit = m.skip + m.p.opt.Limit - m.n
	}
	for _, pres := range group {
		q, sort, ok := m.p.query(pres)
		if !ok {
			continue
		}
		c, err := m.p.open(ctx, q, sort, 0, limit)
		if err != nil {
			return err
		}
		h := &head{c: c}
		m.heads = append(m.heads, h)
		if err := m.advance(ctx, h); err != nil {
			return err
		}
	}
	return nil
}

func (m *mergeCursor) advance(ctx context.Context, h *head) error {
	r, err := h.c.Next(ctx)
	if err != nil {
		return err
	}
	h.r = r
	if r != nil {
		h.pos = store.PositionOf(r, m.p.opt.Sort)
	}
	return nil
}

func (m *mergeCursor) closeHeads(ctx context.Context) error {
	var first error
	for _, h := range m.heads {
		if err := h.c.Close(ctx); err != nil && first == nil {
			first = err
		}
	}
	m.heads = nil
	return first
}

// Close implements store.Cursor.
func (m *mergeCursor) Close(ctx context.Context) error {
	m.gi = len(m.groups)
	return m.closeHeads(ctx)
}

// emptyCursor has no rows.
type emptyCursor struct{}

func (emptyCursor) Next(context.Context) (*store.Resource, error) { return nil, nil }
func (emptyCursor) Close(context.Context) error                   { return nil }
