package servertest

import (
	"bytes"
	"context"
	"encoding/json"
	"io"
	"log/slog"
	"net"
	"net/http"
	"os"
	"strings"
	"testing"
	"time"

	"github.com/casefhir/casefhir/server"
)

// Options tune a test server.
type Options struct {
	// Config overrides; Addr, BaseURL and DataDir are set by Start unless given.
	Config server.Config
	// DataDir reuses a data directory (e.g. to restart on the same data).
	DataDir string
	// Listener, when set, is the listener to serve on (so that the base
	// URL, e.g. the access-token audience, is known before Start); Start
	// takes it over and closes it on Stop. Default: a new loopback listener.
	Listener net.Listener
}

// Server is a running test server.
type Server struct {
	*server.Server
	// URL is the FHIR base, e.g. http://127.0.0.1:1234/fhir.
	URL string
	// Root is the server root, e.g. http://127.0.0.1:1234.
	Root    string
	DataDir string
	Client  *http.Client
	cancel  context.CancelFunc
	done    chan error
}

// Start opens and serves a server with auth off on a fresh embedded
// SQLite store (or the given data dir), unless Config names a store or a
// MongoDB URI. It stops when the test ends.
func Start(t testing.TB, o Options) *Server {
	t.Helper()
	ln := o.Listener
	if ln == nil {
		var err error
		if ln, err = net.Listen("tcp", "127.0.0.1:0"); err != nil {
			t.Fatal(err)
		}
	}
	cfg := o.Config
	cfg.Addr = ln.Addr().String()
	root := "http://" + cfg.Addr
	if cfg.BaseURL == "" {
		cfg.BaseURL = root + "/fhir"
	}
	if cfg.Auth == "" {
		cfg.Auth = server.AuthOff
	}
	dir := o.DataDir
	if dir == "" {
		dir = t.TempDir()
	}
	cfg.DataDir = dir
	if cfg.Logger == nil {
		lv := slog.LevelWarn
		if os.Getenv("CASEFHIR_TEST_LOG") != "" {
			lv = slog.LevelDebug
		}
		cfg.Logger = slog.New(slog.NewTextHandler(os.Stderr, &slog.HandlerOptions{Level: lv}))
	}
	ctx, cancel := context.WithCancel(context.Background())
	srv, err := server.Open(ctx, cfg)
	if err != nil {
		cancel()
		_ = ln.Close()
		t.Fatalf("server.Open: %v", err)
	}
	s := &Server{Server: srv, URL: cfg.BaseURL, Root: root, DataDir: dir, cancel: cancel, done: make(chan error, 1),
		Client: &http.Client{Timeout: 60 * time.Second}}
	go func() { s.done <- srv.ServeListener(ctx, ln) }()
	t.Cleanup(s.Stop)
	return s
}

// Stop shuts the server down and closes its store (idempotent).
func (s *Server) Stop() {
	if s.cancel == nil {
		return
	}
	s.cancel()
	<-s.done
	_ = s.Close(context.Background())
	s.cancel = nil
}

// Response is a decoded HTTP answer.
type Response struct {
	Status int
	Header http.Header
	Body   []byte
}

// JSON decodes the body into a generic map (nil when not an object).
func (r *Response) JSON() map[string]any {
	var m map[string]any
	_ = json.Unmarshal(r.Body, &m)
	return m
}

// IssueCodes returns the issue codes of an OperationOutcome body.
func (r *Response) IssueCodes() []string {
	m := r.JSON()
	if m == nil || m["resourceType"] != "OperationOutcome" {
		return nil
	}
	var out []string
	issues, _ := m["issue"].([]any)
	for _, i := range issues {
		im, _ := i.(map[string]any)
		c, _ := im["code"].(string)
		out = append(out, c)
	}
	return out
}

// Do sends a request to path (relative to the FHIR base unless it starts
// with "http" or "/"), with an optional body (string, []byte or any value
// marshalled as JSON) and header pairs.
func (s *Server) Do(t testing.TB, method, path string, body any, hdr ...string) *Response {
	t.Helper()
	var rd io.Reader
	switch b := body.(type) {
	case nil:
	case string:
		rd = strings.NewReader(b)
	case []byte:
		rd = bytes.NewReader(b)
	default:
		js, err := json.Marshal(b)
		if err != nil {
			t.Fatal(err)
		}
		rd = bytes.NewReader(js)
	}
	u := path
	switch {
	case strings.HasPrefix(path, "http"):
	case strings.HasPrefix(path, "/"):
		u = s.Root + path
	default:
		u = s.URL + "/" + path
	}
	req, err := http.NewRequest(method, u, rd)
	if err != nil {
		t.Fatal(err)
	}
	if rd != nil {
		req.Header.Set("Content-Type", "application/fhir+json")
	}
	for i := 0; i+1 < len(hdr); i += 2 {
		req.Header.Set(hdr[i], hdr[i+1])
	}
	resp, err := s.Client.Do(req)
	if err != nil {
		t.Fatalf("%s %s: %v", method, path, err)
	}
	defer resp.Body.Close()
	b, err := io.ReadAll(resp.Body)
	if err != nil {
		t.Fatal(err)
	}
	return &Response{Status: resp.StatusCode, Header: resp.Header, Body: b}
}
