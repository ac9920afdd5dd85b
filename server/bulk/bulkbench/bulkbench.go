package bulkbench

import (
	"context"
	"fmt"
	"io"
	"log/slog"
	"net/http"
	"os"
	"path/filepath"
	"runtime"
	"sync"
	"time"

	"github.com/casefhir/casefhir/conformance"
	"github.com/casefhir/casefhir/fhir/search"
	"github.com/casefhir/casefhir/fhir/store"
	"github.com/casefhir/casefhir/fhir/store/mongostore"
	"github.com/casefhir/casefhir/fhir/store/sqlitestore"
	"github.com/casefhir/casefhir/server/bulk"
	"github.com/casefhir/casefhir/server/interaction"
)

// Embedded is the embedded store opened on a data directory.
type Embedded struct {
	Store *sqlitestore.Store
}

// OpenEmbedded opens the embedded store on dir the way the server does.
func OpenEmbedded(ctx context.Context, dir string) (*Embedded, error) {
	st, err := sqlitestore.Open(ctx, sqlitestore.Options{Dir: dir})
	if err != nil {
		return nil, err
	}
	reg, err := Registry()
	if err != nil {
		_ = st.Close(ctx)
		return nil, err
	}
	st.DeriveSorts(reg.SortSources())
	return &Embedded{Store: st}, nil
}

// Close closes the store.
func (e *Embedded) Close() error { return e.Store.Close(context.Background()) }

// Open opens database on a MongoDB-wire test stand-in at uri (FerretDB,
// started by the caller).
func Open(ctx context.Context, uri, database string) (*mongostore.Store, error) {
	return mongostore.Open(ctx, mongostore.Options{URI: uri, Database: database, AllowStandalone: true})
}

// Registry returns the server's search registry (R4 and casefhir parameters).
func Registry() (*search.Registry, error) {
	return search.NewRegistry(conformance.SearchParameters(), conformance.CaseSearchParameters())
}

// insert stores a batch of new resources: with the store's bulk insert
// when it has one, else as one transaction, else one by one.
func insert(ctx context.Context, st store.Store, batch []*store.Resource) error {
	if bi, ok := st.(interface {
		InsertMany(context.Context, []*store.Resource) error
	}); ok {
		return bi.InsertMany(ctx, batch)
	}
	if tx, ok := st.(store.Transactional); ok {
		ws := make([]store.Write, len(batch))
		for i, r := range batch {
			ws[i] = store.Write{Next: r}
		}
		return tx.Apply(ctx, ws)
	}
	for _, r := range batch {
		if err := st.Create(ctx, r); err != nil {
			return err
		}
	}
	return nil
}

