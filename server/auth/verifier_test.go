package auth_test

import (
	"context"
	"fmt"
	"net/http"
	"strings"
	"sync/atomic"
	"testing"
	"time"

	"github.com/casefhir/casefhir/fhir/outcome"
	"github.com/casefhir/casefhir/server/auth"
	"github.com/casefhir/casefhir/server/auth/authtest"
)

const aud = "https://fhir.example.org/fhir"

func newVerifier(t *testing.T, li *authtest.LocalIssuer) *auth.Verifier {
	t.Helper()
	v, err := auth.NewVerifier(context.Background(), auth.Config{Issuer: li.URL, Audience: aud})
	if err != nil {
		t.Fatalf("NewVerifier: %v", err)
	}
	return v
}

// check401 asserts err is a 401 login error with a Bearer challenge that
// has (or, with wantDesc "", lacks) an invalid_token error, and that
// nothing in it repeats the token.
func check401(t *testing.T, err error, token, wantDesc string) {
	t.Helper()
	if err == nil {
		t.Fatal("no error, want 401")
	}
	e := outcome.As(err)
	if e.Code != outcome.Login || e.HTTPStatus() != http.StatusUnauthorized {
		t.Fatalf("got %s (%d): %v, want login 401", e.Code, e.HTTPStatus(), err)
	}
	h := e.Header.Get("WWW-Authenticate")
	if !strings.HasPrefix(h, `Bearer realm="casefhir"`) {
		t.Errorf("WWW-Authenticate = %q", h)
	}
	if wantDesc == "" {
		if strings.Contains(h, "error=") {
			t.Errorf("WWW-Authenticate = %q, want no error attribute", h)
		}
	} else {
		if !strings.Contains(h, `error="invalid_token"`) || !strings.Contains(h, wantDesc) {
			t.Errorf("WWW-Authenticate = %q, want invalid_token mentioning %q", h, wantDesc)
		}
	}
	if token != "" {
		for _, s := range []string{e.Error(), h, e.Detail, e.Diagnostics} {
			if strings.Contains(s, token) {
				t.Errorf("error text contains the token")
			}
		}
		// The signature part alone must not leak either.
		if sig := token[strings.LastIndexByte(token, '.')+1:]; len(sig) > 8 && strings.Contains(e.Error()+h, sig) {
			t.Errorf("error text contains the token signature")
		}
	}
}

