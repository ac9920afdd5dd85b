package sqlitestore

import (
	"cmp"
	"context"
	"database/sql"
	"encoding/json"
	"errors"
	"math"
	"slices"
	"strconv"
	"strings"
	"unicode/utf8"

	"github.com/casefhir/casefhir/fhir/outcome"
	"github.com/casefhir/casefhir/fhir/store"
)

// writer is one write transaction. modernc's driver prepares a statement
// at every execution, so a transaction runs few statements: rows of one
// kind go in together (multi-row VALUES, or json_each over one JSON
// argument).
type writer struct {
	s  *Store
	tx *sql.Tx
	// paths interned by this transaction: cached only after commit.
	newPaths map[pathKey]int64
}

func (s *Store) begin(ctx context.Context, op string) (*writer, error) {
	tx, err := s.w.BeginTx(ctx, nil) // BEGIN IMMEDIATE (_txlock)
	if err != nil {
		return nil, translate(op, err)
	}
	return &writer{s: s, tx: tx, newPaths: map[pathKey]int64{}}, nil
}

func (w *writer) rollback() { _ = w.tx.Rollback() }

func (w *writer) commit(op string) error {
	if err := w.tx.Commit(); err != nil {
		return translate(op, err)
	}
	if len(w.newPaths) > 0 {
		w.s.mu.Lock()
		for k, pid := range w.newPaths {
			if _, ok := w.s.paths[k]; !ok {
				w.s.paths[k] = pid
				w.s.byTyp[k.typ] = append(w.s.byTyp[k.typ], pathRow{pid, k.path, k.kind})
			}
		}
		w.s.mu.Unlock()
	}
	return nil
}

// errConflict marks a failed compare-and-swap inside a transaction.
var errConflict = errors.New("version conflict")

// conflictAt is a compare-and-swap or duplicate failure of one write.
type conflictAt struct{ key string }

func (c conflictAt) Error() string { return "version conflict on " + c.key }

// histChunk is how many versions one history insert carries (7 parameters
// each): the statement stays short to parse, since each execution of an
// unprepared statement parses it again.
const histChunk = 40

// prepared is the part of a write set's work that needs no database: the
// encoded index of each write and its search values, sorted. It is done
// before the transaction begins, so the single writer holds the database
// only for the statements.
type prepared struct {
	idx  [][]byte // per write: the encoded index (nil when deleted)
	vals []prepVal
}

// prepVal is one search value of write w, without its rk (assigned in the
// transaction). pid is 0 until known.
type prepVal struct {
	w   int
	k   pathKey
	pid int64
	v   any // string, float64 or int64
}

func (s *Store) prepare(writes []store.Write) *prepared {
	p := &prepared{idx: make([][]byte, len(writes))}
	var leaves []leaf
	for i, wr := range writes {
		r := wr.Next
		if r.Deleted {
			continue
		}
		p.idx[i] = encodeIndex(r.Index)
		if len(r.Index) == 0 {
			continue
		}
		leaves = flatten(leaves[:0], r.Index, "")
		derived := s.derivedOf(r.Type)
		for _, l := range leaves {
			if _, ok := derived[l.path]; ok {
				continue // served from its source's rows (DeriveSorts)
			}
			k := pathKey{r.Type, l.path, l.kind}
			pid, _ := s.pid(k.typ, k.path, k.kind)
			p.vals = append(p.vals, prepVal{w: i, k: k, pid: pid, v: rowValue(l.v)})
		}
	}
	slices.SortFunc(p.vals, comparePrepVals)
	return p
}

// rowValue is the value bound for a search value: integral floats as
// integers (SQLite compares them equal; integers are smaller on disk).
func rowValue(v any) any {
	if x, ok := v.(float64); ok && x == math.Trunc(x) && math.Abs(x) < 1<<53 {
		return int64(x)
	}
	return v
}

// comparePrepVals orders search values as the vals primary key (pid, v)
// does, then by write: B-tree inserts then land next to each other.
func comparePrepVals(a, b prepVal) int {
	if c := cmp.Compare(a.pid, b.pid); c != 0 {
		return c
	}
	if c := compareValues(a.v, b.v); c != 0 {
		return c
	}
	return cmp.Compare(a.w, b.w)
}

