package sqlitestore

import (
	"context"
	"database/sql"
	"errors"
	"fmt"
	"log/slog"
	"maps"
	"net/url"
	"os"
	"path/filepath"
	"runtime"
	"strings"
	"sync"
	"sync/atomic"
	"time"

	"modernc.org/sqlite"
	sqlite3 "modernc.org/sqlite/lib"

	"github.com/casefhir/casefhir/fhir/outcome"
	"github.com/casefhir/casefhir/fhir/store"
)

// FileName is the database file inside the data folder.
const FileName = "casefhir.db"

// Options configure Open.
type Options struct {
	// Dir is the data folder (created if missing); the database is
	// Dir/casefhir.db. Path, when set, names the file instead.
	Dir, Path string
	// Readers is how many idle read connections are kept (0: 2×GOMAXPROCS,
	// at least 4).
	Readers int
	// BusyTimeout is how long a statement waits for another process's
	// lock (0: 30s).
	BusyTimeout time.Duration
	// Logger receives PHI-free warnings (nil: discarded).
	Logger *slog.Logger
}

// Store is the SQLite implementation of store.Store.
type Store struct {
	w, r *sql.DB // one writer connection, a pool of readers
	log  *slog.Logger
	path string

	mu    sync.RWMutex
	paths map[pathKey]int64    // interned (type, path, kind) → pid
	byTyp map[string][]pathRow // per type, every interned path

	// ckpt is the connection that checkpoints the write-ahead log in the
	// background (see checkpointer); stopCkpt ends it.
	ckpt     *sql.DB
	stopCkpt context.CancelFunc
	ckptDone chan struct{}

	readStmt     *sql.Stmt // Read's prepared statement, on the readers
	readJSONStmt *sql.Stmt // ReadJSON's

	// derived holds, per type, the sort paths served from another path
	// (DeriveSorts): their values are not written to vals.
	derived atomic.Pointer[derivedSorts]
}

// derivedSorts is a DeriveSorts declaration: per type, the derived sort
// paths with their sources, and every such path with each of its dotted
// prefixes (a filter on any of them reaches derived values).
type derivedSorts struct {
	sources map[string]map[string]store.SortSource
	under   map[string]map[string]bool
}

var _ store.SortDeriver = (*Store)(nil)

// DeriveSorts implements store.SortDeriver: a derived sort path gets no
// rows in vals (about a third of a resource's search values are sort
// values, each a repeat of a value row); a sort by it walks its source's
// rows, taking each resource's smallest (ascending) or largest
// (descending) value, which is the sort value by definition; a filter on
// it is checked on the stored index. A data folder written before (or
// without) the declaration keeps its sort-value rows, unused.
func (s *Store) DeriveSorts(sources map[string]map[string]store.SortSource) {
	d := &derivedSorts{sources: make(map[string]map[string]store.SortSource, len(sources)), under: map[string]map[string]bool{}}
	for typ, ps := range sources {
		d.sources[typ] = maps.Clone(ps)
		under := map[string]bool{}
		for p := range ps {
			for q := p; q != ""; {
				under[q] = true
				i := strings.LastIndexByte(q, '.')
				if i < 0 {
					break
				}
				q = q[:i]
			}
		}
		d.under[typ] = under
	}
	s.derived.Store(d)
}

// derivedOf returns typ's derived sort paths (nil: none).
func (s *Store) derivedOf(typ string) map[string]store.SortSource {
	if d := s.derived.Load(); d != nil {
		return d.sources[typ]
	}
	return nil
}

// derivedUnder reports whether path is, or leads to, a derived sort path
// of typ.
func (s *Store) derivedUnder(typ, path string) bool {
	d := s.derived.Load()
	return d != nil && d.under[typ][path]
}

type pathKey struct {
	typ, path string
	kind      byte
}

type pathRow struct {
	pid  int64
	path string
	kind byte
}

