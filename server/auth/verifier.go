package auth

import (
	"bytes"
	"context"
	"encoding/base64"
	"encoding/json"
	"errors"
	"fmt"
	"net/http"
	"slices"
	"strconv"
	"strings"
	"time"

	"github.com/coreos/go-oidc/v3/oidc"

	"github.com/casefhir/casefhir/fhir"
	"github.com/casefhir/casefhir/fhir/outcome"
)

// realm is the WWW-Authenticate realm of every challenge.
const realm = "casefhir"

// DefaultAlgorithms returns the JWS algorithms accepted when
// Config.Algorithms is empty: asymmetric RSA, RSA-PSS and ECDSA signatures.
func DefaultAlgorithms() []string {
	return []string{"RS256", "RS384", "RS512", "PS256", "PS384", "PS512", "ES256", "ES384", "ES512"}
}

// maxTokenLen bounds the size of an access token (bytes).
const maxTokenLen = 16 << 10

// Config configures a Verifier.
type Config struct {
	// Issuer is the OpenID Connect issuer URL (required). Its discovery
	// document must name the same issuer.
	Issuer string
	// Audience is the expected aud of access tokens (required): usually the
	// server's FHIR base URL.
	Audience string
	// HTTPClient fetches discovery and JWKS; nil means a client with a 10 s
	// timeout.
	HTTPClient *http.Client
	// Algorithms are the accepted JWS algorithms (default DefaultAlgorithms).
	// "none" and symmetric (HS*) algorithms are never accepted.
	Algorithms []string
	// ClockSkew is the leeway for nbf (default 30 s). exp has none.
	ClockSkew time.Duration
	// MinKeyRefresh is the shortest time between two fetches of the
	// issuer's JWKS (default 10 s): a token signed with an unknown key id
	// triggers a fetch only when the last one is at least this old.
	MinKeyRefresh time.Duration
	// Now is the clock (default time.Now).
	Now func() time.Time
}

// Validate checks c without any I/O.
func (c Config) Validate() error {
	if c.Issuer == "" {
		return outcome.New(outcome.Invalid, "auth: an OIDC issuer is required").WithOp("auth.Config")
	}
	if !strings.HasPrefix(c.Issuer, "https://") && !strings.HasPrefix(c.Issuer, "http://") {
		return outcome.New(outcome.Invalid, "auth: the OIDC issuer must be an http(s) URL").WithOp("auth.Config")
	}
	if c.Audience == "" {
		return outcome.New(outcome.Invalid, "auth: an access token audience is required").WithOp("auth.Config")
	}
	for _, a := range c.Algorithms {
		if !slices.Contains(DefaultAlgorithms(), a) {
			return outcome.Errorf(outcome.Invalid, "auth: JWS algorithm %q is not supported (asymmetric RS, PS and ES algorithms only)", a).WithOp("auth.Config")
		}
	}
	if c.ClockSkew < 0 || c.MinKeyRefresh < 0 {
		return outcome.New(outcome.Invalid, "auth: negative clock skew or key refresh interval").WithOp("auth.Config")
	}
	return nil
}

// Verifier checks SMART access tokens (JWTs) issued by one OpenID Connect
// issuer for one audience. It is safe for concurrent use.
type Verifier struct {
	cfg      Config
	algs     []string
	verifier *oidc.IDTokenVerifier
	meta     IssuerMetadata
}

