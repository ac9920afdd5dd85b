package server

import (
	"context"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"net"
	"net/http"
	"path/filepath"
	"strings"
	"time"

	"github.com/gin-gonic/gin"

	"github.com/casefhir/casefhir/fhir/codec"
	"github.com/casefhir/casefhir/fhir/outcome"
	"github.com/casefhir/casefhir/fhir/search"
	"github.com/casefhir/casefhir/fhir/store"
	"github.com/casefhir/casefhir/fhir/store/mongostore"
	"github.com/casefhir/casefhir/fhir/store/sqlitestore"
	"github.com/casefhir/casefhir/server/app"
	"github.com/casefhir/casefhir/server/auth"
	"github.com/casefhir/casefhir/server/auth/audit"
	"github.com/casefhir/casefhir/server/bulk"
	"github.com/casefhir/casefhir/server/interaction"
	"github.com/casefhir/casefhir/server/middleware"
)

// Server is a running casefhir: its store, FHIR handler and HTTP engine.
type Server struct {
	cfg      Config
	log      *slog.Logger
	store    store.Store
	closers  []func(context.Context) error
	handler  *interaction.Handler
	engine   *gin.Engine
	metrics  *Metrics
	access   accessor
	verifier *auth.Verifier
	smartDoc []byte
	registry *search.Registry
	audit    *audit.Recorder
	base     store.Store // the store behind the metrics wrapper
	bulk     *bulk.Service
	started  time.Time
	app      http.Handler // the case manager's app, or nil
	appPath  string       // where it is mounted, e.g. /app/
	httpSrv  *http.Server
	listener net.Listener
}

// Open validates cfg, connects to the database (starting the embedded
// store when no MongoDB URI is given) and builds the HTTP engine. It fails
// fast with a one-line reason.
func Open(ctx context.Context, cfg Config) (*Server, error) {
	cfg.Defaults()
	if err := cfg.Validate(); err != nil {
		return nil, err
	}
	s := &Server{cfg: cfg, log: cfg.Logger, metrics: NewMetrics(), started: time.Now().UTC()}
	ok := false
	defer func() {
		if !ok {
			_ = s.closeAll(context.WithoutCancel(ctx))
		}
	}()
	// The issuer first: it is cheap, and a bad one should fail before the
	// database starts.
	if err := s.openAccess(ctx); err != nil {
		return nil, err
	}
	if err := s.openStore(ctx); err != nil {
		return nil, err
	}
	// Like most FHIR servers, casefhir does not enforce reference target
	// types on write (one official R4 example breaks that rule).
	c, err := codec.NewWithOptions(codec.Options{AllowAnyReferenceType: true})
	if err != nil {
		return nil, fmt.Errorf("codec: %v", err)
	}
	if err := s.buildHandler(ctx, c); err != nil {
		return nil, err
	}
	if !s.cfg.AuditOff {
		var w audit.Writer = auditWriter{store: s.base, registry: s.registry, now: time.Now}
		if s.cfg.AuditWriter != nil {
			w = s.cfg.AuditWriter(w)
		}
		// The embedded store keeps the trail's durable queue beside its
		// data (one process owns it); on MongoDB each group of events is
		// inserted before its requests are answered.
		journal := ""
		if s.cfg.MongoURI == "" {
			journal = filepath.Join(s.cfg.DataDir, "audit-journal")
		}
		rec, err := audit.NewRecorder(audit.Options{Writer: w, Site: s.cfg.BaseURL, Logger: s.log,
			QueueSize: s.cfg.AuditQueue, JournalDir: journal})
		if err != nil {
			return nil, fmt.Errorf("audit: %v", err)
		}
		s.audit = rec
		// Registered after the store: closed (drained) before it.
		s.closers = append(s.closers, rec.Close)
	}
	if err := s.openApp(); err != nil {
		return nil, err
	}
	s.engine = s.routes()
	ok = true
	return s, nil
}

// openStore opens MongoDB when a URI is configured, otherwise the
// embedded SQLite store in the data folder.
func (s *Server) openStore(ctx context.Context) error {
	if s.cfg.Store != nil {
		s.closers = append(s.closers, s.cfg.Store.Close)
		s.base = s.cfg.Store
		s.store = instrument(s.cfg.Store, s.metrics)
		return nil
	}
	var st store.Store
	if s.cfg.MongoURI == "" {
		sq, err := sqlitestore.Open(ctx, sqlitestore.Options{Dir: s.cfg.DataDir, Logger: s.log})
		if err != nil {
			return fmt.Errorf("embedded store in %s: %v", s.cfg.DataDir, err)
		}
		st = sq
	} else {
		mg, err := mongostore.Open(ctx, mongostore.Options{URI: s.cfg.MongoURI, Database: s.cfg.Database, Logger: s.log,
			AllowStandalone: s.cfg.MongoTestStandIn})
		if err != nil {
			if outcome.Is(err, outcome.Transient) || outcome.Is(err, outcome.Timeout) {
				return fmt.Errorf("database unreachable: %v", err)
			}
			return fmt.Errorf("database: %v", err) // e.g. a standalone server, refused
		}
		st = mg
	}
	s.closers = append(s.closers, st.Close)
	s.base = st
	s.store = instrument(st, s.metrics)
	return nil
}

