package main

import (
	"bufio"
	"bytes"
	"context"
	"fmt"
	"os/exec"
	"path/filepath"
	"strings"
	"time"
)

// calibration runs mongostore's own benchmarks, which time its Read and
// Create against bare driver calls (FindOne, InsertOne) on the embedded
// store: the distance between this document's baseline and the raw driver.
func (b *bench) calibration(ctx context.Context) (*section, error) {
	sec := &section{
		title: "5. Calibration: baseline methods vs bare driver calls",
		intro: "`go test ./fhir/store/mongostore -bench` (mongostore's `BenchmarkReadByID` at 1000 documents and " +
			"`BenchmarkCreate`, sequential, 2000 operations each) in a separate process during this run: *store* is the " +
			"method the baseline above calls, *raw* the bare driver call on the same collection.",
		head: []string{"benchmark", "store", "raw driver", "store / raw"},
	}
	if !b.c.calibrate {
		sec.notes = append(sec.notes, "Skipped (`-calibrate=false`).")
		return sec, nil
	}
	mod, err := exec.CommandContext(ctx, "go", "env", "GOMOD").Output()
	if err != nil || len(bytes.TrimSpace(mod)) == 0 {
		sec.notes = append(sec.notes, "Not run: cannot locate the module (`go env GOMOD`).")
		return sec, nil
	}
	root := filepath.Dir(string(bytes.TrimSpace(mod)))
	cctx, cancel := context.WithTimeout(ctx, 4*time.Minute)
	defer cancel()
	got := map[string]float64{}
	for _, pat := range []string{"^BenchmarkReadByID$/^n=1000$/", "^BenchmarkCreate$"} {
		cmd := exec.CommandContext(cctx, "go", "test", "./fhir/store/mongostore", "-run", "^$", "-bench", pat,
			"-benchtime", "2000x", "-count", "1")
		cmd.Dir = root
		out, err := cmd.CombinedOutput()
		if err != nil {
			sec.notes = append(sec.notes, fmt.Sprintf("`%s` failed: %v", pat, err))
			continue
		}
		sc := bufio.NewScanner(bytes.NewReader(out))
		for sc.Scan() {
			f := strings.Fields(sc.Text())
			if len(f) < 4 || !strings.HasPrefix(f[0], "Benchmark") || f[3] != "ns/op" {
				continue
			}
			var ns float64
			if _, err := fmt.Sscanf(f[2], "%g", &ns); err == nil {
				name := f[0]
				if i := strings.LastIndexByte(name, '-'); i > 0 {
					name = name[:i]
				}
				got[name] = ns
			}
		}
	}
	ns := func(x float64) string { return fDur(time.Duration(x)) }
	for _, c := range []struct{ label, store, raw string }{
		{"read by id, 1000 documents", "BenchmarkReadByID/n=1000/store", "BenchmarkReadByID/n=1000/raw"},
		{"create", "BenchmarkCreate/store", "BenchmarkCreate/raw"},
	} {
		s, r := got[c.store], got[c.raw]
		if s == 0 || r == 0 {
			continue
		}
		sec.rows = append(sec.rows, []string{c.label, ns(s), ns(r), fRatio(s / r)})
	}
	sec.notes = append(sec.notes, "Not interleaved with the rest (a separate process, run once), so read it as an order of magnitude.")
	return sec, nil
}
