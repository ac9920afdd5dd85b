package audit

import (
	"context"
	"encoding/json"
	"errors"
	"net/http"
	"net/url"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/casefhir/casefhir/conformance"
	"github.com/casefhir/casefhir/fhir/codec"
	"github.com/casefhir/casefhir/fhir/outcome"
	"github.com/casefhir/casefhir/fhir/search"
	"github.com/casefhir/casefhir/server/auth"
	"github.com/casefhir/casefhir/server/interaction"
)

func testPrincipal() *auth.Principal {
	return &auth.Principal{Subject: "user-42", ClientID: "case-app", FHIRUser: "Practitioner/7", Patient: "p1",
		Issuer: "https://as.example.org", TokenID: "jti-1", Scopes: auth.ParseScopes("patient/*.rs")}
}

func TestFromRequestKeepsNamesOnly(t *testing.T) {
	r := &interaction.Request{
		Route:  interaction.Route{Kind: interaction.KindSearchType, Type: "Patient"},
		Method: http.MethodGet,
		Query:  url.Values{"family": {"Smith"}, "birthdate": {"1970-01-01"}, "_count": {"10"}},
		Header: http.Header{"If-None-Exist": {"identifier=http://x|secret-mrn"}},
	}
	start := time.Date(2026, 1, 2, 3, 4, 5, 0, time.UTC)
	e := FromRequest(r, testPrincipal(), 200, nil, start, start.Add(time.Millisecond))
	if got := strings.Join(e.QueryParams, ","); got != "_count,birthdate,family,identifier" {
		t.Errorf("QueryParams = %q", got)
	}
	body := string(Resource(e, "https://fhir.example.org/fhir", start))
	for _, secret := range []string{"Smith", "1970-01-01", "secret-mrn"} {
		if strings.Contains(body, secret) {
			t.Errorf("AuditEvent contains the search value %q: %s", secret, body)
		}
	}
}

func TestResourceShape(t *testing.T) {
	c, err := codec.New()
	if err != nil {
		t.Fatal(err)
	}
	start := time.Date(2026, 1, 2, 3, 4, 5, 0, time.UTC)
	tests := []struct {
		name string
		r    *interaction.Request
		p    *auth.Principal
		err  error
		want []string // substrings of the JSON
	}{
		{name: "vread", p: testPrincipal(),
			r:    &interaction.Request{Route: interaction.Route{Kind: interaction.KindVRead, Type: "Observation", ID: "o1", Version: "3"}},
			want: []string{`"code":"vread"`, `"action":"R"`, `"reference":"Observation/o1/_history/3"`, `"reference":"Patient/p1"`, `"outcome":"0"`, `"reference":"Practitioner/7"`, `"value":"case-app"`, `"policy":["jti-1"]`}},
		{name: "create", p: testPrincipal(),
			r:    &interaction.Request{Route: interaction.Route{Kind: interaction.KindCreate, Type: "CarePlan"}, Body: []byte(`{"secret":"x"}`)},
			want: []string{`"code":"create"`, `"action":"C"`, `"type":"CarePlan"`}},
		{name: "conditional delete", p: testPrincipal(),
			r:    &interaction.Request{Route: interaction.Route{Kind: interaction.KindConditionalDelete, Type: "Task"}, Query: url.Values{"status": {"x"}}},
			want: []string{`"code":"delete"`, `"action":"D"`, `"valueString":"status"`}},
		{name: "forbidden", p: testPrincipal(), err: outcome.New(outcome.Forbidden, "missing scope"),
			r:    &interaction.Request{Route: interaction.Route{Kind: interaction.KindRead, Type: "AuditEvent", ID: "a1"}},
			want: []string{`"outcome":"4"`, `"outcomeDesc":"HTTP 403 Forbidden (forbidden)"`}},
		{name: "operation failing", p: testPrincipal(), err: errors.New("boom"),
			r:    &interaction.Request{Route: interaction.Route{Kind: interaction.KindOperation, Type: "EpisodeOfCare", ID: "e1", Operation: "everything"}},
			want: []string{`"code":"operation"`, `"action":"E"`, `"valueString":"$everything"`, `"outcome":"8"`}},
		{name: "anonymous", p: nil, err: outcome.New(outcome.Login, "no token"),
			r:    &interaction.Request{Route: interaction.Route{Kind: interaction.KindSearchSystem}},
			want: []string{`"display":"unauthenticated"`, `"outcome":"4"`}},
		{name: "auth off", p: auth.Unrestricted(),
			r:    &interaction.Request{Route: interaction.Route{Kind: interaction.KindBundle}},
			want: []string{`"code":"batch"`, `authentication off`}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			status := 200
			if tt.err != nil {
				status = 0
			}
			e := FromRequest(tt.r, tt.p, status, tt.err, start, start.Add(time.Second))
			e.SourceAddress, e.RequestID = "192.0.2.1", "req-1"
			body := Resource(e, "https://fhir.example.org/fhir", start.Add(time.Second))
			for _, w := range tt.want {
				if !strings.Contains(string(body), w) {
					t.Errorf("AuditEvent lacks %s:\n%s", w, body)
				}
			}
			if strings.Contains(string(body), "secret") {
				t.Errorf("AuditEvent contains the request body: %s", body)
			}
			if _, err := c.Decode(body); err != nil {
				t.Fatalf("AuditEvent is not valid R4: %v\n%s", outcome.As(err).AllIssues(), body)
			}
		})
	}
}

