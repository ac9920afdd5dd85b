package bulkbench

import (
	"context"
	"os"
	"strconv"
	"testing"
)

// BenchmarkExport exports 100k seeded resources and scans them with the
// driver; it reports resources/s and peak heap of both.
// CASEFHIR_BENCH_EXPORT_N overrides the number of resources.
func BenchmarkExport(b *testing.B) {
	n := 100000
	if v, err := strconv.Atoi(os.Getenv("CASEFHIR_BENCH_EXPORT_N")); err == nil && v > 0 {
		n = v
	}
	for i := 0; i < b.N; i++ {
		r, err := Run(context.Background(), Options{Dir: b.TempDir(), N: n, Log: os.Stderr})
		if err != nil {
			b.Fatal(err)
		}
		b.ReportMetric(r.ExportPerSecond, "export-res/s")
		b.ReportMetric(r.ScanPerSecond, "scan-res/s")
		b.ReportMetric(float64(r.ExportPeakHeap)/(1<<20), "export-peak-MiB")
		b.ReportMetric(float64(r.ScanPeakHeap)/(1<<20), "scan-peak-MiB")
		b.Log("\n" + r.Table())
	}
}
