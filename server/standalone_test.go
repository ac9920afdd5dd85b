package server_test

import (
	"context"
	"net/http"
	"net/http/httptest"
	"strconv"
	"strings"
	"testing"

	"github.com/casefhir/casefhir/fhir/store/mongostore/ferrettest"
	"github.com/casefhir/casefhir/server"
)

// TestStandaloneMongoRefused: a MongoDB-wire server that is not a replica
// set (FerretDB answers hello like a standalone mongod) is refused at
// start with a one-line reason naming what is needed.
func TestStandaloneMongoRefused(t *testing.T) {
	ctx := context.Background()
	fdb, err := ferrettest.Start(ctx, ferrettest.Options{DataDir: t.TempDir()})
	if err != nil {
		t.Fatal(err)
	}
	defer fdb.Close()
	s, err := server.Open(ctx, server.Config{Addr: "127.0.0.1:0", MongoURI: fdb.URI(), Database: "refused", Auth: server.AuthOff})
	if err == nil {
		s.Close(ctx)
		t.Fatal("server.Open on a standalone MongoDB succeeded")
	}
	msg := err.Error()
	if !strings.Contains(msg, "is a standalone server: casefhir needs a replica set") || strings.Contains(msg, "\n") ||
		strings.Contains(msg, "unreachable") {
		t.Errorf("reason = %q", msg)
	}
}

// TestMongoCommandsPerRequest: over the MongoDB wire (FerretDB stand-in),
// /metrics counts the commands each request sent, by interaction and
// command name, from the request's own context: a read is one find, a
// create one insert, and the export scheduler's background polls are not
// attributed to any request.
func TestMongoCommandsPerRequest(t *testing.T) {
	ctx := context.Background()
	fdb, err := ferrettest.Start(ctx, ferrettest.Options{DataDir: t.TempDir()})
	if err != nil {
		t.Fatal(err)
	}
	defer fdb.Close()
	s, err := server.Open(ctx, server.Config{Addr: "127.0.0.1:0", MongoURI: fdb.URI(), Database: "tally", Auth: server.AuthOff,
		MongoTestStandIn: true, AuditOff: true, DataDir: t.TempDir()})
	if err != nil {
		t.Fatal(err)
	}
	defer s.Close(ctx)
	h := s.Handler()
	do := func(method, path, body string) *httptest.ResponseRecorder {
		req := httptest.NewRequest(method, path, strings.NewReader(body))
		if body != "" {
			req.Header.Set("Content-Type", "application/fhir+json")
		}
		w := httptest.NewRecorder()
		h.ServeHTTP(w, req)
		return w
	}
	metric := func(interaction, command string) int {
		w := do(http.MethodGet, "/metrics", "")
		prefix := `casefhir_mongodb_request_commands_total{interaction="` + interaction + `",command="` + command + `"} `
		for _, line := range strings.Split(w.Body.String(), "\n") {
			if v, ok := strings.CutPrefix(line, prefix); ok {
				n, err := strconv.Atoi(v)
				if err != nil {
					t.Fatalf("%q: %v", line, err)
				}
				return n
			}
		}
		return 0
	}
	if w := do(http.MethodPut, "/fhir/Patient/p1", `{"resourceType":"Patient","id":"p1"}`); w.Code != http.StatusCreated {
		t.Fatalf("PUT: %d %s", w.Code, w.Body)
	}
	findsBefore, insertsBefore := metric("read", "find"), metric("create", "insert")
	for range 3 {
		if w := do(http.MethodGet, "/fhir/Patient/p1", ""); w.Code != http.StatusOK {
			t.Fatalf("GET: %d %s", w.Code, w.Body)
		}
	}
	if w := do(http.MethodPost, "/fhir/Patient", `{"resourceType":"Patient"}`); w.Code != http.StatusCreated {
		t.Fatalf("POST: %d %s", w.Code, w.Body)
	}
	if got := metric("read", "find") - findsBefore; got != 3 {
		t.Errorf("3 reads counted %d finds, want 3", got)
	}
	if got := metric("create", "insert") - insertsBefore; got != 1 {
		t.Errorf("1 create counted %d inserts, want 1", got)
	}
	// The scheduler polls _jobs in the background; none of it is a request's.
	w := do(http.MethodGet, "/metrics", "")
	for _, line := range strings.Split(w.Body.String(), "\n") {
		if strings.HasPrefix(line, "casefhir_mongodb_request_commands_total{") && strings.Contains(line, `interaction="unknown"`) {
			t.Errorf("commands attributed to no interaction: %s", line)
		}
	}
}
