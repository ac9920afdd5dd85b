package mongostore

import (
	"context"
	"errors"
	"sync"

	"go.mongodb.org/mongo-driver/v2/bson"
	"go.mongodb.org/mongo-driver/v2/mongo"
	"go.mongodb.org/mongo-driver/v2/mongo/options"

	"github.com/casefhir/casefhir/fhir/outcome"
	"github.com/casefhir/casefhir/fhir/store"
)

// The in-memory search index of the embedded store.
//
// FerretDB serves only {_id: <string>} from an index: any other query scans
// the collection and decodes every document. As one process owns embedded
// data, the store keeps, per resource type, a table of the current version
// of every resource (tombstones included) without its JSON: id, version,
// lastUpdated, deleted and the index tree, exactly as a read from the
// database would decode them. Find and Count evaluate filters over it with
// Filter.Match and sort in Go (sortResources); results with JSON are read by
// _id point lookups.
//
// Tables are loaded in the background from Open, one type after another
// (or, with Options.LazySearchIndex, on the first Find or Count of each
// type); a search of a type not loaded yet waits for its load. A load is
// one scan that projects the JSON away, although FerretDB v1.24 decodes
// every document anyway (about 0.15 ms each: BenchmarkTableLoad). It runs
// detached from the request that asked for it, so a cancelled request does
// not waste it. Every write path (Create, Update, Apply, InsertMany)
// updates the table of its type, if there is one, after the database write
// succeeded and while it still holds the resource's per-key lock. An entry
// is only ever replaced by an equal or newer version, so a write racing a
// load's scan cannot be undone by the scan's older copy; tombstones stay in
// the table for that reason. A write whose outcome is uncertain (an error
// after the request may have reached the database) re-reads the resource by
// _id, and failing that drops the table (the next search loads it again).
// Journal recovery runs at Open, before any table exists.
//
// Entries are never modified once in a table (a write replaces the
// pointer), so a search may use them after releasing the table's lock.
// Resources returned from a table share their Index tree with it: callers
// must not modify it (store.Resource.Index is read-only for them anyway).

// memIndex holds the tables of the embedded store, by type.
type memIndex struct {
	mu     sync.Mutex
	tables map[string]*memTable
}

// memTable is the current versions of one resource type.
type memTable struct {
	typ   string
	ready chan struct{} // closed when the load ended
	err   error         // the load's error, set before ready is closed

	mu   sync.RWMutex
	rows map[string]*store.Resource // by id; JSON always nil
}

// lookup returns the table of typ, or nil when none is loaded or loading.
func (m *memIndex) lookup(typ string) *memTable {
	m.mu.Lock()
	defer m.mu.Unlock()
	return m.tables[typ]
}

// drop forgets the table of typ (when t is still it), so the next search
// loads it again.
func (m *memIndex) drop(typ string, t *memTable) {
	m.mu.Lock()
	defer m.mu.Unlock()
	if t == nil || m.tables[typ] == t {
		delete(m.tables, typ)
	}
}

// put stores r in the table unless it holds a newer version of r.
func (t *memTable) put(r *store.Resource) {
	t.mu.Lock()
	if old := t.rows[r.ID]; old == nil || old.VersionID <= r.VersionID {
		t.rows[r.ID] = r
	}
	t.mu.Unlock()
}

// table returns the loaded table of typ, loading it first if needed. It
// waits for the load until ctx ends.
func (s *Store) table(ctx context.Context, typ string) (*memTable, error) {
	const op = "mongostore.Find"
	s.mem.mu.Lock()
	if s.mem.tables == nil {
		s.mem.tables = map[string]*memTable{}
	}
	t := s.mem.tables[typ]
	if t == nil {
		t = &memTable{typ: typ, ready: make(chan struct{}), rows: map[string]*store.Resource{}}
		s.mem.tables[typ] = t
		go s.load(t)
	}
	s.mem.mu.Unlock()
	select {
	case <-t.ready:
	case <-ctx.Done():
		return nil, translate(op, ctx.Err())
	}
	if t.err != nil {
		return nil, t.err
	}
	return t, nil
}

