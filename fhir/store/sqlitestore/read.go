package sqlitestore

import (
	"context"
	"database/sql"
	"errors"
	"strings"
	"time"

	"github.com/casefhir/casefhir/fhir/outcome"
	"github.com/casefhir/casefhir/fhir/store"
)

// DefaultHistoryLimit is the number of versions History returns when
// HistoryQuery.Limit is 0.
const DefaultHistoryLimit = 100

// row decodes one (type, id, version, lu, deleted, json, idx) row.
func scanResource(sc interface{ Scan(...any) error }, withJSON bool) (*store.Resource, error) {
	var (
		r       store.Resource
		lu      int64
		deleted bool
		js, idx []byte
	)
	if err := sc.Scan(&r.Type, &r.ID, &r.VersionID, &lu, &deleted, &js, &idx); err != nil {
		return nil, err
	}
	r.LastUpdated = time.UnixMilli(lu).UTC()
	r.Deleted = deleted
	if !deleted && withJSON {
		r.JSON = js
		if r.JSON == nil {
			r.JSON = []byte{}
		}
	}
	var err error
	if r.Index, err = decodeIndex(idx); err != nil {
		return nil, outcome.Wrap(err, outcome.Exception, "sqlitestore.decode", "stored data is corrupt")
	}
	return &r, nil
}

const resourceCols = "h.type, h.id, h.version, h.lu, h.deleted, h.json, h.idx"

// readQuery is Read's statement, prepared once (each reader connection
// then keeps it compiled): a read by id parses no SQL.
const readQuery = "SELECT " + resourceCols + readFrom

// readJSONQuery is ReadJSON's statement: readQuery without the index.
const readJSONQuery = "SELECT h.type, h.id, h.version, h.lu, h.deleted, h.json, NULL" + readFrom

const readFrom = " FROM resources r JOIN history h ON h.hrow = r.hrow WHERE r.type=? AND r.id=?"

// ReadMany implements store.BatchReader: one query per 500 ids.
func (s *Store) ReadMany(ctx context.Context, typ string, ids []string) (map[string]*store.Resource, error) {
	const op = "sqlitestore.ReadMany"
	if err := checkType(op, typ); err != nil {
		return nil, err
	}
	out := make(map[string]*store.Resource, len(ids))
	for from := 0; from < len(ids); from += 500 {
		chunk := ids[from:min(from+500, len(ids))]
		args := make([]any, 0, len(chunk)+1)
		args = append(args, typ)
		for _, id := range chunk {
			args = append(args, id)
		}
		rows, err := s.r.QueryContext(ctx, "SELECT "+resourceCols+" FROM resources r JOIN history h ON h.hrow = r.hrow WHERE r.type=? AND r.id IN ("+placeholders(len(chunk))+")", args...)
		if err != nil {
			return nil, translate(op, err)
		}
		for rows.Next() {
			r, err := scanResource(rows, true)
			if err != nil {
				_ = rows.Close()
				return nil, translate(op, err)
			}
			out[r.ID] = r
		}
		err = rows.Err()
		_ = rows.Close()
		if err != nil {
			return nil, translate(op, err)
		}
	}
	return out, nil
}

// Read implements store.Store: the current row and its history row.
//
// A read by id is one primary-key lookup that cannot run long, so it is
// not made cancellable: with a cancellable context, database/sql and the
// driver each start a goroutine per query to watch it, which cost about a
// quarter of the server's CPU per read (measured on 300k resources).
func (s *Store) Read(ctx context.Context, typ, id string) (*store.Resource, error) {
	return s.read(ctx, "sqlitestore.Read", s.readStmt, typ, id)
}

// ReadJSON implements store.JSONReader: Read without the stored search
// values (not selected, not decoded).
func (s *Store) ReadJSON(ctx context.Context, typ, id string) (*store.Resource, error) {
	return s.read(ctx, "sqlitestore.ReadJSON", s.readJSONStmt, typ, id)
}

