package ferrettest

import (
	"bytes"
	"log/slog"
	"strings"
	"testing"
)

func TestWarnLoggerDefersAttrsAndFilters(t *testing.T) {
	var buf bytes.Buffer
	l := warnLogger(slog.New(slog.NewTextHandler(&buf, nil)))
	child := l.With("conn", "c1").WithGroup("g").With("k", "v")
	child.Info("below the threshold")
	child.Warn("Response message: {secret}")
	child.Warn("kept")
	out := buf.String()
	if strings.Contains(out, "below the threshold") || strings.Contains(out, "secret") {
		t.Fatalf("filtered records logged: %s", out)
	}
	if !strings.Contains(out, "msg=kept") || !strings.Contains(out, "conn=c1") || !strings.Contains(out, "g.k=v") {
		t.Fatalf("kept record lost its attributes: %s", out)
	}
}
