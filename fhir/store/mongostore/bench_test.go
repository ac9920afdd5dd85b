package mongostore

import (
	"context"
	"fmt"
	"math/rand/v2"
	"strconv"
	"testing"
	"time"

	"go.mongodb.org/mongo-driver/v2/bson"

	"github.com/casefhir/casefhir/fhir/store"
)

// The benchmarks run on the in-process FerretDB, with its _id expression
// index (ferrettest.EnsureIDIndexes): they compare mongostore's methods
// with the bare driver calls they stand for, on the same collection
// (cmd/benchfhir's calibration step runs them).

const benchJSON = `{"resourceType":"Patient","id":%q,"meta":{"versionId":"1","lastUpdated":"2024-05-01T12:00:00.000Z"},` +
	`"name":[{"use":"official","family":"Chalmers","given":["Peter","James"]}],"gender":"male","birthDate":"1974-12-25"}`

func benchResource(id string) *store.Resource {
	return &store.Resource{
		Type: "Patient", ID: id, VersionID: 1, LastUpdated: time.Date(2024, 5, 1, 12, 0, 0, 0, time.UTC),
		JSON: fmt.Appendf(nil, benchJSON, id),
		Index: map[string]any{"family": []any{"chalmers"}, "given": []any{"peter", "james"}, "gender": "male",
			"_sort": map[string]any{"family": map[string]any{"a": "chalmers", "d": "chalmers"}}},
	}
}

func benchID(i int) string { return "p" + strconv.Itoa(i) }

// benchStore opens a fresh database whose Patient collection holds n
// resources, with FerretDB's _id expression index.
func benchStore(b *testing.B, n int) *Store {
	ctx := context.Background()
	s := openTest(b)
	b.Cleanup(func() { s.Close(ctx) })
	var rs []*store.Resource
	for i := range n {
		rs = append(rs, benchResource(benchID(i)))
	}
	if err := s.InsertMany(ctx, rs); err != nil {
		b.Fatal(err)
	}
	if err := s.ensure(ctx, "PatientRaw"); err != nil {
		b.Fatal(err)
	}
	if err := srv.EnsureIDIndexes(ctx, s.dbName); err != nil {
		b.Fatal(err)
	}
	return s
}

// BenchmarkReadByID: Store.Read vs the driver's FindOne({_id}).
func BenchmarkReadByID(b *testing.B) {
	const n = 1000
	s := benchStore(b, n)
	ctx := context.Background()
	b.Run(fmt.Sprintf("n=%d/store", n), func(b *testing.B) {
		for b.Loop() {
			if _, err := s.Read(ctx, "Patient", benchID(rand.IntN(n))); err != nil {
				b.Fatal(err)
			}
		}
	})
	b.Run(fmt.Sprintf("n=%d/raw", n), func(b *testing.B) {
		c := s.db.Collection("Patient")
		for b.Loop() {
			if _, err := c.FindOne(ctx, bson.D{{Key: fID, Value: benchID(rand.IntN(n))}}).Raw(); err != nil {
				b.Fatal(err)
			}
		}
	})
}

// BenchmarkCreate: Store.Create vs the driver's InsertOne of the same
// document into a collection with the same indexes.
func BenchmarkCreate(b *testing.B) {
	s := benchStore(b, 0)
	ctx := context.Background()
	seq := 0
	b.Run("store", func(b *testing.B) {
		for b.Loop() {
			seq++
			if err := s.Create(ctx, benchResource(benchID(seq))); err != nil {
				b.Fatal(err)
			}
		}
	})
	b.Run("raw", func(b *testing.B) {
		c := s.db.Collection("PatientRaw")
		for b.Loop() {
			seq++
			if _, err := c.InsertOne(ctx, encode(benchResource(benchID(seq)))); err != nil {
				b.Fatal(err)
			}
		}
	})
}
