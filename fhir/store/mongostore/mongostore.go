package mongostore

import (
	"context"
	"errors"
	"log/slog"
	"slices"
	"strings"
	"sync"
	"time"

	"go.mongodb.org/mongo-driver/v2/bson"
	"go.mongodb.org/mongo-driver/v2/mongo"
	"go.mongodb.org/mongo-driver/v2/mongo/options"
	"go.mongodb.org/mongo-driver/v2/mongo/readconcern"
	"go.mongodb.org/mongo-driver/v2/mongo/readpref"
	"go.mongodb.org/mongo-driver/v2/mongo/writeconcern"

	"github.com/casefhir/casefhir/fhir/outcome"
	"github.com/casefhir/casefhir/fhir/store"
)

// Options configure Open.
type Options struct {
	// URI is the MongoDB connection string.
	URI string
	// Database is the database name.
	Database string
	// Embedded says the server is the in-process FerretDB and this process
	// is the only writer: compare-and-swap then uses in-process locks and
	// {_id}-only operations, and only filters FerretDB evaluates correctly
	// are pushed down.
	Embedded bool
	// OnCollection, if set, is called once per process for every collection
	// the store creates or finds at Open, after it exists (the embedded
	// server adds its _id expression index there).
	OnCollection func(ctx context.Context, db, coll string) error
	// Logger receives operational messages (never resource content).
	Logger *slog.Logger
	// LazySearchIndex, in embedded mode, loads each type's in-memory
	// search index on the first search of that type instead of in the
	// background from Open (see memindex.go).
	LazySearchIndex bool
	// ScanSearch, in embedded mode, serves Find and Count from the database
	// (a scan) instead of the in-memory search index. It is for a second
	// client of an embedded store that another Store writes (tools and
	// benchmarks): the in-memory index only sees this Store's own writes.
	ScanSearch bool
}

// Store is a store.Store on MongoDB or the embedded FerretDB.
type Store struct {
	client   *mongo.Client
	db       *mongo.Database
	dbName   string
	embedded bool
	onColl   func(ctx context.Context, db, coll string) error
	log      *slog.Logger

	// ready holds the names of collections known to exist with their
	// indexes (and OnCollection done) in this process.
	ready sync.Map // string -> struct{}
	// ensureMu serialises first-touch collection setup in this process
	// (concurrent createIndexes can crash FerretDB's connection handler).
	ensureMu sync.Mutex

	// tx holds the per-key locks that serialise read-check-write sequences
	// in embedded mode (and transactions, see tx.go).
	tx txState

	// pushable, when set, overrides which leaf filters are pushed down
	// (tests use it to check FerretDB's answers and the Go-side path).
	pushable func(*store.Filter) bool

	// mem is the in-memory search index of embedded mode (memindex.go);
	// scanOnly turns it off (tests and benchmarks compare with the scan).
	mem       memIndex
	scanOnly  bool
	lazyIndex bool
	// wildcard: the database supports wildcard indexes (MongoDB 4.2+, not
	// FerretDB), so resource collections get one on their search values.
	wildcard bool
	// leases are the Lock leases of embedded mode (lease.go).
	leases leaseTable

	// bg is cancelled by Close; background work (table loads) runs in it.
	bg   context.Context
	stop context.CancelFunc
}

var _ store.Store = (*Store)(nil)

// locksColl holds Lock leases.
const locksColl = "_locks"

