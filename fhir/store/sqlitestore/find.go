package sqlitestore

import (
	"cmp"
	"context"
	"database/sql"
	"errors"
	"slices"
	"strconv"
	"strings"

	"github.com/casefhir/casefhir/fhir/outcome"
	"github.com/casefhir/casefhir/fhir/store"
)

// builder translates a store.Filter into an SQL predicate on the current
// row r, with its arguments.
type builder struct {
	s    *Store
	typ  string
	args []any
	// missing is set when a path had no interned id: another process may
	// have added it since the cache was read.
	missing bool
	// probe makes leaves correlated EXISTS lookups by rk (the rows are
	// walked in the order of the page) instead of IN lists (the rows are
	// found from the filter's index entries and sorted).
	probe bool
	// entries makes a leaf the bare query of its index entries
	// ("SELECT rk FROM vals WHERE ..."), for estimates.
	entries bool
}

// exact reports whether every leaf of f has an SQL translation that
// matches exactly what store.Filter.Match does. A numeric path segment is
// exact when the index has it as an object key (search's composite
// parameters); otherwise it may select an array element, which only
// Match does.
func (s *Store) exact(typ string, f *store.Filter) bool {
	if f == nil {
		return true
	}
	for _, c := range f.Children {
		if !s.exact(typ, c) {
			return false
		}
	}
	if f.Path != "" && numericSegment(f.Path) && len(s.pidsUnder(typ, f.Path)) == 0 {
		return false
	}
	if f.Path != "" && s.derivedUnder(typ, f.Path) {
		return false // no rows: checked on the stored index
	}
	return exactValues(f)
}

// exactValues reports whether f's own values are scalars.
func exactValues(f *store.Filter) bool {
	if f == nil {
		return true
	}
	check := func(v any) bool {
		switch v.(type) {
		case map[string]any, []any:
			return false
		}
		return true
	}
	if !check(f.Value) {
		return false
	}
	for _, v := range f.Values {
		if !check(v) {
			return false
		}
	}
	return true
}

func (b *builder) pred(f *store.Filter) string {
	if f == nil {
		return "1"
	}
	switch f.Op {
	case store.OpAll:
		return "1"
	case store.OpAnd, store.OpOr:
		if len(f.Children) == 0 {
			if f.Op == store.OpAnd {
				return "1"
			}
			return "0"
		}
		children := f.Children
		if b.probe && f.Op == store.OpAnd {
			// Probed per walked row: equalities first (cheap, usually
			// the most selective), then the rest, as SQLite evaluates
			// them in order.
			children = slices.Clone(children)
			slices.SortStableFunc(children, func(x, y *store.Filter) int { return cmp.Compare(probeRank(x), probeRank(y)) })
		}
		parts := make([]string, len(children))
		for i, c := range children {
			parts[i] = b.pred(c)
		}
		sep := " AND "
		if f.Op == store.OpOr {
			sep = " OR "
		}
		return "(" + strings.Join(parts, sep) + ")"
	case store.OpNot:
		if len(f.Children) == 0 {
			return "1"
		}
		return "NOT " + b.pred(store.Or(f.Children...))
	}
	switch f.Path {
	case store.PathID:
		return b.idPred(f)
	case store.PathLastUpdated:
		return b.luPred(f)
	}
	switch f.Op {
	case store.OpEq:
		return b.eq(f.Path, f.Value)
	case store.OpIn:
		if len(f.Values) == 0 {
			return "0"
		}
		parts := make([]string, len(f.Values))
		for i, v := range f.Values {
			parts[i] = b.eq(f.Path, v)
		}
		return "(" + strings.Join(parts, " OR ") + ")"
	case store.OpLt, store.OpLte, store.OpGt, store.OpGte:
		l, ok := scalar(f.Value)
		if !ok || l.kind == kNull {
			return "0"
		}
		return b.vals(f.Path, l.kind, "v"+cmpOp(f.Op)+"?", l.v)
	case store.OpPrefix:
		p, ok := f.Value.(string)
		if !ok {
			return "0"
		}
		if hi, ok := successor(p); ok {
			return b.vals(f.Path, kString, "v>=? AND v<?", p, hi)
		}
		return b.vals(f.Path, kString, "v>=?", p)
	case store.OpContains:
		p, ok := f.Value.(string)
		if !ok {
			return "0"
		}
		return b.vals(f.Path, kString, "instr(v, ?)>0", p)
	case store.OpExists:
		yes, _ := f.Value.(bool)
		e := b.exists(f.Path)
		if yes {
			return e
		}
		return "NOT " + e
	}
	return "0"
}

