package audit

import (
	"context"
	"encoding/json"
	"errors"
	"log/slog"
	"net/http"
	"os"
	"strconv"
	"sync"
	"sync/atomic"
	"time"

	"github.com/casefhir/casefhir/fhir/outcome"
	"github.com/casefhir/casefhir/server/interaction"
)

// Record is one AuditEvent to store: its id, assigned once (so that a
// record stored again after a crash is stored once), and its JSON without
// id and meta.
type Record struct {
	ID   string          `json:"id"`
	Body json.RawMessage `json:"body"`
}

// Writer stores AuditEvents: all of recs durably, or an error. A record
// whose id is already stored is not stored again (and is no error).
type Writer interface {
	WriteAuditEvents(ctx context.Context, recs []Record) error
}

// WriterFunc adapts a function to Writer.
type WriterFunc func(ctx context.Context, recs []Record) error

// WriteAuditEvents calls f.
func (f WriterFunc) WriteAuditEvents(ctx context.Context, recs []Record) error {
	return f(ctx, recs)
}

// Options configure a Recorder.
type Options struct {
	// Writer stores the events in the store (required).
	Writer Writer
	// Site is the server's FHIR base URL (AuditEvent.source.site).
	Site string
	// JournalDir, when set, is the directory of the durable local queue: a
	// request's events are made durable there (one fdatasync per group of
	// requests) before it is answered, and moved to the store in large
	// batches in the background; what a crash leaves there is stored when
	// the next Recorder opens the directory. Empty: each group of events is
	// stored in the store before its requests are answered.
	JournalDir string
	// FlushInterval is how often the journal is moved to the store
	// (default 250 ms).
	FlushInterval time.Duration
	// QueueSize bounds the requests admitted whose events are not yet in
	// the store (default 4096). A request that finds it full waits for room
	// until its context ends, and is then refused (503 with Retry-After)
	// before any work is done.
	QueueSize int
	// MaxBatch bounds the events one store write carries (default 1000).
	MaxBatch int
	// WriteTimeout bounds one write (default 10 s).
	WriteTimeout time.Duration
	// RetryAfter is the Retry-After of a refused request (default 1 s).
	RetryAfter time.Duration
	// Logger receives PHI-free failure reports (default: discard).
	Logger *slog.Logger
	// Now is the clock (default time.Now).
	Now func() time.Time
}

// Stats counts what a Recorder did.
type Stats struct {
	// Written events are in the store. Failed ones could not be made
	// durable: their requests were answered with an error, never
	// acknowledged. Refused requests found no room (503) and did no work.
	// No event is ever dropped.
	Written, Failed, Refused uint64
	// Commits is the number of durable group commits (journal appends, or
	// store writes without a journal).
	Commits uint64
	// Admitted is the number of requests admitted whose events are not
	// yet in the store.
	Admitted int
	// Replayed is the number of events a crashed process left in the
	// journal, stored at start.
	Replayed int
}

// Recorder keeps the audit trail with a guarantee: a request's response
// is sent only once its AuditEvents are durable.
//
// A request is first admitted (Admit): a bounded number of requests may be
// between admission and the storing of their events; beyond that, Admit
// waits for room, and refuses when the request's context ends (503,
// Retry-After), before the request does any work. When the request has
// done its work it hands its events to Ticket.Commit, which waits until
// they are durable. One writer makes the events of every request that
// arrived while the previous write was in flight durable in one write
// (group commit): an append to the journal when there is one (then moved
// to the store in the background), otherwise a store write. It is safe
// for concurrent use.
type Recorder struct {
	o     Options
	slots chan struct{}
	jnl   *journal

	mu      sync.Mutex
	pending []*Ticket // committed tickets waiting for the writer
	closed  bool
	wake    chan struct{} // capacity 1: the writer has work
	done    chan struct{} // closed when the writer has exited

	// Journal mode: records durable in the journal, not yet in the store,
	// with their tickets (guarded by the journal's lock).
	backlog        []Record
	backlogTickets []*Ticket
	moverWake      chan struct{}
	moverDone      chan struct{}

	written, failed, refused, commits atomic.Uint64
	replayed                          int
}

