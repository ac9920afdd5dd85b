package ferrettest

import (
	"context"
	"database/sql"
	"errors"
	"fmt"
	"log/slog"
	"net/url"
	"os"
	"path/filepath"
	"sync"
	"time"

	"github.com/FerretDB/FerretDB/ferretdb"
)

// Options configure Start.
type Options struct {
	// DataDir holds the SQLite files (one per database). It is created if
	// missing.
	DataDir string
	// Logger receives FerretDB's warnings and errors (nil: discarded).
	Logger *slog.Logger
}

// Server is a running in-process FerretDB.
type Server struct {
	dir    string
	uri    string
	cancel context.CancelFunc
	done   chan struct{}

	mu  sync.Mutex
	dbs map[string]*sql.DB // side connections used for expression indexes (index.go)
}

// Start starts FerretDB on a loopback TCP port with its files under
// o.DataDir. Close stops it.
func Start(ctx context.Context, o Options) (*Server, error) {
	if o.DataDir == "" {
		return nil, errors.New("ferrettest: empty data directory")
	}
	dir, err := filepath.Abs(o.DataDir)
	if err != nil {
		return nil, fmt.Errorf("ferrettest: data directory: %w", err)
	}
	if err := os.MkdirAll(dir, 0o700); err != nil {
		return nil, fmt.Errorf("ferrettest: create data directory: %w", err)
	}
	if err := ctx.Err(); err != nil {
		return nil, err
	}

	f, err := ferretdb.New(&ferretdb.Config{
		Listener:  ferretdb.ListenerConfig{TCP: "127.0.0.1:0"},
		Logger:    warnLogger(o.Logger),
		Handler:   "sqlite",
		SQLiteURL: sqliteURL(dir),
	})
	if err != nil {
		return nil, fmt.Errorf("ferrettest: start FerretDB: %w", err)
	}

	runCtx, cancel := context.WithCancel(context.Background())
	s := &Server{dir: dir, cancel: cancel, done: make(chan struct{}), dbs: map[string]*sql.DB{}}
	go func() {
		defer close(s.done)
		_ = f.Run(runCtx) // always nil; returns once runCtx is canceled
	}()
	s.uri = f.MongoDBURI() // blocks until the listener is ready
	return s, nil
}

// sqliteURL is FerretDB's SQLite URI for dir: a directory URI ending in "/",
// with synchronous=FULL so that, in WAL mode, every commit is fsynced before
// it is acknowledged (NORMAL may lose the last commits on power loss).
// FerretDB adds busy_timeout, journal_mode(wal) and auto_vacuum itself.
func sqliteURL(dir string) string {
	u := url.URL{Scheme: "file", Opaque: filepath.ToSlash(dir) + "/"}
	q := url.Values{}
	q.Add("_pragma", "synchronous(full)")
	u.RawQuery = q.Encode()
	return u.String()
}

// URI returns the MongoDB connection string of the running server.
func (s *Server) URI() string { return s.uri }

// DataDir returns the absolute data directory.
func (s *Server) DataDir() string { return s.dir }

// Close stops FerretDB, waiting for it to close its listener, connections
// and SQLite databases.
func (s *Server) Close() error {
	s.mu.Lock()
	var errs []error
	for name, db := range s.dbs {
		errs = append(errs, db.Close())
		delete(s.dbs, name)
	}
	s.mu.Unlock()
	s.cancel()
	select {
	case <-s.done:
	case <-time.After(30 * time.Second):
		errs = append(errs, errors.New("ferrettest: FerretDB did not stop within 30s"))
	}
	return errors.Join(errs...)
}
