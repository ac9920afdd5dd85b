package server

import (
	"context"
	"fmt"
	"io"
	"math"
	"sort"
	"strings"
	"sync"
	"time"

	"github.com/casefhir/casefhir/fhir/outcome"
	"github.com/casefhir/casefhir/fhir/store"
)

// Metrics is a small Prometheus registry: labelled counters and
// histograms, rendered in the text exposition format.
type Metrics struct {
	mu         sync.Mutex
	counters   map[string]map[string]float64 // name -> labels -> value
	histograms map[string]map[string]*histogram
	help       map[string]string
}

type histogram struct {
	buckets []float64
	counts  []uint64
	sum     float64
	count   uint64
}

var defBuckets = []float64{.0005, .001, .0025, .005, .01, .025, .05, .1, .25, .5, 1, 2.5, 5, 10}

// NewMetrics returns an empty registry.
func NewMetrics() *Metrics {
	return &Metrics{counters: map[string]map[string]float64{}, histograms: map[string]map[string]*histogram{},
		help: map[string]string{
			"casefhir_http_requests_total":              "HTTP requests by FHIR interaction and status code.",
			"casefhir_http_request_duration_seconds":    "HTTP request latency by FHIR interaction.",
			"casefhir_store_operation_duration_seconds": "Store operation latency by operation.",
			"casefhir_store_errors_total":               "Store operations that failed, by operation.",
			"casefhir_mongodb_request_commands_total":   "MongoDB commands sent for HTTP requests, by FHIR interaction and command name (divide by casefhir_http_requests_total for round trips per request).",
		}}
}

func labels(kv ...string) string {
	var b strings.Builder
	for i := 0; i+1 < len(kv); i += 2 {
		if i > 0 {
			b.WriteByte(',')
		}
		fmt.Fprintf(&b, "%s=%q", kv[i], kv[i+1])
	}
	return b.String()
}

// Inc adds 1 to a counter.
func (m *Metrics) Inc(name string, kv ...string) { m.Add(name, 1, kv...) }

// Add adds v to a counter.
func (m *Metrics) Add(name string, v float64, kv ...string) {
	l := labels(kv...)
	m.mu.Lock()
	if m.counters[name] == nil {
		m.counters[name] = map[string]float64{}
	}
	m.counters[name][l] += v
	m.mu.Unlock()
}

// Observe records a duration in a histogram.
func (m *Metrics) Observe(name string, d time.Duration, kv ...string) {
	l := labels(kv...)
	s := d.Seconds()
	m.mu.Lock()
	if m.histograms[name] == nil {
		m.histograms[name] = map[string]*histogram{}
	}
	h := m.histograms[name][l]
	if h == nil {
		h = &histogram{buckets: defBuckets, counts: make([]uint64, len(defBuckets))}
		m.histograms[name][l] = h
	}
	for i, b := range h.buckets {
		if s <= b {
			h.counts[i]++
		}
	}
	h.sum += s
	h.count++
	m.mu.Unlock()
}

// WriteTo renders the registry in the Prometheus text format.
func (m *Metrics) WriteTo(w io.Writer) (int64, error) {
	m.mu.Lock()
	defer m.mu.Unlock()
	var b strings.Builder
	for _, name := range sortedKeys(m.counters) {
		fmt.Fprintf(&b, "# HELP %s %s\n# TYPE %s counter\n", name, m.help[name], name)
		for _, l := range sortedKeys(m.counters[name]) {
			fmt.Fprintf(&b, "%s{%s} %g\n", name, l, m.counters[name][l])
		}
	}
	for _, name := range sortedKeys(m.histograms) {
		fmt.Fprintf(&b, "# HELP %s %s\n# TYPE %s histogram\n", name, m.help[name], name)
		for _, l := range sortedKeys(m.histograms[name]) {
			h := m.histograms[name][l]
			sep := ""
			if l != "" {
				sep = ","
			}
			for i, ub := range h.buckets {
				fmt.Fprintf(&b, "%s_bucket{%s%sle=\"%g\"} %d\n", name, l, sep, ub, h.counts[i])
			}
			fmt.Fprintf(&b, "%s_bucket{%s%sle=\"+Inf\"} %d\n", name, l, sep, h.count)
			fmt.Fprintf(&b, "%s_sum{%s} %g\n%s_count{%s} %d\n", name, l, roundSum(h.sum), name, l, h.count)
		}
	}
	n, err := io.WriteString(w, b.String())
	return int64(n), err
}

