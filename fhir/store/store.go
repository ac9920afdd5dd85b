package store

import (
	"context"
	"time"
)

// Resource is one stored version of a resource.
//
// JSON is the canonical JSON produced by the codec once, on write, with
// id, meta.versionId and meta.lastUpdated already set: reads serve it
// verbatim. A delete is stored as a tombstone version (Deleted true, JSON nil).
type Resource struct {
	Type        string
	ID          string
	VersionID   int64
	LastUpdated time.Time
	Deleted     bool
	JSON        []byte
	// Index holds the search values extracted at write time by package
	// search. It is a JSON-like tree: map[string]any, []any, string,
	// float64, bool, time.Time (UTC). Implementations store it as a
	// sub-document and give it back with the same Go types.
	Index map[string]any
}

// Key returns "Type/id".
func (r *Resource) Key() string { return r.Type + "/" + r.ID }

// HistoryQuery selects versions for the history interaction.
type HistoryQuery struct {
	// Type and ID narrow the history: both set (instance), Type only
	// (type level), neither (system level).
	Type, ID string
	// Since keeps versions with LastUpdated >= Since (zero: no bound).
	Since time.Time
	// At keeps, per resource, the version current at that instant (zero: off).
	At time.Time
	// Before keeps versions with LastUpdated < Before (paging cursor; zero: no bound).
	Before time.Time
	// Limit caps the number of versions returned (0: implementation default).
	Limit int
	// After keeps only versions strictly after that one in the history
	// order (keyset paging; nil: from the newest).
	After *VersionKey
	// Offset skips that many versions. It costs what it skips:
	// interactions page with After instead.
	Offset int
}

// VersionKey is one version's place in the history order: LastUpdated
// descending, then Type, ID ascending, then VersionID descending.
type VersionKey struct {
	LastUpdated time.Time
	Type, ID    string
	VersionID   int64
}

// KeyOf returns r's place in the history order.
func KeyOf(r *Resource) VersionKey {
	return VersionKey{LastUpdated: r.LastUpdated, Type: r.Type, ID: r.ID, VersionID: r.VersionID}
}

// Store is the persistence contract. Implementations are safe for
// concurrent use, return *outcome.Error values (never raw driver errors),
// and acknowledge a write only once it is durable.
type Store interface {
	// Read returns the current version of Type/id, tombstones included
	// (Deleted true). A resource that never existed is outcome.NotFound.
	Read(ctx context.Context, typ, id string) (*Resource, error)
	// VRead returns one version; outcome.NotFound when there is none.
	VRead(ctx context.Context, typ, id string, version int64) (*Resource, error)
	// Create stores r (VersionID 1) as a new resource. outcome.Duplicate
	// when Type/id already exists (even deleted).
	Create(ctx context.Context, r *Resource) error
	// Update stores next as the version after prev, which must be the
	// current version (prev.VersionID+1 == next.VersionID). When the
	// current version is no longer prev, it fails with outcome.Conflict
	// and writes nothing visible. A delete is an Update to a tombstone.
	Update(ctx context.Context, next, prev *Resource) error
	// History returns versions newest first, in the order of VersionKey.
	History(ctx context.Context, q HistoryQuery) ([]*Resource, error)
	// Find returns the current, non-deleted resources of typ matching f,
	// in the order of opt.Sort (then id), or without Sort in the store's
	// own order (see FindOptions.Sort). f may match a superset (callers
	// check exactly); it must never miss a match. Filter, sort, After and
	// Limit are applied by the database; see the package documentation for
	// the filter shapes every implementation serves from an index.
	Find(ctx context.Context, typ string, f *Filter, opt FindOptions) (Cursor, error)
	// Count counts what Find would return (ignoring opt Limit/Skip); the
	// database counts.
	Count(ctx context.Context, typ string, f *Filter) (int64, error)
	// Lock takes a lease named key, waiting (until ctx ends) while another
	// holder has it. The lease expires after ttl if never released (a crashed
	// holder). It serialises e.g. conditional creates across server
	// instances and processes: the lease lives in the database, never only
	// in the process.
	Lock(ctx context.Context, key string, ttl time.Duration) (unlock func(context.Context) error, err error)
	// Types lists the resource types that have any stored data.
	Types(ctx context.Context) ([]string, error)
	// Ping checks the database is reachable.
	Ping(ctx context.Context) error
	// Close releases the store's resources.
	Close(ctx context.Context) error
}

// Cursor iterates Find results.
type Cursor interface {
	// Next returns the next resource, or (nil, nil) at the end.
	Next(ctx context.Context) (*Resource, error)
	Close(ctx context.Context) error
}