// probeRank orders the conditions of an And probed per row: an equality
// on an Index path first.
func probeRank(f *store.Filter) int {
	if f.Op == store.OpEq && f.Value != nil && f.Path != store.PathID && f.Path != store.PathLastUpdated {
		return 0
	}
	return 1
}

func cmpOp(op store.Op) string {
	switch op {
	case store.OpLt:
		return "<"
	case store.OpLte:
		return "<="
	case store.OpGt:
		return ">"
	case store.OpGte:
		return ">="
	}
	return "="
}

// successor returns the least string greater than every string with
// prefix p (byte order), when there is one.
func successor(p string) (string, bool) {
	b := []byte(p)
	for i := len(b) - 1; i >= 0; i-- {
		if b[i] < 0xff {
			b[i]++
			return string(b[:i+1]), true
		}
	}
	return "", false
}

// vals is "r.rk IN (rows of path's kind matching cond)".
func (b *builder) vals(path string, kind byte, cond string, args ...any) string {
	pid, ok := b.s.pid(b.typ, path, kind)
	if !ok {
		b.missing = true
		return "0"
	}
	b.args = append(b.args, pid)
	b.args = append(b.args, args...)
	if b.entries {
		return "SELECT rk FROM vals WHERE pid=? AND " + cond
	}
	if b.probe {
		if cond == "v=?" {
			// An equality probe is a point lookup in the primary key:
			// the rows walked in a page's order meet the entries of one
			// (pid, v) next to each other, a few pages that stay cached,
			// where the (rk, pid) index would be read across every walked
			// resource's values.
			return "EXISTS (SELECT 1 FROM vals INDEXED BY sqlite_autoindex_vals_1 WHERE pid=? AND v=? AND rk=r.rk)"
		}
		return "EXISTS (SELECT 1 FROM vals WHERE rk=r.rk AND pid=? AND " + cond + ")"
	}
	return "r.rk IN (SELECT rk FROM vals WHERE pid=? AND " + cond + ")"
}

func (b *builder) eq(path string, v any) string {
	l, ok := scalar(v)
	if !ok {
		return "0"
	}
	if l.kind == kNull {
		// A null leaf, or no value at all.
		return "(NOT " + b.exists(path) + " OR " + b.vals(path, kNull, "v=0") + ")"
	}
	return b.vals(path, l.kind, "v=?", l.v)
}

func (b *builder) exists(path string) string {
	pids := b.s.pidsUnder(b.typ, path)
	if len(pids) == 0 {
		b.missing = true
		return "0"
	}
	for _, p := range pids {
		b.args = append(b.args, p)
	}
	if b.entries {
		return "SELECT rk FROM vals WHERE pid IN (" + placeholders(len(pids)) + ")"
	}
	if b.probe {
		return "EXISTS (SELECT 1 FROM vals WHERE rk=r.rk AND pid IN (" + placeholders(len(pids)) + "))"
	}
	return "r.rk IN (SELECT rk FROM vals WHERE pid IN (" + placeholders(len(pids)) + "))"
}

func placeholders(n int) string { return strings.TrimSuffix(strings.Repeat("?,", n), ",") }

func (b *builder) idPred(f *store.Filter) string {
	switch f.Op {
	case store.OpIn:
		n := 0
		for _, x := range f.Values {
			if v, ok := x.(string); ok {
				b.args = append(b.args, v)
				n++
			}
		}
		if n == 0 {
			return "0"
		}
		return "r.id IN (" + placeholders(n) + ")"
	case store.OpExists:
		if yes, _ := f.Value.(bool); yes {
			return "1"
		}
		return "0"
	}
	v, ok := f.Value.(string)
	if !ok {
		return "0"
	}
	switch f.Op {
	case store.OpEq, store.OpLt, store.OpLte, store.OpGt, store.OpGte:
		b.args = append(b.args, v)
		return "r.id" + cmpOp(f.Op) + "?"
	case store.OpPrefix:
		b.args = append(b.args, v)
		if hi, ok := successor(v); ok {
			b.args = append(b.args, hi)
			return "(r.id>=? AND r.id<?)"
		}
		return "r.id>=?"
	case store.OpContains:
		b.args = append(b.args, v)
		return "instr(r.id, ?)>0"
	}
	return "0"
}

