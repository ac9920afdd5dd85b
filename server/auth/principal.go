package auth

import (
	"slices"
	"time"
)

// Principal is who a request acts for, as established by a verified
// access token (or by the server's auth mode for Anonymous and
// Unrestricted). It holds no token material beyond identifiers.
type Principal struct {
	// Subject is the token's sub claim.
	Subject string
	// ClientID is the OAuth client (client_id claim, else azp).
	ClientID string
	// FHIRUser is the fhirUser claim (a reference to a Practitioner,
	// Patient, RelatedPerson or Person), if any.
	FHIRUser string
	// Patient is the patient claim: the id of the patient in context.
	Patient string
	// Scopes are the parsed scopes; unknown ones are kept with Kind Unknown.
	Scopes []Scope
	// RawScope is the scope claim as received (space separated).
	RawScope string
	// Issuer is the token's iss claim.
	Issuer string
	// TokenID is the token's jti claim, if any.
	TokenID string
	// Expiry is the token's exp claim.
	Expiry time.Time

	authenticated bool
	unrestricted  bool
}

// Anonymous returns the principal of a request without a token. It is
// allowed nothing: Allow answers 401, so a public endpoint must not call
// Allow at all.
func Anonymous() *Principal { return &Principal{} }

// Unrestricted returns the principal used when auth is off (--auth=off):
// Allow grants every action on every type with no limits.
func Unrestricted() *Principal {
	return &Principal{Subject: "anonymous", authenticated: true, unrestricted: true}
}

// Authenticated reports whether p comes from a verified token or is the
// auth-off principal.
func (p *Principal) Authenticated() bool { return p != nil && p.authenticated }

// IsUnrestricted reports whether p is the auth-off principal.
func (p *Principal) IsUnrestricted() bool { return p != nil && p.unrestricted }

// HasScope reports whether the token carries the exact scope token s.
func (p *Principal) HasScope(s string) bool {
	if p == nil {
		return false
	}
	return slices.ContainsFunc(p.Scopes, func(x Scope) bool { return x.Raw == s })
}

// ResourceScopes returns p's Resource scopes (those that can grant access).
func (p *Principal) ResourceScopes() []Scope {
	if p == nil {
		return nil
	}
	var out []Scope
	for _, s := range p.Scopes {
		if s.Kind == Resource {
			out = append(out, s)
		}
	}
	return out
}
