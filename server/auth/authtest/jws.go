package authtest

import (
	"crypto"
	"crypto/ecdsa"
	"crypto/elliptic"
	"crypto/hmac"
	"crypto/rand"
	"crypto/rsa"
	"encoding/base64"
	"encoding/json"
	"fmt"
	"math/big"
	"strings"
)

// Key is a signing key with its key id.
type Key struct {
	ID      string
	Private crypto.Signer // *rsa.PrivateKey or *ecdsa.PrivateKey
}

// NewRSAKey generates a 2048-bit RSA key.
func NewRSAKey(kid string) (*Key, error) {
	k, err := rsa.GenerateKey(rand.Reader, 2048)
	if err != nil {
		return nil, err
	}
	return &Key{ID: kid, Private: k}, nil
}

// NewECKey generates a P-256 ECDSA key.
func NewECKey(kid string) (*Key, error) {
	k, err := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	if err != nil {
		return nil, err
	}
	return &Key{ID: kid, Private: k}, nil
}

// PublicJWK returns the public key as a JWK (RFC 7517) object.
func (k *Key) PublicJWK() (map[string]any, error) {
	b64 := base64.RawURLEncoding.EncodeToString
	switch pk := k.Private.Public().(type) {
	case *rsa.PublicKey:
		return map[string]any{
			"kty": "RSA", "kid": k.ID, "use": "sig",
			"n": b64(pk.N.Bytes()), "e": b64(big.NewInt(int64(pk.E)).Bytes()),
		}, nil
	case *ecdsa.PublicKey:
		ek, err := pk.ECDH()
		if err != nil {
			return nil, err
		}
		raw := ek.Bytes() // 0x04 || X || Y
		n := (len(raw) - 1) / 2
		crv := map[int]string{32: "P-256", 48: "P-384", 66: "P-521"}[n]
		return map[string]any{
			"kty": "EC", "kid": k.ID, "use": "sig", "crv": crv,
			"x": b64(raw[1 : 1+n]), "y": b64(raw[1+n:]),
		}, nil
	}
	return nil, fmt.Errorf("authtest: unsupported key type %T", k.Private)
}

// Sign returns a compact JWS of claims. header is merged over
// {"alg": alg, "kid": kid}; alg is RS256/384/512, PS256/384/512,
// ES256/384/512 (with the matching key type), "none" (no signature) or
// HS256/384/512 (HMAC keyed with hmacKey).
func Sign(alg string, key *Key, hmacKey []byte, header map[string]any, claims any) (string, error) {
	h := map[string]any{"alg": alg}
	if key != nil && key.ID != "" {
		h["kid"] = key.ID
	}
	for k, v := range header {
		if v == nil {
			delete(h, k)
		} else {
			h[k] = v
		}
	}
	hb, err := json.Marshal(h)
	if err != nil {
		return "", err
	}
	cb, err := json.Marshal(claims)
	if err != nil {
		return "", err
	}
	enc := base64.RawURLEncoding.EncodeToString
	input := enc(hb) + "." + enc(cb)
	sig, err := signInput(alg, key, hmacKey, []byte(input))
	if err != nil {
		return "", err
	}
	return input + "." + enc(sig), nil
}

func hashFor(alg string) (crypto.Hash, error) {
	switch {
	case strings.HasSuffix(alg, "256"):
		return crypto.SHA256, nil
	case strings.HasSuffix(alg, "384"):
		return crypto.SHA384, nil
	case strings.HasSuffix(alg, "512"):
		return crypto.SHA512, nil
	}
	return 0, fmt.Errorf("authtest: unsupported alg %q", alg)
}

func signInput(alg string, key *Key, hmacKey, input []byte) ([]byte, error) {
	if alg == "none" {
		return nil, nil
	}
	h, err := hashFor(alg)
	if err != nil {
		return nil, err
	}
	if strings.HasPrefix(alg, "HS") {
		m := hmac.New(h.New, hmacKey)
		m.Write(input)
		return m.Sum(nil), nil
	}
	if key == nil {
		return nil, fmt.Errorf("authtest: alg %s needs a key", alg)
	}
	d := h.New()
	d.Write(input)
	digest := d.Sum(nil)
	switch alg[:2] {
	case "RS", "PS":
		rk, ok := key.Private.(*rsa.PrivateKey)
		if !ok {
			return nil, fmt.Errorf("authtest: alg %s needs an RSA key", alg)
		}
		if alg[:2] == "RS" {
			return rsa.SignPKCS1v15(rand.Reader, rk, h, digest)
		}
		return rsa.SignPSS(rand.Reader, rk, h, digest, &rsa.PSSOptions{SaltLength: rsa.PSSSaltLengthEqualsHash})
	case "ES":
		ek, ok := key.Private.(*ecdsa.PrivateKey)
		if !ok {
			return nil, fmt.Errorf("authtest: alg %s needs an EC key", alg)
		}
		r, s, err := ecdsa.Sign(rand.Reader, ek, digest)
		if err != nil {
			return nil, err
		}
		n := (ek.Curve.Params().BitSize + 7) / 8
		out := make([]byte, 2*n)
		r.FillBytes(out[:n])
		s.FillBytes(out[n:])
		return out, nil
	}
	return nil, fmt.Errorf("authtest: unsupported alg %q", alg)
}

// randomID returns a random URL-safe identifier.
func randomID() string {
	b := make([]byte, 16)
	_, _ = rand.Read(b)
	return base64.RawURLEncoding.EncodeToString(b)
}
