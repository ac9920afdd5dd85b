package middleware

import (
	"context"
	"crypto/rand"
	"encoding/hex"
	"errors"
	"fmt"
	"log/slog"
	"mime"
	"net/http"
	"strings"
	"time"

	"github.com/gin-gonic/gin"

	"github.com/casefhir/casefhir/fhir/outcome"
)

// Renderer writes err as the response.
type Renderer func(c *gin.Context, err error)

// requestIDKey is the context key for the request id.
type requestIDKey struct{}

// RequestID assigns every request an id (or keeps a sane X-Request-Id from
// the client), sets it on the response and in the request context.
func RequestID() gin.HandlerFunc {
	return func(c *gin.Context) {
		id := c.GetHeader("X-Request-Id")
		if !validRequestID(id) {
			var b [8]byte
			_, _ = rand.Read(b[:])
			id = hex.EncodeToString(b[:])
		}
		c.Header("X-Request-Id", id)
		ctx := WithRequestID(c.Request.Context(), id)
		c.Request = c.Request.WithContext(ctx)
		c.Next()
	}
}

func validRequestID(s string) bool {
	if s == "" || len(s) > 64 {
		return false
	}
	for _, r := range s {
		if !(r >= 'a' && r <= 'z' || r >= 'A' && r <= 'Z' || r >= '0' && r <= '9' || r == '-' || r == '_' || r == '.') {
			return false
		}
	}
	return true
}

// Recover turns a panic into a 500 exception OperationOutcome through the
// renderer, logging the panic value's type and the request id only.
func Recover(log *slog.Logger, render Renderer) gin.HandlerFunc {
	return func(c *gin.Context) {
		defer func() {
			if v := recover(); v != nil {
				if v == http.ErrAbortHandler {
					panic(v)
				}
				log.ErrorContext(c.Request.Context(), "panic serving request",
					"request_id", RequestIDFrom(c.Request.Context()), "panic_type", fmt.Sprintf("%T", v))
				render(c, outcome.New(outcome.Exception, "internal server error"))
				c.Abort()
			}
		}()
		c.Next()
	}
}

// BodyLimit caps request bodies at max bytes; a larger body is answered 413
// with an OperationOutcome before any of it is processed.
func BodyLimit(max int64, render Renderer) gin.HandlerFunc {
	return func(c *gin.Context) {
		if c.Request.ContentLength > max {
			render(c, tooLarge(max))
			c.Abort()
			return
		}
		if c.Request.Body != nil {
			c.Request.Body = http.MaxBytesReader(c.Writer, c.Request.Body, max)
		}
		c.Next()
	}
}

func tooLarge(max int64) error {
	return outcome.Errorf(outcome.TooLong, "the request body exceeds the limit of %d bytes", max).
		WithStatus(http.StatusRequestEntityTooLarge)
}

// IsTooLarge reports whether err is the error MaxBytesReader returns, and
// if so gives the matching OperationOutcome error.
func IsTooLarge(err error) (error, bool) {
	var mbe *http.MaxBytesError
	if errors.As(err, &mbe) {
		return tooLarge(mbe.Limit), true
	}
	return nil, false
}

// Negotiate enforces JSON: _format and Accept must allow FHIR JSON (406
// otherwise), and bodies of writes must be JSON (415 otherwise). Requests
// raw accepts (Binary content, https://hl7.org/fhir/R4/binary.html#rest)
// may name any media type.
func Negotiate(render Renderer, raw func(*gin.Context) bool) gin.HandlerFunc {
	return func(c *gin.Context) {
		if raw != nil && raw(c) {
			c.Next()
			return
		}
		if f := c.Query("_format"); f != "" && !jsonFormat(f) {
			render(c, outcome.New(outcome.NotSupported, "only JSON is supported (_format)").WithStatus(http.StatusNotAcceptable))
			c.Abort()
			return
		}
		if c.Query("_format") == "" {
			if acc := c.GetHeader("Accept"); acc != "" && !acceptsJSON(acc) {
				render(c, outcome.New(outcome.NotSupported, "only FHIR JSON is supported (Accept)").WithStatus(http.StatusNotAcceptable))
				c.Abort()
				return
			}
		}
		switch c.Request.Method {
		case http.MethodPost, http.MethodPut, http.MethodPatch:
			ct := c.GetHeader("Content-Type")
			mt, _, _ := mime.ParseMediaType(ct)
			ok := mt == "" || mt == "application/fhir+json" || mt == "application/json" ||
				mt == "application/json-patch+json" || mt == "application/x-www-form-urlencoded" ||
				strings.HasSuffix(mt, "+json")
			if !ok {
				render(c, outcome.New(outcome.NotSupported, "unsupported Content-Type: send application/fhir+json").
					WithStatus(http.StatusUnsupportedMediaType))
				c.Abort()
				return
			}
		}
		c.Next()
	}
}

