package audit

import (
	"context"
	"errors"
	"log/slog"
	"net/http"
	"strconv"
	"sync"
	"sync/atomic"
	"time"

	"github.com/casefhir/casefhir/fhir/outcome"
	"github.com/casefhir/casefhir/server/interaction"
)

// Writer stores one AuditEvent resource (JSON without id and meta) and
// returns once it is durable.
type Writer interface {
	WriteAuditEvent(ctx context.Context, resource []byte) error
}

// BatchWriter is a Writer that stores several AuditEvents in one durable
// step (all or none).
type BatchWriter interface {
	Writer
	WriteAuditEvents(ctx context.Context, resources [][]byte) error
}

// WriterFunc adapts a function to Writer.
type WriterFunc func(ctx context.Context, resource []byte) error

// WriteAuditEvent calls f.
func (f WriterFunc) WriteAuditEvent(ctx context.Context, resource []byte) error {
	return f(ctx, resource)
}

// HandlerWriter writes AuditEvents through the create interaction of the
// handler h returns (validation, search indexing and storage as for any
// resource), with unrestricted access. The write is not itself audited.
func HandlerWriter(h func() *interaction.Handler) Writer {
	return WriterFunc(func(ctx context.Context, resource []byte) error {
		_, err := h().Create(ctx, &interaction.Request{
			Route:  interaction.Route{Kind: interaction.KindCreate, Type: "AuditEvent"},
			Method: http.MethodPost,
			Header: http.Header{"Prefer": {"return=minimal"}, "Content-Type": {"application/fhir+json"}},
			Body:   resource,
		})
		return err
	})
}

// Options configure a Recorder.
type Options struct {
	// Writer stores the events (required). A BatchWriter stores each group
	// commit in one call.
	Writer Writer
	// Site is the server's FHIR base URL (AuditEvent.source.site).
	Site string
	// QueueSize bounds the requests admitted and not yet through their
	// commit (default 1024). A request that finds it full waits for room
	// until its context ends, and is then refused (503 with Retry-After)
	// before any work is done.
	QueueSize int
	// MaxBatch bounds the events one group commit stores (default 1000).
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
	// Written events were stored. Failed ones could not be: their requests
	// were answered with an error, never acknowledged. Refused requests
	// found no room (503) and did no work. No event is ever dropped.
	Written, Failed, Refused uint64
	// Commits is the number of group commits (store writes).
	Commits uint64
	// Admitted is the number of requests admitted and not yet finished.
	Admitted int
}

// Recorder keeps the audit trail with a guarantee: a request's response
// is sent only once its AuditEvents are durable.
//
// A request is first admitted (Admit): a bounded number of requests may be
// between admission and the commit of their events; beyond that, Admit
// waits for room, and refuses when the request's context ends (503,
// Retry-After), before the request does any work. When the request has
// done its work it hands its events to Ticket.Commit, which waits until
// they are stored. One writer stores the events of every request that
// arrived while the previous write was in flight in one write (group
// commit), so under load one durable store write carries the events of
// many requests and the trail costs each request little. It is safe for
// concurrent use.
type Recorder struct {
	o     Options
	bw    BatchWriter // nil: events are written one by one
	slots chan struct{}

	mu      sync.Mutex
	pending []*Ticket // committed tickets waiting for the writer
	closed  bool
	wake    chan struct{} // capacity 1: the writer has work
	done    chan struct{} // closed when the writer has exited

	written, failed, refused, commits atomic.Uint64
}

