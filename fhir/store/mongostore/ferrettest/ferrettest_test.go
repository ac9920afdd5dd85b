package ferrettest

import (
	"context"
	"log/slog"
	"net"
	"net/url"
	"os"
	"path/filepath"
	"strings"
	"testing"
)

func TestStartCreatesDirAndServes(t *testing.T) {
	dir := filepath.Join(t.TempDir(), "nested", "data")
	s, err := Start(context.Background(), Options{DataDir: dir, Logger: slog.New(slog.DiscardHandler)})
	if err != nil {
		t.Fatal(err)
	}
	defer func() {
		if err := s.Close(); err != nil {
			t.Error(err)
		}
	}()
	if fi, err := os.Stat(dir); err != nil || !fi.IsDir() {
		t.Fatalf("data dir not created: %v", err)
	}
	u, err := url.Parse(s.URI())
	if err != nil || u.Scheme != "mongodb" {
		t.Fatalf("URI %q: %v", s.URI(), err)
	}
	host, _, err := net.SplitHostPort(u.Host)
	if err != nil || host != "127.0.0.1" {
		t.Fatalf("URI %q not on loopback", s.URI())
	}
	c, err := net.Dial("tcp", u.Host)
	if err != nil {
		t.Fatalf("dial %s: %v", u.Host, err)
	}
	c.Close()
	if !filepath.IsAbs(s.DataDir()) {
		t.Errorf("DataDir %q not absolute", s.DataDir())
	}
}

func TestStartRejectsEmptyDir(t *testing.T) {
	if _, err := Start(context.Background(), Options{}); err == nil {
		t.Fatal("Start with empty DataDir succeeded")
	}
}

func TestSQLiteURLDurable(t *testing.T) {
	u := sqliteURL("/tmp/x y")
	if !strings.HasPrefix(u, "file:/tmp/x") || !strings.Contains(u, "synchronous%28full%29") {
		t.Errorf("sqliteURL = %q", u)
	}
	if !strings.Contains(strings.SplitN(u, "?", 2)[0], "/tmp/x") || !strings.HasSuffix(strings.SplitN(u, "?", 2)[0], "/") {
		t.Errorf("sqliteURL path = %q", u)
	}
}

func TestWarnLogger(t *testing.T) {
	var b strings.Builder
	l := warnLogger(slog.New(slog.NewTextHandler(&b, &slog.HandlerOptions{Level: slog.LevelDebug})))
	l.Info("chatty")
	l.Debug("chattier")
	l.With("k", "v").Warn("careful")
	l.Warn("Response message:\n{dup key: secret}")
	l.Error("Response header: length: 1")
	if got := b.String(); strings.Contains(got, "chatty") || !strings.Contains(got, "careful") || strings.Contains(got, "Response") {
		t.Errorf("log = %q", got)
	}
}
func TestEnsureIDIndexErrors(t *testing.T) {
	s, err := Start(context.Background(), Options{DataDir: t.TempDir()})
	if err != nil {
		t.Fatal(err)
	}
	defer s.Close()
	ctx := context.Background()
	if err := s.EnsureIDIndex(ctx, "nodb", "Patient"); err == nil {
		t.Error("EnsureIDIndex on a database without a file succeeded")
	}
	for _, bad := range []string{"", "..", "a/b", `a\b`} {
		if err := s.EnsureIDIndex(ctx, bad, "Patient"); err == nil {
			t.Errorf("EnsureIDIndex(%q) succeeded", bad)
		}
	}
}
