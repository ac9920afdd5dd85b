package bulk

import (
	"context"
	"errors"
	"log/slog"
	"os"
	"path/filepath"
	"slices"
	"sync"
	"time"

	"github.com/casefhir/casefhir/fhir/outcome"
	"github.com/casefhir/casefhir/fhir/search"
	"github.com/casefhir/casefhir/fhir/store"
	"github.com/casefhir/casefhir/server/interaction"
)

// Options configure a Service.
type Options struct {
	// Store holds the resources; Jobs the job records (the same database).
	Store store.Store
	Jobs  store.JobStore
	// Scanner, when set, reads each type in no particular order instead of
	// Store.Find (whose order costs memory on some backends).
	Scanner Scanner
	// Registry parses _typeFilter and scope restrictions and knows the
	// episode-of-care parameter.
	Registry *search.Registry
	// Dir is where output files are written, one directory per job. In a
	// multi-instance deployment it must be shared storage.
	Dir string
	// Concurrency is the number of jobs run at once by this process
	// (default 1; 0 also means 1).
	Concurrency int
	// Retention is how long output is kept after a job finishes (default 24h).
	Retention time.Duration
	// Exclusive says this process is the only one using the store (the
	// embedded store): at start it resumes every unfinished job at once
	// instead of waiting for their leases to lapse.
	Exclusive bool
	// BatchSize is the number of resources written between yields and
	// cancellation checks (default 1000).
	BatchSize int
	// BatchPause is an extra pause after each batch (default none).
	BatchPause time.Duration
	// LeaseTTL is how long a worker's claim holds without renewal
	// (default 30s); it renews every LeaseTTL/3.
	LeaseTTL time.Duration
	// PollInterval is how often the scheduler looks for claimable jobs
	// (default 2s); a kick-off on this instance wakes it at once.
	PollInterval time.Duration
	// MaxAttempts bounds how often an interrupted job is resumed before it
	// is marked failed (default 3).
	MaxAttempts int
	// RetryAfter is the Retry-After of a status answer (default 2s).
	RetryAfter time.Duration
	// Now returns the current time (default time.Now).
	Now func() time.Time
	// Logger receives operational messages (never PHI).
	Logger *slog.Logger
}

// Scanner streams the current resources of a type matching a filter (a
// superset is fine: the caller checks), in no particular order.
type Scanner interface {
	Scan(ctx context.Context, typ string, f *store.Filter) (store.Cursor, error)
}

// Service runs export jobs and answers for them.
type Service struct {
	o        Options
	instance string
	sem      chan struct{}
	wake     chan struct{}

	mu      sync.Mutex
	running map[string]context.CancelFunc // job id -> cancel, jobs run here
	stop    context.CancelFunc
	wg      sync.WaitGroup
	started bool
}

// New checks o and returns a Service; Start runs its background work.
func New(o Options) (*Service, error) {
	if o.Store == nil || o.Jobs == nil || o.Registry == nil || o.Dir == "" {
		return nil, errors.New("bulk: Store, Jobs, Registry and Dir are required")
	}
	if o.Concurrency < 0 || o.Retention < 0 {
		return nil, errors.New("bulk: concurrency and retention must not be negative")
	}
	if o.Concurrency == 0 {
		o.Concurrency = 1
	}
	if o.Retention == 0 {
		o.Retention = 24 * time.Hour
	}
	if o.BatchSize <= 0 {
		o.BatchSize = 1000
	}
	if o.LeaseTTL <= 0 {
		o.LeaseTTL = 30 * time.Second
	}
	if o.PollInterval <= 0 {
		o.PollInterval = 2 * time.Second
	}
	if o.MaxAttempts <= 0 {
		o.MaxAttempts = 3
	}
	if o.RetryAfter <= 0 {
		o.RetryAfter = 2 * time.Second
	}
	if o.Now == nil {
		o.Now = time.Now
	}
	if o.Logger == nil {
		o.Logger = slog.New(slog.DiscardHandler)
	}
	if err := os.MkdirAll(o.Dir, 0o700); err != nil {
		return nil, errors.New("bulk: cannot create the export directory " + o.Dir)
	}
	return &Service{
		o:        o,
		instance: interaction.NewUUID(),
		sem:      make(chan struct{}, o.Concurrency),
		wake:     make(chan struct{}, 1),
		running:  map[string]context.CancelFunc{},
	}, nil
}

// Start launches the scheduler (which also resumes interrupted jobs) and
// the sweeper. It returns at once.
func (s *Service) Start(ctx context.Context) {
	s.mu.Lock()
	defer s.mu.Unlock()
	if s.started {
		return
	}
	s.started = true
	ctx, s.stop = context.WithCancel(context.WithoutCancel(ctx))
	s.wg.Add(2)
	go func() { defer s.wg.Done(); s.schedule(ctx) }()
	go func() { defer s.wg.Done(); s.sweepLoop(ctx) }()
}