const schema = `
CREATE TABLE IF NOT EXISTS history(
	hrow INTEGER PRIMARY KEY,
	type TEXT NOT NULL, id TEXT NOT NULL, version INTEGER NOT NULL,
	lu INTEGER NOT NULL, deleted INTEGER NOT NULL,
	json BLOB, idx BLOB,
	UNIQUE(type, id, version));
CREATE INDEX IF NOT EXISTS history_sys ON history(lu DESC, type, id, version DESC);
CREATE INDEX IF NOT EXISTS history_type ON history(type, lu DESC, id, version DESC);
CREATE TABLE IF NOT EXISTS resources(
	rk INTEGER PRIMARY KEY,
	type TEXT NOT NULL, id TEXT NOT NULL, version INTEGER NOT NULL,
	lu INTEGER NOT NULL, deleted INTEGER NOT NULL, hrow INTEGER NOT NULL,
	UNIQUE(type, id));
CREATE INDEX IF NOT EXISTS resources_lu ON resources(type, lu, id);
DROP INDEX IF EXISTS resources_live;
CREATE INDEX IF NOT EXISTS resources_created ON resources(type) WHERE deleted=0;
CREATE TABLE IF NOT EXISTS paths(
	pid INTEGER PRIMARY KEY,
	type TEXT NOT NULL, path TEXT NOT NULL, kind INTEGER NOT NULL,
	UNIQUE(type, path, kind));
CREATE TABLE IF NOT EXISTS vals(
	pid INTEGER NOT NULL, v NOT NULL, rk INTEGER NOT NULL,
	PRIMARY KEY(pid, v, rk)) WITHOUT ROWID;
CREATE INDEX IF NOT EXISTS vals_rk ON vals(rk, pid);
CREATE TABLE IF NOT EXISTS types(type TEXT PRIMARY KEY) WITHOUT ROWID;
CREATE TABLE IF NOT EXISTS locks(key TEXT PRIMARY KEY, owner TEXT NOT NULL, expires INTEGER NOT NULL) WITHOUT ROWID;
CREATE TABLE IF NOT EXISTS jobs(
	id TEXT PRIMARY KEY, version INTEGER NOT NULL, kind TEXT NOT NULL, owner TEXT NOT NULL,
	status TEXT NOT NULL, finished INTEGER NOT NULL, created INTEGER NOT NULL, updated INTEGER NOT NULL,
	lease_owner TEXT NOT NULL, lease_until INTEGER NOT NULL, data BLOB);
`

