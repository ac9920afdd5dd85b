package auth

import (
	"net/url"
	"strings"

	"github.com/casefhir/casefhir/fhir"
)

// Context is the context part of a SMART resource scope: whose data the
// scope is about.
type Context string

// The SMART scope contexts.
const (
	// PatientContext scopes reach only the compartment of the token's
	// patient claim.
	PatientContext Context = "patient"
	// UserContext scopes act for the signed-in user (the fhirUser claim).
	UserContext Context = "user"
	// SystemContext scopes are for back-end services (SMART Backend Services).
	SystemContext Context = "system"
)

// Kind classifies a scope token.
type Kind uint8

// Scope kinds. Unknown scopes grant nothing.
const (
	// Unknown is any scope casefhir does not understand; it is kept for
	// reporting and never grants anything.
	Unknown Kind = iota
	// Resource is a SMART clinical-data scope: <context>/<Type|*>.<perms>[?restrictions].
	Resource
	// OpenID is "openid".
	OpenID
	// FHIRUser is "fhirUser".
	FHIRUser
	// Profile is "profile" (SMART v1 identity scope).
	Profile
	// Launch is "launch" (EHR launch).
	Launch
	// LaunchContext is "launch/<name>", e.g. launch/patient, launch/encounter.
	LaunchContext
	// OfflineAccess is "offline_access".
	OfflineAccess
	// OnlineAccess is "online_access".
	OnlineAccess
)

var kindNames = [...]string{"unknown", "resource", "openid", "fhirUser", "profile", "launch", "launch-context", "offline_access", "online_access"}

// String returns a short name for k.
func (k Kind) String() string {
	if int(k) < len(kindNames) {
		return kindNames[k]
	}
	return "unknown"
}

// Perm is a set of SMART v2 permissions (c, r, u, d, s).
type Perm uint8

// The SMART v2 permissions, in the order they must appear in a scope.
const (
	PermCreate Perm = 1 << iota
	PermRead
	PermUpdate
	PermDelete
	PermSearch

	// PermAll is cruds (v1 "*").
	PermAll = PermCreate | PermRead | PermUpdate | PermDelete | PermSearch
)

const permLetters = "cruds"

// String returns the permission letters in canonical order, e.g. "rs".
func (p Perm) String() string {
	var b [5]byte
	n := 0
	for i := 0; i < len(permLetters); i++ {
		if p&(1<<i) != 0 {
			b[n] = permLetters[i]
			n++
		}
	}
	return string(b[:n])
}

// Has reports whether p includes every permission in q.
func (p Perm) Has(q Perm) bool { return q != 0 && p&q == q }

// Param is one granular restriction: a search parameter name and value,
// exactly as written in the scope (after URL decoding).
type Param struct {
	Name  string
	Value string
}

// Scope is one parsed scope token.
//
// Only Resource scopes grant access to data. For them Context, Type,
// Perms and Version are set, and Restrictions holds the granular
// "?name=value&..." restrictions (all must hold: AND).
type Scope struct {
	// Raw is the scope token as received.
	Raw  string
	Kind Kind
	// Context is patient, user or system (Resource scopes only).
	Context Context
	// Type is a FHIR resource type or "*" (Resource scopes only).
	Type string
	// Perms are the granted permissions (Resource scopes only).
	Perms Perm
	// Version is 1 for read/write/* scopes and 2 for c?r?u?d?s? scopes.
	Version int
	// Restrictions are the granular restrictions of a v2 scope; empty
	// means none.
	Restrictions []Param
	// Launch is the name after "launch/" (LaunchContext scopes only).
	Launch string
}

// String returns the scope in SMART v2 form for Resource scopes
// (e.g. "patient/Observation.rs?category=laboratory") and Raw otherwise.
func (s Scope) String() string {
	if s.Kind != Resource {
		return s.Raw
	}
	var b strings.Builder
	b.WriteString(string(s.Context))
	b.WriteByte('/')
	b.WriteString(s.Type)
	b.WriteByte('.')
	b.WriteString(s.Perms.String())
	for i, p := range s.Restrictions {
		if i == 0 {
			b.WriteByte('?')
		} else {
			b.WriteByte('&')
		}
		b.WriteString(url.QueryEscape(p.Name))
		b.WriteByte('=')
		b.WriteString(url.QueryEscape(p.Value))
	}
	return b.String()
}

// maxScopeLen bounds one scope token; longer tokens are Unknown.
const maxScopeLen = 1024

