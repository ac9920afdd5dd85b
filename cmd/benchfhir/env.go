package main

import (
	"bufio"
	"bytes"
	"context"
	"fmt"
	"io"
	"log/slog"
	"net"
	"net/http"
	"path/filepath"
	"strconv"
	"strings"
	"syscall"
	"time"

	"github.com/casefhir/casefhir/conformance"
	"github.com/casefhir/casefhir/fhir/search"
	"github.com/casefhir/casefhir/fhir/store"
	"github.com/casefhir/casefhir/fhir/store/mongostore"
	"github.com/casefhir/casefhir/fhir/store/mongostore/ferrettest"
	"github.com/casefhir/casefhir/server"
)

// env is a running casefhir server plus a direct store client on the same
// backend.
type env struct {
	srv    *server.Server
	root   string // http://127.0.0.1:port
	base   string // root + "/fhir"
	client *http.Client
	// raw is the direct client, connected to the server's own database
	// (shared is always true: same database, same collections).
	raw    *mongostore.Store
	shared bool
	// fdb is the in-process FerretDB both talk to: the MongoDB-wire test
	// stand-in (not a replica set: no transactions).
	fdb *ferrettest.Server
	reg *search.Registry

	cancel context.CancelFunc
	done   chan error
}

// start starts FerretDB in this process on dir, opens a server on it
// (over the MongoDB wire, as on MongoDB) and connects the direct client to
// the same database.
func start(ctx context.Context, dir string, conc int, audit bool, logw io.Writer) (*env, error) {
	fdb, err := ferrettest.Start(ctx, ferrettest.Options{DataDir: filepath.Join(dir, "ferret")})
	if err != nil {
		return nil, err
	}
	e := &env{fdb: fdb}
	if err := e.serve(ctx, conc, server.Config{
		DataDir: filepath.Join(dir, "data"), MongoURI: fdb.URI(), MongoTestStandIn: true, Database: "casefhir",
		AuditOff: !audit,
	}, logw); err != nil {
		_ = fdb.Close()
		return nil, err
	}
	if e.reg, err = search.NewRegistry(conformance.SearchParameters(), conformance.CaseSearchParameters()); err != nil {
		e.close()
		return nil, err
	}
	// A first create makes the server create (and index) the Patient and
	// Observation collections itself, as it would in production.
	var probe string
	for _, typ := range []string{"Patient", "Observation"} {
		id, err := e.create(ctx, typ, sampleJSON(typ, 0))
		if err != nil {
			e.close()
			return nil, fmt.Errorf("first %s create: %w", typ, err)
		}
		if typ == "Patient" {
			probe = id
		}
	}
	if e.raw, err = mongostore.Open(ctx, mongostore.Options{URI: fdb.URI(), Database: e.srv.Config().Database,
		AllowStandalone: true}); err != nil {
		e.close()
		return nil, err
	}
	if _, err := e.raw.Read(ctx, "Patient", probe); err != nil {
		e.close()
		return nil, fmt.Errorf("direct client does not see the server's data: %w", err)
	}
	e.shared = true
	if err := e.idIndexes(ctx); err != nil {
		e.close()
		return nil, err
	}
	return e, nil
}

// startEmbedded opens a server on the embedded store (SQLite under dir)
// in this process; it has no direct client and no FerretDB.
func startEmbedded(ctx context.Context, dir string, conc int, audit bool, logw io.Writer) (*env, error) {
	e := &env{}
	if err := e.serve(ctx, conc, server.Config{DataDir: filepath.Join(dir, "data"), AuditOff: !audit}, logw); err != nil {
		return nil, err
	}
	return e, nil
}