func TestAuditEventIsSearchable(t *testing.T) {
	reg, err := search.NewRegistry(conformance.SearchParameters(), conformance.CaseSearchParameters())
	if err != nil {
		t.Fatal(err)
	}
	start := time.Date(2026, 1, 2, 3, 4, 5, 0, time.UTC)
	e := FromRequest(&interaction.Request{Route: interaction.Route{Kind: interaction.KindRead, Type: "Observation", ID: "o1"}},
		testPrincipal(), 200, nil, start, start)
	idx, err := reg.Extract("AuditEvent", Resource(e, "https://fhir.example.org/fhir", start))
	if err != nil {
		t.Fatal(err)
	}
	b, _ := json.Marshal(idx)
	for _, w := range []string{"Patient/p1", "Observation/o1", "read", "rest", "user-42"} {
		if !strings.Contains(string(b), w) {
			t.Errorf("search index lacks %q: %s", w, b)
		}
	}
}

// blockingWriter blocks every write until release is closed.
type blockingWriter struct {
	mu      sync.Mutex
	release chan struct{}
	got     [][]byte
}

func (w *blockingWriter) WriteAuditEvents(ctx context.Context, recs []Record) error {
	select {
	case <-w.release:
	case <-ctx.Done():
		return ctx.Err()
	}
	w.mu.Lock()
	for _, r := range recs {
		w.got = append(w.got, r.Body)
	}
	w.mu.Unlock()
	return nil
}

// record admits, adds and commits one event.
func record(ctx context.Context, r *Recorder, e Event) error {
	t, err := r.Admit(ctx)
	if err != nil {
		return err
	}
	defer t.Release()
	t.Add(e)
	return t.Commit(ctx)
}

// TestRecorderBackpressure: with the writer stuck and the queue full, a
// new request waits for room and is refused with 503 and Retry-After when
// its context ends; nothing admitted is lost once the writer moves.
func TestRecorderBackpressure(t *testing.T) {
	w := &blockingWriter{release: make(chan struct{})}
	r, err := NewRecorder(Options{Writer: w, QueueSize: 2})
	if err != nil {
		t.Fatal(err)
	}
	ctx := context.Background()
	errs := make(chan error, 2)
	for range 2 {
		go func() { errs <- record(ctx, r, Event{Interaction: "read", Type: "Patient", ID: "x"}) }()
	}
	for r.Stats().Admitted < 2 {
		time.Sleep(time.Millisecond)
	}
	short, cancel := context.WithTimeout(ctx, 20*time.Millisecond)
	defer cancel()
	_, err = r.Admit(short)
	if oe := outcome.As(err); err == nil || oe.Code != outcome.Throttled || oe.HTTPStatus() != 503 || oe.Header.Get("Retry-After") == "" {
		t.Fatalf("Admit on a full queue: %v", err)
	}
	close(w.release)
	for range 2 {
		if err := <-errs; err != nil {
			t.Fatalf("commit: %v", err)
		}
	}
	if err := r.Close(ctx); err != nil {
		t.Fatal(err)
	}
	st := r.Stats()
	if st.Written != 2 || st.Refused != 1 || st.Failed != 0 || st.Admitted != 0 || len(w.got) != 2 {
		t.Errorf("stats = %+v, writer got %d", st, len(w.got))
	}
	if _, err := r.Admit(ctx); !outcome.Is(err, outcome.Throttled) {
		t.Errorf("Admit after Close: %v", err)
	}
}