// NewVerifier fetches the issuer's discovery document and returns a
// Verifier that checks tokens against the issuer's JWKS (fetched on first
// use and again, at most once per Config.MinKeyRefresh, whenever a token
// names a key id it does not know, so key rotation needs no restart).
func NewVerifier(ctx context.Context, cfg Config) (*Verifier, error) {
	if err := cfg.Validate(); err != nil {
		return nil, err
	}
	if cfg.HTTPClient == nil {
		cfg.HTTPClient = &http.Client{Timeout: 10 * time.Second}
	}
	if cfg.ClockSkew == 0 {
		cfg.ClockSkew = 30 * time.Second
	}
	if cfg.Now == nil {
		cfg.Now = time.Now
	}
	if cfg.MinKeyRefresh == 0 {
		cfg.MinKeyRefresh = 10 * time.Second
	}
	algs := cfg.Algorithms
	if len(algs) == 0 {
		algs = DefaultAlgorithms()
	}
	octx := oidc.ClientContext(ctx, cfg.HTTPClient)
	p, err := oidc.NewProvider(octx, cfg.Issuer)
	if err != nil {
		var mismatch *oidc.IssuerMismatchError
		if errors.As(err, &mismatch) {
			return nil, outcome.New(outcome.Invalid, "auth: the issuer's discovery document names a different issuer").WithOp("auth.NewVerifier")
		}
		return nil, outcome.Wrap(err, outcome.Transient, "auth.NewVerifier", "auth: OIDC discovery failed for the configured issuer")
	}
	var meta IssuerMetadata
	if err := p.Claims(&meta); err != nil {
		return nil, outcome.Wrap(err, outcome.Invalid, "auth.NewVerifier", "auth: the issuer's discovery document is not valid JSON")
	}
	if meta.JWKSURI == "" {
		return nil, outcome.New(outcome.Invalid, "auth: the issuer's discovery document has no jwks_uri").WithOp("auth.NewVerifier")
	}
	keys := newKeySet(meta.JWKSURI, cfg.HTTPClient, algs, cfg.MinKeyRefresh, cfg.Now)
	v := oidc.NewVerifier(cfg.Issuer, keys, &oidc.Config{
		ClientID:             cfg.Audience,
		SupportedSigningAlgs: slices.Clone(algs),
		Now:                  cfg.Now,
	})
	return &Verifier{cfg: cfg, algs: algs, verifier: v, meta: meta}, nil
}

// Issuer returns the accepted issuer.
func (v *Verifier) Issuer() string { return v.cfg.Issuer }

// Audience returns the expected audience.
func (v *Verifier) Audience() string { return v.cfg.Audience }

// Metadata returns the issuer's OpenID Connect discovery metadata.
func (v *Verifier) Metadata() IssuerMetadata { return v.meta.clone() }

// Verify checks the Authorization header value of a request and returns
// the principal its token stands for.
//
// A missing header (or one with another scheme) gives a 401 login error
// with WWW-Authenticate: Bearer realm="casefhir"; a malformed or invalid
// token adds error="invalid_token" and an error_description. A failure to
// fetch the issuer's keys is a 503 transient error. Errors never contain
// the token.
func (v *Verifier) Verify(ctx context.Context, authorization string) (*Principal, error) {
	raw, err := ParseAuthorization(authorization)
	if err != nil {
		return nil, err
	}
	return v.VerifyToken(ctx, raw)
}

// VerifyToken is Verify for a bare token (no "Bearer " prefix).
func (v *Verifier) VerifyToken(ctx context.Context, raw string) (*Principal, error) {
	if raw == "" {
		return nil, missingToken(realm)
	}
	if len(raw) > maxTokenLen {
		return nil, invalidToken("token too large")
	}
	hdr, payload, err := splitJWT(raw)
	if err != nil {
		return nil, invalidToken("malformed token")
	}
	if len(hdr.Crit) > 0 {
		return nil, invalidToken("token uses unsupported critical header parameters")
	}
	if !slices.Contains(v.algs, hdr.Alg) {
		return nil, invalidToken("token signing algorithm not accepted")
	}
	tok, err := v.verifier.Verify(ctx, raw)
	if err != nil {
		return nil, v.classify(err, payload)
	}
	var c tokenClaims
	if err := tok.Claims(&c); err != nil {
		return nil, invalidToken("malformed token claims")
	}
	now := v.cfg.Now()
	if c.Nbf != nil && now.Add(v.cfg.ClockSkew).Before(c.Nbf.Time()) {
		return nil, invalidToken("token not yet valid")
	}
	return c.principal(tok.Expiry)
}