// loadBatch is how many scanned documents a load merges per lock.
const loadBatch = 512

// load fills t with one scan of the collection, the JSON projected away.
// Writes that land meanwhile are put into t by the writers; put's version
// check keeps the newer of the two copies.
func (s *Store) load(t *memTable) {
	const op = "mongostore.Find"
	defer close(t.ready)
	ctx := s.bg
	fail := func(err error) {
		t.err = err
		s.mem.drop(t.typ, t)
	}
	if err := s.ensure(ctx, t.typ); err != nil {
		fail(err)
		return
	}
	cur, err := s.db.Collection(t.typ).Find(ctx, bson.D{},
		options.Find().SetProjection(bson.D{{Key: fJSON, Value: 0}}).SetBatchSize(loadBatch))
	if err != nil {
		fail(translate(op, err))
		return
	}
	defer cur.Close(context.WithoutCancel(ctx))
	batch := make([]*store.Resource, 0, loadBatch)
	merge := func() {
		t.mu.Lock()
		for _, r := range batch {
			if old := t.rows[r.ID]; old == nil || old.VersionID < r.VersionID {
				t.rows[r.ID] = r
			}
		}
		t.mu.Unlock()
		batch = batch[:0]
	}
	for cur.Next(ctx) {
		r, err := decode(t.typ, cur.Current, false)
		if err != nil {
			fail(err)
			return
		}
		batch = append(batch, r)
		if len(batch) == loadBatch {
			merge()
		}
	}
	if err := cur.Err(); err != nil {
		fail(translate(op, err))
		return
	}
	merge()
}

// noteDoc puts the stored current document doc of typ into its table, if
// the table exists. Call it after the write succeeded, under the key lock.
func (s *Store) noteDoc(typ string, doc bson.Raw) {
	t := s.mem.lookup(typ)
	if t == nil {
		return
	}
	r, err := decode(typ, doc, false)
	if err != nil {
		s.mem.drop(typ, t)
		return
	}
	t.put(r)
}

// refresh re-reads typ/id by _id after a write whose outcome is unknown and
// puts what is stored into the table; failing that, it drops the table.
func (s *Store) refresh(ctx context.Context, typ, id string) {
	t := s.mem.lookup(typ)
	if t == nil {
		return
	}
	ctx = context.WithoutCancel(ctx)
	raw, err := s.db.Collection(typ).FindOne(ctx, bson.D{{Key: fID, Value: id}},
		options.FindOne().SetProjection(bson.D{{Key: fJSON, Value: 0}})).Raw()
	switch {
	case errors.Is(err, mongo.ErrNoDocuments):
		// Never written: nothing to note (resources are never removed).
	case err != nil:
		s.mem.drop(typ, t)
	default:
		s.noteDoc(typ, raw)
	}
}

// marshalDoc returns r as the BSON current-version document it is stored as.
func marshalDoc(op string, r *store.Resource) (bson.Raw, error) {
	b, err := bson.Marshal(encode(r))
	if err != nil {
		return nil, outcome.Wrap(driverError{kind: "unencodable index"}, outcome.Exception, op, "the resource could not be stored")
	}
	return b, nil
}

// matches returns the non-deleted rows of t matching f: the rows of
// the pinned ids when f pins them, else every row.
func (t *memTable) matches(f *store.Filter) []*store.Resource {
	var out []*store.Resource
	t.mu.RLock()
	defer t.mu.RUnlock()
	if ids, ok := idCandidates(f); ok {
		for _, id := range ids {
			if r := t.rows[id]; r != nil && !r.Deleted && f.Match(r) {
				out = append(out, r)
			}
		}
		return out
	}
	for _, r := range t.rows {
		if !r.Deleted && f.Match(r) {
			out = append(out, r)
		}
	}
	return out
}

// size returns the number of rows (tombstones included).
func (t *memTable) size() int {
	t.mu.RLock()
	defer t.mu.RUnlock()
	return len(t.rows)
}

