package store

import (
	"context"
	"maps"
	"sync"
)

// CommandTally counts the database commands a store sends on behalf of one
// request, by command name: the request's round trips. A store that sends
// commands (mongostore) adds to the tally found in the context of each
// call; work that is not done for a request (schedulers, the audit writer)
// carries none and is not counted.
type CommandTally struct {
	mu sync.Mutex
	m  map[string]int
}

type tallyKey struct{}

// WithCommandTally returns a context carrying a new, empty tally.
func WithCommandTally(ctx context.Context) (context.Context, *CommandTally) {
	t := &CommandTally{m: map[string]int{}}
	return context.WithValue(ctx, tallyKey{}, t), t
}

// TallyFrom returns the tally ctx carries, or nil.
func TallyFrom(ctx context.Context) *CommandTally {
	t, _ := ctx.Value(tallyKey{}).(*CommandTally)
	return t
}

// Add counts one command. The caller bounds the names (a fixed set).
func (t *CommandTally) Add(name string) {
	t.mu.Lock()
	t.m[name]++
	t.mu.Unlock()
}

// Counts returns a copy of the counts by command name.
func (t *CommandTally) Counts() map[string]int {
	t.mu.Lock()
	defer t.mu.Unlock()
	return maps.Clone(t.m)
}