func compareValues(a, b any) int {
	switch x := a.(type) {
	case string:
		if y, ok := b.(string); ok {
			return strings.Compare(x, y)
		}
	case float64:
		if y, ok := b.(float64); ok {
			return cmp.Compare(x, y)
		}
	case int64:
		if y, ok := b.(int64); ok {
			return cmp.Compare(x, y)
		}
	}
	return 0
}

// valsChunk is how many search values one bound multi-row insert carries
// (3 parameters each).
const valsChunk = 250

// putAll stores writes: history rows, current rows (inserted for creates,
// swapped from the previous version for updates) and search values.
func (w *writer) putAll(ctx context.Context, writes []store.Write, pre *prepared) error {
	type placed struct {
		r    *store.Resource
		hrow int64
		rk   int64
	}
	ps := make([]placed, len(writes))
	byKey := make(map[string]int, len(writes))
	for i, wr := range writes {
		ps[i].r = wr.Next
		byKey[wr.Next.Type+"\x00"+wr.Next.ID] = i
	}
	// History rows, in chunks, RETURNING their row ids.
	for from := 0; from < len(writes); from += histChunk {
		to := min(from+histChunk, len(writes))
		args := make([]any, 0, 7*(to-from))
		for j, p := range ps[from:to] {
			r := p.r
			var js, idx []byte
			if !r.Deleted {
				if js = r.JSON; js == nil {
					js = []byte{}
				}
				idx = pre.idx[from+j]
			}
			args = append(args, r.Type, r.ID, r.VersionID, msOf(r.LastUpdated), r.Deleted, js, idx)
		}
		q := "INSERT INTO history(type, id, version, lu, deleted, json, idx) VALUES " + rowsOf(7, to-from) + " RETURNING type, id, hrow"
		if err := w.scanKeyed(ctx, q, args, byKey, func(i int, v int64) { ps[i].hrow = v }); err != nil {
			return conflictOr(err)
		}
	}
	// Current rows: creates in one insert, updates one compare-and-swap each.
	var creates, updated []byte
	nCreate := 0
	types := map[string]bool{}
	for i, wr := range writes {
		r := wr.Next
		if wr.Prev == nil {
			creates = appendJSONRow(creates, r.Type, r.ID, msOf(r.LastUpdated), ps[i].hrow)
			nCreate++
			types[r.Type] = true
			continue
		}
		err := w.tx.QueryRowContext(ctx, "UPDATE resources SET version=?, lu=?, deleted=?, hrow=? WHERE type=? AND id=? AND version=? RETURNING rk",
			r.VersionID, msOf(r.LastUpdated), r.Deleted, ps[i].hrow, r.Type, r.ID, wr.Prev.VersionID).Scan(&ps[i].rk)
		if errors.Is(err, sql.ErrNoRows) {
			return conflictAt{r.Key()}
		}
		if err != nil {
			return err
		}
		updated = appendJSONInt(updated, ps[i].rk)
	}
	if nCreate > 0 {
		q := "INSERT INTO resources(type, id, version, lu, deleted, hrow) SELECT value->>0, value->>1, 1, value->>2, 0, value->>3 FROM json_each(?) RETURNING type, id, rk"
		if err := w.scanKeyed(ctx, q, []any{closeJSON(creates)}, byKey, func(i int, v int64) { ps[i].rk = v }); err != nil {
			return conflictOr(err)
		}
		var tj []byte
		for t := range types {
			tj = appendJSONString(append(tj, ','), t)
		}
		if _, err := w.tx.ExecContext(ctx, "INSERT OR IGNORE INTO types(type) SELECT value FROM json_each(?)", closeJSON(tj)); err != nil {
			return err
		}
	}
	if len(updated) > 0 {
		// The counts lose the previous versions' values, then the values go.
		if _, err := w.tx.ExecContext(ctx, "INSERT INTO counts(pid, v, n) SELECT pid, v, -count(*) FROM vals WHERE rk IN (SELECT value FROM json_each(?)) AND pid IN (SELECT pid FROM paths WHERE "+countedSQL+") GROUP BY pid, v ON CONFLICT(pid, v) DO UPDATE SET n=n+excluded.n", closeJSON(updated)); err != nil {
			return err
		}
		if _, err := w.tx.ExecContext(ctx, "DELETE FROM vals WHERE rk IN (SELECT value FROM json_each(?))", closeJSON(updated)); err != nil {
			return err
		}
	}
	// Search values, in index order: paths first seen by this write set
	// are interned now (then the order is fixed again).
	resort := false
	for i := range pre.vals {
		if pv := &pre.vals[i]; pv.pid == 0 {
			pid, err := w.intern(ctx, pv.k.typ, pv.k.path, pv.k.kind)
			if err != nil {
				return err
			}
			pv.pid, resort = pid, true
		}
	}
	if resort {
		slices.SortFunc(pre.vals, comparePrepVals)
	}
	if err := w.insertVals(ctx, pre.vals, func(i int) int64 { return ps[i].rk }); err != nil {
		return err
	}
	return w.addCounts(ctx, writes, pre.vals)
}

