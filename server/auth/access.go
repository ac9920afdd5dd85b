package auth

import (
	"fmt"
	"slices"
	"strings"

	"github.com/casefhir/casefhir/fhir/outcome"
)

// Action is what a request does to a resource type, in SMART v2 terms.
type Action uint8

// The actions. A read, a vread and a history read are Read; a search
// (including _include/_revinclude targets) is Search.
const (
	Create Action = iota + 1
	Read
	Update
	Delete
	Search
)

// Perm returns the permission the action needs.
func (a Action) Perm() Perm {
	switch a {
	case Create:
		return PermCreate
	case Read:
		return PermRead
	case Update:
		return PermUpdate
	case Delete:
		return PermDelete
	case Search:
		return PermSearch
	}
	return 0
}

// String returns "create", "read", "update", "delete" or "search".
func (a Action) String() string {
	switch a {
	case Create:
		return "create"
	case Read:
		return "read"
	case Update:
		return "update"
	case Delete:
		return "delete"
	case Search:
		return "search"
	}
	return "unknown"
}

// Grant is a positive access decision and the limits that come with it.
//
// The caller enforces the limits:
//   - Patient != "": only resources in that patient's compartment may be
//     touched (outside it: read answers 404, search leaves them out, writes
//     may not create or move resources out of it).
//   - Restrictions non-empty: a resource must match at least one of the
//     sets (OR between sets); within a set every parameter must match (AND),
//     with the set's parameters applied as FHIR search parameters of Type.
//     A parameter the type does not define matches nothing.
//
// A zero Patient and empty Restrictions mean unrestricted access.
type Grant struct {
	Action Action
	// Type is the resource type asked for.
	Type string
	// Context is the scope context that granted access (system, user or
	// patient); empty for an unrestricted principal (auth off).
	Context Context
	// Patient is the id of the patient whose compartment bounds the access
	// ("" when no compartment restriction applies).
	Patient string
	// Restrictions are the granular scope restrictions (OR of AND-sets).
	Restrictions [][]Param
}

// Unrestricted reports whether the grant has no compartment and no
// granular restriction.
func (g Grant) Unrestricted() bool { return g.Patient == "" && len(g.Restrictions) == 0 }

// AuditEventType is the resource type of the audit trail.
const AuditEventType = "AuditEvent"

// Allow decides whether p may perform action on resources of type typ.
//
// Only Resource scopes count; a patient/ scope counts only when the token
// has a patient claim. When a user/ or system/ scope grants the action,
// the patient/ scopes are not consulted (the wider context wins) and no
// compartment restriction applies. Among the granting scopes of the chosen
// context, one without restrictions makes the grant unrestricted;
// otherwise the restrictions of all of them are returned (OR).
//
// The audit trail is special: AuditEvents are granted only by scopes that
// name AuditEvent explicitly in the user/ or system/ context (e.g.
// system/AuditEvent.rs; wildcards and patient/ scopes never reach it), and
// they are never updated or deleted by a token holder.
//
// A nil or anonymous principal gets a 401 login error; a principal
// without a granting scope gets a 403 forbidden error naming the scope
// it lacks. A principal made by Unrestricted is allowed everything.
func (p *Principal) Allow(action Action, typ string) (Grant, error) {
	if p == nil || !p.authenticated {
		return Grant{}, missingToken(realm)
	}
	need := action.Perm()
	if need == 0 || typ == "" {
		return Grant{}, outcome.Errorf(outcome.Exception, "auth: invalid access request (action %d)", action).WithOp("auth.Allow")
	}
	if p.unrestricted {
		return Grant{Action: action, Type: typ}, nil
	}
	var (
		wide, narrow             bool
		wideCtx                  Context
		wideRestr, narrowRestr   [][]Param
		wideUnres, narrowUnres   bool
		sawPatientWithoutContext bool
	)
	audit := typ == AuditEventType
	if audit && (action == Update || action == Delete) {
		return Grant{}, outcome.New(outcome.Forbidden, "the audit trail is append-only: AuditEvents cannot be updated or deleted").
			WithOp("auth.Allow")
	}
	for _, s := range p.Scopes {
		if s.Kind != Resource || !s.Perms.Has(need) || (s.Type != "*" && s.Type != typ) {
			continue
		}
		if audit && (s.Type != AuditEventType || s.Context == PatientContext) {
			continue // the audit trail needs an explicit user/ or system/ AuditEvent scope
		}
		switch s.Context {
		case SystemContext, UserContext:
			if !wide || s.Context == SystemContext {
				wideCtx = s.Context
			}
			wide = true
			if len(s.Restrictions) == 0 {
				wideUnres = true
			} else {
				wideRestr = append(wideRestr, s.Restrictions)
			}
		case PatientContext:
			if p.Patient == "" {
				sawPatientWithoutContext = true
				continue
			}
			narrow = true
			if len(s.Restrictions) == 0 {
				narrowUnres = true
			} else {
				narrowRestr = append(narrowRestr, s.Restrictions)
			}
		}
	}
	switch {
	case wide:
		g := Grant{Action: action, Type: typ, Context: wideCtx}
		if !wideUnres {
			g.Restrictions = dedupe(wideRestr)
		}
		return g, nil
	case narrow:
		g := Grant{Action: action, Type: typ, Context: PatientContext, Patient: p.Patient}
		if !narrowUnres {
			g.Restrictions = dedupe(narrowRestr)
		}
		return g, nil
	}
	return Grant{}, p.forbidden(action, typ, sawPatientWithoutContext)
}

