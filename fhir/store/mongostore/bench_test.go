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
	"go.mongodb.org/mongo-driver/v2/mongo/options"

	"github.com/casefhir/casefhir/fhir/store"
)

// benchDBs caches seeded databases by size within one test binary run.
var benchDBs struct {
	sync.Mutex
	m map[int]*benchDB
}

// benchDB is a seeded database: s searches with the in-memory index, scan
// (another Store on the same data) with a database scan.
type benchDB struct {
	s, scan *Store
	name    string
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

// benchOrgs is how many Patients of a seeded database reference each
// Organization (index path organization.ref).
const benchOrgs = 20

func benchOrg(i, n int) string { return "Organization/o" + strconv.Itoa(i%max(1, n/benchOrgs)) }

// seeded returns an embedded store whose Patient collection holds n
// resources; PatientNoIdx holds the same documents without the _id
// expression index.
func seeded(b *testing.B, n int) *Store { return seededDB(b, n).s }

func seededDB(b *testing.B, n int) *benchDB {
	benchDBs.Lock()
	defer benchDBs.Unlock()
	if d := benchDBs.m[n]; d != nil {
		return d
	}
	ctx := context.Background()
	s, name := openEmbedded(b)
	if err := s.ensure(ctx, "Patient"); err != nil {
		b.Fatal(err)
	}
	for _, coll := range []string{"Patient", "PatientNoIdx"} {
		c := s.db.Collection(coll)
		const batch = 1000
		for i := 0; i < n; i += batch {
			docs := make([]any, 0, batch)
			for j := i; j < min(i+batch, n); j++ {
				r := benchResource("Patient", benchID(j))
				r.Index["organization"] = map[string]any{"ref": benchOrg(j, n)}
				docs = append(docs, encode(r))
			}
			if _, err := c.InsertMany(ctx, docs); err != nil {
				b.Fatal(err)
			}
		}
	}
	scan, err := Open(ctx, Options{URI: srv.URI(), Database: name, Embedded: true, OnCollection: srv.EnsureIDIndex, LazySearchIndex: true})
	if err != nil {
		b.Fatal(err)
	}
	scan.scanOnly = true
	if benchDBs.m == nil {
		benchDBs.m = map[int]*benchDB{}
	}
	d := &benchDB{s: s, scan: scan, name: name}
	benchDBs.m[n] = d
	return d
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

// BenchmarkSearch measures two searches on the embedded store at several
// collection sizes: a token search (identifier value, one match, with the
// JSON) and a reference search (organization.ref, 20 matches, index only,
// as the server's search runs it). Each iteration runs, in random order,
// Store.Find on the in-memory search index ("table"), Store.Find on a
// database scan (the store before the index existed, "scan"), and the raw
// driver Find of the same query on the same collection ("raw"); the
// reported figures are their mean latencies. The table is loaded before
// timing starts (BenchmarkTableLoad measures loading).
func BenchmarkSearch(b *testing.B) {
	type query struct {
		name      string
		f         func(i, n int) *store.Filter
		raw       func(i, n int) bson.D
		indexOnly bool
		want      int
	}
	queries := []query{
		{"token", func(i, n int) *store.Filter { return store.Eq("identifier.value", benchID(i)) },
			func(i, n int) bson.D {
				return bson.D{{Key: "del", Value: false}, {Key: "x.identifier.value", Value: benchID(i)}}
			}, false, 1},
		{"reference", func(i, n int) *store.Filter { return store.Eq("organization.ref", benchOrg(i, n)) },
			func(i, n int) bson.D {
				return bson.D{{Key: "del", Value: false}, {Key: "x.organization.ref", Value: benchOrg(i, n)}}
			}, true, benchOrgs},
	}
	for _, n := range []int{1000, 10000, 50000} {
		for _, q := range queries {
			b.Run(fmt.Sprintf("%s/n=%d", q.name, n), func(b *testing.B) {
				d := seededDB(b, n)
				ctx := context.Background()
				c := d.s.db.Collection("Patient")
				if _, err := d.s.Count(ctx, "Patient", store.All()); err != nil { // load the table
					b.Fatal(err)
				}
				count := func(s *Store, f *store.Filter) int {
					cur, err := s.Find(ctx, "Patient", f, store.FindOptions{IndexOnly: q.indexOnly})
					if err != nil {
						b.Fatal(err)
					}
					defer cur.Close(ctx)
					got := 0
					for {
						r, err := cur.Next(ctx)
						if err != nil {
							b.Fatal(err)
						}
						if r == nil {
							return got
						}
						got++
					}
				}
				var tableT, scanT, rawT time.Duration
				b.ResetTimer()
				for b.Loop() {
					i := rand.IntN(n)
					for _, k := range rand.Perm(3) {
						t := time.Now()
						got := 0
						switch k {
						case 0:
							got = count(d.s, q.f(i, n))
							tableT += time.Since(t)
						case 1:
							got = count(d.scan, q.f(i, n))
							scanT += time.Since(t)
						default:
							fo := options.Find()
							if q.indexOnly {
								fo.SetProjection(bson.D{{Key: fJSON, Value: 0}})
							}
							cur, err := c.Find(ctx, q.raw(i, n), fo)
							if err != nil {
								b.Fatal(err)
							}
							for cur.Next(ctx) {
								got++
							}
							cur.Close(ctx)
							rawT += time.Since(t)
						}
						if got != q.want {
							b.Fatalf("way %d found %d, want %d", k, got, q.want)
						}
					}
				}
				b.ReportMetric(float64(tableT.Nanoseconds())/float64(b.N), "table-ns/op")
				b.ReportMetric(float64(scanT.Nanoseconds())/float64(b.N), "scan-ns/op")
				b.ReportMetric(float64(rawT.Nanoseconds())/float64(b.N), "raw-ns/op")
			})
		}
	}
}

// BenchmarkTableLoad measures the one-time load of a type's table (a new
// Store on a seeded database, first Count) against the raw driver scan of
// the same collection with the JSON projected away and without projection,
// in random order per iteration.
func BenchmarkTableLoad(b *testing.B) {
	for _, n := range []int{1000, 10000, 50000} {
		b.Run(fmt.Sprintf("n=%d", n), func(b *testing.B) {
			d := seededDB(b, n)
			ctx := context.Background()
			c := d.s.db.Collection("Patient")
			raw := func(fo *options.FindOptionsBuilder) {
				cur, err := c.Find(ctx, bson.D{}, fo)
				if err != nil {
					b.Fatal(err)
				}
				got := 0
				for cur.Next(ctx) {
					got++
				}
				cur.Close(ctx)
				if got != n {
					b.Fatalf("scanned %d", got)
				}
			}
			var loadT, projT, fullT time.Duration
			for b.Loop() {
				for _, k := range rand.Perm(3) {
					t := time.Now()
					switch k {
					case 0:
						s, err := Open(ctx, Options{URI: srv.URI(), Database: d.name, Embedded: true, OnCollection: srv.EnsureIDIndex, LazySearchIndex: true})
						if err != nil {
							b.Fatal(err)
						}
						t = time.Now()
						if m, err := s.Count(ctx, "Patient", store.All()); err != nil || m != int64(n) {
							b.Fatalf("Count %d, %v", m, err)
						}
						loadT += time.Since(t)
						s.Close(ctx)
					case 1:
						raw(options.Find().SetProjection(bson.D{{Key: fJSON, Value: 0}}))
						projT += time.Since(t)
					default:
						raw(options.Find())
						fullT += time.Since(t)
					}
				}
			}
			b.ReportMetric(float64(loadT.Nanoseconds())/float64(b.N), "load-ns/op")
			b.ReportMetric(float64(projT.Nanoseconds())/float64(b.N), "raw-projected-ns/op")
			b.ReportMetric(float64(fullT.Nanoseconds())/float64(b.N), "raw-full-ns/op")
		})
	}
}
