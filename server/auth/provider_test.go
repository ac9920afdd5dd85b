package auth_test

import (
	"context"
	"encoding/json"
	"slices"
	"strings"
	"testing"

	"github.com/casefhir/casefhir/server/auth"
	"github.com/casefhir/casefhir/server/auth/authtest"
)

// TestVerifyOIDCProvider verifies tokens issued by a real OpenID provider
// (oidc-provider) through client_credentials with private_key_jwt and
// client_secret_post.
func TestVerifyOIDCProvider(t *testing.T) {
	const other = "https://elsewhere.example.org/fhir"
	prov := authtest.StartProvider(t, authtest.ProviderOptions{
		Audience:       aud,
		OtherAudiences: []string{other},
		Clients: []authtest.Client{
			{ID: "insurer"},
			{ID: "patient-app", Claims: map[string]any{"patient": "p123", "fhirUser": "Patient/p123"}},
			{ID: "clinician-app", Secret: "a-long-enough-client-secret-for-hs-algorithms-0123456789",
				Claims: map[string]any{"fhirUser": "Practitioner/7"}},
			{ID: "limited", Scope: "system/Coverage.rs"},
		},
	})
	ctx := context.Background()
	v, err := auth.NewVerifier(ctx, auth.Config{Issuer: prov.Issuer, Audience: aud})
	if err != nil {
		t.Fatalf("NewVerifier: %v", err)
	}

	t.Run("backend services", func(t *testing.T) {
		tok := prov.Token(t, "insurer", "system/*.rs system/Coverage.cud system/Task.cruds")
		p, err := v.Verify(ctx, "Bearer "+tok)
		if err != nil {
			t.Fatalf("Verify: %v", err)
		}
		if p.ClientID != "insurer" || p.Subject != "insurer" || p.Issuer != prov.Issuer || p.TokenID == "" || p.Expiry.IsZero() {
			t.Errorf("principal = %+v", p)
		}
		if p.RawScope != "system/*.rs system/Coverage.cud system/Task.cruds" {
			t.Errorf("scope = %q", p.RawScope)
		}
		if g, err := p.Allow(auth.Search, "EpisodeOfCare"); err != nil || !g.Unrestricted() || g.Context != auth.SystemContext {
			t.Errorf("search EpisodeOfCare: %+v, %v", g, err)
		}
		if _, err := p.Allow(auth.Create, "Coverage"); err != nil {
			t.Errorf("create Coverage: %v", err)
		}
		if _, err := p.Allow(auth.Update, "EpisodeOfCare"); err == nil || !strings.Contains(err.Error(), "system/EpisodeOfCare.u") {
			t.Errorf("update EpisodeOfCare: %v, want forbidden naming system/EpisodeOfCare.u", err)
		}
	})

	t.Run("patient context and granular scopes", func(t *testing.T) {
		tok := prov.Token(t, "patient-app", "patient/Observation.rs?category=laboratory patient/Condition.rs launch/patient")
		p, err := v.Verify(ctx, "Bearer "+tok)
		if err != nil {
			t.Fatalf("Verify: %v", err)
		}
		if p.Patient != "p123" || p.FHIRUser != "Patient/p123" || p.ClientID != "patient-app" {
			t.Errorf("principal = %+v", p)
		}
		g, err := p.Allow(auth.Search, "Observation")
		if err != nil || g.Patient != "p123" || len(g.Restrictions) != 1 || g.Restrictions[0][0] != (auth.Param{Name: "category", Value: "laboratory"}) {
			t.Errorf("search Observation: %+v, %v", g, err)
		}
		if !p.HasScope("launch/patient") {
			t.Errorf("scopes = %q", p.RawScope)
		}
	})

	t.Run("client_secret_post and v1 scopes", func(t *testing.T) {
		tok := prov.Token(t, "clinician-app", "user/CarePlan.read user/Task.write")
		p, err := v.Verify(ctx, "Bearer "+tok)
		if err != nil {
			t.Fatalf("Verify: %v", err)
		}
		if p.FHIRUser != "Practitioner/7" || p.Patient != "" {
			t.Errorf("principal = %+v", p)
		}
		if !p.Can(auth.Search, "CarePlan") || p.Can(auth.Update, "CarePlan") || !p.Can(auth.Delete, "Task") || p.Can(auth.Read, "Task") {
			t.Error("v1 scope decisions wrong")
		}
	})

	t.Run("client scope allow list", func(t *testing.T) {
		tr, err := prov.RequestToken(ctx, "limited", "system/Coverage.rs system/*.cruds", "")
		if err != nil {
			t.Fatal(err)
		}
		p, err := v.VerifyToken(ctx, tr.AccessToken)
		if err != nil {
			t.Fatal(err)
		}
		if p.RawScope != "system/Coverage.rs" || p.Can(auth.Read, "Patient") {
			t.Errorf("scope = %q", p.RawScope)
		}
	})

	t.Run("token for another server", func(t *testing.T) {
		tr, err := prov.RequestToken(ctx, "insurer", "system/*.rs", other)
		if err != nil {
			t.Fatal(err)
		}
		_, err = v.VerifyToken(ctx, tr.AccessToken)
		check401(t, err, tr.AccessToken, "audience")
	})

	t.Run("smart configuration", func(t *testing.T) {
		var doc map[string]any
		if err := json.Unmarshal(auth.DiscoveryDocument(v.Metadata(), auth.SMARTConfig{}), &doc); err != nil {
			t.Fatal(err)
		}
		if doc["issuer"] != prov.Issuer || doc["token_endpoint"] != prov.TokenEndpoint || doc["jwks_uri"] == nil {
			t.Errorf("document = %v", doc)
		}
		caps := strings.Fields(strings.Trim(strings.ReplaceAll(jsonString(doc["capabilities"]), ",", " "), "[]"))
		for _, c := range []string{`"client-confidential-asymmetric"`, `"client-confidential-symmetric"`, `"permission-v2"`} {
			if !slices.Contains(caps, c) {
				t.Errorf("capabilities %v lack %s", caps, c)
			}
		}
	})
}

// TestOIDCProviderES256 checks tokens signed with ES256 by the provider.
func TestOIDCProviderES256(t *testing.T) {
	prov := authtest.StartProvider(t, authtest.ProviderOptions{
		AccessTokenAlg: "ES256",
		Clients:        []authtest.Client{{ID: "svc"}},
	})
	v, err := auth.NewVerifier(context.Background(), auth.Config{Issuer: prov.Issuer, Audience: prov.Audience})
	if err != nil {
		t.Fatal(err)
	}
	tok := prov.Token(t, "svc", "system/Patient.rs")
	if hdr := tok[:strings.IndexByte(tok, '.')]; hdr == "" {
		t.Fatal("not a JWT")
	}
	p, err := v.VerifyToken(context.Background(), tok)
	if err != nil {
		t.Fatal(err)
	}
	if !p.Can(auth.Read, "Patient") {
		t.Error("system/Patient.rs does not allow read")
	}
}

func jsonString(v any) string {
	b, _ := json.Marshal(v)
	return string(b)
}
