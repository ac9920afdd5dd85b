package mongostore

import (
	"context"
	"sync"
	"time"
)

// leaseTable implements Lock in embedded mode, where one process owns the
// data: per key, the holder and a FIFO queue of waiters. Unlock hands the
// lease straight to the first waiter (no polling); a waiter whose context
// ends leaves the queue. A holder that never unlocks loses the lease after
// its ttl, as Store.Lock promises (a stuck request, not a crash: a crash
// ends the process and its leases with it). The zero value is ready to use.
type leaseTable struct {
	mu  sync.Mutex
	m   map[string]*leaseKey
	seq uint64 // last owner token handed out
}

type leaseKey struct {
	owner uint64 // the holder's token; 0: free
	exp   time.Time
	queue []*leaseWaiter
	timer *time.Timer // expires the holder while someone waits
}

type leaseWaiter struct {
	ttl   time.Duration
	ready chan struct{} // closed when the lease is handed to this waiter
	owner uint64        // set, under mu, before ready is closed
	took  bool          // the previous holder's lease had expired
}

// acquire takes the lease key for ttl, waiting in line until ctx ends. It
// returns the release function (idempotent; a no-op once the lease expired
// and went to someone else) and whether an expired holder was displaced.
func (l *leaseTable) acquire(ctx context.Context, key string, ttl time.Duration) (func(), bool, error) {
	l.mu.Lock()
	if l.m == nil {
		l.m = map[string]*leaseKey{}
	}
	k := l.m[key]
	if k == nil {
		k = &leaseKey{}
		l.m[key] = k
	}
	now := time.Now()
	if k.owner == 0 || (len(k.queue) == 0 && !now.Before(k.exp)) {
		expired := k.owner != 0
		owner := l.grant(k, now, ttl)
		l.mu.Unlock()
		return l.releaser(key, owner), expired, nil
	}
	w := &leaseWaiter{ttl: ttl, ready: make(chan struct{})}
	k.queue = append(k.queue, w)
	if k.timer == nil {
		l.arm(key, k, now)
	}
	l.mu.Unlock()

	select {
	case <-w.ready:
		return l.releaser(key, w.owner), w.took, nil
	case <-ctx.Done():
	}
	l.mu.Lock()
	select {
	case <-w.ready: // handed over meanwhile: pass it on
		l.release(key, w.owner, false)
	default:
		for i, q := range k.queue {
			if q == w {
				k.queue = append(k.queue[:i], k.queue[i+1:]...)
				break
			}
		}
		l.cleanup(key, k)
	}
	l.mu.Unlock()
	return nil, false, ctx.Err()
}

// grant makes a new owner of k (l.mu held) and returns its token.
func (l *leaseTable) grant(k *leaseKey, now time.Time, ttl time.Duration) uint64 {
	l.seq++
	k.owner = l.seq
	k.exp = now.Add(ttl)
	return k.owner
}

func (l *leaseTable) releaser(key string, owner uint64) func() {
	var once sync.Once
	return func() {
		once.Do(func() {
			l.mu.Lock()
			l.release(key, owner, false)
			l.mu.Unlock()
		})
	}
}

// release ends owner's lease of key (l.mu held), handing it to the first
// waiter (expired says the lease ran out). A stale owner (expired and
// displaced) releases nothing.
func (l *leaseTable) release(key string, owner uint64, expired bool) {
	k := l.m[key]
	if k == nil || k.owner != owner {
		return
	}
	if k.timer != nil {
		k.timer.Stop()
		k.timer = nil
	}
	k.owner = 0
	if len(k.queue) > 0 {
		w := k.queue[0]
		k.queue = k.queue[1:]
		now := time.Now()
		w.owner = l.grant(k, now, w.ttl)
		w.took = expired
		close(w.ready)
		if len(k.queue) > 0 {
			l.arm(key, k, now)
		}
		return
	}
	l.cleanup(key, k)
}

// arm starts the timer that expires k's holder (l.mu held).
func (l *leaseTable) arm(key string, k *leaseKey, now time.Time) {
	owner := k.owner
	k.timer = time.AfterFunc(k.exp.Sub(now), func() {
		l.mu.Lock()
		defer l.mu.Unlock()
		if l.m[key] == k && k.owner == owner {
			k.timer = nil
			l.release(key, owner, true)
		}
	})
}

func (l *leaseTable) cleanup(key string, k *leaseKey) {
	if k.owner == 0 && len(k.queue) == 0 && l.m[key] == k {
		delete(l.m, key)
	}
}
