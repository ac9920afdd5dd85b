package bulk

import (
	"context"
	"os"
	"path/filepath"
	"time"

	"github.com/casefhir/casefhir/fhir"
	"github.com/casefhir/casefhir/fhir/outcome"
)

// sweepLoop runs Sweep periodically (a quarter of the retention, between
// one second and ten minutes).
func (s *Service) sweepLoop(ctx context.Context) {
	every := min(max(s.o.Retention/4, time.Second), 10*time.Minute)
	t := time.NewTicker(every)
	defer t.Stop()
	for {
		if err := s.Sweep(ctx); err != nil && ctx.Err() == nil {
			s.o.Logger.WarnContext(ctx, "export sweeper failed", "error", outcome.As(err).Error())
		}
		select {
		case <-ctx.Done():
			return
		case <-t.C:
		}
	}
}

// Sweep removes the records and files of jobs that finished more than the
// retention ago, and output directories that no job record owns any more
// (once they are older than the retention).
func (s *Service) Sweep(ctx context.Context) error {
	jobs, err := s.o.Jobs.ListJobs(ctx, JobKind, false)
	if err != nil {
		return err
	}
	now := s.now()
	known := make(map[string]bool, len(jobs))
	removed := 0
	for _, j := range jobs {
		known[j.ID] = true
		if !j.Finished {
			continue
		}
		end := j.Updated
		if st, err := decodeState(j); err == nil && !st.FinishedAt.IsZero() {
			end = st.FinishedAt
		}
		if now.Sub(end) < s.o.Retention {
			continue
		}
		if err := os.RemoveAll(s.jobDir(j.ID)); err != nil {
			continue
		}
		if err := s.o.Jobs.DeleteJob(ctx, j.ID); err != nil {
			return err
		}
		removed++
	}
	entries, err := os.ReadDir(s.o.Dir)
	if err != nil {
		return nil
	}
	for _, e := range entries {
		if !e.IsDir() || known[e.Name()] || !fhir.IsValidID(e.Name()) {
			continue
		}
		fi, err := e.Info()
		if err != nil || now.Sub(fi.ModTime()) < s.o.Retention {
			continue
		}
		if os.RemoveAll(filepath.Join(s.o.Dir, e.Name())) == nil {
			removed++
		}
	}
	if removed > 0 {
		s.o.Logger.InfoContext(ctx, "export output expired", "removed", removed)
	}
	return nil
}