// Open opens (creating if needed) the database and its schema.
func Open(ctx context.Context, o Options) (*Store, error) {
	const op = "sqlitestore.Open"
	path := o.Path
	if path == "" {
		if o.Dir == "" {
			return nil, outcome.New(outcome.Exception, "a data folder is needed").WithOp(op)
		}
		if err := os.MkdirAll(o.Dir, 0o700); err != nil {
			return nil, outcome.Wrap(err, outcome.Exception, op, "cannot create the data folder")
		}
		path = filepath.Join(o.Dir, FileName)
	}
	if o.Readers <= 0 {
		o.Readers = max(4, 2*runtime.GOMAXPROCS(0))
	}
	if o.BusyTimeout <= 0 {
		o.BusyTimeout = 30 * time.Second
	}
	if o.Logger == nil {
		o.Logger = slog.New(slog.DiscardHandler)
	}
	base := "file:" + (&url.URL{Path: path}).EscapedPath()
	// conn opens a connection pool: every connection WAL, synchronous=FULL,
	// with the busy timeout, and the pool's own pragmas.
	conn := func(txlock string, pragmas ...string) (*sql.DB, error) {
		q := url.Values{}
		if txlock != "" {
			q.Set("_txlock", txlock)
		}
		for _, p := range append([]string{fmt.Sprintf("busy_timeout(%d)", o.BusyTimeout.Milliseconds()),
			"journal_mode(WAL)", "synchronous(FULL)", "foreign_keys(0)"}, pragmas...) {
			q.Add("_pragma", p)
		}
		db, err := sql.Open("sqlite", base+"?"+q.Encode())
		return db, translate(op, err)
	}
	s := &Store{log: o.Logger, path: path, paths: map[pathKey]int64{}, byTyp: map[string][]pathRow{}}
	var err error
	// The writer: one connection, 32 MB of page cache. The checkpointer
	// copies pages into the database file on its own connection, beside
	// the writer; a commit checkpoints only when the log passed
	// walWriterPages: then little is left to copy, and the next write
	// transaction starts the log over, so it stays bounded under sustained
	// writes (a background checkpoint alone never catches up with a writer
	// that does not pause).
	if s.w, err = conn("immediate", "cache_size(-32000)", fmt.Sprintf("wal_autocheckpoint(%d)", walWriterPages)); err != nil {
		return nil, err
	}
	s.w.SetMaxOpenConns(1)
	s.w.SetMaxIdleConns(1)
	s.w.SetConnMaxLifetime(0)
	s.w.SetConnMaxIdleTime(0)
	if s.r, err = conn("", "query_only(1)", "cache_size(-8000)"); err != nil { // 8 MB of page cache per reader
		_ = s.w.Close()
		return nil, err
	}
	// No cap on open readers: a caller may read while it holds a Find
	// cursor (a read transaction), and a cap would let such callers wait
	// on each other. Readers is how many stay open when idle.
	s.r.SetMaxIdleConns(o.Readers)
	if _, err := s.w.ExecContext(ctx, schema); err != nil {
		_ = s.Close(ctx)
		return nil, translate(op, err)
	}
	// Statistics for the query planner, bounded in cost; refreshed on
	// Close (PRAGMA optimize).
	if _, err := s.w.ExecContext(ctx, "PRAGMA analysis_limit=1000; PRAGMA optimize=0x10002"); err != nil {
		_ = s.Close(ctx)
		return nil, translate(op, err)
	}
	if err := s.createCounts(ctx); err != nil {
		_ = s.Close(ctx)
		return nil, err
	}
	if err := s.loadPaths(ctx, s.r); err != nil {
		_ = s.Close(ctx)
		return nil, err
	}
	if s.readStmt, err = s.r.PrepareContext(ctx, readQuery); err != nil {
		_ = s.Close(ctx)
		return nil, translate(op, err)
	}
	if s.readJSONStmt, err = s.r.PrepareContext(ctx, readJSONQuery); err != nil {
		_ = s.Close(ctx)
		return nil, translate(op, err)
	}
	if s.ckpt, err = conn(""); err != nil {
		_ = s.Close(ctx)
		return nil, err
	}
	s.ckpt.SetMaxOpenConns(1)
	cctx, cancel := context.WithCancel(context.WithoutCancel(ctx))
	s.stopCkpt, s.ckptDone = cancel, make(chan struct{})
	go s.checkpointer(cctx, checkpointEvery)
	return s, nil
}

// checkpointEvery is how often the checkpointer runs.
const checkpointEvery = 250 * time.Millisecond

// walWriterPages is the write-ahead log size (pages) past which a commit
// checkpoints (64 MB of 4 KB pages).
const walWriterPages = 16 << 10

// checkpointer copies committed pages from the write-ahead log into the
// database file: a PASSIVE checkpoint (it never blocks the writer or
// readers) every checkpointEvery. Several processes on one file each run
// one; SQLite serialises them.
func (s *Store) checkpointer(ctx context.Context, every time.Duration) {
	defer close(s.ckptDone)
	t := time.NewTicker(every)
	defer t.Stop()
	for {
		select {
		case <-ctx.Done():
			return
		case <-t.C:
		}
		if _, err := s.ckpt.ExecContext(ctx, "PRAGMA wal_checkpoint(PASSIVE)"); err != nil && ctx.Err() == nil {
			s.log.Warn("sqlitestore: checkpoint failed", "error", translate("sqlitestore.checkpoint", err).Error())
		}
	}
}