// serve opens a server with cfg (auth off, on a loopback port, warnings
// logged to logw) and serves it in the background.
func (e *env) serve(ctx context.Context, conc int, cfg server.Config, logw io.Writer) error {
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		return err
	}
	addr := ln.Addr().String()
	e.root, e.base, e.done = "http://"+addr, "http://"+addr+"/fhir", make(chan error, 1)
	cfg.Addr, cfg.BaseURL, cfg.Auth, cfg.Version = addr, e.base, server.AuthOff, "bench"
	cfg.Logger = slog.New(slog.NewTextHandler(logw, &slog.HandlerOptions{Level: slog.LevelWarn}))
	srv, err := server.Open(ctx, cfg)
	if err != nil {
		_ = ln.Close()
		return fmt.Errorf("server.Open: %w", err)
	}
	e.srv = srv
	sctx, cancel := context.WithCancel(context.WithoutCancel(ctx))
	e.cancel = cancel
	go func() { e.done <- srv.ServeListener(sctx, ln) }()
	e.client = &http.Client{Timeout: 2 * time.Minute, Transport: &http.Transport{
		MaxIdleConns: 4 * conc, MaxIdleConnsPerHost: 4 * conc, IdleConnTimeout: time.Minute, DisableCompression: true,
	}}
	return nil
}

// idIndexes gives every collection of the server's database FerretDB's
// missing _id expression index (see ferrettest.EnsureIDIndex), so reads by
// id are point lookups on the stand-in as on MongoDB.
func (e *env) idIndexes(ctx context.Context) error {
	return e.fdb.EnsureIDIndexes(ctx, e.srv.Config().Database)
}

func (e *env) close() {
	if e.raw != nil {
		_ = e.raw.Close(context.Background())
	}
	if e.cancel != nil {
		e.cancel()
		<-e.done
	}
	if e.srv != nil {
		_ = e.srv.Close(context.Background())
	}
	if e.fdb != nil {
		_ = e.fdb.Close()
	}
}

// do sends one request and reads the whole answer.
func (e *env) do(ctx context.Context, method, url string, body []byte, hdr ...string) (int, http.Header, []byte, error) {
	var rd io.Reader
	if body != nil {
		rd = bytes.NewReader(body)
	}
	req, err := http.NewRequestWithContext(ctx, method, url, rd)
	if err != nil {
		return 0, nil, nil, err
	}
	if body != nil {
		req.Header.Set("Content-Type", "application/fhir+json")
	}
	req.Header.Set("Accept", "application/fhir+json")
	for i := 0; i+1 < len(hdr); i += 2 {
		req.Header.Set(hdr[i], hdr[i+1])
	}
	resp, err := e.client.Do(req)
	if err != nil {
		return 0, nil, nil, err
	}
	defer resp.Body.Close()
	b, err := io.ReadAll(resp.Body)
	return resp.StatusCode, resp.Header, b, err
}

// create POSTs a resource and returns the id the server assigned.
func (e *env) create(ctx context.Context, typ string, js []byte) (string, error) {
	st, h, _, err := e.do(ctx, http.MethodPost, e.base+"/"+typ, js)
	if err != nil {
		return "", err
	}
	if st != http.StatusCreated {
		return "", fmt.Errorf("POST %s: HTTP %d", typ, st)
	}
	loc := h.Get("Location")
	i := strings.Index(loc, "/"+typ+"/")
	if i < 0 {
		return "", fmt.Errorf("POST %s: no Location", typ)
	}
	id := loc[i+len(typ)+2:]
	if j := strings.IndexByte(id, '/'); j >= 0 {
		id = id[:j]
	}
	return id, nil
}

// metrics fetches /metrics and returns a scanner over its lines.
func (e *env) metrics(ctx context.Context) (*bufio.Scanner, error) {
	st, _, b, err := e.do(ctx, http.MethodGet, e.root+"/metrics", nil)
	if err != nil {
		return nil, err
	}
	if st != http.StatusOK {
		return nil, fmt.Errorf("/metrics: HTTP %d", st)
	}
	return bufio.NewScanner(bytes.NewReader(b)), nil
}