// TestRecorderFailuresFailTheRequest: an event that cannot be stored
// fails its request (503): it is never acknowledged without its event.
func TestRecorderFailuresFailTheRequest(t *testing.T) {
	fail := WriterFunc(func(context.Context, []Record) error { return outcome.New(outcome.Transient, "db down") })
	r, err := NewRecorder(Options{Writer: fail})
	if err != nil {
		t.Fatal(err)
	}
	for range 3 {
		if err := record(context.Background(), r, Event{Interaction: "read"}); outcome.StatusOf(err) != 503 {
			t.Errorf("commit with a failing writer: %v", err)
		}
	}
	if err := r.Close(context.Background()); err != nil {
		t.Fatal(err)
	}
	if st := r.Stats(); st.Failed != 3 || st.Written != 0 {
		t.Errorf("stats = %+v", st)
	}
	if _, err := NewRecorder(Options{}); err == nil {
		t.Error("NewRecorder without a Writer succeeded")
	}
}

// countingBatchWriter counts events and batch writes.
type countingBatchWriter struct {
	mu             sync.Mutex
	events, writes int
}

func (w *countingBatchWriter) WriteAuditEvents(_ context.Context, bs []Record) error {
	time.Sleep(time.Millisecond) // a durable write takes time
	w.mu.Lock()
	w.events += len(bs)
	w.writes++
	w.mu.Unlock()
	return nil
}

// TestRecorderGroupCommit: concurrent requests all get their events
// stored, and share store writes.
func TestRecorderGroupCommit(t *testing.T) {
	w := &countingBatchWriter{}
	r, err := NewRecorder(Options{Writer: w, QueueSize: 64})
	if err != nil {
		t.Fatal(err)
	}
	var wg sync.WaitGroup
	for range 8 {
		wg.Add(1)
		go func() {
			defer wg.Done()
			for range 100 {
				if err := record(context.Background(), r, Event{Interaction: "search-type", Type: "Observation"}); err != nil {
					t.Error(err)
					return
				}
			}
		}()
	}
	wg.Wait()
	if err := r.Close(context.Background()); err != nil {
		t.Fatal(err)
	}
	st := r.Stats()
	if st.Written != 800 || w.events != 800 || st.Refused != 0 || st.Failed != 0 {
		t.Errorf("stats = %+v, writer saw %d events", st, w.events)
	}
	if w.writes >= 800 {
		t.Errorf("%d store writes for 800 events: no group commit", w.writes)
	}
	t.Logf("800 events in %d store writes", w.writes)
}

// BenchmarkRecord measures what recording adds to a request (with a
// writer that costs nothing).
func BenchmarkRecord(b *testing.B) {
	r, err := NewRecorder(Options{Writer: WriterFunc(func(context.Context, []Record) error { return nil }), QueueSize: 1 << 16})
	if err != nil {
		b.Fatal(err)
	}
	req := &interaction.Request{Route: interaction.Route{Kind: interaction.KindSearchType, Type: "Observation"},
		Query: url.Values{"patient": {"p1"}, "category": {"laboratory"}}}
	p := testPrincipal()
	now := time.Now()
	b.ReportAllocs()
	for b.Loop() {
		_ = record(context.Background(), r, FromRequest(req, p, 200, nil, now, now))
	}
	b.StopTimer()
	_ = r.Close(context.Background())
}

