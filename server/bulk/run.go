package bulk

import (
	"context"
	"errors"
	"os"
	"path/filepath"
	"runtime"
	"slices"
	"time"

	"github.com/casefhir/casefhir/fhir"
	"github.com/casefhir/casefhir/fhir/outcome"
	"github.com/casefhir/casefhir/fhir/search"
	"github.com/casefhir/casefhir/fhir/store"
)

// errStop says the job must stop here: cancelled, deleted, taken over by
// another process, or the service is closing.
var errStop = errors.New("bulk: job stopped")

// errorFile is the name of the OperationOutcome NDJSON file.
const errorFile = "OperationOutcome.errors.ndjson"

// run executes (or resumes) a claimed job to its end.
func (s *Service) run(ctx context.Context, j *store.Job) {
	st, err := decodeState(j)
	if err != nil {
		s.fail(ctx, j, &State{}, "the export job record is unreadable")
		return
	}
	r := &runner{s: s, j: j, st: st, lastBeat: time.Now()}
	err = r.exec(ctx)
	switch {
	case err == nil:
		return
	case errors.Is(err, errStop) || ctx.Err() != nil:
		r.release()
	default:
		s.fail(ctx, j, st, outcome.As(err).Detail)
	}
}

// runner is one execution of a job.
type runner struct {
	s        *Service
	j        *store.Job
	st       *State
	lastBeat time.Time
}

func (r *runner) exec(ctx context.Context) error {
	s, st := r.s, r.st
	dir := s.jobDir(r.j.ID)
	if err := os.MkdirAll(dir, 0o700); err != nil {
		return outcome.Wrap(err, outcome.Exception, "bulk.run", "cannot create the job's output directory")
	}
	if !st.Resolved {
		types, err := r.resolveTypes(ctx)
		if err != nil {
			return err
		}
		st.Types, st.Resolved = types, true
		if err := r.save(ctx); err != nil {
			return err
		}
	}
	// A completed type whose file is gone (lost disk) is exported again.
	kept := st.Done[:0]
	for _, o := range st.Done {
		if o.Count == 0 {
			kept = append(kept, o)
			continue
		}
		if fi, err := os.Stat(filepath.Join(dir, o.File)); err == nil && fi.Size() > 0 {
			kept = append(kept, o)
		}
	}
	st.Done = kept
	for _, typ := range st.Types {
		if st.done(typ) {
			continue
		}
		out, err := r.exportType(ctx, dir, typ)
		if err != nil {
			return err
		}
		st.Done = append(st.Done, out)
		st.Current, st.CurrentCount = "", 0
		if err := r.save(ctx); err != nil {
			return err
		}
		if err := r.yield(ctx); err != nil {
			return err
		}
	}
	if len(st.Issues) > 0 {
		w, err := createNDJSON(filepath.Join(dir, errorFile))
		if err != nil {
			return outcome.Wrap(err, outcome.Exception, "bulk.run", "cannot write the error file")
		}
		for _, i := range st.Issues {
			if err := w.write(outcome.Resource(outcome.Issue{Severity: outcome.Severity(i.Severity),
				Code: outcome.Code(i.Code), Detail: i.Detail, Diagnostics: i.Diagnostics})); err != nil {
				w.abort()
				return outcome.Wrap(err, outcome.Exception, "bulk.run", "cannot write the error file")
			}
		}
		if err := w.close(); err != nil {
			return outcome.Wrap(err, outcome.Exception, "bulk.run", "cannot write the error file")
		}
		st.ErrorFile = errorFile
	}
	st.FinishedAt = s.now()
	r.j.Status, r.j.Finished, r.j.LeaseOwner = StatusCompleted, true, ""
	if err := r.save(ctx); err != nil {
		return err
	}
	s.o.Logger.InfoContext(ctx, "export job completed", "job", r.j.ID, "types", len(st.Done), "resources", st.exported())
	return nil
}

// resolveTypes lists the types the job exports: those the level covers
// that hold data, narrowed by _type and the caller's scopes.
func (r *runner) resolveTypes(ctx context.Context) ([]string, error) {
	sp := r.st.Spec
	have, err := r.s.o.Store.Types(ctx)
	if err != nil {
		return nil, err
	}
	var out []string
	for _, t := range have {
		if !fhir.IsResourceType(t) || !r.s.levelCovers(sp.Level, t) {
			continue
		}
		if sp.Types != nil && !slices.Contains(sp.Types, t) {
			continue
		}
		if sp.Allowed != nil && !slices.Contains(sp.Allowed, t) {
			continue
		}
		out = append(out, t)
	}
	return out, nil
}