// FindOptions shape a Find.
//
// Paging is by keyset: a page is Find(f, {Sort, Limit: n, After: &pos})
// where pos is PositionOf the last row of the previous page. A page costs
// what the page costs (the database walks an index in sort order and stops
// after Limit rows); nothing is remembered between pages, so any process
// serves any page. A resource that does not change while a client pages
// appears exactly once.
type FindOptions struct {
	// Sort keys, applied in order; ties are broken by id ascending. Sort
	// paths lead to at most one scalar per resource (string, float64,
	// time.Time or bool; package search extracts such sort values at write
	// time); when a path leads to several, ascending order uses the
	// smallest and descending the largest. A resource with no value at a
	// sort path sorts after every resource that has one, in either
	// direction. PathID and PathLastUpdated are always sortable.
	//
	// Without Sort, rows come in the store's own order: one fixed, total
	// order of a type's resources that an update does not change, in
	// which a row's id marks its place (After.ID). sqlitestore uses the
	// order of creation, so that a page can walk one value's index
	// entries; mongostore uses id.
	Sort []SortKey
	// Limit caps the results (0: none).
	Limit int
	// After keeps only rows strictly after that position in the order of
	// Sort (then id), or in the store's own order: the keyset cursor.
	// Values holds one entry per sort key.
	After *Position
	// Skip skips that many rows. It costs what it skips: interactions page
	// with After instead.
	Skip int
	// IndexOnly omits JSON from results (Type, ID, VersionID, LastUpdated,
	// Index only), for counting, id collection, chaining and sorting.
	// Results always carry Index.
	IndexOnly bool
}

// Position is a row's place in a sort order: its value at each sort key
// (nil where it has none) and its id, the final tie-breaker.
type Position struct {
	Values []any
	ID     string
}

// SortKey sorts by an Index path ("_lastUpdated" and "_id" are always
// available, see Path constants).
type SortKey struct {
	Path string
	Desc bool
}

// Paths always available to filters and sorts, besides Index paths.
const (
	PathID          = "_id"          // string: the logical id
	PathLastUpdated = "_lastUpdated" // time.Time
)

// Op is a filter operator.
type Op int

// Filter operators.
const (
	OpAll      Op = iota // matches everything
	OpAnd                // all Children
	OpOr                 // any Child
	OpNot                // no Child matches (one child)
	OpEq                 // Path equals Value (any element for arrays)
	OpIn                 // Path equals any of Values
	OpLt                 // Path < Value (strings, float64, time.Time)
	OpLte                // Path <= Value
	OpGt                 // Path > Value
	OpGte                // Path >= Value
	OpPrefix             // Path (string) starts with Value (string)
	OpContains           // Path (string) contains Value (string)
	OpExists             // Path exists (Value true) or not (Value false)
)

// Filter is a backend-neutral predicate over a resource's Index (and the
// PathID / PathLastUpdated paths). Paths are dotted ("date.lo"); as in
// MongoDB, a path through an array matches when any element does.
type Filter struct {
	Op       Op
	Path     string
	Value    any
	Values   []any
	Children []*Filter
}

// All returns a filter matching everything.
func All() *Filter { return &Filter{Op: OpAll} }

// And combines filters; nil children are skipped.
func And(fs ...*Filter) *Filter { return combine(OpAnd, fs) }

// Or combines filters; nil children are skipped.
func Or(fs ...*Filter) *Filter { return combine(OpOr, fs) }

func combine(op Op, fs []*Filter) *Filter {
	out := &Filter{Op: op}
	for _, f := range fs {
		if f != nil {
			out.Children = append(out.Children, f)
		}
	}
	if len(out.Children) == 1 {
		return out.Children[0]
	}
	if len(out.Children) == 0 {
		return All()
	}
	return out
}

// Eq returns Path == v.
func Eq(path string, v any) *Filter { return &Filter{Op: OpEq, Path: path, Value: v} }

// In returns Path in vs.
func In(path string, vs ...any) *Filter { return &Filter{Op: OpIn, Path: path, Values: vs} }

// Not returns a filter matching when f does not.
func Not(f *Filter) *Filter { return &Filter{Op: OpNot, Children: []*Filter{f}} }

// Lt returns Path < v.
func Lt(path string, v any) *Filter { return &Filter{Op: OpLt, Path: path, Value: v} }

// Lte returns Path <= v.
func Lte(path string, v any) *Filter { return &Filter{Op: OpLte, Path: path, Value: v} }

// Gt returns Path > v.
func Gt(path string, v any) *Filter { return &Filter{Op: OpGt, Path: path, Value: v} }

// Gte returns Path >= v.
func Gte(path string, v any) *Filter { return &Filter{Op: OpGte, Path: path, Value: v} }

// Prefix returns Path starts with s.
func Prefix(path, s string) *Filter { return &Filter{Op: OpPrefix, Path: path, Value: s} }

// Contains returns Path contains s.
func Contains(path, s string) *Filter { return &Filter{Op: OpContains, Path: path, Value: s} }

// Exists returns Path exists (yes true) or is absent (yes false).
func Exists(path string, yes bool) *Filter { return &Filter{Op: OpExists, Path: path, Value: yes} }

// SortSource says where a derived sort path's value comes from: the
// smallest scalar at Path of the same resource (Max false), or the
// largest (Max true).
type SortSource struct {
	Path string
	Max  bool
}

// SortDeriver is implemented by stores that can sort by a sort path
// without storing its values, from another Index path (sqlitestore: a
// sort value row per resource and direction is most of what a load
// writes, and it repeats a value row). DeriveSorts declares, per type,
// such sort paths and their sources; it is called once, before any
// write. Resources still carry the sort paths' values in Index (so
// PositionOf and Filter.Match see them); the store then serves a sort by
// a derived path (in its source's direction: ascending for a Max false
// source, descending for Max true) from the source's index entries, and a
// filter on one by re-checking rows (no index serves it).
type SortDeriver interface {
	DeriveSorts(sources map[string]map[string]SortSource)
}
