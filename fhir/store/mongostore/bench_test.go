package mongostore

import (
	"context"
	"fmt"
	"math/rand/v2"
	"strconv"
	"sync"
	"testing"
	"time"

	"go.mongodb.org/mongo-driver/v2/bson"

	"github.com/casefhir/casefhir/fhir/store"
)

// benchDBs caches seeded databases by size within one test binary run.
var benchDBs struct {
	sync.Mutex
	m map[int]*Store
}

const benchJSON = `{"resourceType":"Patient","id":%q,"meta":{"versionId":"1","lastUpdated":"2024-05-01T12:00:00.000Z"},` +
	`"identifier":[{"system":"urn:oid:1.2.36.146.595.217.0.1","value":%q}],"active":true,` +
	`"name":[{"use":"official","family":"Chalmers","given":["Peter","James"]}],"telecom":[{"system":"phone","value":"(03) 5555 6473","use":"work"}],` +
	`"gender":"male","birthDate":"1974-12-25","address":[{"use":"home","line":["534 Erewhon St"],"city":"PleasantVille","state":"Vic","postalCode":"3999"}]}`

func benchResource(typ, id string) *store.Resource {
	return &store.Resource{
		Type: typ, ID: id, VersionID: 1, LastUpdated: time.Date(2024, 5, 1, 12, 0, 0, 0, time.UTC),
		JSON: fmt.Appendf(nil, benchJSON, id, id),
		Index: map[string]any{
			"identifier": []any{map[string]any{"system": "urn:oid:1.2.36.146.595.217.0.1", "value": id}},
			"family":     []any{"chalmers"}, "given": []any{"peter", "james"}, "gender": "male",
			"birthdate": map[string]any{"lo": time.Date(1974, 12, 25, 0, 0, 0, 0, time.UTC),
				"hi": time.Date(1974, 12, 26, 0, 0, 0, 0, time.UTC)},
		},
	}
}

func benchID(i int) string { return "p" + strconv.Itoa(i) }

// seeded returns an embedded store whose Patient collection holds n
// resources; PatientNoIdx holds the same documents without the _id
// expression index.
func seeded(b *testing.B, n int) *Store {
	benchDBs.Lock()
	defer benchDBs.Unlock()
	if s := benchDBs.m[n]; s != nil {
		return s
	}
	ctx := context.Background()
	s, _ := openEmbedded(b)
	if err := s.ensure(ctx, "Patient"); err != nil {
		b.Fatal(err)
	}
	for _, coll := range []string{"Patient", "PatientNoIdx"} {
		c := s.db.Collection(coll)
		const batch = 1000
		for i := 0; i < n; i += batch {
			docs := make([]any, 0, batch)
			for j := i; j < min(i+batch, n); j++ {
				docs = append(docs, encode(benchResource("Patient", benchID(j))))
			}
			if _, err := c.InsertMany(ctx, docs); err != nil {
				b.Fatal(err)
			}
		}
	}
	if benchDBs.m == nil {
		benchDBs.m = map[int]*Store{}
	}
	benchDBs.m[n] = s
	return s
}

// BenchmarkReadByID compares Store.Read with the raw driver FindOne on the
// same embedded collection, and with FindOne on a copy lacking the _id
// expression index (what FerretDB does unaided).
func BenchmarkReadByID(b *testing.B) {
	for _, n := range []int{1000, 10000, 50000} {
		b.Run(fmt.Sprintf("n=%d/store", n), func(b *testing.B) {
			s := seeded(b, n)
			ctx := context.Background()
			b.ResetTimer()
			for b.Loop() {
				if _, err := s.Read(ctx, "Patient", benchID(rand.IntN(n))); err != nil {
					b.Fatal(err)
				}
			}
		})
		for _, coll := range []string{"Patient", "PatientNoIdx"} {
			name := "raw"
			if coll == "PatientNoIdx" {
				name = "raw-noindex"
			}
			b.Run(fmt.Sprintf("n=%d/%s", n, name), func(b *testing.B) {
				s := seeded(b, n)
				ctx := context.Background()
				c := s.db.Collection(coll)
				b.ResetTimer()
				for b.Loop() {
					if _, err := c.FindOne(ctx, bson.D{{Key: "_id", Value: benchID(rand.IntN(n))}}).Raw(); err != nil {
						b.Fatal(err)
					}
				}
			})
		}
	}
}

// BenchmarkCreate compares Store.Create with the raw driver InsertOne of the
// same document into an identically prepared collection.
func BenchmarkCreate(b *testing.B) {
	ctx := context.Background()
	s, _ := openEmbedded(b)
	defer s.Close(ctx)
	for _, coll := range []string{"Patient", "PatientRaw"} {
		if err := s.ensure(ctx, coll); err != nil {
			b.Fatal(err)
		}
	}
	seq := 0
	b.Run("store", func(b *testing.B) {
		for b.Loop() {
			seq++
			if err := s.Create(ctx, benchResource("Patient", benchID(seq))); err != nil {
				b.Fatal(err)
			}
		}
	})
	b.Run("raw", func(b *testing.B) {
		c := s.db.Collection("PatientRaw")
		for b.Loop() {
			seq++
			if _, err := c.InsertOne(ctx, encode(benchResource("Patient", benchID(seq)))); err != nil {
				b.Fatal(err)
			}
		}
	})
}