// Path returns the database file.
func (s *Store) Path() string { return s.path }

// Ping implements store.Store.
func (s *Store) Ping(ctx context.Context) error {
	return translate("sqlitestore.Ping", s.r.PingContext(ctx))
}

// Close implements store.Store: it checkpoints the write-ahead log when it
// can and closes the connections.
func (s *Store) Close(ctx context.Context) error {
	var errs []error
	if s.stopCkpt != nil {
		s.stopCkpt()
		<-s.ckptDone
	}
	if s.ckpt != nil {
		errs = append(errs, s.ckpt.Close())
	}
	if s.readJSONStmt != nil {
		errs = append(errs, s.readJSONStmt.Close())
	}
	if s.readStmt != nil {
		errs = append(errs, s.readStmt.Close())
	}
	if s.r != nil {
		errs = append(errs, s.r.Close())
	}
	if s.w != nil {
		_, _ = s.w.ExecContext(ctx, "PRAGMA analysis_limit=1000; PRAGMA optimize")
		errs = append(errs, s.w.Close())
	}
	return translate("sqlitestore.Close", errors.Join(errs...))
}

// Types implements store.Store.
func (s *Store) Types(ctx context.Context) ([]string, error) {
	const op = "sqlitestore.Types"
	rows, err := s.r.QueryContext(ctx, "SELECT type FROM types ORDER BY type")
	if err != nil {
		return nil, translate(op, err)
	}
	defer rows.Close()
	var out []string
	for rows.Next() {
		var t string
		if err := rows.Scan(&t); err != nil {
			return nil, translate(op, err)
		}
		out = append(out, t)
	}
	return out, translate(op, rows.Err())
}

// queryer is what both *sql.DB and *sql.Tx offer.
type queryer interface {
	QueryContext(ctx context.Context, q string, args ...any) (*sql.Rows, error)
	QueryRowContext(ctx context.Context, q string, args ...any) *sql.Row
	ExecContext(ctx context.Context, q string, args ...any) (sql.Result, error)
}

// loadPaths (re)reads the interned path table: other processes may have
// added paths.
// counted reports whether the values of a path are counted in the counts
// table: strings (tokens, references, strings, uris), except sort values
// and the logical id (an id matches one resource).
func counted(path string, kind byte) bool {
	return kind == kString && !strings.HasPrefix(path, "_sort.") && !strings.HasPrefix(path, "_id.")
}

// countedSQL is counted as a condition on a paths row.
const countedSQL = "kind=115 AND substr(path,1,6)<>'_sort.' AND substr(path,1,4)<>'_id.'"

// createCounts creates the counts table: per counted (pid, v), how many
// current resources have the value, and per type (pid 0, v the type) how
// many live resources it has. The writer keeps it in step in every write
// transaction, so a count of a type or of one value is one row. A
// database from before the table is counted once, in the transaction
// that creates it.
func (s *Store) createCounts(ctx context.Context) error {
	const op = "sqlitestore.Open"
	tx, err := s.w.BeginTx(ctx, nil)
	if err != nil {
		return translate(op, err)
	}
	defer func() { _ = tx.Rollback() }()
	var n int
	if err := tx.QueryRowContext(ctx, "SELECT count(*) FROM sqlite_master WHERE type='table' AND name='counts'").Scan(&n); err != nil || n > 0 {
		return translate(op, err)
	}
	for _, q := range []string{
		"CREATE TABLE counts(pid INTEGER NOT NULL, v NOT NULL, n INTEGER NOT NULL, PRIMARY KEY(pid, v)) WITHOUT ROWID",
		"INSERT INTO counts(pid, v, n) SELECT pid, v, count(*) FROM vals WHERE pid IN (SELECT pid FROM paths WHERE " + countedSQL + ") GROUP BY pid, v",
		"INSERT INTO counts(pid, v, n) SELECT 0, type, count(*) FROM resources WHERE deleted=0 GROUP BY type",
	} {
		if _, err := tx.ExecContext(ctx, q); err != nil {
			return translate(op, err)
		}
	}
	return translate(op, tx.Commit())
}