func TestVerifyLocalIssuer(t *testing.T) {
	li := authtest.NewLocalIssuer(t)
	v := newVerifier(t, li)
	ctx := context.Background()

	claims := li.Claims(aud)
	claims["scope"] = "patient/*.rs launch/patient openid fhirUser bogus"
	claims["patient"] = "p-1"
	claims["fhirUser"] = "https://fhir.example.org/fhir/Patient/p-1"
	claims["client_id"] = "my-app"
	tok := li.Mint(t, claims)
	p, err := v.Verify(ctx, "Bearer "+tok)
	if err != nil {
		t.Fatalf("Verify: %v", err)
	}
	if p.Subject != "test-subject" || p.ClientID != "my-app" || p.Patient != "p-1" ||
		p.FHIRUser != "https://fhir.example.org/fhir/Patient/p-1" || p.Issuer != li.URL ||
		p.TokenID != claims["jti"] || p.RawScope != claims["scope"] || !p.Authenticated() || p.IsUnrestricted() {
		t.Errorf("principal = %+v", p)
	}
	if want := time.Unix(claims["exp"].(int64), 0); !p.Expiry.Equal(want) {
		t.Errorf("Expiry = %v, want %v", p.Expiry, want)
	}
	if len(p.Scopes) != 5 || len(p.ResourceScopes()) != 1 || !p.HasScope("launch/patient") {
		t.Errorf("scopes = %+v", p.Scopes)
	}
	if g, err := p.Allow(auth.Search, "Observation"); err != nil || g.Patient != "p-1" {
		t.Errorf("Allow = %+v, %v", g, err)
	}

	t.Run("azp and scp array", func(t *testing.T) {
		c := li.Claims(aud)
		delete(c, "client_id")
		delete(c, "scope")
		c["azp"] = "azp-client"
		c["scp"] = []string{"user/*.rs", "openid"}
		c["aud"] = []string{"other", aud}
		c["patient"] = 123
		p, err := v.Verify(ctx, "bearer "+li.Mint(t, c))
		if err != nil {
			t.Fatal(err)
		}
		if p.ClientID != "azp-client" || p.RawScope != "user/*.rs openid" || p.Patient != "123" {
			t.Errorf("principal = %+v", p)
		}
	})

	for _, alg := range []string{"RS384", "PS256", "ES256"} {
		t.Run("alg "+alg, func(t *testing.T) {
			if _, err := v.VerifyToken(ctx, li.MintWith(t, authtest.MintOptions{Alg: alg}, li.Claims(aud))); err != nil {
				t.Errorf("Verify(%s): %v", alg, err)
			}
		})
	}

	now := time.Now()
	edge := []struct {
		name   string
		opts   authtest.MintOptions
		change func(map[string]any)
		desc   string
	}{
		{name: "wrong audience", change: func(c map[string]any) { c["aud"] = "https://other.example.org/fhir" }, desc: "audience"},
		{name: "audience list without us", change: func(c map[string]any) { c["aud"] = []string{"a", "b"} }, desc: "audience"},
		{name: "no audience", change: func(c map[string]any) { delete(c, "aud") }, desc: "audience"},
		{name: "wrong issuer", change: func(c map[string]any) { c["iss"] = "https://evil.example.org" }, desc: "issuer"},
		{name: "expired", change: func(c map[string]any) { c["exp"] = now.Add(-time.Minute).Unix() }, desc: "expired"},
		{name: "no expiry", change: func(c map[string]any) { delete(c, "exp") }, desc: "expir"},
		{name: "not yet valid", change: func(c map[string]any) { c["nbf"] = now.Add(2 * time.Minute).Unix() }, desc: "not yet valid"},
		{name: "bad signature", opts: authtest.MintOptions{Tamper: true}, desc: "signature"},
		{name: "forged with a known kid", opts: authtest.MintOptions{Unpublished: true, KID: "rsa-1"}, desc: "signature"},
		{name: "unknown kid", opts: authtest.MintOptions{Unpublished: true}, desc: "signature"},
		{name: "no kid, unknown key", opts: authtest.MintOptions{Unpublished: true, KID: "-"}, desc: "signature"},
		{name: "alg none", opts: authtest.MintOptions{Alg: "none"}, desc: "algorithm"},
		{name: "alg HS256 with the public key", opts: authtest.MintOptions{Alg: "HS256"}, desc: "algorithm"},
		{name: "EC key under RS256 kid", opts: authtest.MintOptions{Alg: "ES256", KID: "rsa-1"}, desc: "signature"},
		{name: "crit header", opts: authtest.MintOptions{Header: map[string]any{"crit": []string{"exp"}}}, desc: "critical"},
		{name: "patient not an id", change: func(c map[string]any) { c["patient"] = "a/b" }, desc: "patient"},
		{name: "patient wrong type", change: func(c map[string]any) { c["patient"] = map[string]any{"x": 1} }, desc: "claims"},
	}
	for _, tt := range edge {
		t.Run(tt.name, func(t *testing.T) {
			c := li.Claims(aud)
			if tt.change != nil {
				tt.change(c)
			}
			tok := li.MintWith(t, tt.opts, c)
			_, err := v.Verify(ctx, "Bearer "+tok)
			check401(t, err, tok, tt.desc)
		})
	}

	t.Run("nbf within clock skew", func(t *testing.T) {
		c := li.Claims(aud)
		c["nbf"] = time.Now().Add(10 * time.Second).Unix()
		if _, err := v.VerifyToken(ctx, li.Mint(t, c)); err != nil {
			t.Errorf("Verify: %v", err)
		}
	})

	headers := []struct{ header, desc string }{
		{"", ""},
		{"   ", ""},
		{"Basic dXNlcjpwYXNz", ""},
		{"Bearer", ""},
		{"Bearer ", ""},
		{"Bearer a b", "malformed"},
		{"Bearer not-a-jwt", "malformed"},
		{"Bearer a.b", "malformed"},
		{"Bearer a.b.c", "malformed"},
		{"Bearer " + strings.Repeat("a", 20000), "malformed"},
	}
	for _, tt := range headers {
		name := tt.header
		if len(name) > 30 {
			name = name[:30]
		}
		t.Run("header "+name, func(t *testing.T) {
			_, err := v.Verify(ctx, tt.header)
			check401(t, err, "", tt.desc)
		})
	}
}

