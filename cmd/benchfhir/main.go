package main

import (
	"context"
	"flag"
	"fmt"
	"io"
	"os"
	"os/signal"
	"time"
)

func main() {
	ctx, stop := signal.NotifyContext(context.Background(), os.Interrupt)
	code := run(ctx, os.Args[1:], os.Stderr)
	stop()
	os.Exit(code)
}

// config is the command line.
type config struct {
	out       string
	dir       string
	budget    time.Duration
	rounds    int
	conc      int
	creates   int
	reads     int
	sizes     []int
	scale     []int
	only      []string
	exportMin int
	calibrate bool
	export    bool
	audit     bool
}

func run(ctx context.Context, args []string, stderr io.Writer) int {
	fs := flag.NewFlagSet("benchfhir", flag.ContinueOnError)
	fs.SetOutput(stderr)
	var c config
	var sizes, scale, only string
	fs.StringVar(&c.out, "out", "docs/benchmarks.md", "Markdown file to write")
	fs.StringVar(&c.dir, "dir", "", "working directory for the data (default: a temporary directory, removed afterwards)")
	fs.DurationVar(&c.budget, "budget", 9*time.Minute, "hard time budget for all measurements")
	fs.IntVar(&c.rounds, "rounds", 3, "A/B rounds per comparison (medians are taken over them)")
	fs.IntVar(&c.conc, "c", 4, "concurrency of the create and read throughput runs")
	fs.IntVar(&c.creates, "creates", 2000, "creates per run (per side, per round)")
	fs.IntVar(&c.reads, "reads", 3000, "reads per run (per side, per round)")
	fs.StringVar(&sizes, "sizes", "1000,10000,50000", "collection sizes for the scaling scenario")
	fs.StringVar(&scale, "scale", "10000,100000", "store sizes of the embedded-store scale scenario (\"\" skips it; add 1000000 for 1M)")
	fs.IntVar(&c.exportMin, "export-min", 100000, "resources the export scenario needs (topped up if fewer are stored)")
	fs.BoolVar(&c.export, "export", false, "include the bulk export scenario (slow on the embedded store)")
	fs.BoolVar(&c.audit, "audit", false, "run the server with its AuditEvent trail on (off measures the FHIR path alone)")
	fs.StringVar(&only, "only", "", "comma-separated scenarios to run (scale, scaling, read, create, transaction, export, everything, roundtrips, calibration, audit); default all")
	fs.BoolVar(&c.calibrate, "calibrate", true, "run mongostore's driver-vs-store benchmarks as a calibration step")
	if err := fs.Parse(args); err != nil {
		return 2
	}
	c.only = splitComma(only)
	var err error
	if c.sizes, err = parseSizes(sizes); err != nil {
		fmt.Fprintf(stderr, "benchfhir: -sizes: %v\n", err)
		return 2
	}
	if c.rounds < 1 || c.conc < 1 || c.creates < 1 || c.reads < 1 {
		fmt.Fprintln(stderr, "benchfhir: -rounds, -c, -creates and -reads must be positive")
		return 2
	}
	if scale != "" {
		if c.scale, err = parseSizes(scale); err != nil {
			fmt.Fprintf(stderr, "benchfhir: -scale: %v\n", err)
			return 2
		}
	}
	ctx, cancel := context.WithTimeout(ctx, c.budget)
	defer cancel()
	rep, err := measure(ctx, c, stderr)
	if rep != nil {
		if werr := os.WriteFile(c.out, []byte(rep.markdown()), 0o644); werr != nil {
			fmt.Fprintf(stderr, "benchfhir: write %s: %v\n", c.out, werr)
			return 1
		}
		fmt.Fprintf(stderr, "benchfhir: wrote %s\n", c.out)
	}
	if err != nil {
		fmt.Fprintf(stderr, "benchfhir: %v\n", err)
		return 1
	}
	return 0
}

func parseSizes(s string) ([]int, error) {
	var out []int
	var n int
	for _, f := range splitComma(s) {
		if _, err := fmt.Sscanf(f, "%d", &n); err != nil || n < 1 {
			return nil, fmt.Errorf("bad size %q", f)
		}
		if len(out) > 0 && n <= out[len(out)-1] {
			return nil, fmt.Errorf("sizes must increase")
		}
		out = append(out, n)
	}
	if len(out) == 0 {
		return nil, fmt.Errorf("no sizes")
	}
	return out, nil
}

func splitComma(s string) []string {
	var out []string
	start := 0
	for i := 0; i <= len(s); i++ {
		if i == len(s) || s[i] == ',' {
			if i > start {
				out = append(out, s[start:i])
			}
			start = i + 1
		}
	}
	return out
}