// fetchFraction: a Find with JSON that would read more than this share of
// the collection by point lookups scans it instead (a point lookup costs a
// few times the per-document cost of a scan).
const fetchFraction = 4

// findTable serves Find from the table: match, sort, skip and limit in Go,
// then return index-only copies, or read the JSON by _id. ok false means
// the caller should query the database instead (a large result with JSON).
func (s *Store) findTable(t *memTable, f *store.Filter, opt store.FindOptions) (store.Cursor, bool) {
	rs := t.matches(f)
	if !opt.IndexOnly && len(rs) > 64 && len(rs)-opt.Skip > t.size()/fetchFraction &&
		(opt.Limit == 0 || opt.Limit > t.size()/fetchFraction) {
		return nil, false
	}
	sortResources(rs, opt.Sort)
	if opt.Skip >= len(rs) {
		rs = nil
	} else {
		rs = rs[opt.Skip:]
	}
	if opt.Limit > 0 && len(rs) > opt.Limit {
		rs = rs[:opt.Limit]
	}
	if !opt.IndexOnly {
		return &fetchCursor{s: s, typ: t.typ, f: f, rs: rs}, true
	}
	copies := make([]store.Resource, len(rs))
	out := make([]*store.Resource, len(rs))
	for i, r := range rs {
		copies[i] = *r
		out[i] = &copies[i]
	}
	return &sliceCursor{rs: out}, true
}

// fetchCursor reads the JSON of table hits by _id as the caller iterates.
// A resource changed since the table was consulted is returned in its
// stored version when that still matches, and skipped otherwise.
type fetchCursor struct {
	s   *Store
	typ string
	f   *store.Filter
	rs  []*store.Resource
}

// Next implements store.Cursor.
func (c *fetchCursor) Next(ctx context.Context) (*store.Resource, error) {
	const op = "mongostore.Find"
	for len(c.rs) > 0 {
		id := c.rs[0].ID
		c.rs = c.rs[1:]
		r, err := c.s.findOne(ctx, op, c.typ, c.typ, id)
		if err != nil {
			return nil, err
		}
		if r == nil || r.Deleted || !c.f.Match(r) {
			continue
		}
		return r, nil
	}
	return nil, nil
}

// Close implements store.Cursor.
func (c *fetchCursor) Close(context.Context) error { c.rs = nil; return nil }

// countTable serves Count from the table.
func countTable(t *memTable, f *store.Filter) int64 {
	return int64(len(t.matches(f)))
}

// useTable reports whether Find and Count use the in-memory search index.
func (s *Store) useTable() bool { return s.embedded && !s.scanOnly }

// findEmbedded serves an embedded Find: a filter pinning the id by point
// lookups (from the table when it is loaded and no JSON is wanted), anything
// else from the table. ok false means: query the database.
func (s *Store) findEmbedded(ctx context.Context, typ string, f *store.Filter, opt store.FindOptions) (store.Cursor, bool, error) {
	if ids, ok := idCandidates(f); ok && len(ids) <= maxIDLookups {
		t := s.mem.lookup(typ)
		if t == nil || !opt.IndexOnly || !t.loaded() {
			rs, err := s.findByIDs(ctx, typ, ids, f, opt)
			if err != nil {
				return nil, false, err
			}
			return &sliceCursor{rs: rs}, true, nil
		}
	}
	t, err := s.table(ctx, typ)
	if err != nil {
		return nil, false, err
	}
	c, ok := s.findTable(t, f, opt)
	return c, ok, nil
}

// loaded reports whether t's load ended without error.
func (t *memTable) loaded() bool {
	select {
	case <-t.ready:
		return t.err == nil
	default:
		return false
	}
}

// preload loads the tables of the resource types among names, one at a
// time, in the background (stopped by Close).
func (s *Store) preload(names []string) {
	for _, n := range names {
		if checkType("", n) != nil {
			continue
		}
		if _, err := s.table(s.bg, n); err != nil {
			if s.bg.Err() == nil {
				s.log.Warn("loading the search index failed; it is retried on the next search", "type", n, "error", err.Error())
			}
			return
		}
	}
}