func (b *builder) luPred(f *store.Filter) string {
	tm := func(v any) (int64, bool) {
		l, ok := scalar(v)
		return asInt(l.v), ok && l.kind == kTime
	}
	switch f.Op {
	case store.OpEq, store.OpLt, store.OpLte, store.OpGt, store.OpGte:
		v, ok := tm(f.Value)
		if !ok {
			return "0"
		}
		b.args = append(b.args, v)
		return "r.lu" + cmpOp(f.Op) + "?"
	case store.OpIn:
		var parts []string
		for _, x := range f.Values {
			if v, ok := tm(x); ok {
				b.args = append(b.args, v)
				parts = append(parts, "?")
			}
		}
		if len(parts) == 0 {
			return "0"
		}
		return "r.lu IN (" + strings.Join(parts, ",") + ")"
	case store.OpExists:
		if yes, _ := f.Value.(bool); yes {
			return "1"
		}
	}
	return "0"
}

func asInt(v any) int64 { i, _ := v.(int64); return i }

// sortSources replaces derived sort paths by their sources (DeriveSorts).
// A derived path sorts in its source's direction only: its value is the
// source's smallest (or largest) value, which the other direction's walk
// does not compute.
func (s *Store) sortSources(typ string, keys []store.SortKey) ([]store.SortKey, error) {
	derived := s.derivedOf(typ)
	if len(derived) == 0 {
		return keys, nil
	}
	var out []store.SortKey
	for i, k := range keys {
		src, ok := derived[k.Path]
		if !ok {
			continue
		}
		if src.Max != k.Desc {
			return nil, outcome.New(outcome.NotSupported, "a derived sort path sorts in its own direction only").
				WithOp("sqlitestore.Find").WithDiagnostics(k.Path)
		}
		if out == nil {
			out = slices.Clone(keys)
		}
		out[i].Path = src.Path
	}
	if out == nil {
		return keys, nil
	}
	return out, nil
}

// sortable lists the pids a sort path can have a value at.
func (s *Store) sortPids(typ, path string) []int64 {
	var out []int64
	for _, k := range []byte{kString, kNumber, kTime, kBool} {
		if pid, ok := s.pid(typ, path, k); ok {
			out = append(out, pid)
		}
	}
	return out
}

// phase is one SQL statement of a Find; the results of phases follow each
// other.
type phase struct {
	q    string
	args []any
}

const findCols = "SELECT h.type, h.id, h.version, h.lu, h.deleted, h.json, h.idx"
const findColsNoJSON = "SELECT h.type, h.id, h.version, h.lu, h.deleted, NULL, h.idx"

// Find implements store.Store.
func (s *Store) Find(ctx context.Context, typ string, f *store.Filter, opt store.FindOptions) (store.Cursor, error) {
	const op = "sqlitestore.Find"
	if err := checkType(op, typ); err != nil {
		return nil, err
	}
	phases, exactSQL, err := s.phases(ctx, typ, f, opt)
	if err != nil {
		return nil, err
	}
	tx, err := s.r.BeginTx(ctx, nil)
	if err != nil {
		return nil, translate(op, err)
	}
	c := &cursor{ctx: ctx, tx: tx, phases: phases, skip: max(opt.Skip, 0), limit: opt.Limit, withJSON: !opt.IndexOnly}
	if !exactSQL {
		c.match = f
	}
	return c, nil
}

// phases plans a Find: its statements, and whether they match f exactly
// (otherwise the cursor re-checks each row).
func (s *Store) phases(ctx context.Context, typ string, f *store.Filter, opt store.FindOptions) ([]phase, bool, error) {
	var err error
	if opt.Sort, err = s.sortSources(typ, opt.Sort); err != nil {
		return nil, false, err
	}
	exactSQL := s.exact(typ, f)
	// A page (Limit) of a filter matching many rows walks the page's order
	// and probes the filter per row; a selective filter is read from its
	// index entries and its matches sorted. Either costs about a page.
	drive := orderDriven
	if exactSQL && opt.Limit > 0 && filtered(f) {
		est, err := s.estimate(ctx, typ, f)
		if err != nil {
			return nil, false, err
		}
		if est <= selectiveRows {
			drive = filterDriven
		}
	} else if exactSQL && filtered(f) {
		drive = filterDriven
	}
	// A page in creation order may walk one equality's index entries
	// (they are in creation order) instead of the type's rows.
	var ent *entries
	rest := f
	if exactSQL && drive == orderDriven && len(opt.Sort) == 0 && filtered(f) {
		var err error
		if ent, rest, err = s.entryDriver(ctx, typ, f); err != nil {
			return nil, false, err
		}
	}
	where, args, err := s.where(ctx, typ, rest, exactSQL, drive == orderDriven, opt.Sort)
	if err != nil {
		return nil, false, err
	}
	cols := findCols
	if opt.IndexOnly {
		cols = findColsNoJSON
	}
	limit := -1
	if exactSQL && opt.Limit > 0 {
		limit = opt.Limit + max(opt.Skip, 0)
	}
	res := "resources r"
	if drive == filterDriven && drivable(f) {
		res = notIndexed
	}
	phases, err := s.plan(typ, cols, where, args, opt, limit, drive, res, ent)
	return phases, exactSQL, err
}

