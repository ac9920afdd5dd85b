package server

import (
	"context"
	"net/http"
	"net/url"
	"strings"
	"time"

	"github.com/gin-gonic/gin"

	"github.com/casefhir/casefhir/fhir/outcome"
	"github.com/casefhir/casefhir/fhir/store"
	"github.com/casefhir/casefhir/server/auth"
	"github.com/casefhir/casefhir/server/auth/audit"
	"github.com/casefhir/casefhir/server/interaction"
	"github.com/casefhir/casefhir/server/middleware"
)

// routes builds the Gin engine.
func (s *Server) routes() *gin.Engine {
	gin.SetMode(gin.ReleaseMode)
	e := gin.New()
	e.HandleMethodNotAllowed = false
	e.RedirectTrailingSlash = false
	e.RedirectFixedPath = false
	e.UseRawPath = true
	e.Use(middleware.RequestID(),
		middleware.AccessLog(s.log),
		middleware.Recover(s.log, s.render))

	e.GET("/healthz", func(c *gin.Context) {
		c.Data(http.StatusOK, "application/json", []byte(`{"status":"ok"}`))
	})
	e.GET("/readyz", func(c *gin.Context) {
		ctx, cancel := context.WithTimeout(c.Request.Context(), 3*time.Second)
		defer cancel()
		if err := s.store.Ping(ctx); err != nil {
			s.render(c, outcome.New(outcome.Transient, "database unreachable"))
			return
		}
		c.Data(http.StatusOK, "application/json", []byte(`{"status":"ready"}`))
	})
	e.GET("/metrics", func(c *gin.Context) {
		c.Header("Content-Type", "text/plain; version=0.0.4; charset=utf-8")
		c.Status(http.StatusOK)
		_, _ = s.metrics.WriteTo(c.Writer)
		if cc, ok := s.base.(commandCounter); ok {
			_, _ = writeCommandCounts(c.Writer, cc.CommandCounts())
		}
	})
	smart := func(c *gin.Context) {
		if s.verifier == nil {
			s.render(c, outcome.New(outcome.NotFound, "SMART on FHIR is not enabled (auth is off)"))
			return
		}
		c.Data(http.StatusOK, "application/json", s.smartDocument())
	}
	e.GET("/.well-known/smart-configuration", middleware.CORS(), smart)
	e.OPTIONS("/.well-known/smart-configuration", middleware.CORS())

	s.bulkRoutes(e)
	if s.app != nil {
		h := http.StripPrefix(strings.TrimSuffix(s.appPath, "/"), s.app)
		e.Any(s.appPath+"*path", gin.WrapH(h))
		e.GET(strings.TrimSuffix(s.appPath, "/"), func(c *gin.Context) {
			c.Redirect(http.StatusMovedPermanently, s.appPath)
		})
	}
	fhirGroup := e.Group("/fhir", middleware.CORS(), middleware.BodyLimit(s.cfg.MaxBodyBytes, s.render), middleware.Negotiate(s.render, binaryContent))
	fhirGroup.Any("", s.serveFHIR)
	fhirGroup.Any("/*path", func(c *gin.Context) {
		// Gin cannot route /fhir/.well-known beside the catch-all.
		if c.Param("path") == "/.well-known/smart-configuration" && c.Request.Method == http.MethodGet {
			smart(c)
			return
		}
		s.serveFHIR(c)
	})
	e.NoRoute(func(c *gin.Context) {
		s.render(c, outcome.New(outcome.NotFound, "no such endpoint").WithStatus(http.StatusNotFound))
	})
	return e
}