// Open connects, checks the database answers, and creates the indexes of
// every existing collection (idempotently).
func Open(ctx context.Context, o Options) (*Store, error) {
	const op = "mongostore.Open"
	if o.URI == "" || o.Database == "" {
		return nil, outcome.New(outcome.Exception, "mongostore: URI and Database are required").WithOp(op)
	}
	log := o.Logger
	if log == nil {
		log = slog.New(slog.DiscardHandler)
	}
	co := options.Client().SetServerSelectionTimeout(10 * time.Second).ApplyURI(o.URI)
	if !o.Embedded {
		journal := true
		co.SetWriteConcern(&writeconcern.WriteConcern{W: "majority", Journal: &journal})
		// Local, not majority: a read on the primary then sees every
		// acknowledged write at once (majority snapshots may lag it), which
		// conditional create under Lock relies on.
		co.SetReadConcern(readconcern.Local())
		co.SetReadPreference(readpref.Primary())
	}
	client, err := mongo.Connect(co)
	if err != nil {
		return nil, translate(op, err)
	}
	s := &Store{
		client:   client,
		db:       client.Database(o.Database),
		dbName:   o.Database,
		embedded: o.Embedded,
		onColl:   o.OnCollection,
		log:      log,

		lazyIndex: o.LazySearchIndex,
		scanOnly:  o.ScanSearch,
	}
	s.bg, s.stop = context.WithCancel(context.WithoutCancel(ctx))
	if err := s.open(ctx); err != nil {
		s.stop()
		_ = client.Disconnect(context.WithoutCancel(ctx))
		return nil, err
	}
	return s, nil
}

func (s *Store) open(ctx context.Context) error {
	const op = "mongostore.Open"
	if err := s.Ping(ctx); err != nil {
		return err
	}
	// FerretDB answers buildInfo with a "ferretdbVersion" field; it accepts
	// a wildcard index key but builds a useless (and harmful) index for it.
	var info bson.Raw
	if err := s.client.Database("admin").RunCommand(ctx, bson.D{{Key: "buildInfo", Value: 1}}).Decode(&info); err == nil {
		_, ferret := info.Lookup("ferretdbVersion").StringValueOK()
		s.wildcard = !ferret
	}
	names, err := s.db.ListCollectionNames(ctx, bson.D{})
	if err != nil {
		return translate(op, err)
	}
	if err := s.ensure(ctx, locksColl); err != nil {
		return err
	}
	for _, n := range names {
		if err := s.ensure(ctx, n); err != nil {
			return err
		}
	}
	if err := s.recoverJournal(ctx); err != nil {
		return err
	}
	if s.useTable() && !s.lazyIndex {
		go s.preload(names)
	}
	s.log.InfoContext(ctx, "store opened", "database", s.dbName, "embedded", s.embedded, "collections", len(names))
	return nil
}

// ensure makes collection name exist with its indexes and runs OnCollection,
// once per process.
func (s *Store) ensure(ctx context.Context, name string) error {
	if _, ok := s.ready.Load(name); ok {
		return nil
	}
	s.ensureMu.Lock()
	defer s.ensureMu.Unlock()
	if _, ok := s.ready.Load(name); ok {
		return nil
	}
	const op = "mongostore.ensureCollection"
	if err := s.db.CreateCollection(ctx, name); err != nil && !hasCode(err, 48) { // 48: NamespaceExists
		return translate(op, err)
	}
	if !s.embedded {
		// FerretDB's SQLite backend serves no query from these (only the
		// _id expression index helps), so they would only slow writes there.
		var models []mongo.IndexModel
		switch {
		case name == locksColl:
		case strings.HasSuffix(name, historySuffix):
			models = append(models,
				mongo.IndexModel{Keys: bson.D{{Key: fLU, Value: 1}, {Key: fVersion, Value: 1}}},
				mongo.IndexModel{Keys: bson.D{{Key: fRID, Value: 1}, {Key: fVersion, Value: -1}}})
		default:
			// lu, v: _lastUpdated filters and sorts, and history's
			// newest-first order (walked backwards).
			models = append(models, mongo.IndexModel{Keys: bson.D{{Key: fLU, Value: 1}, {Key: fVersion, Value: 1}}})
		}
		if len(models) > 0 {
			if _, err := s.db.Collection(name).Indexes().CreateMany(ctx, models); err != nil {
				return translate(op, err)
			}
		}
		if s.wildcard && isResourceCollection(name) {
			// One wildcard index serves every search value path (x.<param>.<part>):
			// equality on tokens and references, ranges on dates and numbers,
			// anchored prefixes on strings, the patient compartment. A
			// collection has at most 64 indexes; a type has up to ~80 paths.
			wild := mongo.IndexModel{Keys: bson.D{{Key: fIndex + ".$**", Value: 1}}}
			if _, err := s.db.Collection(name).Indexes().CreateOne(ctx, wild); err != nil {
				s.log.WarnContext(ctx, "the database did not create the wildcard search index; searches of this type scan",
					"collection", name, "error", translate(op, err).Error())
			}
		}
	}
	if s.onColl != nil {
		if err := s.onColl(ctx, s.dbName, name); err != nil {
			return outcome.Wrap(driverError{kind: "collection hook failed"}, outcome.Exception, op, "preparing a collection failed")
		}
	}
	s.ready.Store(name, struct{}{})
	return nil
}