// NewRecorder starts a Recorder. Call Close to flush it.
func NewRecorder(o Options) (*Recorder, error) {
	if o.Writer == nil {
		return nil, outcome.New(outcome.Exception, "audit: a Writer is required").WithOp("audit.NewRecorder")
	}
	if o.QueueSize <= 0 {
		o.QueueSize = 1024
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
	if o.Logger == nil {
		o.Logger = slog.New(slog.DiscardHandler)
	}
	if o.Now == nil {
		o.Now = time.Now
	}
	r := &Recorder{o: o, slots: make(chan struct{}, o.QueueSize), wake: make(chan struct{}, 1), done: make(chan struct{})}
	r.bw, _ = o.Writer.(BatchWriter)
	go r.run()
	return r, nil
}

// Ticket is one admitted request's place in the trail. Add its events,
// then Commit them before the response is sent; Release a ticket that
// will not be committed. A ticket is used by one request at a time, but
// Add may be called from the goroutines of its Bundle entries.
type Ticket struct {
	r      *Recorder
	mu     sync.Mutex
	events []Event
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

// Release gives the ticket's room back without storing anything (a
// request that turned out to need no event). Committed tickets release
// themselves.
func (t *Ticket) Release() {
	if t != nil {
		t.once.Do(func() {
			<-t.r.slots
			select { // a closing writer waits for the last ticket
			case t.r.wake <- struct{}{}:
			default:
			}
		})
	}
}

// Commit stores the ticket's events and returns once they are durable, or
// with the error that kept them from being stored (outcome.Transient, 503:
// the request must not be acknowledged). ctx bounds the wait only: events
// handed over are stored even when the caller gives up.
func (t *Ticket) Commit(ctx context.Context) error {
	r := t.r
	t.mu.Lock()
	n := len(t.events)
	t.mu.Unlock()
	if n == 0 {
		t.Release()
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

// run is the writer: it stores the events of every ticket committed while
// the previous write was in flight, in one write.
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
		r.store(batch)
	}
}

// store writes the events of batch in groups of at most MaxBatch events,
// then tells each ticket.
func (r *Recorder) store(batch []*Ticket) {
	now := r.o.Now()
	for len(batch) > 0 {
		var group []*Ticket
		var bodies [][]byte
		for len(batch) > 0 && (len(bodies) == 0 || len(bodies)+len(batch[0].events) <= r.o.MaxBatch) {
			t := batch[0]
			batch = batch[1:]
			group = append(group, t)
			for _, e := range t.events {
				bodies = append(bodies, Resource(e, r.o.Site, now))
			}
		}
		err := r.write(bodies)
		r.commits.Add(1)
		if err != nil {
			r.failed.Add(uint64(len(bodies)))
			// PHI-free: the error's code and detail only, never the events.
			r.o.Logger.Error("audit events not stored", "error", outcome.As(err).Error(), "events", len(bodies))
			err = outcome.Wrap(err, outcome.Transient, "audit.Commit", "the audit trail could not be stored; the request was not acknowledged").
				WithStatus(http.StatusServiceUnavailable).WithHeader("Retry-After", "1")
		} else {
			r.written.Add(uint64(len(bodies)))
		}
		for _, t := range group {
			t.Release()
			t.done <- err
		}
	}
}

func (r *Recorder) write(bodies [][]byte) error {
	ctx, cancel := context.WithTimeout(context.Background(), r.o.WriteTimeout)
	defer cancel()
	if r.bw != nil {
		return r.bw.WriteAuditEvents(ctx, bodies)
	}
	for _, b := range bodies {
		if err := r.o.Writer.WriteAuditEvent(ctx, b); err != nil {
			return err
		}
	}
	return nil
}

// Close stops admitting requests and waits until the committed events
// are written or ctx ends.
func (r *Recorder) Close(ctx context.Context) error {
	r.mu.Lock()
	r.closed = true
	r.mu.Unlock()
	select {
	case r.wake <- struct{}{}:
	default:
	}
	select {
	case <-r.done:
		return nil
	case <-ctx.Done():
		return errors.Join(ctx.Err(), outcome.New(outcome.Timeout, "audit events still being written").WithOp("audit.Close"))
	}
}

// Stats returns the Recorder's counters.
func (r *Recorder) Stats() Stats {
	return Stats{Written: r.written.Load(), Failed: r.failed.Load(), Refused: r.refused.Load(),
		Commits: r.commits.Load(), Admitted: len(r.slots)}
}