func jsonFormat(f string) bool {
	mt, _, _ := mime.ParseMediaType(f)
	switch strings.ToLower(mt) {
	case "json", "application/json", "application/fhir+json", "application/json+fhir":
		return true
	}
	return false
}

func acceptsJSON(acc string) bool {
	for _, part := range strings.Split(acc, ",") {
		mt, _, _ := mime.ParseMediaType(strings.TrimSpace(part))
		switch strings.ToLower(mt) {
		case "", "*/*", "application/*", "application/json", "application/fhir+json", "application/json+fhir",
			"application/json-patch+json", "application/ndjson", "application/fhir+ndjson":
			return true
		}
	}
	return false
}

// AccessLog logs one line per request: method, route pattern, status,
// duration, request id and the caller's subject. Never the query values,
// bodies or diagnostics (they may carry PHI).
func AccessLog(log *slog.Logger) gin.HandlerFunc {
	return func(c *gin.Context) {
		start := time.Now()
		ri := &requestInfo{}
		c.Request = c.Request.WithContext(context.WithValue(c.Request.Context(), requestInfoKey{}, ri))
		c.Next()
		if !log.Enabled(c.Request.Context(), slog.LevelInfo) {
			return
		}
		attrs := []any{
			"method", c.Request.Method,
			"path", SafePath(c.Request.URL.Path),
			"status", c.Writer.Status(),
			"duration_ms", float64(time.Since(start).Microseconds()) / 1000,
			"request_id", RequestIDFrom(c.Request.Context()),
		}
		if ri.subject != "" {
			attrs = append(attrs, "subject", ri.subject)
		}
		log.InfoContext(c.Request.Context(), "request", attrs...)
	}
}

// SafePath reduces a request path to its shape: resource types, operations
// and keywords kept, ids replaced by ":id", so logs carry no identifiers.
func SafePath(p string) string {
	segs := strings.Split(strings.Trim(p, "/"), "/")
	for i, s := range segs {
		switch {
		case s == "fhir" || s == "_history" || s == "_search" || s == "metadata" || s == ".well-known" ||
			s == "smart-configuration" || strings.HasPrefix(s, "$") || s == "healthz" || s == "readyz" || s == "metrics" ||
			appSegments[s]:
		case len(s) > 0 && s[0] >= 'A' && s[0] <= 'Z' && isAlpha(s):
		default:
			segs[i] = ":id"
		}
	}
	return "/" + strings.Join(segs, "/")
}

// appSegments are the fixed path segments of the case manager's app.
var appSegments = map[string]bool{"app": true, "launch": true, "callback": true, "case": true, "task": true,
	"transition": true, "complete": true, "open-case": true, "logout": true, "static": true}

func isAlpha(s string) bool {
	for _, r := range s {
		if !(r >= 'a' && r <= 'z' || r >= 'A' && r <= 'Z') {
			return false
		}
	}
	return true
}

// CORS lets browser-based SMART apps of other origins call the FHIR API
// and read the discovery documents (https://fetch.spec.whatwg.org/#http-cors-protocol).
// Access is by bearer token, never by cookie, so any origin may call; no
// credentials are allowed. A preflight (OPTIONS with
// Access-Control-Request-Method) is answered 204 here.
func CORS() gin.HandlerFunc {
	return func(c *gin.Context) {
		if c.GetHeader("Origin") == "" {
			c.Next()
			return
		}
		h := c.Writer.Header()
		h.Set("Access-Control-Allow-Origin", "*")
		h.Set("Access-Control-Expose-Headers", "Location, Content-Location, ETag, Last-Modified, X-Request-Id, X-Progress, Retry-After")
		if c.Request.Method == http.MethodOptions && c.GetHeader("Access-Control-Request-Method") != "" {
			h.Set("Access-Control-Allow-Methods", "GET, HEAD, POST, PUT, PATCH, DELETE")
			h.Set("Access-Control-Allow-Headers", "Authorization, Content-Type, Accept, Prefer, If-Match, If-None-Match, If-None-Exist, If-Modified-Since, X-Request-Id")
			h.Set("Access-Control-Max-Age", "600")
			c.AbortWithStatus(http.StatusNoContent)
			return
		}
		c.Next()
	}
}
