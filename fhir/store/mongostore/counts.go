package mongostore

import (
	"context"
	"sync/atomic"

	"github.com/casefhir/casefhir/fhir/store"

	"go.mongodb.org/mongo-driver/v2/event"
)

// countedCommands is the bounded set of command names counted one by one;
// any other command counts as "other", so the map never grows with input.
var countedCommands = []string{
	"find", "getMore", "insert", "update", "delete", "findAndModify", "aggregate", "count", "distinct",
	"killCursors", "commitTransaction", "abortTransaction", "endSessions",
	"create", "createIndexes", "listCollections", "listIndexes", "drop", "dropDatabase",
	"ping", "hello", "isMaster", "buildInfo", "other",
}

// commandCounts counts the commands this store's client starts, per
// command name: the round trips to the database (a getMore is one more).
type commandCounts struct {
	m map[string]*atomic.Int64 // fixed at construction; read-only after
}

func newCommandCounts() *commandCounts {
	c := &commandCounts{m: make(map[string]*atomic.Int64, len(countedCommands))}
	for _, n := range countedCommands {
		c.m[n] = new(atomic.Int64)
	}
	return c
}

func (c *commandCounts) monitor() *event.CommandMonitor {
	return &event.CommandMonitor{Started: func(ctx context.Context, e *event.CommandStartedEvent) {
		name := e.CommandName
		n, ok := c.m[name]
		if !ok {
			name, n = "other", c.m["other"]
		}
		n.Add(1)
		if t := store.TallyFrom(ctx); t != nil {
			t.Add(name)
		}
	}}
}

// CommandCounts returns how many commands of each name this store has sent
// to the database since Open (names never sent are absent): with one
// command per round trip, the deltas around an interaction are its round
// trips (the server also counts them per request, see store.CommandTally). Connection handshakes and server monitoring are not counted.
func (s *Store) CommandCounts() map[string]int64 {
	out := make(map[string]int64, len(s.counts.m))
	for k, v := range s.counts.m {
		if n := v.Load(); n > 0 {
			out[k] = n
		}
	}
	return out
}
