package mongostore

import (
	"context"
	"fmt"
	"os"
	"testing"
	"time"

	"go.mongodb.org/mongo-driver/v2/bson"
)

// TestWildcardIndexOnlyOnMongoDB checks that FerretDB is recognised (it
// accepts a wildcard index key but builds a harmful index for it), so the
// MongoDB code path creates no wildcard index there and writes still work.
func TestWildcardIndexOnlyOnMongoDB(t *testing.T) {
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	s, err := Open(ctx, Options{URI: srv.URI(), Database: fmt.Sprintf("w%d_%d", os.Getpid(), dbSeq.Add(1))})
	if err != nil {
		t.Fatal(err)
	}
	defer s.Close(ctx)
	if s.wildcard {
		t.Fatal("FerretDB was taken for a server with wildcard indexes")
	}
	if err := s.ensure(ctx, "Patient"); err != nil {
		t.Fatal(err)
	}
	cur, err := s.db.Collection("Patient").Indexes().List(ctx)
	if err != nil {
		t.Fatal(err)
	}
	var idx []bson.M
	if err := cur.All(ctx, &idx); err != nil {
		t.Fatal(err)
	}
	for _, ix := range idx {
		if fmt.Sprint(ix["key"]) == fmt.Sprint(bson.M{"x.$**": int32(1)}) {
			t.Fatalf("wildcard index created on FerretDB: %v", ix)
		}
	}
	if !isResourceCollection("Patient") || isResourceCollection("Patient_history") || isResourceCollection("_jobs") {
		t.Error("isResourceCollection")
	}
}
