package audit

import (
	"context"
	"log/slog"
	"net/http"
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
	// Writer stores the events (required).
	Writer Writer
	// Site is the server's FHIR base URL (AuditEvent.source.site).
	Site string
	// QueueSize bounds the events waiting to be written (default 4096).
	// When the queue is full, new events are dropped and counted.
	QueueSize int
	// Workers is the number of concurrent writers (default 2).
	Workers int
	// WriteTimeout bounds one write (default 10 s).
	WriteTimeout time.Duration
	// FlushInterval is how long a worker gathers events into one batch
	// before writing it, with a BatchWriter (default 200 ms). A crash loses
	// at most the events of that window and the queue.
	FlushInterval time.Duration
	// Logger receives PHI-free failure reports (default: discard).
	Logger *slog.Logger
	// Now is the clock (default time.Now).
	Now func() time.Time
}

// Stats counts what a Recorder did.
type Stats struct {
	// Written events were stored; Failed ones could not be; Dropped ones
	// never entered the queue (full or closed).
	Written, Failed, Dropped uint64
	// Queued is the current queue length.
	Queued int
}

// Recorder writes AuditEvents in the background. Record never blocks and
// never fails the request it records: events go into a bounded queue
// drained by a few workers. It is safe for concurrent use.
type Recorder struct {
	o     Options
	queue chan Event

	mu     sync.RWMutex // guards closed against sends
	closed bool
	wg     sync.WaitGroup

	written, failed, dropped atomic.Uint64
	lastDropLog              atomic.Int64 // unix seconds of the last "dropped" log line
}

// NewRecorder starts a Recorder. Call Close to flush it.
func NewRecorder(o Options) (*Recorder, error) {
	if o.Writer == nil {
		return nil, outcome.New(outcome.Exception, "audit: a Writer is required").WithOp("audit.NewRecorder")
	}
	if o.QueueSize <= 0 {
		o.QueueSize = 4096
	}
	if o.Workers <= 0 {
		o.Workers = 2
	}
	if o.WriteTimeout <= 0 {
		o.WriteTimeout = 10 * time.Second
	}
	if o.Logger == nil {
		o.Logger = slog.New(slog.DiscardHandler)
	}
	if o.FlushInterval <= 0 {
		o.FlushInterval = 200 * time.Millisecond
	}
	if o.Now == nil {
		o.Now = time.Now
	}
	r := &Recorder{o: o, queue: make(chan Event, o.QueueSize)}
	r.wg.Add(o.Workers)
	for range o.Workers {
		go r.work()
	}
	return r, nil
}

// Record queues e. It reports false when e was dropped because the queue
// is full or the Recorder is closed.
func (r *Recorder) Record(e Event) bool {
	r.mu.RLock()
	defer r.mu.RUnlock()
	if r.closed {
		r.dropped.Add(1)
		return false
	}
	select {
	case r.queue <- e:
		return true
	default:
		n := r.dropped.Add(1)
		now := r.o.Now().Unix()
		if last := r.lastDropLog.Load(); now-last >= 10 && r.lastDropLog.CompareAndSwap(last, now) {
			r.o.Logger.Warn("audit queue full: events dropped", "dropped_total", n, "queue_size", r.o.QueueSize)
		}
		return false
	}
}

// maxBatch bounds the events one worker writes at once.
const maxBatch = 100

func (r *Recorder) work() {
	defer r.wg.Done()
	bw, batching := r.o.Writer.(BatchWriter)
	for e := range r.queue {
		if !batching {
			r.write(e)
			continue
		}
		// Gather what arrives within the flush interval into one batch:
		// under load one store write carries many events, so the trail
		// costs the requests it records little.
		batch := []Event{e}
		timer := time.NewTimer(r.o.FlushInterval)
	gather:
		for len(batch) < maxBatch {
			select {
			case e2, ok := <-r.queue:
				if !ok {
					break gather
				}
				batch = append(batch, e2)
			case <-timer.C:
				break gather
			}
		}
		timer.Stop()
		r.writeBatch(bw, batch)
	}
}

// BatchWriter is a Writer that stores several AuditEvents in one call.
type BatchWriter interface {
	Writer
	WriteAuditEvents(ctx context.Context, resources [][]byte) error
}

func (r *Recorder) writeBatch(bw BatchWriter, batch []Event) {
	ctx, cancel := context.WithTimeout(context.Background(), r.o.WriteTimeout)
	defer cancel()
	now := r.o.Now()
	bodies := make([][]byte, len(batch))
	for i, e := range batch {
		bodies[i] = Resource(e, r.o.Site, now)
	}
	if err := bw.WriteAuditEvents(ctx, bodies); err != nil {
		r.failed.Add(uint64(len(batch)))
		r.o.Logger.Error("audit events not stored", "error", outcome.As(err).Error(), "events", len(batch))
		return
	}
	r.written.Add(uint64(len(batch)))
}

func (r *Recorder) write(e Event) {
	ctx, cancel := context.WithTimeout(context.Background(), r.o.WriteTimeout)
	defer cancel()
	body := Resource(e, r.o.Site, r.o.Now())
	if err := r.o.Writer.WriteAuditEvent(ctx, body); err != nil {
		r.failed.Add(1)
		oe := outcome.As(err)
		// PHI-free: the error's code and detail only, never the event or
		// Diagnostics.
		r.o.Logger.Error("audit event not stored", "error", oe.Error(), "request_id", e.RequestID)
		return
	}
	r.written.Add(1)
}

// Close stops accepting events and waits until the queued ones are
// written or ctx ends.
func (r *Recorder) Close(ctx context.Context) error {
	r.mu.Lock()
	if !r.closed {
		r.closed = true
		close(r.queue)
	}
	r.mu.Unlock()
	done := make(chan struct{})
	go func() { r.wg.Wait(); close(done) }()
	select {
	case <-done:
		return nil
	case <-ctx.Done():
		return ctx.Err()
	}
}

// Stats returns the Recorder's counters.
func (r *Recorder) Stats() Stats {
	return Stats{Written: r.written.Load(), Failed: r.failed.Load(), Dropped: r.dropped.Load(), Queued: len(r.queue)}
}