// Handler returns the HTTP handler (for tests and embedding).
func (s *Server) Handler() http.Handler { return s.engine }

// FHIR returns the transport-free FHIR handler.
func (s *Server) FHIR() *interaction.Handler { return s.handler }

// Store returns the server's store.
func (s *Server) Store() store.Store { return s.store }

// BaseStore returns the store behind the metrics wrapper, with the
// implementation's own extra methods (e.g. a bulk InsertMany), for tools
// that seed data. Writes through it bypass FHIR validation and the case
// rules: it is not for serving requests.
func (s *Server) BaseStore() store.Store { return s.base }

// Config returns the effective configuration.
func (s *Server) Config() Config { return s.cfg }

// Serve listens on cfg.Addr and serves until ctx is cancelled, then shuts
// down gracefully: in-flight requests finish (up to ShutdownTimeout).
func (s *Server) Serve(ctx context.Context) error {
	ln, err := net.Listen("tcp", s.cfg.Addr)
	if err != nil {
		return fmt.Errorf("listen %s: %v", s.cfg.Addr, err)
	}
	return s.ServeListener(ctx, ln)
}

// ServeListener is Serve on an existing listener.
func (s *Server) ServeListener(ctx context.Context, ln net.Listener) error {
	s.listener = ln
	s.httpSrv = &http.Server{
		Handler:           s.engine,
		ReadHeaderTimeout: s.cfg.ReadHeaderTimeout,
		ReadTimeout:       s.cfg.ReadTimeout,
		WriteTimeout:      s.cfg.WriteTimeout,
		IdleTimeout:       s.cfg.IdleTimeout,
		MaxHeaderBytes:    64 << 10,
		ErrorLog:          slog.NewLogLogger(s.log.Handler(), slog.LevelWarn),
	}
	errc := make(chan error, 1)
	go func() { errc <- s.httpSrv.Serve(ln) }()
	s.log.Info("casefhir listening", "addr", ln.Addr().String(), "base_url", s.cfg.BaseURL, "auth", s.cfg.Auth)
	if s.cfg.Auth == AuthOff {
		s.log.Warn("authentication is OFF: every request is allowed everything (loopback only)")
	}
	select {
	case err := <-errc:
		return err
	case <-ctx.Done():
	}
	s.log.Info("shutting down")
	sctx, cancel := context.WithTimeout(context.WithoutCancel(ctx), s.cfg.ShutdownTimeout)
	defer cancel()
	err := s.httpSrv.Shutdown(sctx)
	if e := <-errc; e != nil && !errors.Is(e, http.ErrServerClosed) && err == nil {
		err = e
	}
	return err
}

// Close releases the store and the embedded database.
func (s *Server) Close(ctx context.Context) error { return s.closeAll(ctx) }

func (s *Server) closeAll(ctx context.Context) error {
	var errs []error
	for i := len(s.closers) - 1; i >= 0; i-- {
		if err := s.closers[i](ctx); err != nil {
			errs = append(errs, err)
		}
	}
	s.closers = nil
	return errors.Join(errs...)
}

// render is the single error renderer: every error becomes an
// OperationOutcome with its HTTP status. Only PHI-free parts are logged.
func (s *Server) render(c *gin.Context, err error) {
	if e, ok := middleware.IsTooLarge(err); ok {
		err = e
	}
	oe := outcome.As(err)
	status, body := outcome.Render(oe)
	if status >= 500 {
		s.log.ErrorContext(c.Request.Context(), "request failed", "request_id", middleware.RequestIDFrom(c.Request.Context()),
			"status", status, "error", oe.Error(), "cause_type", fmt.Sprintf("%T", oe.Err))
	}
	for k, vs := range oe.Header {
		for _, v := range vs {
			c.Writer.Header().Add(k, v)
		}
	}
	c.Data(status, "application/fhir+json; charset=utf-8", body)
}