// Close stops the background work: running jobs stop at their next batch
// and release their claims, to be resumed by the next process.
func (s *Service) Close(context.Context) error {
	s.mu.Lock()
	stop := s.stop
	s.mu.Unlock()
	if stop != nil {
		stop()
	}
	s.wg.Wait()
	return nil
}

// Jobs returns the job store.
func (s *Service) Jobs() store.JobStore { return s.o.Jobs }

func (s *Service) now() time.Time { return s.o.Now().UTC().Truncate(time.Millisecond) }

// jobDir is the output directory of a job.
func (s *Service) jobDir(id string) string { return filepath.Join(s.o.Dir, id) }

// poke wakes the scheduler.
func (s *Service) poke() {
	select {
	case s.wake <- struct{}{}:
	default:
	}
}

// schedule claims runnable jobs while workers are free.
func (s *Service) schedule(ctx context.Context) {
	t := time.NewTicker(s.o.PollInterval)
	defer t.Stop()
	for {
		s.claimAll(ctx)
		select {
		case <-ctx.Done():
			return
		case <-t.C:
		case <-s.wake:
		}
	}
}

// claimAll lists unfinished jobs, oldest first, and starts those it can
// claim while a worker is free.
func (s *Service) claimAll(ctx context.Context) {
	if len(s.sem) == cap(s.sem) {
		return
	}
	jobs, err := s.o.Jobs.ListJobs(ctx, JobKind, true)
	if err != nil {
		if ctx.Err() == nil {
			s.o.Logger.WarnContext(ctx, "export scheduler: listing jobs failed", "error", outcome.As(err).Error())
		}
		return
	}
	slices.SortFunc(jobs, func(a, b *store.Job) int { return a.Created.Compare(b.Created) })
	for _, j := range jobs {
		if !s.claimable(j) {
			continue
		}
		select {
		case s.sem <- struct{}{}:
		default:
			return
		}
		if !s.claim(ctx, j) {
			<-s.sem
			continue
		}
		jctx, cancel := context.WithCancel(ctx)
		s.mu.Lock()
		s.running[j.ID] = cancel
		s.mu.Unlock()
		s.wg.Add(1)
		go func() {
			defer s.wg.Done()
			defer func() { <-s.sem }()
			defer func() {
				s.mu.Lock()
				delete(s.running, j.ID)
				s.mu.Unlock()
				cancel()
			}()
			s.run(jctx, j)
		}()
	}
}

// claimable reports whether this process may take j now.
func (s *Service) claimable(j *store.Job) bool {
	if j.Finished {
		return false
	}
	s.mu.Lock()
	_, mine := s.running[j.ID]
	s.mu.Unlock()
	if mine {
		return false
	}
	switch {
	case j.LeaseOwner == "":
		return true
	case j.LeaseOwner == s.instance:
		return true // a run of ours that ended without finishing (cannot normally happen)
	case s.o.Exclusive:
		return true // no other process uses this store: the holder is gone
	}
	return s.now().After(j.LeaseUntil)
}

// claim takes j with a lease (compare-and-swap); a job resumed too often is
// marked failed instead. It reports whether j is now this worker's.
func (s *Service) claim(ctx context.Context, j *store.Job) bool {
	st, err := decodeState(j)
	if err != nil {
		s.fail(ctx, j, &State{}, "the export job record is unreadable")
		return false
	}
	st.Attempts++
	if st.Attempts > s.o.MaxAttempts {
		s.fail(ctx, j, st, "the export was interrupted too many times")
		return false
	}
	if err := encodeState(j, st); err != nil {
		return false
	}
	j.Status = StatusRunning
	j.LeaseOwner = s.instance
	j.LeaseUntil = s.now().Add(s.o.LeaseTTL)
	j.Updated = s.now()
	if err := s.o.Jobs.UpdateJob(ctx, j); err != nil {
		return false // taken meanwhile, or cancelled
	}
	if st.Attempts > 1 {
		s.o.Logger.InfoContext(ctx, "export job resumed", "job", j.ID, "attempt", st.Attempts, "done_types", len(st.Done))
	}
	return true
}

// fail marks j failed with a PHI-free reason and removes its partial output.
func (s *Service) fail(ctx context.Context, j *store.Job, st *State, reason string) {
	ctx = context.WithoutCancel(ctx)
	st.Fatal = reason
	st.FinishedAt = s.now()
	for i := 0; i < 3; i++ {
		if err := encodeState(j, st); err != nil {
			return
		}
		j.Status, j.Finished, j.LeaseOwner, j.Updated = StatusFailed, true, "", s.now()
		err := s.o.Jobs.UpdateJob(ctx, j)
		if err == nil || outcome.Is(err, outcome.NotFound) {
			break
		}
		fresh, gerr := s.o.Jobs.GetJob(ctx, j.ID)
		if gerr != nil {
			return
		}
		*j = *fresh
	}
	_ = os.RemoveAll(s.jobDir(j.ID))
	s.o.Logger.WarnContext(ctx, "export job failed", "job", j.ID, "reason", reason)
}
