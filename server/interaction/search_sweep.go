package interaction

import (
	"context"
	"time"

	"github.com/casefhir/casefhir/fhir/store"
)

// SnapshotRetention is how long the paging snapshot of a search stays
// usable; a page asked for later answers 410 Gone.
const SnapshotRetention = time.Hour

// SweepSnapshots deletes search paging snapshots created more than maxAge
// before now, returning how many it removed. A store without jobs has
// none.
func SweepSnapshots(ctx context.Context, st store.Store, maxAge time.Duration, now time.Time) (int, error) {
	js, ok := st.(store.JobStore)
	if !ok {
		return 0, nil
	}
	jobs, err := js.ListJobs(ctx, snapshotKind, false)
	if err != nil {
		return 0, err
	}
	n := 0
	for _, j := range jobs {
		if now.Sub(j.Created) < maxAge {
			continue
		}
		if err := js.DeleteJob(ctx, j.ID); err != nil {
			return n, err
		}
		n++
	}
	return n, nil
}
