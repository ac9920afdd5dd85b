package mongostore

import (
	"context"
	"sync"
	"testing"
	"time"

	"github.com/casefhir/casefhir/fhir/outcome"
)

// queued waits until key has n waiters in line.
func queued(t *testing.T, s *Store, key string, n int) {
	t.Helper()
	for deadline := time.Now().Add(5 * time.Second); time.Now().Before(deadline); time.Sleep(time.Millisecond) {
		s.leases.mu.Lock()
		k := s.leases.m[key]
		got := 0
		if k != nil {
			got = len(k.queue)
		}
		s.leases.mu.Unlock()
		if got == n {
			return
		}
	}
	t.Fatalf("%d waiters never queued on %s", n, key)
}

// TestLeaseFIFO checks embedded Lock hands the lease to waiters in arrival
// order as each holder unlocks.
func TestLeaseFIFO(t *testing.T) {
	ctx := context.Background()
	s, _ := openEmbedded(t)
	defer s.Close(ctx)
	unlock, err := s.Lock(ctx, "cond", time.Minute)
	if err != nil {
		t.Fatal(err)
	}
	var mu sync.Mutex
	var order []int
	var wg sync.WaitGroup
	const n = 6
	for i := range n {
		wg.Add(1)
		go func() {
			defer wg.Done()
			u, err := s.Lock(ctx, "cond", time.Minute)
			if err != nil {
				t.Error(err)
				return
			}
			mu.Lock()
			order = append(order, i)
			mu.Unlock()
			_ = u(ctx)
		}()
		queued(t, s, "cond", i+1)
	}
	_ = unlock(ctx)
	_ = unlock(ctx) // a second unlock is a no-op
	wg.Wait()
	for i, w := range order {
		if w != i {
			t.Fatalf("lease handed over in order %v", order)
		}
	}
	if len(s.leases.m) != 0 {
		t.Errorf("%d lease entries left", len(s.leases.m))
	}
}

// TestLeaseCancel checks a waiter whose context ends leaves the line (with
// a timeout error) and the next one gets the lease.
func TestLeaseCancel(t *testing.T) {
	ctx := context.Background()
	s, _ := openEmbedded(t)
	defer s.Close(ctx)
	unlock, err := s.Lock(ctx, "k", time.Minute)
	if err != nil {
		t.Fatal(err)
	}
	short, cancel := context.WithTimeout(ctx, 50*time.Millisecond)
	defer cancel()
	errc := make(chan error, 1)
	go func() {
		_, err := s.Lock(short, "k", time.Minute)
		errc <- err
	}()
	queued(t, s, "k", 1)
	got := make(chan func(context.Context) error, 1)
	go func() {
		u, err := s.Lock(ctx, "k", time.Minute)
		if err != nil {
			t.Error(err)
		}
		got <- u
	}()
	if err := <-errc; !outcome.Is(err, outcome.Timeout) {
		t.Fatalf("cancelled waiter: %v, want a timeout", err)
	}
	queued(t, s, "k", 1)
	_ = unlock(ctx)
	select {
	case u := <-got:
		_ = u(ctx)
	case <-time.After(5 * time.Second):
		t.Fatal("the remaining waiter never got the lease")
	}
	if len(s.leases.m) != 0 {
		t.Errorf("%d lease entries left", len(s.leases.m))
	}
	// A context cancelled while the lease is being handed over passes it on.
	u1, _ := s.Lock(ctx, "h", time.Minute)
	c2, cancel2 := context.WithCancel(ctx)
	done := make(chan error, 1)
	go func() { _, err := s.Lock(c2, "h", time.Minute); done <- err }()
	queued(t, s, "h", 1)
	cancel2()
	_ = u1(ctx)
	<-done
	u3, err := s.Lock(ctx, "h", time.Minute)
	if err != nil {
		t.Fatal(err)
	}
	_ = u3(ctx)
}

// TestLeaseExpiryHandsOver checks a holder that never unlocks loses the
// lease to the first waiter after its ttl, and its late unlock releases
// nothing.
func TestLeaseExpiryHandsOver(t *testing.T) {
	ctx := context.Background()
	s, _ := openEmbedded(t)
	defer s.Close(ctx)
	old, err := s.Lock(ctx, "e", 80*time.Millisecond)
	if err != nil {
		t.Fatal(err)
	}
	start := time.Now()
	u, err := s.Lock(ctx, "e", time.Minute)
	if err != nil {
		t.Fatal(err)
	}
	if d := time.Since(start); d < 50*time.Millisecond || d > 5*time.Second {
		t.Errorf("handed over after %v", d)
	}
	_ = old(ctx)
	short, cancel := context.WithTimeout(ctx, 50*time.Millisecond)
	defer cancel()
	if _, err := s.Lock(short, "e", time.Minute); err == nil {
		t.Fatal("a stale unlock released the new holder's lease")
	}
	_ = u(ctx)
}

// BenchmarkConditionalCreateLock runs 24 concurrent lease-create-unlock
// sequences on one key (what 24 identical conditional creates do) and
// reports the time for all of them.
func BenchmarkConditionalCreateLock(b *testing.B) {
	ctx := context.Background()
	for _, mode := range []string{"embedded", "lease-documents"} {
		b.Run(mode, func(b *testing.B) {
			s, db := openEmbedded(b)
			defer s.Close(ctx)
			if mode == "lease-documents" {
				// The same store code with lease documents in _locks.
				m, err := Open(ctx, Options{URI: srv.URI(), Database: db})
				if err != nil {
					b.Fatal(err)
				}
				defer m.Close(ctx)
				s = m
			}
			for b.Loop() {
				var wg sync.WaitGroup
				for range 24 {
					wg.Add(1)
					go func() {
						defer wg.Done()
						u, err := s.Lock(ctx, "cond/Patient?identifier=x", 30*time.Second)
						if err != nil {
							b.Error(err)
							return
						}
						time.Sleep(time.Millisecond) // the search and create
						_ = u(ctx)
					}()
				}
				wg.Wait()
			}
		})
	}
}
