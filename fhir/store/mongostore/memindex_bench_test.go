package mongostore

import (
	"fmt"
	"os"
	"runtime"
	"testing"

	"github.com/casefhir/casefhir/fhir/search"
	"github.com/casefhir/casefhir/fhir/store"
)

// BenchmarkTableMemory reports the heap a table entry takes (bytes per
// resource) for index trees extracted from official R4 examples, and for
// the synthetic Patient of the other benchmarks: 10,000 entries decoded
// from their stored documents as a load decodes them.
func BenchmarkTableMemory(b *testing.B) {
	params, err := os.ReadFile("../../../conformance/artefacts/search-parameters.json")
	if err != nil {
		b.Skip(err)
	}
	reg, err := search.NewRegistry(params)
	if err != nil {
		b.Fatal(err)
	}
	examples := []struct{ typ, file string }{
		{"Patient", "Patient/Patient-example.json"},
		{"Observation", "Observation/Observation-blood-pressure.json"},
		{"Observation", "Observation/Observation-glasgow.json"},
	}
	type sample struct {
		name  string
		index map[string]any
	}
	var samples []sample
	for _, e := range examples {
		js, err := os.ReadFile("../../../../shared/fhir-r4/examples/" + e.file)
		if err != nil {
			b.Skip(err)
		}
		idx, err := reg.Extract(e.typ, js)
		if err != nil {
			b.Fatal(err)
		}
		samples = append(samples, sample{e.file, idx})
	}
	samples = append(samples, sample{"synthetic-Patient", benchResource("Patient", "p").Index})
	const n = 10000
	for _, sm := range samples {
		b.Run(sm.name, func(b *testing.B) {
			var perRes float64
			for b.Loop() {
				docs := make([][]byte, n)
				for i := range docs {
					r := &store.Resource{Type: "T", ID: fmt.Sprintf("id%07d", i), VersionID: 1, Index: sm.index}
					if docs[i], err = marshalDoc("bench", r); err != nil {
						b.Fatal(err)
					}
				}
				var before, after runtime.MemStats
				runtime.GC()
				runtime.ReadMemStats(&before)
				t := &memTable{rows: map[string]*store.Resource{}}
				for _, d := range docs {
					r, err := decode("T", d, false)
					if err != nil {
						b.Fatal(err)
					}
					t.put(r)
				}
				runtime.GC()
				runtime.ReadMemStats(&after)
				perRes = float64(after.HeapAlloc-before.HeapAlloc) / n
				runtime.KeepAlive(t)
				runtime.KeepAlive(docs)
			}
			b.ReportMetric(perRes, "bytes/resource")
		})
	}
}
