package audit

import (
	"context"
	"testing"
	"time"
)

func TestTmpCommitLatency(t *testing.T) {
	w := &memWriter{}
	r, _ := NewRecorder(Options{Writer: w, JournalDir: t.TempDir()})
	ctx := context.Background()
	start := time.Now()
	for range 500 {
		_ = record(ctx, r, Event{Interaction: "read"})
	}
	t.Logf("journal: %v per commit", time.Since(start)/500)
	_ = r.Close(ctx)
	r, _ = NewRecorder(Options{Writer: w})
	start = time.Now()
	for range 500 {
		_ = record(ctx, r, Event{Interaction: "read"})
	}
	t.Logf("direct to a memory writer: %v per commit", time.Since(start)/500)
	_ = r.Close(ctx)
}
