package mongostore

import (
	"context"
	"slices"
	"sync"
)

// keyLocks is a table of in-process locks, one per key, created on demand
// and dropped when nobody holds or waits for them. Single writes lock one
// key; a transaction locks all of its keys in sorted order, so two
// transactions never deadlock and writes on other keys never wait.
// The zero value is ready to use.
type keyLocks struct {
	mu sync.Mutex
	m  map[string]*lockEntry
}

type lockEntry struct {
	ch   chan struct{} // holds one token while the key is locked
	refs int           // holders and waiters
}

// lock takes key, waiting until it is free or ctx ends.
func (l *keyLocks) lock(ctx context.Context, key string) (unlock func(), err error) {
	l.mu.Lock()
	if l.m == nil {
		l.m = map[string]*lockEntry{}
	}
	e := l.m[key]
	if e == nil {
		e = &lockEntry{ch: make(chan struct{}, 1)}
		l.m[key] = e
	}
	e.refs++
	l.mu.Unlock()
	select {
	case e.ch <- struct{}{}:
	case <-ctx.Done():
		l.release(key, e, false)
		return nil, ctx.Err()
	}
	var once sync.Once
	return func() { once.Do(func() { l.release(key, e, true) }) }, nil
}

func (l *keyLocks) release(key string, e *lockEntry, held bool) {
	if held {
		<-e.ch
	}
	l.mu.Lock()
	e.refs--
	if e.refs == 0 {
		delete(l.m, key)
	}
	l.mu.Unlock()
}

// lockAll takes every key (duplicates allowed) in sorted order.
func (l *keyLocks) lockAll(ctx context.Context, keys []string) (unlock func(), err error) {
	keys = slices.Clone(keys)
	slices.Sort(keys)
	keys = slices.Compact(keys)
	unlocks := make([]func(), 0, len(keys))
	all := func() {
		for i := len(unlocks) - 1; i >= 0; i-- {
			unlocks[i]()
		}
	}
	for _, k := range keys {
		u, err := l.lock(ctx, k)
		if err != nil {
			all()
			return nil, err
		}
		unlocks = append(unlocks, u)
	}
	return all, nil
}
