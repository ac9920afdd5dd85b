package interaction

import "net/url"

// Action is what a request does to resources of a type, in SMART terms.
type Action string

// Actions.
const (
	ActionCreate Action = "c"
	ActionRead   Action = "r"
	ActionUpdate Action = "u"
	ActionDelete Action = "d"
	ActionSearch Action = "s"
)

// Access decides what a caller may do. Implementations live in server/auth.
type Access interface {
	// Allow returns nil when the caller may perform action on resources of
	// typ, else a 403 *outcome.Error naming the missing scope.
	Allow(action Action, typ string) error
	// Compartment returns the patient id whose compartment bounds the
	// caller for action on typ; ok is false when the caller is not bounded.
	Compartment(action Action, typ string) (patientID string, ok bool)
	// Restrictions returns the granular scope restrictions for action on
	// typ: OR-ed sets of search parameters a resource must match (nil: none).
	Restrictions(action Action, typ string) []url.Values
	// Subject identifies the caller for logs and audit (PHI-free).
	Subject() string
}

// allow checks r.Access, if any.
func allow(r *Request, a Action, typ string) error {
	if r.Access == nil {
		return nil
	}
	return r.Access.Allow(a, typ)
}
