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
	// Logger receives operational messages (never resource content).
	Logger *slog.Logger
	// AllowStandalone is for test stand-ins only (FerretDB started by a
	// test or a benchmark): it lets Open accept a server that is not a
	// replica set member or a mongos. Such a store has no transactions
	// (Apply fails with outcome.NotSupported) and its compare-and-swap is
	// only as atomic as the stand-in makes it. casefhir never sets it.
	AllowStandalone bool
}

// Store is a store.Store on MongoDB (a replica set or a sharded cluster).
type Store struct {
	client *mongo.Client
	db     *mongo.Database
	dbName string
	log    *slog.Logger
	counts *commandCounts

	// ready holds the names of collections known to exist with their
	// indexes in this process.
	ready sync.Map // string -> struct{}
	// ensureMu serialises first-touch collection setup in this process.
	ensureMu sync.Mutex

	// sessions: the deployment runs multi-document transactions (a
	// replica set member or a mongos).
	sessions bool
	// ferret: the server is FerretDB (a test stand-in); it accepts a
	// wildcard index key but builds a useless index for it.
	ferret bool
}

var _ store.Store = (*Store)(nil)

// locksColl holds Lock leases.
const locksColl = "_locks"

// Open connects, checks the server is a replica set member or a mongos
// (a standalone server is refused: transactions need a replica set), and
// creates the indexes of every existing collection (idempotently).
func Open(ctx context.Context, o Options) (*Store, error) {
	const op = "mongostore.Open"
	if o.URI == "" || o.Database == "" {
		return nil, outcome.New(outcome.Exception, "mongostore: URI and Database are required").WithOp(op)
	}
	log := o.Logger
	if log == nil {
		log = slog.New(slog.DiscardHandler)
	}
	counts := newCommandCounts()
	co := options.Client().SetServerSelectionTimeout(10 * time.Second).ApplyURI(o.URI).SetMonitor(counts.monitor())
	journal := true
	co.SetWriteConcern(&writeconcern.WriteConcern{W: "majority", Journal: &journal})
	// Local, not majority: a read on the primary then sees every
	// acknowledged write at once (majority snapshots may lag it), which
	// conditional create under Lock relies on.
	co.SetReadConcern(readconcern.Local())
	co.SetReadPreference(readpref.Primary())
	client, err := mongo.Connect(co)
	if err != nil {
		return nil, translate(op, err)
	}
	s := &Store{client: client, db: client.Database(o.Database), dbName: o.Database, log: log, counts: counts}
	if err := s.open(ctx, strings.Join(co.Hosts, ","), o.AllowStandalone); err != nil {
		_ = client.Disconnect(context.WithoutCancel(ctx))
		return nil, err
	}
	return s, nil
}

func (s *Store) open(ctx context.Context, hosts string, allowStandalone bool) error {
	const op = "mongostore.Open"
	if err := s.Ping(ctx); err != nil {
		return err
	}
	var hello struct {
		SetName string `bson:"setName"`
		Msg     string `bson:"msg"`
	}
	if err := s.client.Database("admin").RunCommand(ctx, bson.D{{Key: "hello", Value: 1}}).Decode(&hello); err != nil {
		return translate(op, err)
	}
	s.sessions = hello.SetName != "" || hello.Msg == "isdbgrid"
	// FerretDB answers buildInfo with a "ferretdbVersion" field.
	var info bson.Raw
	if err := s.client.Database("admin").RunCommand(ctx, bson.D{{Key: "buildInfo", Value: 1}}).Decode(&info); err == nil {
		_, s.ferret = info.Lookup("ferretdbVersion").StringValueOK()
	}
	if !s.sessions && !allowStandalone {
		return outcome.New(outcome.Exception, "MongoDB at "+hosts+" is a standalone server: casefhir needs a replica set "+
			"(a one-node replica set is fine) for transactions").WithOp(op)
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
	for _, n := range names {
		if typ, ok := strings.CutSuffix(n, historySuffix); ok && checkType(op, typ) == nil {
			if err := s.moveHistory(ctx, n, typ); err != nil {
				return err
			}
		}
	}
	s.log.InfoContext(ctx, "store opened", "database", s.dbName, "transactions", s.sessions, "collections", len(names))
	return nil
}

// ensure makes collection name exist with its indexes, once per process
// (createIndexes is idempotent, so other processes may do it too).
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
	if err := s.createIndexes(ctx, name, s.indexModels(name)); err != nil {
		return translate(op, err)
	}
	s.ready.Store(name, struct{}{})
	return nil
}

// isResourceCollection reports whether name holds resource versions (not
// leases or jobs, nor an earlier version's history collection).
func isResourceCollection(name string) bool {
	return name != "" && name[0] != '_' && !strings.HasSuffix(name, historySuffix)
}

// EnsureIndexes declares index paths of typ that queries use: for each
// path, an ascending index on x.<path>; for a sort path (package search's
// "_sort.<param>.a" or "_sort.<param>.d"), the compound index that serves
// that sort with its id tie-breaker, {x.<path>: 1, _id: 1} for ".a" and
// {x.<path>: -1, _id: 1} for ".d" (see docs/mongodb-indexes.md). It is
// idempotent.
func (s *Store) EnsureIndexes(ctx context.Context, typ string, paths []string) error {
	const op = "mongostore.EnsureIndexes"
	if err := checkType(op, typ); err != nil {
		return err
	}
	if err := s.ensure(ctx, typ); err != nil {
		return err
	}
	models := make([]mongo.IndexModel, 0, len(paths))
	for _, p := range paths {
		if p == "" || p == store.PathID || p == store.PathLastUpdated || strings.Contains(p, "$") {
			continue
		}
		models = append(models, s.pathIndex(p))
	}
	return translate(op, s.createIndexes(ctx, typ, models))
}

// checkType rejects names that are not usable as a resource collection.
func checkType(op, typ string) error {
	if typ == "" || typ[0] == '_' || strings.ContainsAny(typ, "$./\x00 ") || strings.HasSuffix(typ, historySuffix) ||
		strings.HasPrefix(typ, "system") {
		return outcome.New(outcome.NotSupported, "unsupported resource type").WithOp(op).WithStatus(400)
	}
	return nil
}

// Ping implements store.Store: it checks the database answers.
func (s *Store) Ping(ctx context.Context) error {
	return translate("mongostore.Ping", s.db.RunCommand(ctx, bson.D{{Key: "ping", Value: 1}}).Err())
}

// Close implements store.Store: it disconnects the client.
func (s *Store) Close(ctx context.Context) error {
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