// write sends a successful interaction response.
func (s *Server) write(c *gin.Context, resp *interaction.Response) {
	for k, vs := range resp.Header {
		for _, v := range vs {
			c.Writer.Header().Add(k, v)
		}
	}
	if resp.Status == http.StatusNoContent || resp.Status == http.StatusNotModified || (resp.Body == nil && resp.Stream == nil) {
		c.Status(resp.Status)
		c.Writer.WriteHeaderNow()
		return
	}
	ct := c.Writer.Header().Get("Content-Type")
	if ct == "" {
		ct = "application/fhir+json; charset=utf-8"
		c.Writer.Header().Set("Content-Type", ct)
	}
	pretty := c.Query("_pretty") == "true"
	if resp.Stream != nil {
		c.Status(resp.Status)
		c.Writer.WriteHeaderNow()
		_ = resp.Stream(c.Writer)
		return
	}
	body := resp.Body
	if pretty {
		body = codec.Pretty(body)
	}
	c.Data(resp.Status, ct, body)
}

// fhirRequest turns an HTTP request below the FHIR base into an
// interaction.Request.
func (s *Server) fhirRequest(c *gin.Context, path string) (*interaction.Request, error) {
	route, err := interaction.ParseRoute(c.Request.Method, path)
	if err != nil {
		return nil, err
	}
	q := c.Request.URL.Query()
	var body []byte
	rawBinary := route.Type == "Binary" && (route.Kind == interaction.KindCreate || route.Kind == interaction.KindUpdate) &&
		!interaction.IsFHIRMediaType(c.GetHeader("Content-Type"))
	if c.Request.Body != nil && (c.Request.Method == http.MethodPost || c.Request.Method == http.MethodPut || c.Request.Method == http.MethodPatch) {
		if rawBinary {
			// A document in its own media type becomes a Binary
			// (https://hl7.org/fhir/R4/binary.html#rest), encoded as it is
			// read; --max-body bounds it.
			body, err = interaction.BinaryFromRaw(c.Request.Body, c.GetHeader("Content-Type"), route.ID, c.GetHeader("X-Security-Context"))
		} else {
			body, err = io.ReadAll(c.Request.Body)
		}
		if err != nil {
			if e, ok := middleware.IsTooLarge(err); ok {
				return nil, e
			}
			return nil, outcome.New(outcome.Transient, "could not read the request body").WithStatus(http.StatusBadRequest)
		}
	}
	// POST _search: form parameters join the query.
	if c.Request.Method == http.MethodPost && (route.Kind == interaction.KindSearchType || route.Kind == interaction.KindSearchSystem ||
		route.Kind == interaction.KindSearchCompartment) {
		if strings.HasPrefix(c.GetHeader("Content-Type"), "application/x-www-form-urlencoded") {
			form, err := parseForm(body)
			if err != nil {
				return nil, err
			}
			for k, vs := range form {
				q[k] = append(q[k], vs...)
			}
		}
		body = nil
	}
	hdr := http.Header{}
	for _, k := range []string{"If-Match", "If-None-Match", "If-Modified-Since", "If-None-Exist", "Prefer", "Content-Type", "Accept"} {
		if v := c.GetHeader(k); v != "" {
			hdr.Set(k, v)
		}
	}
	if rawBinary {
		hdr.Set("Content-Type", "application/fhir+json")
	}
	return &interaction.Request{Route: route, Method: c.Request.Method, Query: q, Header: hdr, Body: body,
		BaseURL: s.cfg.BaseURL}, nil
}

// openApp builds the case manager's app (a client of the FHIR API over
// HTTP, mounted under /app/).
func (s *Server) openApp() error {
	if s.cfg.App != AppOn {
		return nil
	}
	base := s.cfg.AppBase()
	a, err := app.New(app.Config{
		FHIRBase: s.cfg.BaseURL, AppBase: base,
		ClientID: s.cfg.AppClientID, ClientSecret: s.cfg.AppClientSecret,
		AuthOff: s.cfg.Auth == AuthOff, Logger: s.log,
	})
	if err != nil {
		return err
	}
	// Mounted at /app/ like /fhir, whatever the public URL (a proxy may
	// add a path prefix); links and cookies use the public URL's path.
	s.app, s.appPath = a, "/app/"
	return nil
}

// AuditFlush waits until every acknowledged request's AuditEvent is in
// the store (not only in the trail's durable queue).
func (s *Server) AuditFlush(ctx context.Context) error {
	if s.audit == nil {
		return nil
	}
	return s.audit.Flush(ctx)
}

// AuditStats returns the audit trail's counters (zero when it is off).
func (s *Server) AuditStats() audit.Stats {
	if s.audit == nil {
		return audit.Stats{}
	}
	return s.audit.Stats()
}