// serveFHIR is the one entry point of the FHIR API.
func (s *Server) serveFHIR(c *gin.Context) {
	start := time.Now()
	path := c.Param("path")
	if raw := c.Request.URL.RawPath; raw != "" {
		if p, err := url.PathUnescape(strings.TrimPrefix(raw, "/fhir")); err == nil {
			path = p
		}
	}
	req, err := s.fhirRequest(c, path)
	kind := "unknown"
	if req != nil {
		kind = string(req.Kind)
		if req.Kind == interaction.KindOperation {
			kind = "operation:" + req.Operation
		}
	}
	var tally *store.CommandTally
	if _, ok := s.base.(commandCounter); ok {
		var ctx context.Context
		ctx, tally = store.WithCommandTally(c.Request.Context())
		c.Request = c.Request.WithContext(ctx)
	}
	defer func() {
		st := c.Writer.Status()
		s.metrics.Inc("casefhir_http_requests_total", "interaction", kind, "code", http.StatusText(st))
		s.metrics.Observe("casefhir_http_request_duration_seconds", time.Since(start), "interaction", kind)
		if tally != nil {
			for name, n := range tally.Counts() {
				s.metrics.Add("casefhir_mongodb_request_commands_total", float64(n), "interaction", kind, "command", name)
			}
		}
	}()
	if err != nil {
		s.render(c, err)
		return
	}
	ctx := c.Request.Context()
	// A request that reads or changes data is admitted to the audit trail
	// before it does any work (503 when the trail has no room in time).
	var ticket *audit.Ticket
	if s.audit != nil && !req.Public() {
		actx, cancel := context.WithTimeout(ctx, s.cfg.AuditWait)
		ticket, err = s.audit.Admit(actx)
		cancel()
		if err != nil {
			s.render(c, err)
			return
		}
		defer ticket.Release()
		req.ObserveEntry = func(entry *interaction.Request, status int, err error) {
			s.auditEntry(ctx, ticket, entry, status, err)
		}
	}
	resp, err := s.handle(c, req)
	status := 0
	switch {
	case err != nil:
		status = outcome.StatusOf(err)
	default:
		status = resp.Status
	}
	if ticket != nil {
		// The response is sent only once its AuditEvents are durable.
		s.auditRequest(c, ticket, req, status, err, start)
		if cerr := ticket.Commit(ctx); cerr != nil {
			s.render(c, cerr)
			return
		}
	}
	if err != nil {
		s.render(c, err)
		return
	}
	if c.Request.Method == http.MethodHead {
		resp.Body, resp.Stream = nil, nil
	}
	s.write(c, resp)
}

// handle authenticates req (except for the public CapabilityStatement and
// $versions: no token needed, one sent is ignored) and runs it.
func (s *Server) handle(c *gin.Context, req *interaction.Request) (*interaction.Response, error) {
	if !req.Public() {
		acc, err := s.access.authenticate(c)
		if err != nil {
			return nil, err
		}
		req.Access = acc
		if acc != nil {
			middleware.SetSubject(c.Request.Context(), acc.Subject())
		}
	}
	return s.handler.Do(c.Request.Context(), req)
}

// smartDocument returns the SMART configuration document.
func (s *Server) smartDocument() []byte {
	return s.smartDoc
}

// auditRequest adds the AuditEvent of a request that read or changed data
// (not of the public CapabilityStatement) to its ticket.
func (s *Server) auditRequest(c *gin.Context, t *audit.Ticket, req *interaction.Request, status int, err error, start time.Time) {
	e := audit.FromRequest(req, principalOf(req), status, err, start, time.Now())
	e.SourceAddress = c.ClientIP()
	e.RequestID = middleware.RequestIDFrom(c.Request.Context())
	t.Add(e)
}

// auditEntry adds the AuditEvent of one batch or transaction entry to the
// Bundle request's ticket.
func (s *Server) auditEntry(ctx context.Context, t *audit.Ticket, entry *interaction.Request, status int, err error) {
	now := time.Now()
	e := audit.FromRequest(entry, principalOf(entry), status, err, now, now)
	e.RequestID = middleware.RequestIDFrom(ctx)
	t.Add(e)
}

// principalOf returns the token principal of a request (unrestricted when
// auth is off).
func principalOf(req *interaction.Request) *auth.Principal {
	if pa, ok := req.Access.(principalAccess); ok {
		return pa.p
	}
	return auth.Unrestricted()
}

// binaryContent reports whether c may carry or ask for a Binary's own
// content (https://hl7.org/fhir/R4/binary.html#rest): a create, update,
// read or vread of a Binary, whatever its media type.
func binaryContent(c *gin.Context) bool {
	rest, ok := strings.CutPrefix(c.Request.URL.Path, "/fhir/Binary")
	if !ok || (rest != "" && rest[0] != '/') {
		return false
	}
	n := strings.Count(strings.Trim(rest, "/"), "/")
	switch c.Request.Method {
	case http.MethodPost:
		return strings.Trim(rest, "/") == ""
	case http.MethodPut:
		return n == 0 && strings.Trim(rest, "/") != ""
	case http.MethodGet, http.MethodHead:
		return strings.Trim(rest, "/") != "" && (n == 0 || (n == 2 && strings.Contains(rest, "/_history/")))
	}
	return false
}