// levelCovers reports whether an export level includes resources of typ.
func (s *Service) levelCovers(level, typ string) bool {
	switch level {
	case LevelPatient, LevelGroup:
		return typ == "Patient" || search.PatientCompartmentParams(typ) != nil
	case LevelEpisode:
		if typ == "EpisodeOfCare" || typ == "CareTeam" {
			return true
		}
		_, ok := s.o.Registry.Lookup(typ, episodeParam)
		return ok
	}
	return true
}

// episodeParam is the search parameter linking a resource to its case.
const episodeParam = "episode-of-care"

// exportType writes every selected resource of typ to <dir>/<typ>.ndjson,
// streaming from the store cursor. An interrupted type starts over.
func (r *runner) exportType(ctx context.Context, dir, typ string) (Output, error) {
	const op = "bulk.exportType"
	s := r.s
	sel, err := s.selector(&r.st.Spec, typ)
	if err != nil {
		return Output{}, err
	}
	r.st.Current, r.st.CurrentCount = typ, 0
	name := typ + ".ndjson"
	path := filepath.Join(dir, name)
	w, err := createNDJSON(path)
	if err != nil {
		return Output{}, outcome.Wrap(err, outcome.Exception, op, "cannot create an output file")
	}
	var cur store.Cursor
	if s.o.Scanner != nil {
		cur, err = s.o.Scanner.Scan(ctx, typ, sel.filter)
	} else {
		cur, err = s.o.Store.Find(ctx, typ, sel.filter, store.FindOptions{})
	}
	if err != nil {
		w.abort()
		return Output{}, r.stopOr(ctx, err)
	}
	defer cur.Close(context.WithoutCancel(ctx))
	batch := 0
	for {
		res, err := cur.Next(ctx)
		if err != nil {
			w.abort()
			return Output{}, r.stopOr(ctx, err)
		}
		if res == nil {
			break
		}
		if !sel.match(res) || len(res.JSON) == 0 {
			continue
		}
		if err := w.write(res.JSON); err != nil {
			w.abort()
			return Output{}, outcome.Wrap(err, outcome.Exception, op, "writing an output file failed")
		}
		if batch++; batch >= s.o.BatchSize {
			batch = 0
			r.st.CurrentCount = w.n
			if err := w.flush(); err != nil {
				w.abort()
				return Output{}, outcome.Wrap(err, outcome.Exception, op, "writing an output file failed")
			}
			if err := r.yield(ctx); err != nil {
				w.abort()
				return Output{}, err
			}
		}
	}
	if err := w.close(); err != nil {
		return Output{}, outcome.Wrap(err, outcome.Exception, op, "writing an output file failed")
	}
	if w.n == 0 {
		_ = os.Remove(path)
		return Output{Type: typ, Count: 0}, nil
	}
	return Output{Type: typ, File: name, Count: w.n}, nil
}

// stopOr turns an error seen while the job is being stopped into errStop.
func (r *runner) stopOr(ctx context.Context, err error) error {
	if ctx.Err() != nil {
		return errStop
	}
	return err
}

// yield lets other work run between batches and renews the lease when due.
func (r *runner) yield(ctx context.Context) error {
	runtime.Gosched()
	if p := r.s.o.BatchPause; p > 0 {
		t := time.NewTimer(p)
		select {
		case <-ctx.Done():
			t.Stop()
			return errStop
		case <-t.C:
		}
	}
	if ctx.Err() != nil {
		return errStop
	}
	if time.Since(r.lastBeat) >= r.s.o.LeaseTTL/3 {
		return r.save(ctx)
	}
	return nil
}

// save persists the state and renews the lease (compare-and-swap). When the
// record changed under us (cancelled, deleted, taken over) the job stops;
// a deleted job's files are removed.
func (r *runner) save(ctx context.Context) error {
	s := r.s
	if err := encodeState(r.j, r.st); err != nil {
		return err
	}
	r.j.Updated = s.now()
	if !r.j.Finished {
		r.j.LeaseUntil = s.now().Add(s.o.LeaseTTL)
	}
	err := s.o.Jobs.UpdateJob(context.WithoutCancel(ctx), r.j)
	r.lastBeat = time.Now()
	switch {
	case err == nil:
		return nil
	case outcome.Is(err, outcome.NotFound):
		_ = os.RemoveAll(s.jobDir(r.j.ID)) // cancelled: DELETE removed the record
		return errStop
	case outcome.Is(err, outcome.Conflict):
		return errStop // another process owns the job now
	}
	return err
}