// addCounts adds the write set's new values and its changes to the live
// resources of each type to the counts table: one upsert per distinct
// (pid, v). The previous versions' values were taken off before.
func (w *writer) addCounts(ctx context.Context, writes []store.Write, vals []prepVal) error {
	type key struct {
		pid int64
		v   string
	}
	delta := map[key]int64{}
	for _, wr := range writes {
		live, was := !wr.Next.Deleted, wr.Prev != nil && !wr.Prev.Deleted
		switch {
		case live && !was:
			delta[key{0, wr.Next.Type}]++
		case was && !live:
			delta[key{0, wr.Next.Type}]--
		}
	}
	for i, pv := range vals {
		v, ok := pv.v.(string)
		if !ok || !counted(pv.k.path, pv.k.kind) {
			continue
		}
		// A value twice in one resource is one row (INSERT OR IGNORE);
		// duplicates are next to each other in the sorted values.
		if i > 0 && vals[i-1].pid == pv.pid && vals[i-1].w == pv.w && compareValues(vals[i-1].v, pv.v) == 0 {
			continue
		}
		delta[key{pv.pid, v}]++
	}
	var js []byte
	for k, n := range delta {
		if n == 0 {
			continue
		}
		js = append(js, ',', '[')
		js = strconv.AppendInt(js, k.pid, 10)
		js = appendJSONString(append(js, ','), k.v)
		js = strconv.AppendInt(append(js, ','), n, 10)
		js = append(js, ']')
	}
	if len(js) == 0 {
		return nil
	}
	_, err := w.tx.ExecContext(ctx, "INSERT INTO counts(pid, v, n) SELECT value->>0, value->>1, value->>2 FROM json_each(?) WHERE true ON CONFLICT(pid, v) DO UPDATE SET n=n+excluded.n", closeJSON(js))
	return err
}

// insertVals inserts search values as bound multi-row inserts of
// valsChunk rows (one prepared statement for the full chunks).
func (w *writer) insertVals(ctx context.Context, vals []prepVal, rk func(write int) int64) error {
	const q = "INSERT OR IGNORE INTO vals(pid, v, rk) VALUES "
	args := make([]any, 0, 3*valsChunk)
	var full *sql.Stmt
	defer func() {
		if full != nil {
			_ = full.Close()
		}
	}()
	for from := 0; from < len(vals); from += valsChunk {
		to := min(from+valsChunk, len(vals))
		args = args[:0]
		for _, v := range vals[from:to] {
			args = append(args, v.pid, v.v, rk(v.w))
		}
		var err error
		if to-from == valsChunk {
			if full == nil {
				if full, err = w.tx.PrepareContext(ctx, q+rowsOf(3, valsChunk)); err != nil {
					return err
				}
			}
			_, err = full.ExecContext(ctx, args...)
		} else {
			_, err = w.tx.ExecContext(ctx, q+rowsOf(3, to-from), args...)
		}
		if err != nil {
			return err
		}
	}
	return nil
}

