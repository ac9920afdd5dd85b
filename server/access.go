package server

import (
	"context"
	"fmt"
	"net/url"

	"github.com/gin-gonic/gin"

	"github.com/casefhir/casefhir/server/auth"
	"github.com/casefhir/casefhir/server/interaction"
)

// accessor establishes who a request acts for.
type accessor interface {
	// authenticate verifies the request's credentials. A nil Access means
	// unrestricted (auth off).
	authenticate(c *gin.Context) (interaction.Access, error)
}

// openAccess builds the accessor for the configured auth mode.
func (s *Server) openAccess(ctx context.Context) error {
	if s.cfg.Auth == AuthOff {
		s.access = offAccess{}
		return nil
	}
	v, err := auth.NewVerifier(ctx, auth.Config{Issuer: s.cfg.OIDCIssuer, Audience: s.cfg.OIDCAudience})
	if err != nil {
		return fmt.Errorf("oidc issuer %s unreachable or invalid: %v", s.cfg.OIDCIssuer, err)
	}
	s.verifier = v
	s.smartDoc = auth.DiscoveryDocument(v.Metadata(), auth.SMARTConfig{EHRLaunch: true})
	s.access = smartAccess{v: v}
	return nil
}

type offAccess struct{}

func (offAccess) authenticate(*gin.Context) (interaction.Access, error) { return nil, nil }

type smartAccess struct{ v *auth.Verifier }

func (a smartAccess) authenticate(c *gin.Context) (interaction.Access, error) {
	p, err := a.v.Verify(c.Request.Context(), c.GetHeader("Authorization"))
	if err != nil {
		return nil, err
	}
	return principalAccess{p: p}, nil
}

// principalAccess adapts a verified SMART principal to interaction.Access.
type principalAccess struct{ p *auth.Principal }

func authAction(a interaction.Action) auth.Action {
	switch a {
	case interaction.ActionCreate:
		return auth.Create
	case interaction.ActionUpdate:
		return auth.Update
	case interaction.ActionDelete:
		return auth.Delete
	case interaction.ActionSearch:
		return auth.Search
	}
	return auth.Read
}

func (pa principalAccess) Allow(a interaction.Action, typ string) error {
	_, err := pa.p.Allow(authAction(a), typ)
	return err
}

func (pa principalAccess) Compartment(a interaction.Action, typ string) (string, bool) {
	g, err := pa.p.Allow(authAction(a), typ)
	if err != nil {
		// Not allowed at all: a token with a patient context stays bound
		// to it (callers that look without checking Allow first, e.g. a
		// conditional create's match with a create-only scope, must not
		// see other patients' resources).
		return pa.p.Patient, pa.p.Patient != ""
	}
	if g.Patient == "" {
		return "", false
	}
	return g.Patient, true
}

func (pa principalAccess) Restrictions(a interaction.Action, typ string) []url.Values {
	g, err := pa.p.Allow(authAction(a), typ)
	if err != nil || len(g.Restrictions) == 0 {
		return nil
	}
	out := make([]url.Values, 0, len(g.Restrictions))
	for _, set := range g.Restrictions {
		q := url.Values{}
		for _, prm := range set {
			q.Add(prm.Name, prm.Value)
		}
		out = append(out, q)
	}
	return out
}

func (pa principalAccess) Subject() string { return pa.p.Subject }

// Principal exposes the SMART principal (for audit).
func (pa principalAccess) Principal() *auth.Principal { return pa.p }