// plan builds the statements of a Find. ent, when set, is the equality
// whose index entries a page in creation order walks; where holds the
// rest of the filter.
func (s *Store) plan(typ, cols, where string, wargs []any, opt store.FindOptions, limit int, drive driver, res string, ent *entries) ([]phase, error) {
	base := func() []any { return append([]any{typ}, wargs...) }
	keys := opt.Sort
	if len(keys) == 1 && keys[0].Path == store.PathID {
		q := cols + " FROM " + res + " JOIN history h ON h.hrow=r.hrow WHERE r.type=? AND r.deleted=0 AND " + where
		args := base()
		dir, cmp := "", ">"
		if keys[0].Desc {
			dir, cmp = " DESC", "<"
		}
		if opt.After != nil {
			q += " AND r.id" + cmp + "?"
			args = append(args, opt.After.ID)
		}
		return []phase{{q + " ORDER BY r.id" + dir + " LIMIT ?", append(args, limit)}}, nil
	}
	if len(keys) == 0 {
		// Creation order: rk. The type's live rows are walked in the
		// partial index on type (its entries end with rk), or one
		// equality's entries in the (pid, v, rk) key.
		order := "r.rk"
		q := cols + " FROM " + res + " JOIN history h ON h.hrow=r.hrow WHERE r.type=? AND r.deleted=0 AND " + where
		args := base()
		if ent != nil {
			order = "e.rk"
			q = cols + " FROM vals e INDEXED BY sqlite_autoindex_vals_1 CROSS JOIN resources r ON r.rk=e.rk JOIN history h ON h.hrow=r.hrow" +
				" WHERE e.pid=? AND e.v=? AND r.type=? AND r.deleted=0 AND " + where
			args = append([]any{ent.pid, ent.v}, base()...)
		}
		if opt.After != nil {
			// Rows are never removed from resources (a delete is a
			// version), so the position's id still names its row.
			q += " AND " + order + ">(SELECT rk FROM resources WHERE type=? AND id=?)"
			args = append(args, typ, opt.After.ID)
		}
		return []phase{{q + " ORDER BY " + order + " LIMIT ?", append(args, limit)}}, nil
	}
	if len(keys) == 1 && keys[0].Path == store.PathLastUpdated {
		dir := ""
		cmp := ">"
		if keys[0].Desc {
			dir, cmp = " DESC", "<"
		}
		q := cols + " FROM " + res + " JOIN history h ON h.hrow=r.hrow WHERE r.type=? AND r.deleted=0 AND " + where
		args := base()
		if a := opt.After; a != nil && len(a.Values) > 0 {
			l, _ := scalar(a.Values[0])
			q += " AND r.lu" + cmp + "=? AND (r.lu" + cmp + "? OR r.id>?)"
			args = append(args, l.v, l.v, a.ID)
		}
		return []phase{{q + " ORDER BY r.lu" + dir + ", r.id LIMIT ?", append(args, limit)}}, nil
	}
	if len(keys) == 1 && keys[0].Path != store.PathID && drive == orderDriven {
		pids := s.sortPids(typ, keys[0].Path)
		if len(pids) <= 1 {
			return s.planIndexed(typ, cols, where, wargs, keys[0], pids, opt.After, limit), nil
		}
	}
	return s.planGeneral(typ, cols, where, wargs, keys, opt.After, limit, res), nil
}

// entries is one equality's index entries: (pid, v) in the vals key.
type entries struct {
	pid int64
	v   any
}