// scanKeyed runs q, whose rows are (type, id, int64), and hands each int
// to set with the index of its resource.
func (w *writer) scanKeyed(ctx context.Context, q string, args []any, byKey map[string]int, set func(int, int64)) error {
	rows, err := w.tx.QueryContext(ctx, q, args...)
	if err != nil {
		return err
	}
	defer rows.Close()
	for rows.Next() {
		var typ, id string
		var v int64
		if err := rows.Scan(&typ, &id, &v); err != nil {
			return err
		}
		i, ok := byKey[typ+"\x00"+id]
		if !ok {
			return errors.New("unexpected returned row")
		}
		set(i, v)
	}
	return rows.Err()
}

// conflictOr turns a uniqueness failure of a multi-row insert into
// errConflict (the transaction is rolled back whole; Apply names the
// resource, see firstConflict).
func conflictOr(err error) error {
	if outcome.Is(translate("", err), outcome.Duplicate) {
		return errConflict
	}
	return err
}

func rowsOf(params, n int) string {
	row := "(" + strings.TrimSuffix(strings.Repeat("?,", params), ",") + ")"
	return strings.TrimSuffix(strings.Repeat(row+",", n), ",")
}

// JSON builders for json_each arguments: elements are appended with a
// leading comma, closeJSON wraps them into an array.
func closeJSON(b []byte) string {
	if len(b) == 0 {
		return "[]"
	}
	b[0] = '['
	return string(b) + "]"
}

func appendJSONInt(b []byte, v int64) []byte { return strconv.AppendInt(append(b, ','), v, 10) }

func appendJSONRow(b []byte, typ, id string, lu, hrow int64) []byte {
	b = append(b, ',', '[')
	b = appendJSONString(b, typ)
	b = append(b, ',')
	b = appendJSONString(b, id)
	b = append(b, ',')
	b = strconv.AppendInt(b, lu, 10)
	b = append(b, ',')
	b = strconv.AppendInt(b, hrow, 10)
	return append(b, ']')
}

func appendJSONString(b []byte, s string) []byte {
	if !utf8.ValidString(s) {
		js, _ := json.Marshal(s)
		return append(b, js...)
	}
	b = append(b, '"')
	for i := 0; i < len(s); i++ {
		c := s[i]
		switch {
		case c == '"' || c == '\\':
			b = append(b, '\\', c)
		case c < 0x20:
			b = append(b, '\\', 'u', '0', '0', "0123456789abcdef"[c>>4], "0123456789abcdef"[c&0xf])
		default:
			b = append(b, c)
		}
	}
	return append(b, '"')
}

// intern returns the pid of (typ, path, kind), adding it to the paths
// table inside the transaction when new.
func (w *writer) intern(ctx context.Context, typ, path string, kind byte) (int64, error) {
	if pid, ok := w.s.pid(typ, path, kind); ok {
		return pid, nil
	}
	k := pathKey{typ, path, kind}
	if pid, ok := w.newPaths[k]; ok {
		return pid, nil
	}
	var pid int64
	err := w.tx.QueryRowContext(ctx, "INSERT INTO paths(type, path, kind) VALUES(?,?,?) ON CONFLICT(type, path, kind) DO UPDATE SET kind=excluded.kind RETURNING pid",
		typ, path, int64(kind)).Scan(&pid)
	if err != nil {
		return 0, err
	}
	w.newPaths[k] = pid
	return pid, nil
}

func checkWrite(op string, w store.Write) error {
	n := w.Next
	if n == nil {
		return outcome.New(outcome.Exception, "a write needs a next version").WithOp(op)
	}
	if err := checkType(op, n.Type); err != nil {
		return err
	}
	if n.ID == "" {
		return outcome.New(outcome.Exception, "a write needs an id").WithOp(op)
	}
	if w.Prev == nil {
		if n.VersionID != 1 || n.Deleted {
			return outcome.New(outcome.Exception, "a create needs version 1 and content").WithOp(op)
		}
		return nil
	}
	if w.Prev.Type != n.Type || w.Prev.ID != n.ID || n.VersionID != w.Prev.VersionID+1 {
		return outcome.New(outcome.Exception, "next version must follow prev").WithOp(op)
	}
	return nil
}