// BenchmarkResource measures rendering one AuditEvent (done off the
// request path, by the Recorder's workers).
func BenchmarkResource(b *testing.B) {
	e := FromRequest(&interaction.Request{Route: interaction.Route{Kind: interaction.KindRead, Type: "Observation", ID: "o1"}},
		testPrincipal(), 200, nil, time.Now(), time.Now())
	b.ReportAllocs()
	for b.Loop() {
		Resource(e, "https://fhir.example.org/fhir", time.Now())
	}
}

// memWriter keeps what it stores by id.
type memWriter struct {
	mu  sync.Mutex
	ids map[string]int
}

func (w *memWriter) WriteAuditEvents(_ context.Context, recs []Record) error {
	w.mu.Lock()
	defer w.mu.Unlock()
	if w.ids == nil {
		w.ids = map[string]int{}
	}
	for _, r := range recs {
		w.ids[r.ID]++
	}
	return nil
}

func (w *memWriter) count() int {
	w.mu.Lock()
	defer w.mu.Unlock()
	return len(w.ids)
}

// TestJournalCommitAndFlush: with a journal, Commit returns once the
// events are durable there; they reach the store in the background.
func TestJournalCommitAndFlush(t *testing.T) {
	w := &memWriter{}
	r, err := NewRecorder(Options{Writer: w, JournalDir: t.TempDir(), FlushInterval: time.Hour})
	if err != nil {
		t.Fatal(err)
	}
	ctx := context.Background()
	for range 5 {
		if err := record(ctx, r, Event{Interaction: "read"}); err != nil {
			t.Fatal(err)
		}
	}
	if st := r.Stats(); st.Admitted != 5 || st.Written != 0 {
		t.Errorf("before flush: %+v (events wait in the journal, holding their room)", st)
	}
	if err := r.Flush(ctx); err != nil {
		t.Fatal(err)
	}
	if st := r.Stats(); st.Admitted != 0 || st.Written != 5 || w.count() != 5 {
		t.Errorf("after flush: %+v, stored %d", st, w.count())
	}
	if err := r.Close(ctx); err != nil {
		t.Fatal(err)
	}
}

// TestJournalReplayAfterCrash: events committed to the journal of a
// process that died before moving them are stored, once, when the next
// Recorder opens the directory.
func TestJournalReplayAfterCrash(t *testing.T) {
	dir := t.TempDir()
	stuck := &blockingWriter{release: make(chan struct{})}
	r1, err := NewRecorder(Options{Writer: stuck, JournalDir: dir, FlushInterval: time.Hour, WriteTimeout: time.Hour})
	if err != nil {
		t.Fatal(err)
	}
	ctx := context.Background()
	for range 7 {
		if err := record(ctx, r1, Event{Interaction: "create", Type: "Patient", ID: "x"}); err != nil {
			t.Fatal(err)
		}
	}
	// A live owner's journal is not taken over.
	w := &memWriter{}
	r2, err := NewRecorder(Options{Writer: w, JournalDir: dir})
	if err != nil {
		t.Fatal(err)
	}
	if st := r2.Stats(); st.Replayed != 0 {
		t.Fatalf("a live process's journal was taken over: %+v", st)
	}
	_ = r2.Close(ctx)
	// The process dies: its lock goes, its files stay.
	_ = r1.jnl.lock.Close()
	r3, err := NewRecorder(Options{Writer: w, JournalDir: dir})
	if err != nil {
		t.Fatal(err)
	}
	if st := r3.Stats(); st.Replayed != 7 || w.count() != 7 {
		t.Fatalf("replayed %+v, stored %d", st, w.count())
	}
	if err := r3.Close(ctx); err != nil {
		t.Fatal(err)
	}
	// Nothing is replayed twice.
	r4, err := NewRecorder(Options{Writer: w, JournalDir: dir})
	if err != nil {
		t.Fatal(err)
	}
	if st := r4.Stats(); st.Replayed != 0 {
		t.Errorf("replayed again: %+v", st)
	}
	_ = r4.Close(ctx)
	close(stuck.release)
}