// entryDriver picks, for a page in creation order, the equality of f
// (f itself or a child of an And) with the fewest matches by the counts
// table, when that is fewer than the type's rows: its index entries are
// in creation order, so walking them and probing the rest of f per entry
// finds the page in fewer rows than walking the type. It returns the
// rest of f (nil ent: f as it is).
func (s *Store) entryDriver(ctx context.Context, typ string, f *store.Filter) (*entries, *store.Filter, error) {
	cands := []*store.Filter{f}
	if f.Op == store.OpAnd {
		cands = f.Children
	}
	var best *store.Filter
	var bestEnt *entries
	var bestN int64
	for _, c := range cands {
		leaf := eqLeaf(c)
		if leaf == nil {
			continue
		}
		l, ok := scalar(leaf.Value)
		if !ok || l.kind == kNull || !counted(leaf.Path, l.kind) {
			continue
		}
		pid, ok := s.pid(typ, leaf.Path, l.kind)
		if !ok {
			continue
		}
		n, err := s.countRow(ctx, pid, l.v)
		if err != nil {
			return nil, f, err
		}
		if best == nil || n < bestN {
			best, bestEnt, bestN = c, &entries{pid: pid, v: l.v}, n
		}
	}
	if best == nil {
		return nil, f, nil
	}
	all, err := s.countRow(ctx, 0, typ)
	if err != nil {
		return nil, f, err
	}
	if bestN >= all {
		return nil, f, nil
	}
	if best == f {
		return bestEnt, store.All(), nil
	}
	rest := make([]*store.Filter, 0, len(f.Children)-1)
	for _, c := range f.Children {
		if c != best {
			rest = append(rest, c)
		}
	}
	return bestEnt, store.And(rest...), nil
}

// driver says what a Find's statement walks first.
type driver int

const (
	orderDriven  driver = iota // the sort order's index, probing the filter per row
	filterDriven               // the filter's index entries, then a sort of the matches
)

// selectiveRows is the estimated match count up to which a page is read
// from the filter's index entries (and sorted); above it the page walks
// the sort order, which then finds a match within about
// (rows of the type / selectiveRows) rows.
var selectiveRows = 2000

// notIndexed makes SQLite find the rows through the filter's rk lists
// (rk is the rowid): without statistics its planner would rather walk the
// type's rows and test each.
const notIndexed = "resources r NOT INDEXED"

// drivable reports whether f's rows can be found from index entries of
// Index paths (a positive leaf, an Or of such, an And with one), with no
// id lookup the (type, id) index serves better.
func drivable(f *store.Filter) bool {
	if f == nil {
		return false
	}
	switch f.Op {
	case store.OpAnd:
		any := false
		for _, c := range f.Children {
			if idLookup(c) {
				return false
			}
			any = any || drivable(c)
		}
		return any
	case store.OpOr:
		for _, c := range f.Children {
			if !drivable(c) {
				return false
			}
		}
		return len(f.Children) > 0
	case store.OpAll, store.OpNot:
		return false
	case store.OpExists:
		if yes, _ := f.Value.(bool); !yes {
			return false
		}
	case store.OpEq:
		if f.Value == nil {
			return false
		}
	}
	return f.Path != store.PathID && f.Path != store.PathLastUpdated
}

func idLookup(f *store.Filter) bool {
	return f.Path == store.PathID && (f.Op == store.OpEq || f.Op == store.OpIn)
}

// filtered reports whether f restricts anything.
func filtered(f *store.Filter) bool { return f != nil && f.Op != store.OpAll }

