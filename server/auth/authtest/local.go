package authtest

import (
	"encoding/json"
	"maps"
	"net/http"
	"net/http/httptest"
	"strings"
	"sync"
	"testing"
	"time"
)

// LocalIssuer is an in-process OpenID issuer: an httptest server with a
// discovery document and a JWKS, and a minter for valid and broken tokens.
type LocalIssuer struct {
	// URL is the issuer identifier (the httptest server URL).
	URL string

	srv *httptest.Server

	mu        sync.Mutex
	keys      []*Key // published; keys[0] is the current RSA key
	ec        *Key   // published EC key
	jwksHits  int
	discovery map[string]any
}

// NewLocalIssuer starts a LocalIssuer, closed when the test ends.
func NewLocalIssuer(t testing.TB) *LocalIssuer {
	t.Helper()
	rsaKey, err := NewRSAKey("rsa-1")
	if err != nil {
		t.Fatalf("authtest: %v", err)
	}
	ecKey, err := NewECKey("ec-1")
	if err != nil {
		t.Fatalf("authtest: %v", err)
	}
	li := &LocalIssuer{keys: []*Key{rsaKey}, ec: ecKey}
	mux := http.NewServeMux()
	mux.HandleFunc("GET /.well-known/openid-configuration", li.serveDiscovery)
	mux.HandleFunc("GET /jwks", li.serveJWKS)
	li.srv = httptest.NewServer(mux)
	li.URL = li.srv.URL
	li.discovery = map[string]any{
		"issuer":                                li.URL,
		"jwks_uri":                              li.URL + "/jwks",
		"authorization_endpoint":                li.URL + "/authorize",
		"token_endpoint":                        li.URL + "/token",
		"userinfo_endpoint":                     li.URL + "/userinfo",
		"grant_types_supported":                 []string{"authorization_code", "implicit", "refresh_token", "client_credentials"},
		"response_types_supported":              []string{"code"},
		"token_endpoint_auth_methods_supported": []string{"private_key_jwt", "client_secret_basic", "none"},
		"token_endpoint_auth_signing_alg_values_supported": []string{"RS384", "ES384"},
		"scopes_supported":                      []string{"openid", "fhirUser", "launch", "offline_access", "online_access"},
		"code_challenge_methods_supported":      []string{"S256", "plain"},
		"id_token_signing_alg_values_supported": []string{"RS256", "ES256", "PS256"},
	}
	t.Cleanup(li.srv.Close)
	return li
}

// Close stops the issuer's HTTP server (to test an unreachable issuer).
func (li *LocalIssuer) Close() { li.srv.Close() }

// SetDiscovery sets (or, with a nil value, removes) a field of the
// discovery document.
func (li *LocalIssuer) SetDiscovery(field string, value any) {
	li.mu.Lock()
	defer li.mu.Unlock()
	if value == nil {
		delete(li.discovery, field)
		return
	}
	li.discovery[field] = value
}

func (li *LocalIssuer) serveDiscovery(w http.ResponseWriter, _ *http.Request) {
	li.mu.Lock()
	doc := maps.Clone(li.discovery)
	li.mu.Unlock()
	w.Header().Set("Content-Type", "application/json")
	_ = json.NewEncoder(w).Encode(doc)
}

func (li *LocalIssuer) serveJWKS(w http.ResponseWriter, _ *http.Request) {
	li.mu.Lock()
	li.jwksHits++
	keys := append(append([]*Key(nil), li.keys...), li.ec)
	li.mu.Unlock()
	var set struct {
		Keys []map[string]any `json:"keys"`
	}
	for _, k := range keys {
		j, err := k.PublicJWK()
		if err != nil {
			http.Error(w, err.Error(), http.StatusInternalServerError)
			return
		}
		set.Keys = append(set.Keys, j)
	}
	w.Header().Set("Content-Type", "application/json")
	_ = json.NewEncoder(w).Encode(set)
}

// JWKSRequests returns how many times the JWKS has been fetched.
func (li *LocalIssuer) JWKSRequests() int {
	li.mu.Lock()
	defer li.mu.Unlock()
	return li.jwksHits
}