// release gives the job back (best effort) so that the next process
// resumes it without waiting for the lease to lapse. A graceful stop does
// not count against MaxAttempts; only runs that ended without a word do.
func (r *runner) release() {
	ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
	defer cancel()
	if r.st.Attempts > 0 {
		r.st.Attempts--
	}
	if err := encodeState(r.j, r.st); err != nil {
		return
	}
	r.j.LeaseOwner, r.j.LeaseUntil, r.j.Updated = "", time.Time{}, r.s.now()
	if err := r.s.o.Jobs.UpdateJob(ctx, r.j); outcome.Is(err, outcome.NotFound) {
		_ = os.RemoveAll(r.s.jobDir(r.j.ID))
	}
}

// selector decides which resources of one type a job exports.
type selector struct {
	filter *store.Filter
	match  func(*store.Resource) bool
}

// maxInFilter caps the patient references put into one store filter; a
// larger group scans the compartment-bearing resources and checks in Go.
const maxInFilter = 500

// selector builds the store filter (a superset) and the exact check for typ.
func (s *Service) selector(sp *Spec, typ string) (*selector, error) {
	var fs []*store.Filter
	var checks []func(*store.Resource) bool
	if !sp.Since.IsZero() {
		fs = append(fs, store.Gte(store.PathLastUpdated, sp.Since))
	}
	fs = append(fs, store.Lte(store.PathLastUpdated, sp.TransactionTime))
	switch sp.Level {
	case LevelPatient, LevelGroup:
		if sp.Level == LevelGroup || len(sp.Patients) > 0 {
			members := make(map[string]bool, len(sp.Patients))
			for _, p := range sp.Patients {
				members[search.PatientRef(p)] = true
			}
			fs = append(fs, search.PatientCompartmentsFilter(append([]string{}, sp.Patients...), maxInFilter))
			checks = append(checks, func(res *store.Resource) bool { return search.InAnyPatientCompartment(res, members) })
		} else {
			fs = append(fs, search.PatientCompartmentsFilter(nil, maxInFilter))
			checks = append(checks, func(res *store.Resource) bool { return search.InAnyPatientCompartment(res, nil) })
		}
	case LevelEpisode:
		switch typ {
		case "EpisodeOfCare":
			fs = append(fs, store.Eq(store.PathID, sp.ID))
		default:
			var alts []*store.Filter
			var qs []*search.Query
			if _, ok := s.o.Registry.Lookup(typ, episodeParam); ok {
				q, err := s.parseQuery(typ, episodeParam+"=EpisodeOfCare/"+sp.ID)
				if err != nil {
					return nil, err
				}
				qs = append(qs, q)
				alts = append(alts, q.Filter())
			}
			teams := map[string]bool{}
			if typ == "CareTeam" && len(sp.Teams) > 0 {
				ids := make([]any, len(sp.Teams))
				for i, t := range sp.Teams {
					ids[i], teams[t] = t, true
				}
				alts = append(alts, store.In(store.PathID, ids...))
			}
			if len(alts) == 0 {
				fs = append(fs, &store.Filter{Op: store.OpOr}) // matches nothing
			} else {
				fs = append(fs, store.Or(alts...))
			}
			checks = append(checks, func(res *store.Resource) bool {
				if teams[res.ID] {
					return true
				}
				for _, q := range qs {
					if q.Matches(res.Index) {
						return true
					}
				}
				return false
			})
		}
	}
	for _, set := range []map[string][]string{sp.TypeFilters, sp.Restrictions} {
		raw := set[typ]
		if len(raw) == 0 {
			continue
		}
		qs := make([]*search.Query, 0, len(raw))
		alts := make([]*store.Filter, 0, len(raw))
		for _, qstr := range raw {
			q, err := s.parseQuery(typ, qstr)
			if err != nil {
				return nil, err
			}
			qs = append(qs, q)
			alts = append(alts, q.Filter())
		}
		fs = append(fs, store.Or(alts...))
		checks = append(checks, func(res *store.Resource) bool {
			for _, q := range qs {
				if q.Matches(res.Index) {
					return true
				}
			}
			return false
		})
	}
	if pid, ok := sp.Compartment[typ]; ok {
		fs = append(fs, search.PatientCompartmentFilter(typ, pid))
		checks = append(checks, func(res *store.Resource) bool { return search.InPatientCompartment(res, pid) })
	}
	f := store.And(fs...)
	return &selector{filter: f, match: func(res *store.Resource) bool {
		if !f.Match(res) {
			return false
		}
		for _, c := range checks {
			if !c(res) {
				return false
			}
		}
		return true
	}}, nil
}
