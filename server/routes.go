package server

import (
	"context"
	"net/http"
	"net/url"
	"strings"
	"time"

	"github.com/gin-gonic/gin"

	"github.com/casefhir/casefhir/fhir/outcome"
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
	})
	smart := func(c *gin.Context) {
		if s.verifier == nil {
			s.render(c, outcome.New(outcome.NotFound, "SMART on FHIR is not enabled (auth is off)"))
			return
		}
		c.Data(http.StatusOK, "application/json", s.smartDocument())
	}
	e.GET("/.well-known/smart-configuration", smart)

	s.bulkRoutes(e)
	fhirGroup := e.Group("/fhir", middleware.BodyLimit(s.cfg.MaxBodyBytes, s.render), middleware.Negotiate(s.render))
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
	var handlerErr error
	defer func() {
		st := c.Writer.Status()
		s.metrics.Inc("casefhir_http_requests_total", "interaction", kind, "code", http.StatusText(st))
		s.metrics.Observe("casefhir_http_request_duration_seconds", time.Since(start), "interaction", kind)
		s.recordAudit(c, req, st, handlerErr, start)
	}()
	if err != nil {
		s.render(c, err)
		return
	}
	// The CapabilityStatement is public: no token needed, one sent is ignored.
	if req.Kind != interaction.KindCapabilities {
		acc, err := s.access.authenticate(c)
		if err != nil {
			s.render(c, err)
			return
		}
		req.Access = acc
		if acc != nil {
			middleware.SetSubject(c.Request.Context(), acc.Subject())
		}
	}
	resp, err := s.handler.Do(c.Request.Context(), req)
	if err != nil {
		handlerErr = err
		s.render(c, err)
		return
	}
	if c.Request.Method == http.MethodHead {
		resp.Body, resp.Stream = nil, nil
	}
	s.write(c, resp)
}

// smartDocument returns the SMART configuration document.
func (s *Server) smartDocument() []byte {
	return s.smartDoc
}

// recordAudit leaves an AuditEvent for a request that read or changed
// data (not for the public CapabilityStatement). It never blocks.
func (s *Server) recordAudit(c *gin.Context, req *interaction.Request, status int, err error, start time.Time) {
	if s.audit == nil || req == nil || req.Kind == interaction.KindCapabilities {
		return
	}
	p := auth.Unrestricted()
	if pa, ok := req.Access.(principalAccess); ok {
		p = pa.p
	}
	e := audit.FromRequest(req, p, status, err, start, time.Now())
	e.SourceAddress = c.ClientIP()
	e.RequestID = middleware.RequestIDFrom(c.Request.Context())
	s.audit.Record(e)
}

// auditEntry leaves an AuditEvent for one batch or transaction entry (the
// Bundle request itself is audited by recordAudit).
func (s *Server) auditEntry(ctx context.Context, entry *interaction.Request, status int, err error) {
	if s.audit == nil {
		return
	}
	p := auth.Unrestricted()
	if pa, ok := entry.Access.(principalAccess); ok {
		p = pa.p
	}
	now := time.Now()
	e := audit.FromRequest(entry, p, status, err, now, now)
	e.RequestID = middleware.RequestIDFrom(ctx)
	s.audit.Record(e)
}
