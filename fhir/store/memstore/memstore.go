package memstore

import (
	"context"
	"slices"
	"sort"
	"sync"
	"time"

	"github.com/casefhir/casefhir/fhir/outcome"
	"github.com/casefhir/casefhir/fhir/store"
)

// Store is an in-memory store. The zero value is not usable: call New.
type Store struct {
	mu       sync.Mutex
	cur      map[string]map[string]*store.Resource // type -> id -> current version
	versions []*store.Resource                     // every version, in write order
	jobs     map[string]*store.Job
	leases   map[string]*lease
	changed  chan struct{} // closed and replaced when a lease is released
	seq      int64
}

type lease struct {
	token int64
	until time.Time
}

var (
	_ store.Store         = (*Store)(nil)
	_ store.Transactional = (*Store)(nil)
	_ store.JobStore      = (*Store)(nil)
)

// New returns an empty store.
func New() *Store {
	return &Store{cur: map[string]map[string]*store.Resource{}, jobs: map[string]*store.Job{},
		leases: map[string]*lease{}, changed: make(chan struct{})}
}

// Read implements store.Store.
func (s *Store) Read(_ context.Context, typ, id string) (*store.Resource, error) {
	s.mu.Lock()
	defer s.mu.Unlock()
	if r := s.cur[typ][id]; r != nil {
		return clone(r, false), nil
	}
	return nil, notFound(typ, id)
}

// VRead implements store.Store.
func (s *Store) VRead(_ context.Context, typ, id string, version int64) (*store.Resource, error) {
	s.mu.Lock()
	defer s.mu.Unlock()
	for _, r := range s.versions {
		if r.Type == typ && r.ID == id && r.VersionID == version {
			return clone(r, false), nil
		}
	}
	return nil, notFound(typ, id)
}

// Create implements store.Store.
func (s *Store) Create(_ context.Context, r *store.Resource) error {
	s.mu.Lock()
	defer s.mu.Unlock()
	if err := s.check(store.Write{Next: r}); err != nil {
		return outcome.New(outcome.Duplicate, "the resource already exists").WithDiagnostics(r.Key())
	}
	s.put(r)
	return nil
}

// Update implements store.Store.
func (s *Store) Update(_ context.Context, next, prev *store.Resource) error {
	s.mu.Lock()
	defer s.mu.Unlock()
	if err := s.check(store.Write{Next: next, Prev: prev}); err != nil {
		return err
	}
	s.put(next)
	return nil
}

// Apply implements store.Transactional: every write or none.
func (s *Store) Apply(_ context.Context, writes []store.Write) error {
	s.mu.Lock()
	defer s.mu.Unlock()
	for _, w := range writes {
		if err := s.check(w); err != nil {
			return err
		}
	}
	for _, w := range writes {
		s.put(w.Next)
	}
	return nil
}

func (s *Store) check(w store.Write) error {
	cur := s.cur[w.Next.Type][w.Next.ID]
	if w.Prev == nil {
		if cur != nil || w.Next.VersionID != 1 {
			return outcome.New(outcome.Conflict, "the resource already exists").WithDiagnostics(w.Next.Key())
		}
		return nil
	}
	if cur == nil || cur.VersionID != w.Prev.VersionID || w.Next.VersionID != w.Prev.VersionID+1 {
		return outcome.New(outcome.Conflict, "the resource was changed by another request").WithDiagnostics(w.Next.Key())
	}
	return nil
}

func (s *Store) put(r *store.Resource) {
	c := clone(r, false)
	c.LastUpdated = c.LastUpdated.UTC().Truncate(time.Millisecond)
	if s.cur[c.Type] == nil {
		s.cur[c.Type] = map[string]*store.Resource{}
	}
	s.cur[c.Type][c.ID] = c
	s.versions = append(s.versions, c)
}

