package audit

import (
	"fmt"
	"os"
	"sync"
	"testing"
)

// TestJournalRotationTakesWhatItRemoves runs appends against rotations, as
// the Recorder's writer and mover do: every record in a segment a rotation
// hands over must be in the backlog it takes, or removing that segment
// (once the backlog is stored) would leave the record in memory only, lost
// in a crash after its request was answered.
func TestJournalRotationTakesWhatItRemoves(t *testing.T) {
	j, recs, _, err := openJournal(t.TempDir())
	if err != nil || len(recs) != 0 {
		t.Fatal(recs, err)
	}
	defer j.close(true)
	var backlog []Record // guarded by j.mu, as the Recorder's
	const n = 2000
	var wg sync.WaitGroup
	wg.Add(1)
	go func() {
		defer wg.Done()
		for i := range n {
			rec := []Record{{ID: fmt.Sprintf("r%d", i), Body: []byte(`{"resourceType":"AuditEvent"}`)}}
			if err := j.append(rec, func() { backlog = append(backlog, rec...) }); err != nil {
				t.Error(err)
				return
			}
		}
	}()
	stored := map[string]bool{}
	rotateOnce := func() {
		var taken []Record
		seg, err := j.rotate(func() { taken, backlog = backlog, nil })
		if err != nil {
			t.Fatal(err)
		}
		inSegment, err := readSegment(seg)
		if err != nil {
			t.Fatal(err)
		}
		took := map[string]bool{}
		for _, r := range taken {
			took[r.ID] = true
			stored[r.ID] = true
		}
		for _, r := range inSegment {
			if !took[r.ID] {
				t.Fatalf("record %s is in the segment handed over but not in the backlog taken with it", r.ID)
			}
		}
		_ = os.Remove(seg)
	}
	done := make(chan struct{})
	go func() { wg.Wait(); close(done) }()
	for running := true; running; {
		select {
		case <-done:
			running = false
		default:
		}
		rotateOnce()
	}
	rotateOnce()
	if len(stored) != n {
		t.Fatalf("%d of %d records taken", len(stored), n)
	}
}