// NewRecorder starts a Recorder. With a JournalDir, the events a previous
// process left there are stored first. Call Close to flush it.
func NewRecorder(o Options) (*Recorder, error) {
	if o.Writer == nil {
		return nil, outcome.New(outcome.Exception, "audit: a Writer is required").WithOp("audit.NewRecorder")
	}
	if o.QueueSize <= 0 {
		o.QueueSize = 4096
	}
	if o.MaxBatch <= 0 {
		o.MaxBatch = 1000
	}
	if o.WriteTimeout <= 0 {
		o.WriteTimeout = 10 * time.Second
	}
	if o.RetryAfter <= 0 {
		o.RetryAfter = time.Second
	}
	if o.FlushInterval <= 0 {
		o.FlushInterval = 250 * time.Millisecond
	}
	if o.Logger == nil {
		o.Logger = slog.New(slog.DiscardHandler)
	}
	if o.Now == nil {
		o.Now = time.Now
	}
	r := &Recorder{o: o, slots: make(chan struct{}, o.QueueSize), wake: make(chan struct{}, 1), done: make(chan struct{})}
	if o.JournalDir != "" {
		j, recs, files, err := openJournal(o.JournalDir)
		if err != nil {
			return nil, err
		}
		if err := r.storeAll(recs); err != nil {
			_ = j.close(false)
			return nil, err
		}
		for _, f := range files {
			_ = os.Remove(f)
		}
		r.jnl, r.replayed = j, len(recs)
		r.written.Add(uint64(len(recs)))
		r.moverWake, r.moverDone = make(chan struct{}, 1), make(chan struct{})
		go r.move()
	}
	go r.run()
	return r, nil
}

// Ticket is one admitted request's place in the trail. Add its events,
// then Commit them before the response is sent; Release a ticket that
// will not be committed. Add may be called from the goroutines of its
// Bundle entries.
type Ticket struct {
	r      *Recorder
	mu     sync.Mutex
	events []Event
	handed bool      // Commit gave the ticket to the writer
	once   sync.Once // releases the slot
	done   chan error
}

// Admit reserves room for one request's events, waiting while the queue
// is full. When ctx ends first (or the Recorder is closed) it fails with
// an outcome.Throttled error (503 with Retry-After): refuse the request
// before doing any work.
func (r *Recorder) Admit(ctx context.Context) (*Ticket, error) {
	r.mu.Lock()
	closed := r.closed
	r.mu.Unlock()
	if closed {
		r.refused.Add(1)
		return nil, r.refusal("the audit trail is shut down")
	}
	select {
	case r.slots <- struct{}{}:
		return &Ticket{r: r}, nil
	default:
	}
	select {
	case r.slots <- struct{}{}:
		return &Ticket{r: r}, nil
	case <-ctx.Done():
		r.refused.Add(1)
		return nil, r.refusal("the audit trail is saturated")
	}
}

func (r *Recorder) refusal(detail string) error {
	secs := int(r.o.RetryAfter / time.Second)
	if secs < 1 {
		secs = 1
	}
	return outcome.New(outcome.Throttled, detail+": retry later").WithStatus(http.StatusServiceUnavailable).
		WithHeader("Retry-After", strconv.Itoa(secs)).WithOp("audit.Admit")
}

// Add records an event of the ticket's request.
func (t *Ticket) Add(e Event) {
	t.mu.Lock()
	t.events = append(t.events, e)
	t.mu.Unlock()
}

// Release gives the ticket's room back when it was not committed (a
// request that turned out to need no event); a committed ticket's room is
// given back once its events are in the store.
func (t *Ticket) Release() {
	if t == nil {
		return
	}
	t.mu.Lock()
	handed := t.handed
	t.mu.Unlock()
	if !handed {
		t.release()
	}
}

