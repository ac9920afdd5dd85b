package ferrettest

import (
	"context"
	"database/sql"
	"errors"
	"fmt"
	"net/url"
	"os"
	"path/filepath"
	"strings"
)

// idExpr is the exact SQL expression FerretDB v1's SQLite backend uses when it
// pushes a `{_id: <string>}` filter down (metadata.IDColumn), in queries,
// updates and deletes. SQLite uses an expression index only when the indexed
// expression is this same expression.
const idExpr = `_ferretdb_sjson->'$._id'`

// collectionsTable is FerretDB's metadata table (columns name, table_name, settings).
const collectionsTable = "_ferretdb_collections"

// EnsureIDIndex creates, if missing, an SQLite expression index on
// `_ferretdb_sjson->'$._id'` for collection coll of database db. FerretDB's
// own _id index is on a different expression, so without this every read by
// _id scans the table. The collection must exist. It is idempotent and safe
// while FerretDB runs (the database is in WAL mode; this uses a second
// connection with a busy timeout).
func (s *Server) EnsureIDIndex(ctx context.Context, db, coll string) error {
	sdb, err := s.sqlDB(db)
	if err != nil {
		return err
	}
	var table string
	err = sdb.QueryRowContext(ctx, `SELECT table_name FROM "`+collectionsTable+`" WHERE name = ?`, coll).Scan(&table)
	if errors.Is(err, sql.ErrNoRows) {
		return fmt.Errorf("ferrettest: collection %q does not exist in database %q", coll, db)
	}
	if err != nil {
		return fmt.Errorf("ferrettest: look up collection table: %w", err)
	}
	q := fmt.Sprintf(`CREATE INDEX IF NOT EXISTS %s ON %s (%s)`,
		quoteIdent(table+"_casefhir_id"), quoteIdent(table), idExpr)
	if _, err := sdb.ExecContext(ctx, q); err != nil {
		return fmt.Errorf("ferrettest: create _id expression index: %w", err)
	}
	return nil
}

// sqlDB returns (opening once) a side connection pool to db's SQLite file.
func (s *Server) sqlDB(db string) (*sql.DB, error) {
	if db == "" || strings.ContainsAny(db, `/\`+"\x00") || db == "." || db == ".." {
		return nil, fmt.Errorf("ferrettest: invalid database name")
	}
	s.mu.Lock()
	defer s.mu.Unlock()
	if d, ok := s.dbs[db]; ok {
		return d, nil
	}
	file := filepath.Join(s.dir, db+".sqlite")
	if _, err := os.Stat(file); err != nil {
		return nil, fmt.Errorf("ferrettest: database %q has no file yet: %w", db, err)
	}
	q := url.Values{}
	q.Add("_pragma", "busy_timeout(10000)")
	q.Add("_pragma", "journal_mode(wal)")
	q.Add("_pragma", "synchronous(full)")
	u := url.URL{Scheme: "file", Opaque: filepath.ToSlash(file), RawQuery: q.Encode()}
	d, err := sql.Open("sqlite", u.String())
	if err != nil {
		return nil, fmt.Errorf("ferrettest: open SQLite file: %w", err)
	}
	d.SetMaxOpenConns(1)
	s.dbs[db] = d
	return d, nil
}

// quoteIdent quotes an SQLite identifier.
func quoteIdent(s string) string { return `"` + strings.ReplaceAll(s, `"`, `""`) + `"` }

// IDLookupPlan returns SQLite's EXPLAIN QUERY PLAN details for the query
// FerretDB runs for a `{_id: <string>}` find on collection coll of database
// db, one step per line. With the expression index in place it reads
// "SEARCH ... USING INDEX <table>_casefhir_id (<expr>=?)"; "SCAN" means every
// read by id scans the table. For diagnostics and tests.
func (s *Server) IDLookupPlan(ctx context.Context, db, coll string) (string, error) {
	sdb, err := s.sqlDB(db)
	if err != nil {
		return "", err
	}
	var table string
	if err := sdb.QueryRowContext(ctx, `SELECT table_name FROM "`+collectionsTable+`" WHERE name = ?`, coll).Scan(&table); err != nil {
		return "", fmt.Errorf("ferrettest: look up collection table: %w", err)
	}
	rows, err := sdb.QueryContext(ctx, fmt.Sprintf(`EXPLAIN QUERY PLAN SELECT _ferretdb_sjson FROM %s WHERE %s = ?`,
		quoteIdent(table), idExpr), `"x"`)
	if err != nil {
		return "", fmt.Errorf("ferrettest: explain: %w", err)
	}
	defer rows.Close()
	var b strings.Builder
	for rows.Next() {
		var id, parent, notused int
		var detail string
		if err := rows.Scan(&id, &parent, &notused, &detail); err != nil {
			return "", fmt.Errorf("ferrettest: explain: %w", err)
		}
		b.WriteString(detail)
		b.WriteByte('\n')
	}
	return b.String(), rows.Err()
}

// EnsureIDIndexes runs EnsureIDIndex for every collection database db
// has now (call it again after new collections appear). Benchmarks use
// it so that reads by id on the stand-in are point lookups, as on MongoDB.
func (s *Server) EnsureIDIndexes(ctx context.Context, db string) error {
	sdb, err := s.sqlDB(db)
	if err != nil {
		return err
	}
	rows, err := sdb.QueryContext(ctx, `SELECT name FROM "`+collectionsTable+`"`)
	if err != nil {
		return fmt.Errorf("ferrettest: list collections: %w", err)
	}
	var names []string
	for rows.Next() {
		var n string
		if err := rows.Scan(&n); err != nil {
			rows.Close()
			return fmt.Errorf("ferrettest: list collections: %w", err)
		}
		names = append(names, n)
	}
	rows.Close()
	if err := rows.Err(); err != nil {
		return fmt.Errorf("ferrettest: list collections: %w", err)
	}
	for _, n := range names {
		if err := s.EnsureIDIndex(ctx, db, n); err != nil {
			return err
		}
	}
	return nil
}