func (s *Store) read(ctx context.Context, op string, stmt *sql.Stmt, typ, id string) (*store.Resource, error) {
	if err := checkType(op, typ); err != nil {
		return nil, err
	}
	r, err := scanResource(stmt.QueryRowContext(context.WithoutCancel(ctx), typ, id), true)
	if errors.Is(err, sql.ErrNoRows) {
		return nil, notFound(op, typ, id)
	}
	if err != nil {
		return nil, translate(op, err)
	}
	return r, nil
}

// VRead implements store.Store.
func (s *Store) VRead(ctx context.Context, typ, id string, version int64) (*store.Resource, error) {
	const op = "sqlitestore.VRead"
	if err := checkType(op, typ); err != nil {
		return nil, err
	}
	r, err := scanResource(s.r.QueryRowContext(context.WithoutCancel(ctx), // a point lookup, as in Read
		"SELECT "+resourceCols+" FROM history h WHERE h.type=? AND h.id=? AND h.version=?", typ, id, version), true)
	if errors.Is(err, sql.ErrNoRows) {
		return nil, (&outcome.Error{Op: op, Code: outcome.NotFound, Detail: "version not found"}).WithDiagnostics(typ + "/" + id + " version not found")
	}
	if err != nil {
		return nil, translate(op, err)
	}
	return r, nil
}

// History implements store.Store: versions in the order of
// store.VersionKey, read from the history indexes (lu DESC, type, id,
// version DESC) one page at a time.
func (s *Store) History(ctx context.Context, q store.HistoryQuery) ([]*store.Resource, error) {
	const op = "sqlitestore.History"
	if q.Limit <= 0 {
		q.Limit = DefaultHistoryLimit
	}
	q.Offset = max(q.Offset, 0)
	var where []string
	var args []any
	if q.Type != "" {
		if err := checkType(op, q.Type); err != nil {
			return nil, err
		}
		where = append(where, "h.type=?")
		args = append(args, q.Type)
	}
	if q.ID != "" {
		if q.Type == "" {
			return nil, outcome.New(outcome.Exception, "instance history needs a type").WithOp(op)
		}
		var one int
		err := s.r.QueryRowContext(ctx, "SELECT 1 FROM resources WHERE type=? AND id=?", q.Type, q.ID).Scan(&one)
		if errors.Is(err, sql.ErrNoRows) {
			return nil, notFound(op, q.Type, q.ID)
		}
		if err != nil {
			return nil, translate(op, err)
		}
		where = append(where, "h.id=?")
		args = append(args, q.ID)
	}
	if !q.At.IsZero() {
		at := msOf(q.At)
		where = append(where, "h.lu<=?", "h.version=(SELECT max(h2.version) FROM history h2 WHERE h2.type=h.type AND h2.id=h.id AND h2.lu<=?)")
		args = append(args, at, at)
	}
	if !q.Since.IsZero() {
		where = append(where, "h.lu>=?")
		args = append(args, msOf(ms(q.Since)))
	}
	if !q.Before.IsZero() {
		where = append(where, "h.lu<?")
		args = append(args, msOf(ms(q.Before)))
	}
	if a := q.After; a != nil {
		lu := msOf(a.LastUpdated)
		where = append(where, "h.lu<=?",
			"(h.lu<? OR h.type>? OR (h.type=? AND (h.id>? OR (h.id=? AND h.version<?))))")
		args = append(args, lu, lu, a.Type, a.Type, a.ID, a.ID, a.VersionID)
	}
	sqlq := "SELECT " + resourceCols + " FROM history h"
	if len(where) > 0 {
		sqlq += " WHERE " + strings.Join(where, " AND ")
	}
	sqlq += " ORDER BY h.lu DESC, h.type, h.id, h.version DESC LIMIT ? OFFSET ?"
	args = append(args, q.Limit, q.Offset)
	rows, err := s.r.QueryContext(ctx, sqlq, args...)
	if err != nil {
		return nil, translate(op, err)
	}
	defer rows.Close()
	var out []*store.Resource
	for rows.Next() {
		r, err := scanResource(rows, true)
		if err != nil {
			return nil, translate(op, err)
		}
		out = append(out, r)
	}
	return out, translate(op, rows.Err())
}