func (t *Ticket) release() {
	t.once.Do(func() {
		<-t.r.slots
		for _, c := range []chan struct{}{t.r.wake, t.r.moverWake} { // a closing Recorder waits for the last ticket
			select {
			case c <- struct{}{}:
			default:
			}
		}
	})
}

// Commit makes the ticket's events durable and returns once they are, or
// with the error that kept them from being stored (503: the request must
// not be acknowledged). ctx bounds the wait only: events handed over are
// stored even when the caller gives up.
func (t *Ticket) Commit(ctx context.Context) error {
	r := t.r
	t.mu.Lock()
	n := len(t.events)
	if n > 0 {
		t.handed = true
	}
	t.mu.Unlock()
	if n == 0 {
		t.release()
		return nil
	}
	t.done = make(chan error, 1)
	r.mu.Lock()
	r.pending = append(r.pending, t)
	r.mu.Unlock()
	select {
	case r.wake <- struct{}{}:
	default:
	}
	select {
	case err := <-t.done:
		return err
	case <-ctx.Done():
		return outcome.Wrap(ctx.Err(), outcome.Timeout, "audit.Commit", "the request ended before its AuditEvent was stored")
	}
}

// run is the writer: it makes the events of every ticket committed while
// the previous write was in flight durable in one write.
func (r *Recorder) run() {
	defer close(r.done)
	for {
		r.mu.Lock()
		batch := r.pending
		r.pending = nil
		closed := r.closed
		r.mu.Unlock()
		if len(batch) == 0 {
			if closed && len(r.slots) == 0 {
				return
			}
			<-r.wake
			continue
		}
		r.commit(batch)
	}
}

// records renders the events of tickets as records with fresh ids.
func (r *Recorder) records(tickets []*Ticket) []Record {
	now := r.o.Now()
	var recs []Record
	for _, t := range tickets {
		for _, e := range t.events {
			recs = append(recs, Record{ID: interaction.NewUUID(), Body: Resource(e, r.o.Site, now)})
		}
	}
	return recs
}

// commit makes the events of batch durable, in groups of at most MaxBatch
// events, then tells each ticket.
func (r *Recorder) commit(batch []*Ticket) {
	for len(batch) > 0 {
		var group []*Ticket
		events := 0
		for len(batch) > 0 && (events == 0 || events+len(batch[0].events) <= r.o.MaxBatch) {
			events += len(batch[0].events)
			group = append(group, batch[0])
			batch = batch[1:]
		}
		recs := r.records(group)
		var err error
		if r.jnl != nil {
			// The records join the backlog under the journal's lock, with
			// their segment: a rotation in between would take (and remove)
			// the segment without them, leaving them in memory only.
			err = r.jnl.append(recs, func() {
				r.backlog = append(r.backlog, recs...)
				r.backlogTickets = append(r.backlogTickets, group...)
			})
		} else {
			err = r.write(recs)
			if err == nil {
				r.written.Add(uint64(len(recs)))
			}
		}
		r.commits.Add(1)
		if err != nil {
			r.failed.Add(uint64(len(recs)))
			// PHI-free: the error's code and detail only, never the events.
			r.o.Logger.Error("audit events not stored", "error", outcome.As(err).Error(), "events", len(recs))
			err = outcome.Wrap(err, outcome.Transient, "audit.Commit", "the audit trail could not be stored; the request was not acknowledged").
				WithStatus(http.StatusServiceUnavailable).WithHeader("Retry-After", "1")
		}
		for _, t := range group {
			if err != nil || r.jnl == nil {
				t.release()
			}
			t.done <- err
		}
	}
}

