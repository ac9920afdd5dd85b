package server_test

import (
	"context"
	"testing"
	"time"

	"github.com/casefhir/casefhir/server/interaction"
	"github.com/casefhir/casefhir/server/servertest"
)

// TestSearchSnapshotsExpire checks that the paging snapshot of a search is
// swept after its retention and its next link then answers 410 Gone.
func TestSearchSnapshotsExpire(t *testing.T) {
	s := servertest.Start(t, servertest.Options{})
	for i := 0; i < 3; i++ {
		create(t, s, "Patient", patientJSON)
	}
	r := s.Do(t, "GET", "Patient?_count=1", nil)
	wantStatus(t, r, 200)
	var next string
	for _, l := range r.JSON()["link"].([]any) {
		if lm := l.(map[string]any); lm["relation"] == "next" {
			next = lm["url"].(string)
		}
	}
	if next == "" {
		t.Fatalf("no next link: %s", r.Body)
	}
	wantStatus(t, s.Do(t, "GET", next, nil), 200)
	n, err := interaction.SweepSnapshots(context.Background(), s.Store(), interaction.SnapshotRetention, time.Now())
	if err != nil || n != 0 {
		t.Fatalf("fresh snapshot swept: %d %v", n, err)
	}
	n, err = interaction.SweepSnapshots(context.Background(), s.Store(), 0, time.Now().Add(time.Second))
	if err != nil || n != 1 {
		t.Fatalf("sweep removed %d snapshots (%v), want 1", n, err)
	}
	wantStatus(t, s.Do(t, "GET", next, nil), 410)
}