// Can reports whether Allow would grant action on typ (with or without
// limits).
func (p *Principal) Can(action Action, typ string) bool {
	_, err := p.Allow(action, typ)
	return err == nil
}

// forbidden builds the 403 naming the scope that would have granted the
// action, in the context the principal's scopes use.
func (p *Principal) forbidden(action Action, typ string, patientWithoutContext bool) error {
	ctx := p.scopeContext()
	need := fmt.Sprintf("%s/%s.%s", ctx, typ, action.Perm())
	var e *outcome.Error
	if typ == AuditEventType && ctx == PatientContext {
		ctx = UserContext
		need = fmt.Sprintf("%s/%s.%s", ctx, typ, action.Perm())
	}
	if patientWithoutContext {
		e = outcome.Errorf(outcome.Forbidden,
			"scope %s is not usable: the access token has no patient context (patient claim)", need)
	} else {
		e = outcome.Errorf(outcome.Forbidden, "missing scope %s (needed to %s %s)", need, action, typ)
	}
	// RFC 6750 section 3.1: insufficient_scope with the scope needed.
	return e.WithOp("auth.Allow").WithHeader("WWW-Authenticate",
		fmt.Sprintf(`Bearer realm=%q, error="insufficient_scope", scope=%q`, realm, need))
}

// scopeContext picks the context used to name a missing scope: the widest
// context among the principal's resource scopes, else user when it has a
// fhirUser, patient when it has a patient claim, and system otherwise.
func (p *Principal) scopeContext() Context {
	var has [3]bool
	for _, s := range p.Scopes {
		if s.Kind != Resource {
			continue
		}
		switch s.Context {
		case SystemContext:
			has[0] = true
		case UserContext:
			has[1] = true
		case PatientContext:
			has[2] = true
		}
	}
	switch {
	case has[0]:
		return SystemContext
	case has[1]:
		return UserContext
	case has[2]:
		return PatientContext
	case p.Patient != "":
		return PatientContext
	case p.FHIRUser != "":
		return UserContext
	}
	return SystemContext
}

// dedupe drops repeated restriction sets (same parameters in any order).
func dedupe(sets [][]Param) [][]Param {
	seen := make(map[string]bool, len(sets))
	out := make([][]Param, 0, len(sets))
	for _, set := range sets {
		keys := make([]string, len(set))
		for i, p := range set {
			keys[i] = p.Name + "\x00" + p.Value
		}
		slices.Sort(keys)
		k := strings.Join(keys, "\x01")
		if seen[k] {
			continue
		}
		seen[k] = true
		out = append(out, slices.Clone(set))
	}
	return out
}
