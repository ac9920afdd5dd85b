package server_test

import (
	"context"
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