// classify turns a go-oidc failure into a 401 (or 503) with a useful,
// token-free description. The unverified payload is only used to pick the
// description.
func (v *Verifier) classify(err error, payload []byte) error {
	var expired *oidc.TokenExpiredError
	if errors.As(err, &expired) {
		return invalidToken("token expired")
	}
	if errors.Is(err, context.Canceled) || errors.Is(err, context.DeadlineExceeded) {
		return outcome.Wrap(err, outcome.Timeout, "auth.Verify", "auth: token verification was interrupted")
	}
	var c tokenClaims
	if json.Unmarshal(payload, &c) == nil {
		switch {
		case c.Iss != v.cfg.Issuer:
			return invalidToken("token issuer not accepted")
		case !slices.Contains(c.Aud, v.cfg.Audience):
			return invalidToken("token audience does not include this server")
		case c.Exp == nil:
			return invalidToken("token has no expiry")
		case c.Nbf != nil && v.cfg.Now().Add(v.cfg.ClockSkew).Before(c.Nbf.Time()):
			return invalidToken("token not yet valid")
		}
	}
	if strings.Contains(err.Error(), "fetching keys") {
		return outcome.Wrap(err, outcome.Transient, "auth.Verify", "auth: could not fetch the issuer's signing keys").
			WithHeader("Retry-After", "5")
	}
	if strings.Contains(err.Error(), "malformed") {
		return invalidToken("malformed token")
	}
	return invalidToken("token signature not valid")
}

// ParseAuthorization extracts the token of an "Authorization: Bearer
// <token>" header value (RFC 6750 section 2.1). An empty value, another
// scheme or "Bearer" without a token is a missing token (401 without an error attribute); a Bearer
// header with a malformed token is invalid_token.
func ParseAuthorization(h string) (string, error) {
	h = strings.TrimSpace(h)
	if h == "" {
		return "", missingToken(realm)
	}
	scheme, rest, _ := strings.Cut(h, " ")
	if !strings.EqualFold(scheme, "Bearer") {
		return "", missingToken(realm)
	}
	tok := strings.TrimLeft(rest, " ")
	if tok == "" {
		return "", missingToken(realm)
	}
	if len(tok) > maxTokenLen || !isToken68(tok) {
		return "", invalidToken("malformed bearer token")
	}
	return tok, nil
}

// isToken68 reports whether s matches RFC 7235 token68:
// 1*( ALPHA / DIGIT / "-" / "." / "_" / "~" / "+" / "/" ) *"=".
func isToken68(s string) bool {
	i := 0
	for ; i < len(s); i++ {
		c := s[i]
		if c >= 'a' && c <= 'z' || c >= 'A' && c <= 'Z' || c >= '0' && c <= '9' ||
			c == '-' || c == '.' || c == '_' || c == '~' || c == '+' || c == '/' {
			continue
		}
		break
	}
	if i == 0 {
		return false
	}
	for ; i < len(s); i++ {
		if s[i] != '=' {
			return false
		}
	}
	return true
}

// missingToken is the 401 for a request without a bearer token.
func missingToken(realm string) *outcome.Error {
	return outcome.New(outcome.Login, "an access token is required").
		WithOp("auth.Verify").
		WithHeader("WWW-Authenticate", fmt.Sprintf("Bearer realm=%q", realm))
}

// invalidToken is the 401 for a token that is present but not acceptable.
// desc must be fixed text: never token content.
func invalidToken(desc string) *outcome.Error {
	return outcome.New(outcome.Login, "invalid access token: "+desc).
		WithOp("auth.Verify").
		WithHeader("WWW-Authenticate",
			fmt.Sprintf(`Bearer realm=%q, error="invalid_token", error_description=%q`, realm, desc))
}

type jwtHeader struct {
	Alg  string          `json:"alg"`
	Kid  string          `json:"kid"`
	Typ  string          `json:"typ"`
	Crit json.RawMessage `json:"crit"`
}