// Rotate publishes a new RSA key (kid) and makes it the current one.
// When retireOld is set the previous RSA keys are no longer published.
func (li *LocalIssuer) Rotate(t testing.TB, kid string, retireOld bool) {
	t.Helper()
	k, err := NewRSAKey(kid)
	if err != nil {
		t.Fatalf("authtest: %v", err)
	}
	li.mu.Lock()
	defer li.mu.Unlock()
	if retireOld {
		li.keys = []*Key{k}
	} else {
		li.keys = append([]*Key{k}, li.keys...)
	}
}

// Claims returns the claims of a valid access token for audience: iss,
// sub, aud, iat, exp (in 5 minutes), jti, client_id and scope
// "system/*.cruds". Callers change or delete entries to make edge cases.
func (li *LocalIssuer) Claims(audience string) map[string]any {
	now := time.Now()
	return map[string]any{
		"iss":       li.URL,
		"sub":       "test-subject",
		"aud":       audience,
		"iat":       now.Unix(),
		"exp":       now.Add(5 * time.Minute).Unix(),
		"jti":       randomID(),
		"client_id": "test-client",
		"scope":     "system/*.cruds",
	}
}

// MintOptions shape a minted token. The zero value signs RS256 with the
// current published RSA key.
type MintOptions struct {
	// Alg is the JWS algorithm (default RS256). PS* use the RSA key, ES256
	// the published EC key, "none" no signature, HS* an HMAC keyed with the
	// RSA public JWK (the algorithm-confusion attack).
	Alg string
	// KID overrides the header's kid ("-" removes it).
	KID string
	// Unpublished signs with a fresh key the JWKS does not contain
	// (kid "unpublished" unless KID is set).
	Unpublished bool
	// Tamper corrupts the signature.
	Tamper bool
	// Header adds header parameters (a nil value removes one).
	Header map[string]any
}

// Mint signs claims as a valid token would be signed (RS256, current key).
func (li *LocalIssuer) Mint(t testing.TB, claims map[string]any) string {
	t.Helper()
	return li.MintWith(t, MintOptions{}, claims)
}

// MintWith signs claims as opts say.
func (li *LocalIssuer) MintWith(t testing.TB, opts MintOptions, claims map[string]any) string {
	t.Helper()
	alg := opts.Alg
	if alg == "" {
		alg = "RS256"
	}
	li.mu.Lock()
	rsaKey, ecKey := li.keys[0], li.ec
	li.mu.Unlock()
	key := rsaKey
	if strings.HasPrefix(alg, "ES") {
		key = ecKey
	}
	var hmacKey []byte
	if strings.HasPrefix(alg, "HS") {
		j, err := rsaKey.PublicJWK()
		if err != nil {
			t.Fatalf("authtest: %v", err)
		}
		hmacKey, _ = json.Marshal(j)
	}
	if opts.Unpublished {
		var err error
		if strings.HasPrefix(alg, "ES") {
			key, err = NewECKey("unpublished")
		} else {
			key, err = NewRSAKey("unpublished")
		}
		if err != nil {
			t.Fatalf("authtest: %v", err)
		}
	}
	header := map[string]any{"typ": "at+jwt", "kid": key.ID}
	if alg == "none" {
		header["kid"] = nil
	}
	switch opts.KID {
	case "":
	case "-":
		header["kid"] = nil
	default:
		header["kid"] = opts.KID
	}
	maps.Copy(header, opts.Header)
	if alg == "none" || strings.HasPrefix(alg, "HS") {
		key = nil
	}
	tok, err := Sign(alg, key, hmacKey, header, claims)
	if err != nil {
		t.Fatalf("authtest: sign: %v", err)
	}
	if opts.Tamper {
		i := strings.LastIndexByte(tok, '.') + 1
		c := byte('A')
		if tok[i] == 'A' {
			c = 'B'
		}
		tok = tok[:i] + string(c) + tok[i+1:]
	}
	return tok
}