// isResourceCollection reports whether name holds current resource
// versions (not history, leases, journals or jobs).
func isResourceCollection(name string) bool {
	return name != "" && name[0] != '_' && !strings.HasSuffix(name, historySuffix)
}

// EnsureIndexes declares index paths of typ that search queries use: on
// MongoDB it creates an ascending index on x.<path> for each (idempotent);
// on the embedded store it only makes sure the collection exists.
func (s *Store) EnsureIndexes(ctx context.Context, typ string, paths []string) error {
	const op = "mongostore.EnsureIndexes"
	if err := checkType(op, typ); err != nil {
		return err
	}
	if err := s.ensure(ctx, typ); err != nil {
		return err
	}
	if s.embedded || len(paths) == 0 {
		return nil
	}
	models := make([]mongo.IndexModel, 0, len(paths))
	for _, p := range paths {
		if p == "" || p == store.PathID || p == store.PathLastUpdated || strings.Contains(p, "$") {
			continue
		}
		models = append(models, mongo.IndexModel{Keys: bson.D{{Key: fIndex + "." + p, Value: 1}}})
	}
	if len(models) == 0 {
		return nil
	}
	_, err := s.db.Collection(typ).Indexes().CreateMany(ctx, models)
	return translate(op, err)
}

// checkType rejects names that are not usable as a resource collection.
func checkType(op, typ string) error {
	if typ == "" || typ[0] == '_' || strings.ContainsAny(typ, "$./\x00 ") || strings.HasSuffix(typ, historySuffix) ||
		strings.HasPrefix(typ, "system") {
		return outcome.New(outcome.NotSupported, "unsupported resource type").WithOp(op).WithStatus(400)
	}
	return nil
}

// keyLock locks key (embedded mode) and returns its unlock.
func (s *Store) keyLock(key string) func() {
	unlock, _ := s.tx.locks.lock(context.Background(), key)
	return unlock
}

// Ping implements store.Store: it checks the database answers.
func (s *Store) Ping(ctx context.Context) error {
	return translate("mongostore.Ping", s.db.RunCommand(ctx, bson.D{{Key: "ping", Value: 1}}).Err())
}

// Close implements store.Store: it stops background work and disconnects
// the client.
func (s *Store) Close(ctx context.Context) error {
	s.stop()
	return translate("mongostore.Close", s.client.Disconnect(ctx))
}

// Types implements store.Store: the resource types with any stored data
// (current versions or tombstones).
func (s *Store) Types(ctx context.Context) ([]string, error) {
	const op = "mongostore.Types"
	names, err := s.db.ListCollectionNames(ctx, bson.D{})
	if err != nil {
		return nil, translate(op, err)
	}
	var out []string
	for _, n := range names {
		if checkType(op, n) != nil {
			continue
		}
		err := s.db.Collection(n).FindOne(ctx, bson.D{}, options.FindOne().SetProjection(bson.D{{Key: fID, Value: 1}})).Err()
		if errors.Is(err, mongo.ErrNoDocuments) {
			continue
		}
		if err != nil {
			return nil, translate(op, err)
		}
		out = append(out, n)
	}
	slices.Sort(out)
	return out, nil
}