func TestVerifyKeyRotation(t *testing.T) {
	li := authtest.NewLocalIssuer(t)
	var skew atomic.Int64 // nanoseconds added to the clock
	clock := func() time.Time { return time.Now().Add(time.Duration(skew.Load())) }
	v, err := auth.NewVerifier(context.Background(), auth.Config{Issuer: li.URL, Audience: aud, Now: clock})
	if err != nil {
		t.Fatal(err)
	}
	ctx := context.Background()
	old := li.Mint(t, li.Claims(aud))
	if _, err := v.VerifyToken(ctx, old); err != nil {
		t.Fatal(err)
	}
	if _, err := v.VerifyToken(ctx, li.Mint(t, li.Claims(aud))); err != nil {
		t.Fatal(err)
	}
	if n := li.JWKSRequests(); n != 1 {
		t.Fatalf("JWKS fetched %d times for two tokens with a known key, want 1", n)
	}
	li.Rotate(t, "rsa-2", true)
	skew.Store(int64(11 * time.Second)) // past the minimum refresh interval
	if _, err := v.VerifyToken(ctx, li.Mint(t, li.Claims(aud))); err != nil {
		t.Fatalf("token with the rotated key: %v", err)
	}
	if n := li.JWKSRequests(); n != 2 {
		t.Errorf("JWKS fetched %d times, want a refetch for the unknown kid", n)
	}
	_, err = v.VerifyToken(ctx, old)
	check401(t, err, old, "signature")
}

// TestVerifyKeyRefreshThrottled checks that tokens with made-up key ids or
// forged signatures do not make the verifier fetch the JWKS each time.
func TestVerifyKeyRefreshThrottled(t *testing.T) {
	li := authtest.NewLocalIssuer(t)
	v := newVerifier(t, li)
	ctx := context.Background()
	if _, err := v.VerifyToken(ctx, li.Mint(t, li.Claims(aud))); err != nil {
		t.Fatal(err)
	}
	for i := range 20 {
		opts := authtest.MintOptions{Unpublished: true, KID: fmt.Sprintf("made-up-%d", i)}
		if i%2 == 1 {
			opts = authtest.MintOptions{Tamper: true}
		}
		tok := li.MintWith(t, opts, li.Claims(aud))
		_, err := v.VerifyToken(ctx, tok)
		check401(t, err, tok, "signature")
	}
	if n := li.JWKSRequests(); n > 2 {
		t.Errorf("JWKS fetched %d times for 20 bad tokens within the refresh interval, want at most 2", n)
	}
	if _, err := v.VerifyToken(ctx, li.Mint(t, li.Claims(aud))); err != nil {
		t.Errorf("a good token after the bad ones: %v", err)
	}
}

func TestVerifyIssuerDown(t *testing.T) {
	li := authtest.NewLocalIssuer(t)
	v := newVerifier(t, li)
	tok := li.Mint(t, li.Claims(aud))
	li.Close()
	_, err := v.VerifyToken(context.Background(), tok)
	if e := outcome.As(err); err == nil || e.Code != outcome.Transient || e.HTTPStatus() != http.StatusServiceUnavailable {
		t.Fatalf("Verify with the issuer down = %v, want 503 transient", err)
	}
}

func TestNewVerifierErrors(t *testing.T) {
	li := authtest.NewLocalIssuer(t)
	ctx := context.Background()
	bad := []auth.Config{
		{Audience: aud},
		{Issuer: li.URL},
		{Issuer: "ftp://x", Audience: aud},
		{Issuer: li.URL, Audience: aud, Algorithms: []string{"HS256"}},
		{Issuer: li.URL, Audience: aud, Algorithms: []string{"none"}},
		{Issuer: li.URL + "/nothing-here", Audience: aud},
		{Issuer: "http://127.0.0.1:1", Audience: aud},
	}
	for _, c := range bad {
		if _, err := auth.NewVerifier(ctx, c); err == nil {
			t.Errorf("NewVerifier(%+v) succeeded", c)
		}
	}
	li.SetDiscovery("issuer", "https://someone-else.example.org")
	if _, err := auth.NewVerifier(ctx, auth.Config{Issuer: li.URL, Audience: aud}); err == nil {
		t.Error("NewVerifier accepted a discovery document naming another issuer")
	}
}

func TestVerifyAlgorithmAllowList(t *testing.T) {
	li := authtest.NewLocalIssuer(t)
	v, err := auth.NewVerifier(context.Background(), auth.Config{Issuer: li.URL, Audience: aud, Algorithms: []string{"ES256"}})
	if err != nil {
		t.Fatal(err)
	}
	tok := li.Mint(t, li.Claims(aud))
	_, err = v.VerifyToken(context.Background(), tok)
	check401(t, err, tok, "algorithm")
	if _, err := v.VerifyToken(context.Background(), li.MintWith(t, authtest.MintOptions{Alg: "ES256"}, li.Claims(aud))); err != nil {
		t.Error(err)
	}
}
