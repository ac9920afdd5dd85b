package middleware

import (
	"bytes"
	"log/slog"
	"net/http"
	"net/http/httptest"
	"strings"
	"testing"

	"github.com/gin-gonic/gin"
)

// TestAccessLogSubject: the subject a handler records through SetSubject
// reaches the access log line (no string keys on the gin context).
func TestAccessLogSubject(t *testing.T) {
	gin.SetMode(gin.ReleaseMode)
	var buf bytes.Buffer
	e := gin.New()
	e.Use(AccessLog(slog.New(slog.NewTextHandler(&buf, nil))))
	e.GET("/x", func(c *gin.Context) {
		SetSubject(c.Request.Context(), "sub-42")
		c.Status(http.StatusNoContent)
	})
	e.ServeHTTP(httptest.NewRecorder(), httptest.NewRequest(http.MethodGet, "/x", nil))
	if !strings.Contains(buf.String(), "subject=sub-42") {
		t.Fatalf("access log: %s", buf.String())
	}
	SetSubject(httptest.NewRequest(http.MethodGet, "/x", nil).Context(), "ignored") // no AccessLog: no-op
}
