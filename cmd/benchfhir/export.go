package main

import (
	"context"
	"encoding/json"
	"fmt"
	"net/http"
	"runtime"
	"strings"
	"time"

	"github.com/casefhir/casefhir/fhir/store"
	"github.com/casefhir/casefhir/server/bulk/bulkbench"
)

// scanner is implemented by stores with a plain JSON scan of a type
// (mongostore's ScanJSON: no filter, no sort, JSON projected).
type scanner interface {
	ScanJSON(ctx context.Context, typ string, fn func(js []byte) error) (int64, error)
}

// export is the hook for bulk export: a system-level $export of every
// stored resource vs a plain scan of the same collections, with peak heap.
func (b *bench) export(ctx context.Context) (*section, error) {
	sec := &section{
		title: "4b. Bulk export: throughput and peak memory",
		head:  []string{"", "resources", "resources/s", "wall", "peak heap in use"},
	}
	if !b.caps.export {
		sec.notes = append(sec.notes, "**Not measured: feature missing** (no `export` operation in the CapabilityStatement).")
		return sec, nil
	}
	if !b.c.export {
		sec.notes = append(sec.notes, "**Not measured in the default run (time bound)**: on the embedded store a plain scan "+
			"reads about 500 resources/s here (FerretDB decodes every document), so a scan of 100k resources alone takes minutes. "+
			"Run `go run ./cmd/benchfhir -export -budget 30m` to include it (the export of everything stored, topped up to `-export-min`, "+
			"vs the direct scan, with peak heap).")
		return sec, nil
	}
	total, err := b.countAll(ctx)
	if err != nil {
		return sec, err
	}
	if total < b.c.exportMin {
		t0 := time.Now()
		if err := b.seed.growTo(ctx, b.seed.have+(b.c.exportMin-total+1)/2); err != nil {
			return sec, err
		}
		b.logf("topped up to %d seeded pairs for export (%v)", b.seed.have, time.Since(t0).Round(time.Millisecond))
	}
	how := "`Find` with no filter"
	if _, ok := any(b.e.raw).(scanner); ok {
		how = "`ScanJSON` (JSON projected, no filter, no sort)"
	}
	scan := func(ctx context.Context) (int64, time.Duration, uint64, error) {
		types, err := b.e.raw.Types(ctx)
		if err != nil {
			return 0, 0, 0, err
		}
		runtime.GC()
		stop := bulkbench.SampleHeap()
		t0 := time.Now()
		var n int64
		for _, t := range types {
			if strings.HasPrefix(t, "_") {
				continue
			}
			if sc, ok := any(b.e.raw).(scanner); ok {
				c, err := sc.ScanJSON(ctx, t, func([]byte) error { return nil })
				if err != nil {
					stop()
					return 0, 0, 0, err
				}
				n += c
				continue
			}
			c, err := findAll(ctx, b.e.raw, t, store.All(), store.FindOptions{})
			if err != nil {
				stop()
				return 0, 0, 0, err
			}
			n += int64(c)
		}
		return n, time.Since(t0), stop(), nil
	}
	row := func(name string, n int64, d time.Duration, peak uint64) []string {
		return []string{name, fmt.Sprint(n), fRate(float64(n) / d.Seconds()), fDur(d), fMiB(peak)}
	}
	// Scan, export, scan: the export is set against the mean of the scans
	// around it.
	var scanRate float64 // summed over the scans, averaged below
	var exportN int64
	var exportD time.Duration
	for i := 0; i < 2; i++ {
		if i == 1 {
			n, d, peak, err := b.kickExport(ctx)
			if err != nil {
				return sec, err
			}
			exportN, exportD = n, d
			sec.rows = append(sec.rows, row("casefhir `GET /fhir/$export` (NDJSON files, kick-off to complete manifest)", n, d, peak))
		}
		n, d, peak, err := scan(ctx)
		if err != nil {
			return sec, err
		}
		scanRate += float64(n) / d.Seconds() / 2
		sec.rows = append(sec.rows, row("direct scan, "+how+fmt.Sprintf(" #%d", i+1), n, d, peak))
	}
	if scanRate > 0 && exportD > 0 {
		r := float64(exportN) / exportD.Seconds() / scanRate
		sec.notes = append(sec.notes, fmt.Sprintf("Export throughput vs the mean of the two scans: %s.", fRatio(r)))
	}
	runtime.GC()
	var ms runtime.MemStats
	runtime.ReadMemStats(&ms)
	sec.intro = fmt.Sprintf("A system-level export of everything stored (Patients, Observations and the resources "+
		"the other scenarios created) vs a plain scan of the same collections, run scan / export / scan. Peak heap is "+
		"`runtime.MemStats.HeapInuse` sampled every 20 ms; it is the whole process (server, FerretDB and the benchmark), "+
		"%s in use at rest after a GC.", fMiB(ms.HeapInuse))
	return sec, nil
}

func (b *bench) countAll(ctx context.Context) (int, error) {
	types, err := b.e.raw.Types(ctx)
	if err != nil {
		return 0, err
	}
	total := 0
	for _, t := range types {
		if strings.HasPrefix(t, "_") {
			continue
		}
		n, err := b.e.raw.Count(ctx, t, store.All())
		if err != nil {
			return 0, err
		}
		total += int(n)
	}
	return total, nil
}

// kickExport runs one system export over HTTP and waits for its manifest.
func (b *bench) kickExport(ctx context.Context) (int64, time.Duration, uint64, error) {
	runtime.GC()
	stop := bulkbench.SampleHeap()
	t0 := time.Now()
	st, h, _, err := b.e.do(ctx, http.MethodGet, b.e.base+"/$export", nil, "Prefer", "respond-async")
	if err == nil && st != http.StatusAccepted {
		err = fmt.Errorf("$export kick-off: HTTP %d", st)
	}
	if err != nil {
		stop()
		return 0, 0, 0, err
	}
	status := h.Get("Content-Location")
	deadline := time.Now().Add(4 * time.Minute)
	for {
		st, _, body, err := b.e.do(ctx, http.MethodGet, status, nil)
		if err != nil {
			stop()
			return 0, 0, 0, err
		}
		switch st {
		case http.StatusAccepted:
		case http.StatusOK:
			d, peak := time.Since(t0), stop()
			var m struct {
				Output []struct {
					Count int64 `json:"count"`
				} `json:"output"`
			}
			_ = json.Unmarshal(body, &m)
			var n int64
			for _, o := range m.Output {
				n += o.Count
			}
			return n, d, peak, nil
		default:
			stop()
			return 0, 0, 0, fmt.Errorf("$export status: HTTP %d", st)
		}
		if time.Now().After(deadline) {
			stop()
			return 0, 0, 0, fmt.Errorf("$export did not complete within 4 minutes")
		}
		time.Sleep(50 * time.Millisecond)
	}
}
