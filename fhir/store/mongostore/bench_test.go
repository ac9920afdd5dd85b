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
// same embedded collection. Each iteration does one of each, in random
// order, so both see the same machine load; store-ns/op and raw-ns/op are
// their mean latencies. raw-noindex reads a copy of the collection lacking
// the _id expression index (what FerretDB does unaided).
func BenchmarkReadByID(b *testing.B) {
	for _, n := range []int{1000, 10000, 50000} {
		b.Run(fmt.Sprintf("n=%d", n), func(b *testing.B) {
			s := seeded(b, n)
			ctx := context.Background()
			c := s.db.Collection("Patient")
			var storeT, rawT time.Duration
			b.ResetTimer()
			for b.Loop() {
				id := benchID(rand.IntN(n))
				storeFirst := rand.IntN(2) == 0
				for k := range 2 {
					t := time.Now()
					if (k == 0) == storeFirst {
						if _, err := s.Read(ctx, "Patient", id); err != nil {
							b.Fatal(err)
						}
						storeT += time.Since(t)
					} else {
						if _, err := c.FindOne(ctx, bson.D{{Key: "_id", Value: id}}).Raw(); err != nil {
							b.Fatal(err)
						}
						rawT += time.Since(t)
					}
				}
			}
			b.ReportMetric(float64(storeT.Nanoseconds())/float64(b.N), "store-ns/op")
			b.ReportMetric(float64(rawT.Nanoseconds())/float64(b.N), "raw-ns/op")
			b.ReportMetric(float64(rawT)/float64(storeT), "store-rate/raw-rate")
		})
		b.Run(fmt.Sprintf("n=%d/raw-noindex", n), func(b *testing.B) {
			s := seeded(b, n)
			ctx := context.Background()
			c := s.db.Collection("PatientNoIdx")
			b.ResetTimer()
			for b.Loop() {
				if _, err := c.FindOne(ctx, bson.D{{Key: "_id", Value: benchID(rand.IntN(n))}}).Raw(); err != nil {
					b.Fatal(err)
				}
			}
		})
	}
}

// BenchmarkCreate compares Store.Create with the raw driver InsertOne of the
// same document into an identically prepared collection, alternating as
// BenchmarkReadByID does.
func BenchmarkCreate(b *testing.B) {
	ctx := context.Background()
	s, _ := openEmbedded(b)
	defer s.Close(ctx)
	for _, coll := range []string{"Patient", "PatientRaw"} {
		if err := s.ensure(ctx, coll); err != nil {
			b.Fatal(err)
		}
	}
	c := s.db.Collection("PatientRaw")
	var storeT, rawT time.Duration
	seq := 0
	for b.Loop() {
		seq++
		storeFirst := rand.IntN(2) == 0
		for k := range 2 {
			r := benchResource("Patient", benchID(seq))
			t := time.Now()
			if (k == 0) == storeFirst {
				if err := s.Create(ctx, r); err != nil {
					b.Fatal(err)
				}
				storeT += time.Since(t)
			} else {
				if _, err := c.InsertOne(ctx, encode(r)); err != nil {
					b.Fatal(err)
				}
				rawT += time.Since(t)
			}
		}
	}
	b.ReportMetric(float64(storeT.Nanoseconds())/float64(b.N), "store-ns/op")
	b.ReportMetric(float64(rawT.Nanoseconds())/float64(b.N), "raw-ns/op")
	b.ReportMetric(float64(rawT)/float64(storeT), "store-rate/raw-rate")
}

// BenchmarkSearch measures a token search (identifier value, one match) on
// the embedded store with Store.Find against the raw driver Find of the
// same query on the same collection, alternating as BenchmarkReadByID does.
// FerretDB serves it with a scan: its cost grows with the collection.
func BenchmarkSearch(b *testing.B) {
	for _, n := range []int{1000, 10000, 50000} {
		b.Run(fmt.Sprintf("n=%d", n), func(b *testing.B) {
			s := seeded(b, n)
			ctx := context.Background()
			c := s.db.Collection("Patient")
			var storeT, rawT time.Duration
			b.ResetTimer()
			for b.Loop() {
				id := benchID(rand.IntN(n))
				storeFirst := rand.IntN(2) == 0
				for k := range 2 {
					t := time.Now()
					if (k == 0) == storeFirst {
						cur, err := s.Find(ctx, "Patient", store.Eq("identifier.value", id), store.FindOptions{})
						if err != nil {
							b.Fatal(err)
						}
						got := 0
						for {
							r, err := cur.Next(ctx)
							if err != nil {
								b.Fatal(err)
							}
							if r == nil {
								break
							}
							got++
						}
						cur.Close(ctx)
						if got != 1 {
							b.Fatalf("store found %d", got)
						}
						storeT += time.Since(t)
					} else {
						cur, err := c.Find(ctx, bson.D{{Key: "del", Value: false}, {Key: "x.identifier.value", Value: id}})
						if err != nil {
							b.Fatal(err)
						}
						got := 0
						for cur.Next(ctx) {
							got++
						}
						cur.Close(ctx)
						if got != 1 {
							b.Fatalf("raw found %d", got)
						}
						rawT += time.Since(t)
					}
				}
			}
			b.ReportMetric(float64(storeT.Nanoseconds())/float64(b.N), "store-ns/op")
			b.ReportMetric(float64(rawT.Nanoseconds())/float64(b.N), "raw-ns/op")
		})
	}
}