// Seed stores n resources: one Patient in ten, the rest Observations,
// Conditions and Encounters of those patients (a few hundred bytes each),
// indexed by reg, in batches of 1000. It returns their "Type/id" keys.
func Seed(ctx context.Context, st store.Store, reg *search.Registry, n int) ([]string, error) {
	now := time.Now().UTC().Truncate(time.Millisecond).Add(-time.Minute)
	lu := now.Format("2006-01-02T15:04:05.000Z")
	keys := make([]string, 0, n)
	batch := make([]*store.Resource, 0, 1000)
	flush := func() error {
		if len(batch) == 0 {
			return nil
		}
		err := insert(ctx, st, batch)
		batch = batch[:0]
		return err
	}
	patients := max(n/10, 1)
	for i := 0; i < n; i++ {
		var typ, js string
		id := fmt.Sprintf("r%07d", i)
		p := fmt.Sprintf("b%07d", i%patients)
		meta := `"meta":{"versionId":"1","lastUpdated":"` + lu + `"}`
		switch {
		case i < patients:
			typ, id = "Patient", p
			js = `{"resourceType":"Patient","id":"` + id + `",` + meta + `,"identifier":[{"system":"urn:example:mrn","value":"` + id +
				`"}],"name":[{"family":"Family` + id + `","given":["Given"]}],"gender":"female","birthDate":"1970-01-01"}`
		case i%3 == 0:
			typ = "Observation"
			js = `{"resourceType":"Observation","id":"` + id + `",` + meta + `,"status":"final","category":[{"coding":[{"system":"http://terminology.hl7.org/CodeSystem/observation-category","code":"vital-signs"}]}],"code":{"coding":[{"system":"http://loinc.org","code":"8867-4","display":"Heart rate"}]},"subject":{"reference":"Patient/` + p +
				`"},"effectiveDateTime":"2024-05-01T10:00:00Z","valueQuantity":{"value":72,"unit":"beats/minute","system":"http://unitsofmeasure.org","code":"/min"}}`
		case i%3 == 1:
			typ = "Condition"
			js = `{"resourceType":"Condition","id":"` + id + `",` + meta + `,"clinicalStatus":{"coding":[{"system":"http://terminology.hl7.org/CodeSystem/condition-clinical","code":"active"}]},"code":{"coding":[{"system":"http://snomed.info/sct","code":"44054006","display":"Diabetes mellitus type 2"}]},"subject":{"reference":"Patient/` + p +
				`"},"onsetDateTime":"2020-02-01"}`
		default:
			typ = "Encounter"
			js = `{"resourceType":"Encounter","id":"` + id + `",` + meta + `,"status":"finished","class":{"system":"http://terminology.hl7.org/CodeSystem/v3-ActCode","code":"AMB"},"subject":{"reference":"Patient/` + p +
				`"},"period":{"start":"2024-05-01T09:00:00Z","end":"2024-05-01T10:00:00Z"}}`
		}
		idx, err := reg.Extract(typ, []byte(js))
		if err != nil {
			return nil, err
		}
		batch = append(batch, &store.Resource{Type: typ, ID: id, VersionID: 1, LastUpdated: now, JSON: []byte(js), Index: idx})
		keys = append(keys, typ+"/"+id)
		if len(batch) == cap(batch) {
			if err := flush(); err != nil {
				return nil, err
			}
		}
	}
	return keys, flush()
}

// Result holds the figures of one Run.
type Result struct {
	Resources int64
	// Export: bulk.Service from kick-off to manifest, files on disk.
	ExportDuration  time.Duration
	ExportPerSecond float64
	ExportPeakHeap  uint64 // max runtime HeapInuse sampled during the export
	ExportBytes     int64  // output size
	// Scan: a plain driver scan of the same collections (JSON projected).
	ScanDuration  time.Duration
	ScanPerSecond float64
	ScanPeakHeap  uint64
	// BaseHeap is HeapInuse after seeding and a GC, before either run.
	BaseHeap uint64
}

// Options configure Run.
type Options struct {
	// Dir holds the embedded store and the export output (a temporary
	// directory when empty, removed afterwards).
	Dir string
	// N is the number of resources (default 100000).
	N int
	// Log receives progress lines (nil: none).
	Log io.Writer
}