// Create implements store.Store.
func (s *Store) Create(ctx context.Context, r *store.Resource) error {
	const op = "sqlitestore.Create"
	if err := checkWrite(op, store.Write{Next: r}); err != nil {
		return err
	}
	err := s.apply(ctx, op, []store.Write{{Next: r}})
	if outcome.Is(err, outcome.Conflict) {
		return outcome.New(outcome.Duplicate, "resource already exists").WithOp(op).WithDiagnostics(r.Key() + " already exists")
	}
	return err
}

// Update implements store.Store: one compare-and-swap on the version.
func (s *Store) Update(ctx context.Context, next, prev *store.Resource) error {
	const op = "sqlitestore.Update"
	if prev == nil {
		return outcome.New(outcome.Exception, "update needs the previous version").WithOp(op)
	}
	if err := checkWrite(op, store.Write{Next: next, Prev: prev}); err != nil {
		return err
	}
	return s.apply(ctx, op, []store.Write{{Next: next, Prev: prev}})
}

// Apply implements store.Transactional: one SQLite transaction.
func (s *Store) Apply(ctx context.Context, writes []store.Write) error {
	const op = "sqlitestore.Apply"
	seen := make(map[string]bool, len(writes))
	for _, w := range writes {
		if err := checkWrite(op, w); err != nil {
			return err
		}
		if k := w.Next.Key(); seen[k] {
			return outcome.New(outcome.Exception, "a resource appears twice in one transaction").WithOp(op).WithDiagnostics(k)
		} else {
			seen[k] = true
		}
	}
	if len(writes) == 0 {
		return nil
	}
	return s.apply(ctx, op, writes)
}

func (s *Store) apply(ctx context.Context, op string, writes []store.Write) error {
	pre := s.prepare(writes)
	w, err := s.begin(ctx, op)
	if err != nil {
		return err
	}
	if err := w.putAll(ctx, writes, pre); err != nil {
		w.rollback()
		var ca conflictAt
		switch {
		case errors.As(err, &ca):
			return outcome.New(outcome.Conflict, "version conflict").WithOp(op).WithDiagnostics(ca.key)
		case errors.Is(err, errConflict):
			return outcome.New(outcome.Conflict, "version conflict").WithOp(op).WithDiagnostics(s.firstConflict(ctx, writes))
		}
		return translate(op, err)
	}
	return w.commit(op)
}

// firstConflict names the first write whose resource already exists (a
// create) or is no longer at its previous version (an update).
func (s *Store) firstConflict(ctx context.Context, writes []store.Write) string {
	for _, wr := range writes {
		var v int64
		err := s.r.QueryRowContext(ctx, "SELECT version FROM resources WHERE type=? AND id=?", wr.Next.Type, wr.Next.ID).Scan(&v)
		switch {
		case wr.Prev == nil && err == nil:
			return wr.Next.Key()
		case wr.Prev != nil && (err != nil || v != wr.Prev.VersionID):
			return wr.Next.Key()
		}
	}
	if len(writes) > 0 {
		return writes[0].Next.Key()
	}
	return ""
}

// InsertMany stores new resources (VersionID 1, not deleted) in one
// transaction. It is the bulk loader for seeding tests and benchmarks; an
// existing id fails with outcome.Duplicate and stores nothing.
func (s *Store) InsertMany(ctx context.Context, rs []*store.Resource) error {
	const op = "sqlitestore.InsertMany"
	for _, r := range rs {
		if err := checkWrite(op, store.Write{Next: r}); err != nil {
			return err
		}
	}
	ws := make([]store.Write, len(rs))
	for i, r := range rs {
		ws[i] = store.Write{Next: r}
	}
	err := s.apply(ctx, op, ws)
	if outcome.Is(err, outcome.Conflict) {
		return outcome.New(outcome.Duplicate, "resource already exists").WithOp(op)
	}
	return err
}