// estimate bounds the rows f matches from its index entries: the
// smallest And branch, the sum of Or branches, each leaf counted up to
// selectiveRows+1. Not and whole-type leaves count as unbounded.
func (s *Store) estimate(ctx context.Context, typ string, f *store.Filter) (int, error) {
	const unbounded = 1 << 40
	if f == nil {
		return unbounded, nil
	}
	switch f.Op {
	case store.OpAll, store.OpNot:
		return unbounded, nil
	case store.OpAnd:
		best := unbounded
		for _, c := range f.Children {
			n, err := s.estimate(ctx, typ, c)
			if err != nil {
				return 0, err
			}
			best = min(best, n)
		}
		return best, nil
	case store.OpOr:
		sum := 0
		for _, c := range f.Children {
			n, err := s.estimate(ctx, typ, c)
			if err != nil {
				return 0, err
			}
			sum = min(sum+n, unbounded)
		}
		return sum, nil
	case store.OpExists:
		if yes, _ := f.Value.(bool); !yes {
			return unbounded, nil
		}
	}
	switch f.Path {
	case store.PathID:
		if f.Op == store.OpEq {
			return 1, nil
		}
		if f.Op == store.OpIn {
			return len(f.Values), nil
		}
		return unbounded, nil
	case store.PathLastUpdated:
		return unbounded, nil
	}
	if f.Op == store.OpEq && f.Value == nil {
		return unbounded, nil
	}
	if f.Op == store.OpIn {
		sum := 0
		for _, v := range f.Values {
			n, err := s.estimate(ctx, typ, store.Eq(f.Path, v))
			if err != nil {
				return 0, err
			}
			sum = min(sum+n, unbounded)
		}
		return sum, nil
	}
	// A leaf's index entries, read up to the bound in the (pid, v, rk)
	// key: no list of all its matches is built. Entries bound the rows
	// from above (a resource may have several values on a path).
	eb := &builder{s: s, typ: typ, entries: true}
	if sub := eb.pred(f); sub == "0" {
		return 0, nil
	} else if strings.HasPrefix(sub, "SELECT rk FROM vals WHERE ") {
		var n int
		err := s.r.QueryRowContext(ctx, "SELECT count(*) FROM ("+sub+" LIMIT ?)", append(eb.args, selectiveRows+1)...).Scan(&n)
		if err != nil {
			return 0, translate("sqlitestore.Find", err)
		}
		return n, nil
	}
	b := &builder{s: s, typ: typ}
	pred := b.pred(f)
	if pred == "0" {
		return 0, nil
	}
	// pred is "r.rk IN (SELECT rk FROM vals WHERE ...)" or an OR of them:
	// count the index entries behind it, bounded.
	var n int
	err := s.r.QueryRowContext(ctx, "SELECT count(*) FROM (SELECT 1 FROM "+notIndexed+" WHERE r.type=? AND "+pred+" LIMIT ?)",
		append(append([]any{typ}, b.args...), selectiveRows+1)...).Scan(&n)
	if err != nil {
		return 0, translate("sqlitestore.Find", err)
	}
	return n, nil
}

// planIndexed sorts by one Index path with values of one kind: the rows
// that have a value, walked in the vals index, then those without one,
// by id.
func (s *Store) planIndexed(typ, cols, where string, wargs []any, k store.SortKey, pids []int64, after *store.Position, limit int) []phase {
	var out []phase
	missing := cols + " FROM resources r JOIN history h ON h.hrow=r.hrow WHERE r.type=? AND r.deleted=0 AND " + where
	margs := append([]any{typ}, wargs...)
	var av any
	if after != nil && len(after.Values) > 0 {
		av = after.Values[0]
	}
	if len(pids) == 1 {
		pid := pids[0]
		agg, dir, cmp := "min", "", ">"
		if k.Desc {
			agg, dir, cmp = "max", " DESC", "<"
		}
		// CROSS JOIN keeps vals the outer loop: the index is walked in sort
		// order and the walk stops after the page.
		q := cols + " FROM vals s CROSS JOIN resources r ON r.rk=s.rk CROSS JOIN history h ON h.hrow=r.hrow" +
			" WHERE s.pid=? AND r.type=? AND r.deleted=0" +
			" AND s.v=(SELECT " + agg + "(v) FROM vals WHERE rk=s.rk AND pid=s.pid) AND " + where
		args := append([]any{pid, typ}, wargs...)
		switch {
		case after == nil:
			out = append(out, phase{q + " ORDER BY s.v" + dir + ", r.id LIMIT ?", append(args, limit)})
		case av != nil:
			l, _ := scalar(av)
			q += " AND s.v" + cmp + "=? AND (s.v" + cmp + "? OR r.id>?)"
			args = append(args, l.v, l.v, after.ID)
			out = append(out, phase{q + " ORDER BY s.v" + dir + ", r.id LIMIT ?", append(args, limit)})
		}
		missing += " AND NOT EXISTS (SELECT 1 FROM vals WHERE rk=r.rk AND pid=?)"
		margs = append(margs, pid)
	}
	if after != nil && av == nil {
		missing += " AND r.id>?"
		margs = append(margs, after.ID)
	}
	return append(out, phase{missing + " ORDER BY r.id LIMIT ?", append(margs, limit)})
}

