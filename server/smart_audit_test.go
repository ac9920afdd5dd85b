package server_test

import (
	"context"
	"fmt"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/casefhir/casefhir/server"
	"github.com/casefhir/casefhir/server/auth/audit"
	"github.com/casefhir/casefhir/server/servertest"
)

// auditWorkload is the request mix of the audit tests and benchmark: a
// read, a search and a create, n times. It returns the requests answered.
func auditWorkload(tb testing.TB, s *servertest.Server, n int, ids []string) int {
	tb.Helper()
	done := 0
	for i := range n {
		for _, req := range []struct{ method, path, body string }{
			{"GET", "Patient/" + ids[i%len(ids)], ""},
			{"GET", "Observation?subject=Patient/" + ids[i%len(ids)] + "&_count=10", ""},
			{"POST", "Observation", fmt.Sprintf(`{"resourceType":"Observation","status":"final","code":{"text":"audit cost"},"subject":{"reference":"Patient/%s"}}`, ids[i%len(ids)])},
		} {
			var body any
			if req.body != "" {
				body = req.body
			}
			r := s.Do(tb, req.method, req.path, body)
			if r.Status >= 300 {
				tb.Fatalf("%s %s: %d %s", req.method, req.path, r.Status, r.Body)
			}
			done++
		}
	}
	return done
}

// auditTotal counts the stored AuditEvents (the count is itself audited
// after it is answered).
func auditTotal(t *testing.T, s *servertest.Server) int {
	t.Helper()
	if err := s.AuditFlush(context.Background()); err != nil {
		t.Fatal(err)
	}
	r := s.Do(t, "GET", "AuditEvent?_summary=count", nil)
	wantStatus(t, r, 200)
	total, _ := r.JSON()["total"].(float64)
	return int(total)
}

// TestAuditEveryAnsweredRequest: with the trail on, every answered request
// has its AuditEvent (durable before the response; in the store once the
// trail's journal is flushed), and none is dropped. Timings are measured
// by make bench (cmd/benchfhir), not here.
func TestAuditEveryAnsweredRequest(t *testing.T) {
	s := servertest.Start(t, servertest.Options{})
	var ids []string
	for range 3 {
		id, _ := create(t, s, "Patient", patientJSON)
		ids = append(ids, id)
	}
	before := auditTotal(t, s)
	n := auditWorkload(t, s, 10, ids)
	// before counts the events up to the first count; that count's own
	// event is stored too.
	if got := auditTotal(t, s); got != before+1+n {
		t.Fatalf("%d AuditEvents after %d answered requests, want %d", got, n, before+1+n)
	}
}

// slowWriter delays every audit write and counts the stored events.
type slowWriter struct {
	audit.Writer
	delay  time.Duration
	stored atomic.Int64
}

func (w *slowWriter) WriteAuditEvents(ctx context.Context, bs []audit.Record) error {
	time.Sleep(w.delay)
	err := w.Writer.WriteAuditEvents(ctx, bs)
	if err == nil {
		w.stored.Add(int64(len(bs)))
	}
	return err
}

// TestAuditQueueFullNeverDrops fills the trail's queue (a slow audit
// store, a queue of 2, 16 concurrent clients): requests wait for room or
// are refused with 503 and Retry-After, and every request that was
// answered with success has its AuditEvent.
func TestAuditQueueFullNeverDrops(t *testing.T) {
	slow := &slowWriter{delay: 30 * time.Millisecond}
	s := servertest.Start(t, servertest.Options{Config: server.Config{
		AuditQueue: 2, AuditWait: 100 * time.Millisecond,
		AuditWriter: func(w audit.Writer) audit.Writer { slow.Writer = w; return slow },
	}})
	id, _ := create(t, s, "Patient", patientJSON)
	var ok, okCreates, refused atomic.Int64
	var wg sync.WaitGroup
	for c := range 16 {
		wg.Add(1)
		go func() {
			defer wg.Done()
			for i := range 6 {
				var r *servertest.Response
				if i%2 == 0 {
					r = s.Do(t, "GET", "Patient/"+id, nil)
				} else {
					r = s.Do(t, "POST", "Observation", fmt.Sprintf(`{"resourceType":"Observation","status":"final","code":{"text":"c%d"},"subject":{"reference":"Patient/%s"}}`, c, id))
				}
				switch {
				case r.Status < 300:
					ok.Add(1)
					if i%2 == 1 {
						okCreates.Add(1)
					}
				case r.Status == 503:
					if r.Header.Get("Retry-After") == "" {
						t.Errorf("503 without Retry-After")
					}
					refused.Add(1)
				default:
					t.Errorf("status %d: %s", r.Status, r.Body)
				}
			}
		}()
	}
	wg.Wait()
	if err := s.AuditFlush(context.Background()); err != nil {
		t.Fatal(err)
	}
	st := s.AuditStats()
	t.Logf("answered %d, refused %d; trail %+v", ok.Load(), refused.Load(), st)
	// One event per answered request (the first create's too); refused
	// requests did no work and have none.
	if want := ok.Load() + 1; slow.stored.Load() != want || int64(st.Written) != want || st.Failed != 0 {
		t.Fatalf("stored %d AuditEvents (stats %+v) for %d answered requests", slow.stored.Load(), st, want)
	}
	if int64(st.Refused) != refused.Load() {
		t.Errorf("refused %d requests, the trail counted %d", refused.Load(), st.Refused)
	}
	// A refused create did no work: the Observations stored are the
	// answered creates.
	r := s.Do(t, "GET", "Observation?_summary=count", nil)
	if total, _ := r.JSON()["total"].(float64); int64(total) != okCreates.Load() {
		t.Errorf("%v Observations stored for %d answered creates", total, okCreates.Load())
	}
}

// BenchmarkAuditOnOff measures the read/search/create mix with the audit
// trail on and off (make bench records the throughput ratio).
func BenchmarkAuditOnOff(b *testing.B) {
	for _, auditOff := range []bool{false, true} {
		name := "on"
		if auditOff {
			name = "off"
		}
		b.Run(name, func(b *testing.B) {
			s := servertest.Start(b, servertest.Options{Config: server.Config{AuditOff: auditOff}})
			r := s.Do(b, "POST", "Patient", patientJSON)
			id, _ := r.JSON()["id"].(string)
			b.ResetTimer()
			for b.Loop() {
				auditWorkload(b, s, 1, []string{id})
			}
		})
	}
}