// ParseScope parses one scope token. It never fails: anything that is not
// well-formed SMART syntax (v1 or v2), names an unknown resource type,
// mixes v1 permissions with granular restrictions, or is otherwise odd
// comes back as Kind Unknown, which grants nothing. Parsing never widens
// a scope.
func ParseScope(raw string) Scope {
	s := Scope{Raw: raw}
	if raw == "" || len(raw) > maxScopeLen || !isScopeToken(raw) {
		return s
	}
	switch raw {
	case "openid":
		s.Kind = OpenID
		return s
	case "fhirUser":
		s.Kind = FHIRUser
		return s
	case "profile":
		s.Kind = Profile
		return s
	case "launch":
		s.Kind = Launch
		return s
	case "offline_access":
		s.Kind = OfflineAccess
		return s
	case "online_access":
		s.Kind = OnlineAccess
		return s
	}
	if name, ok := strings.CutPrefix(raw, "launch/"); ok {
		if isLaunchName(name) {
			s.Kind = LaunchContext
			s.Launch = name
		}
		return s
	}
	ctx, rest, ok := strings.Cut(raw, "/")
	if !ok {
		return s
	}
	switch Context(ctx) {
	case PatientContext, UserContext, SystemContext:
	default:
		return s
	}
	rest, query, hasQuery := strings.Cut(rest, "?")
	typ, perm, ok := strings.Cut(rest, ".")
	if !ok || (typ != "*" && !fhir.IsResourceType(typ)) {
		return s
	}
	perms, version, ok := parsePerms(perm)
	if !ok {
		return s
	}
	var restrictions []Param
	if hasQuery {
		if version != 2 {
			return s // granular restrictions exist only in SMART v2
		}
		restrictions, ok = parseRestrictions(query)
		if !ok {
			return s
		}
	}
	s.Kind = Resource
	s.Context = Context(ctx)
	s.Type = typ
	s.Perms = perms
	s.Version = version
	s.Restrictions = restrictions
	return s
}

// parsePerms parses the permission part: v1 read / write / *, or v2
// c?r?u?d?s? (non-empty, letters in that order, none repeated).
func parsePerms(p string) (Perm, int, bool) {
	switch p {
	case "read":
		return PermRead | PermSearch, 1, true
	case "write":
		return PermCreate | PermUpdate | PermDelete, 1, true
	case "*":
		return PermAll, 1, true
	case "":
		return 0, 0, false
	}
	var perms Perm
	next := 0 // index in permLetters of the next allowed letter
	for i := 0; i < len(p); i++ {
		j := strings.IndexByte(permLetters[next:], p[i])
		if j < 0 {
			return 0, 0, false
		}
		next += j
		perms |= 1 << next
		next++
	}
	return perms, 2, true
}

// parseRestrictions parses "name=value&name=value". Every pair needs a
// non-empty name and value; names are search parameter names, possibly
// with a modifier or chain (e.g. "code:in", "subject:Patient.name").
func parseRestrictions(q string) ([]Param, bool) {
	if q == "" {
		return nil, false
	}
	var out []Param
	for part := range strings.SplitSeq(q, "&") {
		k, v, ok := strings.Cut(part, "=")
		if !ok {
			return nil, false
		}
		name, err := url.QueryUnescape(k)
		if err != nil || !isParamName(name) {
			return nil, false
		}
		value, err := url.QueryUnescape(v)
		if err != nil || value == "" || strings.ContainsAny(value, "\x00\r\n") {
			return nil, false
		}
		out = append(out, Param{Name: name, Value: value})
	}
	return out, true
}

// isScopeToken reports whether s is made of RFC 6749 scope-token
// characters: %x21 / %x23-5B / %x5D-7E.
func isScopeToken(s string) bool {
	for i := 0; i < len(s); i++ {
		c := s[i]
		if c < 0x21 || c > 0x7e || c == '"' || c == '\\' {
			return false
		}
	}
	return true
}

func isParamName(s string) bool {
	if s == "" || len(s) > 128 {
		return false
	}
	for i := 0; i < len(s); i++ {
		c := s[i]
		switch {
		case c >= 'a' && c <= 'z', c >= 'A' && c <= 'Z', c >= '0' && c <= '9':
		case c == '-', c == '_', c == '.', c == ':':
		default:
			return false
		}
	}
	return true
}

func isLaunchName(s string) bool {
	if s == "" || len(s) > 64 {
		return false
	}
	for i := 0; i < len(s); i++ {
		c := s[i]
		if !(c >= 'a' && c <= 'z' || c >= 'A' && c <= 'Z' || c >= '0' && c <= '9' || c == '-' || c == '_') {
			return false
		}
	}
	return true
}

// maxScopes bounds how many scope tokens are parsed from one token.
const maxScopes = 512

// ParseScopes parses a space-separated scope string (RFC 6749 section 3.3).
// Empty tokens are skipped; at most 512 tokens are kept.
func ParseScopes(s string) []Scope {
	var out []Scope
	for tok := range strings.FieldsSeq(s) {
		if len(out) == maxScopes {
			break
		}
		out = append(out, ParseScope(tok))
	}
	return out
}