// planGeneral sorts by several keys: SQLite computes each key per match
// and sorts the matches.
func (s *Store) planGeneral(typ, cols, where string, wargs []any, keys []store.SortKey, after *store.Position, limit int, res string) []phase {
	var sel []string
	var selArgs []any
	var order []string
	for i, k := range keys {
		col := "k" + strconv.Itoa(i)
		switch k.Path {
		case store.PathID:
			sel = append(sel, "r.id AS "+col)
		case store.PathLastUpdated:
			sel = append(sel, "r.lu AS "+col)
		default:
			pids := s.sortPids(typ, k.Path)
			if len(pids) == 0 {
				sel = append(sel, "NULL AS "+col)
				break
			}
			agg := "min"
			if k.Desc {
				agg = "max"
			}
			sel = append(sel, "(SELECT "+agg+"(v) FROM vals WHERE rk=r.rk AND pid IN ("+placeholders(len(pids))+")) AS "+col)
			for _, p := range pids {
				selArgs = append(selArgs, p)
			}
		}
		dir := ""
		if k.Desc {
			dir = " DESC"
		}
		order = append(order, "("+col+" IS NULL)", col+dir)
	}
	inner := "SELECT r.rk, r.id, r.hrow, " + strings.Join(sel, ", ") +
		" FROM " + res + " WHERE r.type=? AND r.deleted=0 AND " + where
	args := append(selArgs, typ)
	args = append(args, wargs...)
	q := cols + " FROM (" + inner + ") r JOIN history h ON h.hrow=r.hrow"
	if after != nil {
		var ors []string
		var eqs []string
		var eqArgs []any
		for i, k := range keys {
			col := "k" + strconv.Itoa(i)
			var v any
			if i < len(after.Values) {
				v = after.Values[i]
			}
			if v == nil {
				eqs = append(eqs, col+" IS NULL")
				continue
			}
			l, _ := scalar(v)
			cmp := ">"
			if k.Desc {
				cmp = "<"
			}
			cond := strings.Join(append(append([]string{}, eqs...), "("+col+cmp+"? OR "+col+" IS NULL)"), " AND ")
			ors = append(ors, "("+cond+")")
			args = append(args, eqArgs...)
			args = append(args, l.v)
			eqs = append(eqs, col+"=?")
			eqArgs = append(eqArgs, l.v)
		}
		ors = append(ors, "("+strings.Join(append(eqs, "r.id>?"), " AND ")+")")
		args = append(args, eqArgs...)
		args = append(args, after.ID)
		q += " WHERE " + strings.Join(ors, " OR ")
	}
	q += " ORDER BY " + strings.Join(order, ", ") + ", r.id LIMIT ?"
	return []phase{{q, append(args, limit)}}
}

// where translates f (when SQL can serve it exactly) into a predicate on
// the current row r. When a path or sort path has no interned id, the
// path table is read again (another process may have added it) and the
// predicate built once more.
func (s *Store) where(ctx context.Context, typ string, f *store.Filter, exactSQL, probe bool, keys []store.SortKey) (string, []any, error) {
	for attempt := 0; ; attempt++ {
		b := &builder{s: s, typ: typ, probe: probe}
		where := "1"
		if exactSQL {
			where = b.pred(f)
		}
		for _, k := range keys {
			if k.Path != store.PathID && k.Path != store.PathLastUpdated && len(s.sortPids(typ, k.Path)) == 0 {
				b.missing = true
			}
		}
		if !b.missing || attempt > 0 {
			return where, b.args, nil
		}
		if err := s.loadPaths(ctx, s.r); err != nil {
			return "", nil, err
		}
	}
}

// cursor streams the phases of a Find inside one read transaction.
type cursor struct {
	ctx         context.Context
	tx          *sql.Tx
	phases      []phase
	rows        *sql.Rows
	match       *store.Filter // set when SQL over-matches
	skip, limit int
	n           int
	withJSON    bool
	done        bool
}

// Next implements store.Cursor.
func (c *cursor) Next(ctx context.Context) (*store.Resource, error) {
	const op = "sqlitestore.Find"
	for !c.done {
		if c.limit > 0 && c.n >= c.limit {
			break
		}
		if c.rows == nil {
			if len(c.phases) == 0 {
				break
			}
			p := c.phases[0]
			c.phases = c.phases[1:]
			rows, err := c.tx.QueryContext(c.ctx, p.q, p.args...)
			if err != nil {
				return nil, translate(op, err)
			}
			c.rows = rows
		}
		if !c.rows.Next() {
			err := c.rows.Err()
			_ = c.rows.Close()
			c.rows = nil
			if err != nil {
				return nil, translate(op, err)
			}
			continue
		}
		r, err := scanResource(c.rows, c.withJSON)
		if err != nil {
			return nil, translate(op, err)
		}
		if c.match != nil && !c.match.Match(r) {
			continue
		}
		if c.skip > 0 {
			c.skip--
			continue
		}
		c.n++
		return r, nil
	}
	_ = c.Close(ctx)
	return nil, nil
}