// History implements store.Store.
func (s *Store) History(_ context.Context, q store.HistoryQuery) ([]*store.Resource, error) {
	s.mu.Lock()
	defer s.mu.Unlock()
	if q.ID != "" && s.cur[q.Type][q.ID] == nil {
		return nil, notFound(q.Type, q.ID)
	}
	var all []*store.Resource
	for _, r := range s.versions {
		if (q.Type == "" || r.Type == q.Type) && (q.ID == "" || r.ID == q.ID) {
			all = append(all, r)
		}
	}
	slices.SortFunc(all, func(a, b *store.Resource) int { return store.CompareVersions(store.KeyOf(a), store.KeyOf(b)) })
	limit := q.Limit
	if limit <= 0 {
		limit = 100
	}
	var out []*store.Resource
	atSeen := map[string]bool{}
	skipped := 0
	for _, r := range all {
		if !q.At.IsZero() {
			if r.LastUpdated.After(q.At) || atSeen[r.Key()] {
				continue
			}
			atSeen[r.Key()] = true
		}
		if !q.Since.IsZero() && r.LastUpdated.Before(q.Since) {
			continue
		}
		if !q.Before.IsZero() && !r.LastUpdated.Before(q.Before) {
			continue
		}
		if q.After != nil && store.CompareVersions(store.KeyOf(r), *q.After) <= 0 {
			continue
		}
		if skipped < q.Offset {
			skipped++
			continue
		}
		if len(out) == limit {
			break
		}
		out = append(out, clone(r, false))
	}
	return out, nil
}

// Find implements store.Store with the reference semantics.
func (s *Store) Find(_ context.Context, typ string, f *store.Filter, opt store.FindOptions) (store.Cursor, error) {
	s.mu.Lock()
	defer s.mu.Unlock()
	type row struct {
		r   *store.Resource
		pos store.Position
	}
	var rows []row
	f = msFilter(f)
	for _, r := range s.cur[typ] {
		if r.Deleted || !f.Match(r) {
			continue
		}
		p := store.PositionOf(r, opt.Sort)
		if opt.After != nil && store.ComparePositions(p, *opt.After, opt.Sort) <= 0 {
			continue
		}
		rows = append(rows, row{r, p})
	}
	sort.Slice(rows, func(i, j int) bool { return store.ComparePositions(rows[i].pos, rows[j].pos, opt.Sort) < 0 })
	if opt.Skip > 0 {
		rows = rows[min(opt.Skip, len(rows)):]
	}
	if opt.Limit > 0 && len(rows) > opt.Limit {
		rows = rows[:opt.Limit]
	}
	c := &cursor{}
	for _, r := range rows {
		c.rs = append(c.rs, clone(r.r, opt.IndexOnly))
	}
	return c, nil
}

// Count implements store.Store.
func (s *Store) Count(_ context.Context, typ string, f *store.Filter) (int64, error) {
	s.mu.Lock()
	defer s.mu.Unlock()
	var n int64
	f = msFilter(f)
	for _, r := range s.cur[typ] {
		if !r.Deleted && f.Match(r) {
			n++
		}
	}
	return n, nil
}

type cursor struct{ rs []*store.Resource }

func (c *cursor) Next(context.Context) (*store.Resource, error) {
	if len(c.rs) == 0 {
		return nil, nil
	}
	r := c.rs[0]
	c.rs = c.rs[1:]
	return r, nil
}

func (c *cursor) Close(context.Context) error { c.rs = nil; return nil }

// Lock implements store.Store with in-memory leases.
func (s *Store) Lock(ctx context.Context, key string, ttl time.Duration) (func(context.Context) error, error) {
	for {
		s.mu.Lock()
		now := time.Now()
		l := s.leases[key]
		if l == nil || now.After(l.until) {
			s.seq++
			token := s.seq
			s.leases[key] = &lease{token: token, until: now.Add(ttl)}
			s.mu.Unlock()
			return func(context.Context) error {
				s.mu.Lock()
				defer s.mu.Unlock()
				if l := s.leases[key]; l != nil && l.token == token {
					delete(s.leases, key)
					close(s.changed)
					s.changed = make(chan struct{})
				}
				return nil
			}, nil
		}
		wait, until := s.changed, l.until
		s.mu.Unlock()
		t := time.NewTimer(time.Until(until) + time.Millisecond)
		select {
		case <-ctx.Done():
			t.Stop()
			return nil, outcome.Wrap(ctx.Err(), outcome.Timeout, "memstore.Lock", "timed out waiting for a lock")
		case <-wait:
		case <-t.C:
		}
		t.Stop()
	}
}