// move stores the journal's records in the store every FlushInterval (or
// sooner when room is short), then deletes their segment and gives their
// tickets' room back. A failed store write is retried: the records are
// durable in the journal, and their held room makes new requests wait.
func (r *Recorder) move() {
	defer close(r.moverDone)
	t := time.NewTicker(r.o.FlushInterval)
	defer t.Stop()
	for {
		select {
		case <-t.C:
		case <-r.moverWake:
		}
		r.jnl.mu.Lock()
		idle := len(r.backlog) == 0
		r.jnl.mu.Unlock()
		if idle {
			if r.moverExit() {
				return
			}
			continue // nothing to move: keep the segment
		}
		var recs []Record
		var tickets []*Ticket
		seg, err := r.jnl.rotate(func() {
			recs, tickets = r.backlog, r.backlogTickets
			r.backlog, r.backlogTickets = nil, nil
		})
		if err != nil {
			r.o.Logger.Error("audit journal rotation failed", "error", outcome.As(err).Error())
			continue
		}
		for len(recs) > 0 {
			if err := r.storeAll(recs); err != nil {
				r.o.Logger.Error("audit events not moved to the store; retrying", "error", outcome.As(err).Error(), "events", len(recs))
				time.Sleep(r.o.FlushInterval)
				continue
			}
			r.written.Add(uint64(len(recs)))
			break
		}
		_ = os.Remove(seg)
		for _, tk := range tickets {
			tk.release()
		}
		if r.moverExit() {
			return
		}
	}
}

// moverExit reports whether the mover is done: the Recorder is closed,
// its writer has exited and every event is in the store.
func (r *Recorder) moverExit() bool {
	r.mu.Lock()
	closed := r.closed
	r.mu.Unlock()
	if !closed || len(r.slots) != 0 {
		return false
	}
	select {
	case <-r.done:
		return true
	default:
		return false
	}
}

// storeAll writes recs to the store in groups of at most MaxBatch.
func (r *Recorder) storeAll(recs []Record) error {
	for len(recs) > 0 {
		n := min(len(recs), r.o.MaxBatch)
		if err := r.write(recs[:n]); err != nil {
			return err
		}
		recs = recs[n:]
	}
	return nil
}

func (r *Recorder) write(recs []Record) error {
	ctx, cancel := context.WithTimeout(context.Background(), r.o.WriteTimeout)
	defer cancel()
	return r.o.Writer.WriteAuditEvents(ctx, recs)
}

// Flush waits until every event committed so far is in the store (with a
// journal; without one, committed events are there already).
func (r *Recorder) Flush(ctx context.Context) error {
	if r.jnl == nil {
		return nil
	}
	for {
		r.jnl.mu.Lock()
		n := len(r.backlog)
		r.jnl.mu.Unlock()
		r.mu.Lock()
		p := len(r.pending)
		r.mu.Unlock()
		if n == 0 && p == 0 && len(r.slots) == 0 {
			return nil
		}
		select {
		case r.moverWake <- struct{}{}:
		default:
		}
		select {
		case <-ctx.Done():
			return ctx.Err()
		case <-time.After(5 * time.Millisecond):
		}
	}
}

// Close stops admitting requests and waits until the committed events
// are in the store or ctx ends (a journal keeps what is left for the next
// start).
func (r *Recorder) Close(ctx context.Context) error {
	r.mu.Lock()
	r.closed = true
	r.mu.Unlock()
	select {
	case r.wake <- struct{}{}:
	default:
	}
	wait := func(c chan struct{}) error {
		select {
		case <-c:
			return nil
		case <-ctx.Done():
			return errors.Join(ctx.Err(), outcome.New(outcome.Timeout, "audit events still being written").WithOp("audit.Close"))
		}
	}
	if err := wait(r.done); err != nil {
		return err
	}
	if r.jnl == nil {
		return nil
	}
	if err := r.Flush(ctx); err != nil {
		_ = r.jnl.close(false)
		return err
	}
	select {
	case r.moverWake <- struct{}{}:
	default:
	}
	if err := wait(r.moverDone); err != nil {
		_ = r.jnl.close(false)
		return err
	}
	return r.jnl.close(true)
}

// Stats returns the Recorder's counters.
func (r *Recorder) Stats() Stats {
	return Stats{Written: r.written.Load(), Failed: r.failed.Load(), Refused: r.refused.Load(),
		Commits: r.commits.Load(), Admitted: len(r.slots), Replayed: r.replayed}
}