// Run seeds N resources, then measures a system-level export and a plain
// driver scan of the same collections on the embedded store.
func Run(ctx context.Context, o Options) (*Result, error) {
	if o.N <= 0 {
		o.N = 100000
	}
	logf := func(format string, args ...any) {
		if o.Log != nil {
			fmt.Fprintf(o.Log, format+"\n", args...)
		}
	}
	if o.Dir == "" {
		d, err := os.MkdirTemp("", "casefhir-bulkbench-")
		if err != nil {
			return nil, err
		}
		defer os.RemoveAll(d)
		o.Dir = d
	}
	emb, err := OpenEmbedded(ctx, filepath.Join(o.Dir, "data"))
	if err != nil {
		return nil, err
	}
	defer emb.Close()
	reg, err := Registry()
	if err != nil {
		return nil, err
	}
	t0 := time.Now()
	if _, err := Seed(ctx, emb.Store, reg, o.N); err != nil {
		return nil, err
	}
	logf("seeded %d resources in %v", o.N, time.Since(t0).Round(time.Millisecond))
	res := &Result{}
	runtime.GC()
	var ms runtime.MemStats
	runtime.ReadMemStats(&ms)
	res.BaseHeap = ms.HeapInuse

	// Plain driver scan.
	types, err := emb.Store.Types(ctx)
	if err != nil {
		return nil, err
	}
	stop := SampleHeap()
	t0 = time.Now()
	var scanned int64
	for _, t := range types {
		n, err := emb.Store.ScanJSON(ctx, t, func(js []byte) error { return nil })
		if err != nil {
			return nil, err
		}
		scanned += n
	}
	res.ScanDuration = time.Since(t0)
	res.ScanPeakHeap = stop()
	res.ScanPerSecond = float64(scanned) / res.ScanDuration.Seconds()
	logf("driver scan: %d resources in %v", scanned, res.ScanDuration.Round(time.Millisecond))

	// Export through the service.
	runtime.GC()
	svc, err := bulk.New(bulk.Options{Store: emb.Store, Jobs: emb.Store, Scanner: emb.Store, Registry: reg, Dir: filepath.Join(o.Dir, "exports"),
		Exclusive: true, PollInterval: 10 * time.Millisecond, Logger: slog.New(slog.DiscardHandler)})
	if err != nil {
		return nil, err
	}
	svc.Start(ctx)
	defer svc.Close(ctx)
	stop = SampleHeap()
	t0 = time.Now()
	const base = "http://bench.invalid/fhir"
	req := &interaction.Request{Route: interaction.Route{Kind: interaction.KindOperation, Operation: bulk.OperationName},
		Method: http.MethodGet, Header: http.Header{"Prefer": {"respond-async"}}, BaseURL: base}
	resp, err := svc.Kickoff(ctx, nil, req)
	if err != nil {
		return nil, err
	}
	loc := resp.Header.Get("Content-Location")
	id := loc[len(bulk.StatusURL(base, "")):]
	for {
		sr, err := svc.Status(ctx, id, base, nil)
		if err != nil {
			return nil, err
		}
		if sr.Status == http.StatusOK {
			break
		}
		time.Sleep(5 * time.Millisecond)
	}
	res.ExportDuration = time.Since(t0)
	res.ExportPeakHeap = stop()
	_ = filepath.WalkDir(filepath.Join(o.Dir, "exports", id), func(_ string, d os.DirEntry, err error) error {
		if err == nil && !d.IsDir() {
			if fi, err := d.Info(); err == nil {
				res.ExportBytes += fi.Size()
			}
		}
		return nil
	})
	res.Resources = scanned
	res.ExportPerSecond = float64(scanned) / res.ExportDuration.Seconds()
	logf("export: %d resources in %v", scanned, res.ExportDuration.Round(time.Millisecond))
	return res, nil
}

// SampleHeap samples the process's HeapInuse every 20ms until the
// returned stop is called, which returns the maximum seen.
func SampleHeap() (stop func() uint64) {
	var mu sync.Mutex
	var peak uint64
	done := make(chan struct{})
	finished := make(chan struct{})
	sample := func() {
		var ms runtime.MemStats
		runtime.ReadMemStats(&ms)
		mu.Lock()
		peak = max(peak, ms.HeapInuse)
		mu.Unlock()
	}
	go func() {
		defer close(finished)
		t := time.NewTicker(20 * time.Millisecond)
		defer t.Stop()
		for {
			sample()
			select {
			case <-done:
				return
			case <-t.C:
			}
		}
	}()
	return func() uint64 {
		close(done)
		<-finished
		sample()
		mu.Lock()
		defer mu.Unlock()
		return peak
	}
}

// Table renders r as a Markdown table for docs/benchmarks.md.
func (r *Result) Table() string {
	mb := func(b uint64) string { return fmt.Sprintf("%.1f MiB", float64(b)/(1<<20)) }
	return fmt.Sprintf("| bulk export (%d resources, embedded) | resources/s | wall | peak heap in use |\n|---|---|---|---|\n"+
		"| plain driver scan (JSON projected, no sort) | %.0f | %v | %s |\n"+
		"| $export to NDJSON files (%.1f MiB written) | %.0f | %v | %s |\n"+
		"| heap before either | | | %s |\n",
		r.Resources, r.ScanPerSecond, r.ScanDuration.Round(time.Millisecond), mb(r.ScanPeakHeap),
		float64(r.ExportBytes)/(1<<20), r.ExportPerSecond, r.ExportDuration.Round(time.Millisecond), mb(r.ExportPeakHeap),
		mb(r.BaseHeap))
}
