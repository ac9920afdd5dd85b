package auth

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"net/http"
	"sync"
	"sync/atomic"
	"time"

	jose "github.com/go-jose/go-jose/v4"
)

// keySet is the issuer's JWKS, cached in memory. A token whose key id is
// not cached (or whose signature no cached key verifies) makes it fetch
// the JWKS again, so the issuer can rotate keys without a restart; fetches
// happen at most once per minRefresh, so tokens with made-up key ids
// cannot make casefhir hammer the issuer. It implements go-oidc's KeySet.
type keySet struct {
	url        string
	client     *http.Client
	algs       []jose.SignatureAlgorithm
	minRefresh time.Duration
	now        func() time.Time

	state atomic.Pointer[keyState]

	mu          sync.Mutex // serialises fetches and guards the fields below
	lastAttempt time.Time
	lastErr     error
}

type keyState struct {
	keys []jose.JSONWebKey
}

// errNoKey means no key of the issuer verifies the signature.
var errNoKey = errors.New("failed to verify signature: no matching key")

func newKeySet(url string, client *http.Client, algs []string, minRefresh time.Duration, now func() time.Time) *keySet {
	ja := make([]jose.SignatureAlgorithm, len(algs))
	for i, a := range algs {
		ja[i] = jose.SignatureAlgorithm(a)
	}
	return &keySet{url: url, client: client, algs: ja, minRefresh: minRefresh, now: now}
}

// VerifySignature implements oidc.KeySet.
func (s *keySet) VerifySignature(ctx context.Context, raw string) ([]byte, error) {
	jws, err := jose.ParseSigned(raw, s.algs)
	if err != nil {
		return nil, fmt.Errorf("malformed jwt: %w", err)
	}
	if len(jws.Signatures) != 1 {
		return nil, errors.New("malformed jwt: exactly one signature is required")
	}
	kid := jws.Signatures[0].Header.KeyID
	seen := s.state.Load()
	if seen != nil {
		if p, ok := verifyWith(jws, seen.keys, kid); ok {
			return p, nil
		}
	}
	cur, err := s.refresh(ctx, seen)
	if err != nil {
		return nil, fmt.Errorf("fetching keys: %w", err)
	}
	if cur == seen {
		return nil, errNoKey
	}
	if p, ok := verifyWith(jws, cur.keys, kid); ok {
		return p, nil
	}
	return nil, errNoKey
}

func verifyWith(jws *jose.JSONWebSignature, keys []jose.JSONWebKey, kid string) ([]byte, bool) {
	for i := range keys {
		if kid != "" && keys[i].KeyID != kid {
			continue
		}
		if p, err := jws.Verify(&keys[i]); err == nil {
			return p, true
		}
	}
	return nil, false
}

// refresh fetches the JWKS unless another caller already replaced seen, or
// the last attempt is younger than minRefresh. It returns the current
// state (possibly seen itself when no fetch was made).
func (s *keySet) refresh(ctx context.Context, seen *keyState) (*keyState, error) {
	s.mu.Lock()
	defer s.mu.Unlock()
	cur := s.state.Load()
	if cur != seen {
		return cur, nil
	}
	now := s.now()
	if !s.lastAttempt.IsZero() && now.Sub(s.lastAttempt) < s.minRefresh {
		if cur == nil {
			return nil, s.lastErr
		}
		return cur, nil
	}
	s.lastAttempt = now
	keys, err := s.fetch(ctx)
	if err != nil {
		s.lastErr = err
		if cur == nil {
			return nil, err
		}
		return cur, nil // keep serving the keys we have
	}
	next := &keyState{keys: keys}
	s.state.Store(next)
	return next, nil
}

// fetch downloads the JWKS, keeping the signature keys it can use and
// skipping the others (encryption keys, unknown key types).
func (s *keySet) fetch(ctx context.Context) ([]jose.JSONWebKey, error) {
	ctx = context.WithoutCancel(ctx) // one caller giving up must not fail the fetch for the others
	ctx, cancel := context.WithTimeout(ctx, 15*time.Second)
	defer cancel()
	req, err := http.NewRequestWithContext(ctx, http.MethodGet, s.url, nil)
	if err != nil {
		return nil, err
	}
	req.Header.Set("Accept", "application/json")
	resp, err := s.client.Do(req)
	if err != nil {
		return nil, err
	}
	defer resp.Body.Close()
	if resp.StatusCode != http.StatusOK {
		return nil, fmt.Errorf("jwks: HTTP %d", resp.StatusCode)
	}
	var set struct {
		Keys []json.RawMessage `json:"keys"`
	}
	if err := json.NewDecoder(io.LimitReader(resp.Body, 1<<20)).Decode(&set); err != nil {
		return nil, fmt.Errorf("jwks: %w", err)
	}
	var keys []jose.JSONWebKey
	for _, raw := range set.Keys {
		var k jose.JSONWebKey
		if err := k.UnmarshalJSON(raw); err != nil {
			continue
		}
		if k.Use == "enc" || !k.Valid() || !k.IsPublic() {
			continue
		}
		keys = append(keys, k)
	}
	if len(keys) == 0 {
		return nil, errors.New("jwks: no usable signature keys")
	}
	return keys, nil
}
