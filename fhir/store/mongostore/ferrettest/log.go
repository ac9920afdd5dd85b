package ferrettest

import (
	"context"
	"log/slog"
	"strings"
)

// warnLogger returns a logger passing on only warn-and-above records to l
// (FerretDB logs every connection and command at lower levels), minus
// FerretDB's dumps of failed command responses: it logs every non-ok
// response whole at warn level, and error messages can quote stored values
// (a duplicate key error quotes the key), so they could carry PHI. The
// store translates those errors itself.
func warnLogger(l *slog.Logger) *slog.Logger {
	if l == nil {
		return slog.New(slog.DiscardHandler)
	}
	return slog.New(minLevel{h: l.Handler(), min: slog.LevelWarn})
}

type minLevel struct {
	h   slog.Handler
	min slog.Level
	// ops are the WithAttrs/WithGroup calls made on this handler, applied
	// to h only when a record is actually handled: FerretDB derives a
	// logger per connection and command, and nearly all of their records
	// are below min, so eager WithAttrs (which pre-formats) is wasted work.
	ops []logOp
}

// logOp is one deferred WithAttrs (attrs) or WithGroup (group) call.
type logOp struct {
	attrs []slog.Attr
	group string
}

func (m minLevel) Enabled(ctx context.Context, l slog.Level) bool {
	return l >= m.min && m.h.Enabled(ctx, l)
}

func (m minLevel) Handle(ctx context.Context, r slog.Record) error {
	if isWireDump(r.Message) {
		return nil
	}
	h := m.h
	for _, op := range m.ops {
		if op.attrs != nil {
			h = h.WithAttrs(op.attrs)
		} else {
			h = h.WithGroup(op.group)
		}
	}
	return h.Handle(ctx, r)
}

// isWireDump reports whether msg is one of FerretDB's wire message dumps.
func isWireDump(msg string) bool {
	for _, p := range []string{"Response header:", "Response message:", "Proxy response header:", "Proxy response message:",
		"Request header:", "Request message:"} {
		if strings.HasPrefix(msg, p) {
			return true
		}
	}
	return false
}

func (m minLevel) WithAttrs(as []slog.Attr) slog.Handler {
	if len(as) == 0 {
		return m
	}
	return minLevel{h: m.h, min: m.min, ops: append(m.ops[:len(m.ops):len(m.ops)], logOp{attrs: as})}
}

func (m minLevel) WithGroup(name string) slog.Handler {
	if name == "" {
		return m
	}
	return minLevel{h: m.h, min: m.min, ops: append(m.ops[:len(m.ops):len(m.ops)], logOp{group: name})}
}
