package sqlitestore

import (
	"context"
	"database/sql"
	"errors"
	"strings"

	"github.com/casefhir/casefhir/fhir/outcome"
	"github.com/casefhir/casefhir/fhir/store"
)

// valChunk is how many search values one multi-row insert carries.
const valChunk = 50

// writer is one write transaction with its prepared statements.
type writer struct {
	s     *Store
	tx    *sql.Tx
	stmts map[string]*sql.Stmt
	// paths interned by this transaction: cached only after commit.
	newPaths map[pathKey]int64
	types    map[string]bool
	leaves   []leaf
	args     []any
}

func (s *Store) begin(ctx context.Context, op string) (*writer, error) {
	tx, err := s.w.BeginTx(ctx, nil) // BEGIN IMMEDIATE (_txlock)
	if err != nil {
		return nil, translate(op, err)
	}
	return &writer{s: s, tx: tx, stmts: map[string]*sql.Stmt{}, newPaths: map[pathKey]int64{}, types: map[string]bool{}}, nil
}

func (w *writer) stmt(ctx context.Context, q string) (*sql.Stmt, error) {
	if st, ok := w.stmts[q]; ok {
		return st, nil
	}
	st, err := w.tx.PrepareContext(ctx, q)
	if err != nil {
		return nil, err
	}
	w.stmts[q] = st
	return st, nil
}

func (w *writer) rollback() {
	for _, st := range w.stmts {
		_ = st.Close()
	}
	_ = w.tx.Rollback()
}

func (w *writer) commit(op string) error {
	for _, st := range w.stmts {
		_ = st.Close()
	}
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

// exec runs a cached prepared statement.
func (w *writer) exec(ctx context.Context, q string, args ...any) (sql.Result, error) {
	st, err := w.stmt(ctx, q)
	if err != nil {
		return nil, err
	}
	return st.ExecContext(ctx, args...)
}

// errConflict marks a failed compare-and-swap inside a transaction.
var errConflict = errors.New("version conflict")

// put stores r as a new version: a history row, the current row (created
// when prev is nil, otherwise swapped from prev's version) and its search
// values.
func (w *writer) put(ctx context.Context, r, prev *store.Resource) error {
	lu := msOf(r.LastUpdated)
	var js, idx []byte
	if !r.Deleted {
		js = r.JSON
		if js == nil {
			js = []byte{}
		}
		idx = encodeIndex(r.Index)
	}
	res, err := w.exec(ctx, "INSERT INTO history(type, id, version, lu, deleted, json, idx) VALUES(?,?,?,?,?,?,?)",
		r.Type, r.ID, r.VersionID, lu, r.Deleted, js, idx)
	if err != nil {
		return err
	}
	hrow, err := res.LastInsertId()
	if err != nil {
		return err
	}
	var rk int64
	if prev == nil {
		res, err := w.exec(ctx, "INSERT INTO resources(type, id, version, lu, deleted, hrow) VALUES(?,?,?,?,?,?)",
			r.Type, r.ID, r.VersionID, lu, r.Deleted, hrow)
		if err != nil {
			return err
		}
		if rk, err = res.LastInsertId(); err != nil {
			return err
		}
		if !w.types[r.Type] {
			if _, err := w.exec(ctx, "INSERT OR IGNORE INTO types(type) VALUES(?)", r.Type); err != nil {
				return err
			}
			w.types[r.Type] = true
		}
	} else {
		st, err := w.stmt(ctx, "UPDATE resources SET version=?, lu=?, deleted=?, hrow=? WHERE type=? AND id=? AND version=? RETURNING rk")
		if err != nil {
			return err
		}
		err = st.QueryRowContext(ctx, r.VersionID, lu, r.Deleted, hrow, r.Type, r.ID, prev.VersionID).Scan(&rk)
		if errors.Is(err, sql.ErrNoRows) {
			return errConflict
		}
		if err != nil {
			return err
		}
		if _, err := w.exec(ctx, "DELETE FROM vals WHERE rk=?", rk); err != nil {
			return err
		}
	}
	if r.Deleted {
		return nil
	}
	return w.putVals(ctx, r.Type, rk, r.Index)
}

func (w *writer) putVals(ctx context.Context, typ string, rk int64, index map[string]any) error {
	if len(index) == 0 {
		return nil
	}
	w.leaves = flatten(w.leaves[:0], index, "")
	w.args = w.args[:0]
	for _, l := range w.leaves {
		pid, err := w.intern(ctx, typ, l.path, l.kind)
		if err != nil {
			return err
		}
		w.args = append(w.args, pid, l.v, rk)
	}
	for len(w.args) > 0 {
		n := min(len(w.args)/3, valChunk)
		q := valsInsert(n)
		if _, err := w.exec(ctx, q, w.args[:3*n]...); err != nil {
			return err
		}
		w.args = w.args[3*n:]
	}
	return nil
}

var valsInserts = func() []string {
	out := make([]string, valChunk+1)
	for n := 1; n <= valChunk; n++ {
		out[n] = "INSERT OR IGNORE INTO vals(pid, v, rk) VALUES " + strings.TrimSuffix(strings.Repeat("(?,?,?),", n), ",")
	}
	return out
}()

func valsInsert(n int) string { return valsInserts[n] }

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
	st, err := w.stmt(ctx, "INSERT INTO paths(type, path, kind) VALUES(?,?,?) ON CONFLICT(type, path, kind) DO UPDATE SET kind=excluded.kind RETURNING pid")
	if err != nil {
		return 0, err
	}
	var pid int64
	if err := st.QueryRowContext(ctx, typ, path, int64(kind)).Scan(&pid); err != nil {
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
	w, err := s.begin(ctx, op)
	if err != nil {
		return err
	}
	for _, wr := range writes {
		if err := w.put(ctx, wr.Next, wr.Prev); err != nil {
			w.rollback()
			if errors.Is(err, errConflict) || outcome.Is(translate(op, err), outcome.Duplicate) {
				return outcome.New(outcome.Conflict, "version conflict").WithOp(op).WithDiagnostics(wr.Next.Key())
			}
			return translate(op, err)
		}
	}
	return w.commit(op)
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
	w, err := s.begin(ctx, op)
	if err != nil {
		return err
	}
	for _, r := range rs {
		if err := w.put(ctx, r, nil); err != nil {
			w.rollback()
			return translate(op, err)
		}
	}
	return w.commit(op)
}