func roundSum(f float64) float64 { return math.Round(f*1e6) / 1e6 }

func sortedKeys[V any](m map[string]V) []string {
	out := make([]string, 0, len(m))
	for k := range m {
		out = append(out, k)
	}
	sort.Strings(out)
	return out
}

// commandCounter is implemented by stores that count the database
// commands they send, by command name (mongostore: from the driver's
// command monitor), so the round trips of every interaction can be
// measured.
type commandCounter interface {
	CommandCounts() map[string]int64
}

// writeCommandCounts renders counts as the counter
// casefhir_mongodb_commands_total{command="find"}.
func writeCommandCounts(w io.Writer, counts map[string]int64) (int64, error) {
	var b strings.Builder
	b.WriteString("# HELP casefhir_mongodb_commands_total MongoDB commands sent, by command name.\n")
	b.WriteString("# TYPE casefhir_mongodb_commands_total counter\n")
	names := make([]string, 0, len(counts))
	for k := range counts {
		names = append(names, k)
	}
	sort.Strings(names)
	for _, k := range names {
		fmt.Fprintf(&b, "casefhir_mongodb_commands_total{%s} %d\n", labels("command", k), counts[k])
	}
	n, err := io.WriteString(w, b.String())
	return int64(n), err
}

// instrumentedStore records the latency of every store operation.
type instrumentedStore struct {
	store.Store
	m *Metrics
}

func (s instrumentedStore) obs(op string, start time.Time, err error) {
	s.m.Observe("casefhir_store_operation_duration_seconds", time.Since(start), "op", op)
	if err != nil {
		s.m.Inc("casefhir_store_errors_total", "op", op)
	}
}

// notFoundIsFine leaves "not found" out of the store error count: it is an
// answer, not a failure.
func notFoundIsFine(err error) error {
	if outcome.Is(err, outcome.NotFound) {
		return nil
	}
	return err
}

func (s instrumentedStore) Read(ctx context.Context, typ, id string) (r *store.Resource, err error) {
	defer func(t time.Time) { s.obs("read", t, notFoundIsFine(err)) }(time.Now())
	return s.Store.Read(ctx, typ, id)
}

// ReadJSON implements store.JSONReader (Read when the store has none).
func (s instrumentedStore) ReadJSON(ctx context.Context, typ, id string) (r *store.Resource, err error) {
	defer func(t time.Time) { s.obs("read", t, notFoundIsFine(err)) }(time.Now())
	return store.ReadJSON(ctx, s.Store, typ, id)
}

// ReadMany implements store.BatchReader (one Read each when the store
// has no batch read).
func (s instrumentedStore) ReadMany(ctx context.Context, typ string, ids []string) (rs map[string]*store.Resource, err error) {
	defer func(t time.Time) { s.obs("read_many", t, err) }(time.Now())
	return store.ReadMany(ctx, s.Store, typ, ids)
}

func (s instrumentedStore) VRead(ctx context.Context, typ, id string, v int64) (r *store.Resource, err error) {
	defer func(t time.Time) { s.obs("vread", t, notFoundIsFine(err)) }(time.Now())
	return s.Store.VRead(ctx, typ, id, v)
}

func (s instrumentedStore) Create(ctx context.Context, r *store.Resource) (err error) {
	defer func(t time.Time) { s.obs("create", t, err) }(time.Now())
	return s.Store.Create(ctx, r)
}

func (s instrumentedStore) Update(ctx context.Context, next, prev *store.Resource) (err error) {
	defer func(t time.Time) { s.obs("update", t, err) }(time.Now())
	return s.Store.Update(ctx, next, prev)
}

func (s instrumentedStore) History(ctx context.Context, q store.HistoryQuery) (r []*store.Resource, err error) {
	defer func(t time.Time) { s.obs("history", t, err) }(time.Now())
	return s.Store.History(ctx, q)
}

func (s instrumentedStore) Find(ctx context.Context, typ string, f *store.Filter, o store.FindOptions) (c store.Cursor, err error) {
	defer func(t time.Time) { s.obs("find", t, err) }(time.Now())
	return s.Store.Find(ctx, typ, f, o)
}

func (s instrumentedStore) Count(ctx context.Context, typ string, f *store.Filter) (n int64, err error) {
	defer func(t time.Time) { s.obs("count", t, err) }(time.Now())
	return s.Store.Count(ctx, typ, f)
}