// Types implements store.Store.
func (s *Store) Types(context.Context) ([]string, error) {
	s.mu.Lock()
	defer s.mu.Unlock()
	var out []string
	for t, m := range s.cur {
		if len(m) > 0 {
			out = append(out, t)
		}
	}
	sort.Strings(out)
	return out, nil
}

// Ping implements store.Store.
func (s *Store) Ping(context.Context) error { return nil }

// Close implements store.Store. The data stays: a test may open a server
// on the same store again.
func (s *Store) Close(context.Context) error { return nil }

// CreateJob implements store.JobStore.
func (s *Store) CreateJob(_ context.Context, j *store.Job) error {
	s.mu.Lock()
	defer s.mu.Unlock()
	if s.jobs[j.ID] != nil {
		return outcome.New(outcome.Duplicate, "the job exists")
	}
	j.Version = 1
	c := *j
	s.jobs[j.ID] = &c
	return nil
}

// GetJob implements store.JobStore.
func (s *Store) GetJob(_ context.Context, id string) (*store.Job, error) {
	s.mu.Lock()
	defer s.mu.Unlock()
	j := s.jobs[id]
	if j == nil {
		return nil, outcome.New(outcome.NotFound, "job not found")
	}
	c := *j
	return &c, nil
}

// UpdateJob implements store.JobStore.
func (s *Store) UpdateJob(_ context.Context, next *store.Job) error {
	s.mu.Lock()
	defer s.mu.Unlock()
	j := s.jobs[next.ID]
	if j == nil {
		return outcome.New(outcome.NotFound, "job not found")
	}
	if j.Version != next.Version {
		return outcome.New(outcome.Conflict, "the job was changed by another process")
	}
	next.Version++
	c := *next
	s.jobs[next.ID] = &c
	return nil
}

// ListJobs implements store.JobStore.
func (s *Store) ListJobs(_ context.Context, kind string, unfinishedOnly bool) ([]*store.Job, error) {
	s.mu.Lock()
	defer s.mu.Unlock()
	var out []*store.Job
	for _, j := range s.jobs {
		if (kind == "" || j.Kind == kind) && (!unfinishedOnly || !j.Finished) {
			c := *j
			out = append(out, &c)
		}
	}
	sort.Slice(out, func(a, b int) bool { return out[a].ID < out[b].ID })
	return out, nil
}

// DeleteJob implements store.JobStore.
func (s *Store) DeleteJob(_ context.Context, id string) error {
	s.mu.Lock()
	defer s.mu.Unlock()
	delete(s.jobs, id)
	return nil
}

func notFound(typ, id string) error {
	return outcome.New(outcome.NotFound, "resource not found").WithDiagnostics(typ + "/" + id)
}

// clone copies r deeply enough that neither side sees the other's changes.
func clone(r *store.Resource, indexOnly bool) *store.Resource {
	c := *r
	if indexOnly {
		c.JSON = nil
	} else if r.JSON != nil {
		c.JSON = slices.Clone(r.JSON)
	}
	if r.Index != nil {
		c.Index = cloneTree(r.Index).(map[string]any)
	}
	return &c
}

func cloneTree(v any) any {
	switch n := v.(type) {
	case map[string]any:
		m := make(map[string]any, len(n))
		for k, x := range n {
			m[k] = cloneTree(x)
		}
		return m
	case []any:
		a := make([]any, len(n))
		for i, x := range n {
			a[i] = cloneTree(x)
		}
		return a
	}
	return v
}

// msFilter returns f with its time values truncated to milliseconds, the
// precision of stored LastUpdated values.
func msFilter(f *store.Filter) *store.Filter {
	if f == nil {
		return nil
	}
	c := *f
	if t, ok := c.Value.(time.Time); ok {
		c.Value = t.UTC().Truncate(time.Millisecond)
	}
	if len(f.Values) > 0 {
		c.Values = make([]any, len(f.Values))
		for i, v := range f.Values {
			if t, ok := v.(time.Time); ok {
				v = t.UTC().Truncate(time.Millisecond)
			}
			c.Values[i] = v
		}
	}
	if len(f.Children) > 0 {
		c.Children = make([]*store.Filter, len(f.Children))
		for i, x := range f.Children {
			c.Children[i] = msFilter(x)
		}
	}
	return &c
}