// Close implements store.Cursor.
func (c *cursor) Close(context.Context) error {
	if c.done {
		return nil
	}
	c.done = true
	if c.rows != nil {
		_ = c.rows.Close()
	}
	_ = c.tx.Rollback()
	return nil
}

// Count implements store.Store: SQLite counts.
func (s *Store) Count(ctx context.Context, typ string, f *store.Filter) (int64, error) {
	const op = "sqlitestore.Count"
	if err := checkType(op, typ); err != nil {
		return 0, err
	}
	exactSQL := s.exact(typ, f)
	if !exactSQL {
		cur, err := s.Find(ctx, typ, f, store.FindOptions{IndexOnly: true})
		if err != nil {
			return 0, err
		}
		defer cur.Close(ctx)
		var n int64
		for {
			r, err := cur.Next(ctx)
			if err != nil {
				return 0, err
			}
			if r == nil {
				return n, nil
			}
			n++
		}
	}
	if !filtered(f) {
		// The type's live resources: one row of the counts table.
		return s.countRow(ctx, 0, typ)
	}
	if leaf := eqLeaf(f); leaf != nil {
		// One equality: its index entries are the matches (a deleted
		// resource has none, and a path belongs to one type). A counted
		// value is one row of the counts table; another is counted in the
		// (pid, v, rk) key without visiting the resources.
		if l, ok := scalar(leaf.Value); ok && l.kind != kNull {
			if pid, ok := s.pid(typ, leaf.Path, l.kind); ok {
				if counted(leaf.Path, l.kind) {
					return s.countRow(ctx, pid, l.v)
				}
				var n int64
				err := s.r.QueryRowContext(ctx, "SELECT count(*) FROM vals WHERE pid=? AND v=?", pid, l.v).Scan(&n)
				return n, translate(op, err)
			}
		}
	}
	where, args, err := s.where(ctx, typ, f, true, false, nil)
	if err != nil {
		return 0, err
	}
	res := "resources r"
	if drivable(f) {
		res = notIndexed
	}
	var n int64
	err = s.r.QueryRowContext(ctx, "SELECT count(*) FROM "+res+" WHERE r.type=? AND r.deleted=0 AND "+where,
		append([]any{typ}, args...)...).Scan(&n)
	return n, translate(op, err)
}

// countRow reads one row of the counts table (none: 0).
func (s *Store) countRow(ctx context.Context, pid int64, v any) (int64, error) {
	var n int64
	err := s.r.QueryRowContext(ctx, "SELECT n FROM counts WHERE pid=? AND v=?", pid, v).Scan(&n)
	if errors.Is(err, sql.ErrNoRows) {
		return 0, nil
	}
	return n, translate("sqlitestore.Count", err)
}

// eqLeaf returns f's only condition when it is an equality on an Index
// path (And or Or of one child included), else nil.
func eqLeaf(f *store.Filter) *store.Filter {
	for f != nil && (f.Op == store.OpAnd || f.Op == store.OpOr) && len(f.Children) == 1 {
		f = f.Children[0]
	}
	if f == nil || f.Op != store.OpEq || f.Value == nil || f.Path == "" || f.Path == store.PathID || f.Path == store.PathLastUpdated {
		return nil
	}
	return f
}

// Scan is Find in creation order: every current resource of typ matching f,
// streamed (bulk export).
func (s *Store) Scan(ctx context.Context, typ string, f *store.Filter) (store.Cursor, error) {
	return s.Find(ctx, typ, f, store.FindOptions{})
}

// ScanJSON calls fn with the JSON of every current resource of typ (valid
// only during the call). It is the baseline export throughput is measured
// against.
func (s *Store) ScanJSON(ctx context.Context, typ string, fn func(js []byte) error) (int64, error) {
	const op = "sqlitestore.ScanJSON"
	if err := checkType(op, typ); err != nil {
		return 0, err
	}
	rows, err := s.r.QueryContext(ctx, "SELECT h.json FROM resources r JOIN history h ON h.hrow=r.hrow WHERE r.type=? AND r.deleted=0", typ)
	if err != nil {
		return 0, translate(op, err)
	}
	defer rows.Close()
	var n int64
	for rows.Next() {
		var js sql.RawBytes
		if err := rows.Scan(&js); err != nil {
			return n, translate(op, err)
		}
		if err := fn(js); err != nil {
			return n, err
		}
		n++
	}
	return n, translate(op, rows.Err())
}