// splitJWT decodes the header and (unverified) payload of a compact JWS.
func splitJWT(raw string) (jwtHeader, []byte, error) {
	var h jwtHeader
	parts := strings.Split(raw, ".")
	if len(parts) != 3 || parts[0] == "" || parts[1] == "" {
		return h, nil, errors.New("not a compact JWS")
	}
	hb, err := base64.RawURLEncoding.DecodeString(parts[0])
	if err != nil {
		return h, nil, err
	}
	if err := json.Unmarshal(hb, &h); err != nil {
		return h, nil, err
	}
	pb, err := base64.RawURLEncoding.DecodeString(parts[1])
	if err != nil {
		return h, nil, err
	}
	return h, pb, nil
}

// numericDate is a JWT NumericDate (seconds since the epoch, possibly
// fractional).
type numericDate float64

func (n numericDate) Time() time.Time {
	sec := float64(n)
	whole := int64(sec)
	return time.Unix(whole, int64((sec-float64(whole))*1e9))
}

// audience is a JWT aud: a string or an array of strings.
type audience []string

func (a *audience) UnmarshalJSON(b []byte) error {
	var s string
	if json.Unmarshal(b, &s) == nil {
		*a = audience{s}
		return nil
	}
	var ss []string
	if err := json.Unmarshal(b, &ss); err != nil {
		return err
	}
	*a = ss
	return nil
}

// stringOrList accepts a string or an array of strings (space joined):
// scope is a string (RFC 9068), some issuers send scp as an array.
type stringOrList string

func (s *stringOrList) UnmarshalJSON(b []byte) error {
	if bytes.Equal(b, []byte("null")) {
		return nil
	}
	var one string
	if json.Unmarshal(b, &one) == nil {
		*s = stringOrList(one)
		return nil
	}
	var list []string
	if err := json.Unmarshal(b, &list); err != nil {
		return errors.New("scope claim must be a string or an array of strings")
	}
	*s = stringOrList(strings.Join(list, " "))
	return nil
}

// idClaim accepts a string, or a number written as an id (some issuers
// emit numeric patient ids).
type idClaim string

func (s *idClaim) UnmarshalJSON(b []byte) error {
	if bytes.Equal(b, []byte("null")) {
		return nil
	}
	var str string
	if json.Unmarshal(b, &str) == nil {
		*s = idClaim(str)
		return nil
	}
	var n json.Number
	if err := json.Unmarshal(b, &n); err != nil {
		return errors.New("claim must be a string")
	}
	if _, err := strconv.ParseUint(n.String(), 10, 64); err != nil {
		return errors.New("claim must be a string")
	}
	*s = idClaim(n.String())
	return nil
}

// tokenClaims are the access-token claims casefhir reads.
type tokenClaims struct {
	Iss      string       `json:"iss"`
	Sub      string       `json:"sub"`
	Aud      audience     `json:"aud"`
	Exp      *numericDate `json:"exp"`
	Nbf      *numericDate `json:"nbf"`
	Jti      string       `json:"jti"`
	ClientID string       `json:"client_id"`
	Azp      string       `json:"azp"`
	Scope    stringOrList `json:"scope"`
	Scp      stringOrList `json:"scp"`
	Patient  idClaim      `json:"patient"`
	FHIRUser string       `json:"fhirUser"`
}

func (c *tokenClaims) principal(expiry time.Time) (*Principal, error) {
	scope := string(c.Scope)
	if scope == "" {
		scope = string(c.Scp)
	}
	client := c.ClientID
	if client == "" {
		client = c.Azp
	}
	if c.Patient != "" && !fhir.IsValidID(string(c.Patient)) {
		return nil, invalidToken("patient claim is not a FHIR id")
	}
	return &Principal{
		Subject:       c.Sub,
		ClientID:      client,
		FHIRUser:      c.FHIRUser,
		Patient:       string(c.Patient),
		Scopes:        ParseScopes(scope),
		RawScope:      scope,
		Issuer:        c.Iss,
		TokenID:       c.Jti,
		Expiry:        expiry,
		authenticated: true,
	}, nil
}
