package middleware

import "context"

// WithRequestID returns ctx carrying id.
func WithRequestID(ctx context.Context, id string) context.Context {
	return context.WithValue(ctx, requestIDKey{}, id)
}

// RequestIDFrom returns the request id in ctx, or "".
func RequestIDFrom(ctx context.Context) string {
	s, _ := ctx.Value(requestIDKey{}).(string)
	return s
}

// requestInfo is what handlers tell the access log about a request.
type requestInfo struct {
	subject string
}

type requestInfoKey struct{}

// SetSubject records the authenticated token subject of the request in ctx
// (one passed through AccessLog) for its access log line.
func SetSubject(ctx context.Context, subject string) {
	if ri, ok := ctx.Value(requestInfoKey{}).(*requestInfo); ok {
		ri.subject = subject
	}
}