// storeTotals scrapes /metrics: the summed seconds and count of every
// store operation, by op and in total ("").
func (e *env) storeTotals(ctx context.Context) (map[string][2]float64, error) {
	sc, err := e.metrics(ctx)
	if err != nil {
		return nil, err
	}
	const name = "casefhir_store_operation_duration_seconds"
	out := map[string][2]float64{}
	for sc.Scan() {
		line := sc.Text()
		var idx int
		switch {
		case strings.HasPrefix(line, name+"_sum{"):
			idx = 0
		case strings.HasPrefix(line, name+"_count{"):
			idx = 1
		default:
			continue
		}
		op := ""
		if i := strings.Index(line, `op="`); i >= 0 {
			op = line[i+4:]
			op = op[:strings.IndexByte(op, '"')]
		}
		sp := strings.LastIndexByte(line, ' ')
		v, err := strconv.ParseFloat(line[sp+1:], 64)
		if err != nil {
			continue
		}
		t := out[op]
		t[idx] += v
		out[op] = t
		all := out[""]
		all[idx] += v
		out[""] = all
	}
	return out, nil
}

// cpuTime is this process's user+system CPU time so far.
func cpuTime() time.Duration {
	var ru syscall.Rusage
	if err := syscall.Getrusage(syscall.RUSAGE_SELF, &ru); err != nil {
		return 0
	}
	return time.Duration(ru.Utime.Nano() + ru.Stime.Nano())
}

// capabilities reads what the server says it implements.
type capabilities struct {
	transaction bool
	searchType  bool
	export      bool
	everything  bool
}

func (e *env) capabilities(ctx context.Context) (capabilities, error) {
	var c capabilities
	st, _, b, err := e.do(ctx, http.MethodGet, e.base+"/metadata", nil)
	if err != nil {
		return c, err
	}
	if st != http.StatusOK {
		return c, fmt.Errorf("metadata: HTTP %d", st)
	}
	var cs struct {
		Rest []struct {
			Interaction []struct{ Code string } `json:"interaction"`
			Operation   []struct{ Name string } `json:"operation"`
			Resource    []struct {
				Type        string
				Interaction []struct{ Code string } `json:"interaction"`
				Operation   []struct{ Name string } `json:"operation"`
			} `json:"resource"`
		} `json:"rest"`
	}
	if err := jsonUnmarshal(b, &cs); err != nil {
		return c, err
	}
	for _, r := range cs.Rest {
		for _, i := range r.Interaction {
			c.transaction = c.transaction || i.Code == "transaction"
		}
		for _, o := range r.Operation {
			c.export = c.export || o.Name == "export"
		}
		for _, res := range r.Resource {
			for _, i := range res.Interaction {
				if res.Type == "Patient" && i.Code == "search-type" {
					c.searchType = true
				}
			}
			for _, o := range res.Operation {
				if res.Type == "EpisodeOfCare" && o.Name == "everything" {
					c.everything = true
				}
			}
		}
	}
	return c, nil
}

// storeLoader is implemented by stores with a bulk insert (mongostore's
// InsertMany: one insertMany per type, for seeding).
type storeLoader interface {
	InsertMany(ctx context.Context, rs []*store.Resource) error
}

// load stores new resources in st by the fastest path it offers and says
// which one it used.
func load(ctx context.Context, st store.Store, rs []*store.Resource) (string, error) {
	if l, ok := any(st).(storeLoader); ok {
		return "driver insertMany", l.InsertMany(ctx, rs)
	}
	if t, ok := st.(store.Transactional); ok {
		ws := make([]store.Write, len(rs))
		for i, r := range rs {
			ws[i] = store.Write{Next: r}
		}
		return "store Apply (journaled transaction)", t.Apply(ctx, ws)
	}
	for _, r := range rs {
		if err := st.Create(ctx, r); err != nil {
			return "", err
		}
	}
	return "store Create, one by one", nil
}