func (s *Store) loadPaths(ctx context.Context, q queryer) error {
	rows, err := q.QueryContext(ctx, "SELECT pid, type, path, kind FROM paths")
	if err != nil {
		return translate("sqlitestore.paths", err)
	}
	defer rows.Close()
	paths := map[pathKey]int64{}
	byTyp := map[string][]pathRow{}
	for rows.Next() {
		var pid, kind int64
		var typ, path string
		if err := rows.Scan(&pid, &typ, &path, &kind); err != nil {
			return translate("sqlitestore.paths", err)
		}
		paths[pathKey{typ, path, byte(kind)}] = pid
		byTyp[typ] = append(byTyp[typ], pathRow{pid, path, byte(kind)})
	}
	if err := rows.Err(); err != nil {
		return translate("sqlitestore.paths", err)
	}
	s.mu.Lock()
	s.paths, s.byTyp = paths, byTyp
	s.mu.Unlock()
	return nil
}

func (s *Store) pid(typ, path string, kind byte) (int64, bool) {
	s.mu.RLock()
	defer s.mu.RUnlock()
	p, ok := s.paths[pathKey{typ, path, kind}]
	return p, ok
}

// pidsUnder lists the pids of path and of every path below it.
func (s *Store) pidsUnder(typ, path string) []int64 {
	s.mu.RLock()
	defer s.mu.RUnlock()
	var out []int64
	for _, r := range s.byTyp[typ] {
		if r.path == path || strings.HasPrefix(r.path, path+".") {
			out = append(out, r.pid)
		}
	}
	return out
}

// driverError is the PHI-free summary a store error wraps.
func driverError(kind string, code int) store.DriverError {
	return store.DriverError{Backend: "sqlite", Kind: kind, Code: code}
}

// translate turns any driver (or ctx) error into an *outcome.Error.
func translate(op string, err error) error {
	if err == nil {
		return nil
	}
	var oe *outcome.Error
	if errors.As(err, &oe) {
		return err
	}
	var se *sqlite.Error
	code := 0
	if errors.As(err, &se) {
		code = se.Code()
	}
	switch {
	case errors.Is(err, context.DeadlineExceeded):
		return outcome.Wrap(driverError("timeout", 0), outcome.Timeout, op, "database operation timed out")
	case errors.Is(err, context.Canceled):
		return outcome.Wrap(driverError("canceled", 0), outcome.Timeout, op, "database operation canceled")
	case code == sqlite3.SQLITE_CONSTRAINT_UNIQUE || code == sqlite3.SQLITE_CONSTRAINT_PRIMARYKEY:
		return outcome.Wrap(driverError("duplicate key", code), outcome.Duplicate, op, "resource already exists")
	case code&0xff == sqlite3.SQLITE_BUSY || code&0xff == sqlite3.SQLITE_LOCKED:
		return outcome.Wrap(driverError("busy", code), outcome.Transient, op, "database busy")
	case code&0xff == sqlite3.SQLITE_FULL || code&0xff == sqlite3.SQLITE_IOERR:
		return outcome.Wrap(driverError("i/o error", code), outcome.Transient, op, "database unavailable")
	}
	return outcome.Wrap(driverError(fmt.Sprintf("error %T", err), code), outcome.Exception, op, "database error")
}

func notFound(op, typ, id string) error {
	return (&outcome.Error{Op: op, Code: outcome.NotFound, Detail: "resource not found"}).
		WithDiagnostics(typ + "/" + id + " not found")
}

func checkType(op, typ string) error {
	if typ == "" || strings.ContainsAny(typ, "./$ \x00") {
		return outcome.New(outcome.Exception, "invalid resource type").WithOp(op)
	}
	return nil
}

func ms(t time.Time) time.Time { return t.Truncate(time.Millisecond).UTC() }
