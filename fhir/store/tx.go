package store

import "context"

// Write is one version change inside an atomic group of writes.
//
// Prev nil creates Next (VersionID 1; the resource must not exist at all,
// not even as a tombstone). Otherwise Next follows Prev
// (Next.VersionID == Prev.VersionID+1) and Prev must still be the current
// version when the group is applied. A delete is a Next with Deleted set.
type Write struct {
	Next, Prev *Resource
}

// Transactional is implemented by stores that can apply several writes
// all-or-nothing, as https://hl7.org/fhir/R4/http.html#transaction requires.
//
// Apply stores every write or none of them, also across a crash of the
// process: once Apply returns nil all writes are durable; when it returns
// an error (or the process dies before it returns) either none of the
// writes is visible, or, when the crash came after the commit point, all
// of them are once the store is opened again.
//
// Each resource may appear at most once in writes. When a Prev is no longer
// current (a concurrent write won) or a create's resource already exists,
// Apply fails with outcome.Conflict and writes nothing visible; the error's
// cause is a *ConflictError naming the resource (see ConflictKey). Concurrent Apply calls and
// single writes on the same resources never lose an update.
type Transactional interface {
	Apply(ctx context.Context, writes []Write) error
}
