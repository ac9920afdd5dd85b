package authtest

import (
	"bufio"
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"net/http"
	"net/url"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"sync"
	"testing"
	"time"
)

// DefaultAudience is the resource indicator (token aud) a Provider uses
// when ProviderOptions.Audience is empty.
const DefaultAudience = "http://casefhir.test/fhir"

// ProviderOptions configure StartProvider.
type ProviderOptions struct {
	// Audience is the default resource indicator: the aud of access tokens
	// (the FHIR base URL of the server under test). Default DefaultAudience.
	Audience string
	// OtherAudiences are further resource indicators a token may be
	// requested for (to make tokens for another server).
	OtherAudiences []string
	// Clients are the registered clients.
	Clients []Client
	// AccessTokenAlg is the access tokens' JWS algorithm: RS256 (default),
	// PS256 or ES256.
	AccessTokenAlg string
	// AccessTokenTTL is the access tokens' lifetime (default 5 minutes).
	AccessTokenTTL time.Duration
	// Dir is the harness directory (default: server/auth/testdata/oidc of
	// this module).
	Dir string
	// Users are the test users of the authorization-code flow; the first
	// logs in when a launch names none (standalone launch). Logins and
	// consents happen without a human.
	Users []User
	// Launches are the EHR's launch contexts by launch value.
	Launches map[string]Launch
}

// User is a test user of the authorization-code flow.
type User struct {
	// ID is the account id (the id token's sub).
	ID string
	// FHIRUser is the fhirUser claim, e.g. "Practitioner/9".
	FHIRUser string
}

// Launch is an EHR launch context: who launched and, optionally, the
// patient in context. The provider resolves the launch parameter to it and
// puts patient and fhirUser into the token response and the access token.
type Launch struct {
	User    string `json:"user,omitempty"`
	Patient string `json:"patient,omitempty"`
}

// Client is a client registered with the Provider: a back-end service
// (client_credentials), or a SMART app (authorization_code with PKCE) when
// RedirectURIs is set.
type Client struct {
	// ID is the client_id.
	ID string
	// Secret, when set, makes the client authenticate with
	// client_secret_post (client_secret_basic for a SMART app). Otherwise
	// a back-end service uses private_key_jwt with an RSA key generated
	// for it (assertions signed RS384, as SMART Backend Services
	// recommends) and a SMART app is a public client.
	Secret string
	// RedirectURIs make the client a SMART app using the authorization
	// code flow (PKCE S256 required).
	RedirectURIs []string
	// Scope, when set, is the space-separated list of scopes the client may
	// get; otherwise any SMART-shaped scope it asks for is granted.
	Scope string
	// Claims are added to its access tokens, e.g. {"patient": "123"} or
	// {"fhirUser": "Practitioner/7"}.
	Claims map[string]any
}

// Provider is a running oidc-provider.
type Provider struct {
	// Issuer is the issuer URL (http://127.0.0.1:PORT).
	Issuer string
	// Audience is the default audience of its access tokens.
	Audience string
	// TokenEndpoint is the token endpoint URL from discovery.
	TokenEndpoint string

	clients map[string]clientState
	http    *http.Client
}

type clientState struct {
	Client
	key *Key
}

// StartProvider starts the OpenID provider (installing its npm packages
// first when needed) and stops it when the test ends. It fails the test
// when Node.js is missing or the provider does not start.
func StartProvider(t testing.TB, opts ProviderOptions) *Provider {
	t.Helper()
	p, stop, err := startProvider(context.Background(), t.TempDir(), opts)
	if errors.Is(err, errNotReady) {
		// A machine busy with other test binaries has been seen to keep a
		// provider from answering for a minute; one more process, once.
		t.Logf("%v\nstarting another provider", err)
		p, stop, err = startProvider(context.Background(), t.TempDir(), opts)
	}
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(stop)
	return p
}

// errNotReady is a provider process that did not print its issuer in time.
var errNotReady = errors.New("authtest: oidc-provider did not start")

func startProvider(ctx context.Context, tmp string, opts ProviderOptions) (*Provider, func(), error) {
	dir := opts.Dir
	if dir == "" {
		var err error
		if dir, err = harnessDir(); err != nil {
			return nil, nil, err
		}
	}
	node, err := exec.LookPath("node")
	if err != nil {
		return nil, nil, fmt.Errorf("authtest: node not found on PATH (Node.js 20+ is needed for the OpenID provider tests): %w", err)
	}
	if err := EnsureNodeModules(ctx, dir); err != nil {
		return nil, nil, err
	}
	if opts.Audience == "" {
		opts.Audience = DefaultAudience
	}
	ttl := opts.AccessTokenTTL
	if ttl == 0 {
		ttl = 5 * time.Minute
	}
	p := &Provider{Audience: opts.Audience, clients: map[string]clientState{}, http: &http.Client{Timeout: 30 * time.Second}}
	type clientConf struct {
		ClientID     string          `json:"client_id"`
		Method       string          `json:"token_endpoint_auth_method"`
		JWKS         *map[string]any `json:"jwks,omitempty"`
		Secret       string          `json:"client_secret,omitempty"`
		Scope        string          `json:"scope,omitempty"`
		Claims       map[string]any  `json:"claims,omitempty"`
		AssertionAlg string          `json:"token_endpoint_auth_signing_alg,omitempty"`
		GrantTypes   []string        `json:"grant_types,omitempty"`
		RedirectURIs []string        `json:"redirect_uris,omitempty"`
	}
	type userConf struct {
		ID       string `json:"id"`
		FHIRUser string `json:"fhirUser,omitempty"`
	}
	conf := struct {
		Port      int               `json:"port"`
		Resources []string          `json:"resources"`
		Alg       string            `json:"accessTokenAlg,omitempty"`
		TTL       int               `json:"accessTokenTTL"`
		Clients   []clientConf      `json:"clients"`
		Users     []userConf        `json:"users,omitempty"`
		Launches  map[string]Launch `json:"launches,omitempty"`
	}{
		Launches:  opts.Launches,
		Resources: append([]string{opts.Audience}, opts.OtherAudiences...),
		Alg:       opts.AccessTokenAlg,
		TTL:       int(ttl / time.Second),
		Clients:   []clientConf{},
	}
	for _, c := range opts.Clients {
		if c.ID == "" {
			return nil, nil, fmt.Errorf("authtest: a client needs an ID")
		}
		if _, dup := p.clients[c.ID]; dup {
			return nil, nil, fmt.Errorf("authtest: duplicate client %q", c.ID)
		}
		cc := clientConf{ClientID: c.ID, Scope: c.Scope, Claims: c.Claims}
		st := clientState{Client: c}
		if len(c.RedirectURIs) > 0 {
			cc.GrantTypes, cc.RedirectURIs, cc.Method = []string{"authorization_code"}, c.RedirectURIs, "none"
			if c.Secret != "" {
				cc.Method, cc.Secret = "client_secret_basic", c.Secret
			}
		} else if c.Secret != "" {
			cc.Method, cc.Secret = "client_secret_post", c.Secret
		} else {
			key, err := NewRSAKey(c.ID + "-key")
			if err != nil {
				return nil, nil, err
			}
			jwk, err := key.PublicJWK()
			if err != nil {
				return nil, nil, err
			}
			set := map[string]any{"keys": []any{jwk}}
			cc.Method, cc.JWKS, cc.AssertionAlg = "private_key_jwt", &set, "RS384"
			st.key = key
		}
		conf.Clients = append(conf.Clients, cc)
		p.clients[c.ID] = st
	}
	for _, u := range opts.Users {
		conf.Users = append(conf.Users, userConf(u))
	}
	confPath := filepath.Join(tmp, "oidc-provider.json")
	b, err := json.Marshal(conf)
	if err != nil {
		return nil, nil, err
	}
	if err := os.WriteFile(confPath, b, 0o600); err != nil {
		return nil, nil, err
	}

	cmd := exec.Command(node, "provider.mjs", confPath)
	cmd.Dir = dir
	stdin, err := cmd.StdinPipe() // the provider exits when this closes
	if err != nil {
		return nil, nil, err
	}
	stdout, err := cmd.StdoutPipe()
	if err != nil {
		return nil, nil, err
	}
	stderr := &tailBuffer{max: 8 << 10}
	cmd.Stderr = stderr
	if err := cmd.Start(); err != nil {
		return nil, nil, fmt.Errorf("authtest: start node: %w", err)
	}
	exited := make(chan struct{})
	var waitErr error
	stop := func() {
		stdin.Close()
		select {
		case <-exited:
		case <-time.After(5 * time.Second):
			_ = cmd.Process.Kill()
			<-exited
		}
	}
	issuer := make(chan string, 1)
	go func() {
		sc := bufio.NewScanner(stdout)
		found := false
		for sc.Scan() {
			var line struct {
				Issuer string `json:"issuer"`
			}
			if !found && json.Unmarshal(sc.Bytes(), &line) == nil && line.Issuer != "" {
				found = true
				issuer <- line.Issuer
			}
		}
		waitErr = cmd.Wait()
		close(exited)
	}()
	select {
	case p.Issuer = <-issuer:
	case <-exited:
		return nil, nil, fmt.Errorf("authtest: oidc-provider exited before it was ready (%v):\n%s", waitErr, stderr)
	case <-time.After(60 * time.Second):
		stop()
		return nil, nil, fmt.Errorf("%w within 60s:\n%s", errNotReady, stderr)
	}
	meta, err := p.discover(ctx)
	if err != nil {
		stop()
		return nil, nil, err
	}
	p.TokenEndpoint = meta.TokenEndpoint
	return p, stop, nil
}

func (p *Provider) discover(ctx context.Context) (struct {
	TokenEndpoint string `json:"token_endpoint"`
}, error) {
	var meta struct {
		TokenEndpoint string `json:"token_endpoint"`
	}
	req, err := http.NewRequestWithContext(ctx, http.MethodGet, p.Issuer+"/.well-known/openid-configuration", nil)
	if err != nil {
		return meta, err
	}
	resp, err := p.http.Do(req)
	if err != nil {
		return meta, fmt.Errorf("authtest: discovery: %w", err)
	}
	defer resp.Body.Close()
	if resp.StatusCode != http.StatusOK {
		return meta, fmt.Errorf("authtest: discovery: %s", resp.Status)
	}
	if err := json.NewDecoder(resp.Body).Decode(&meta); err != nil {
		return meta, fmt.Errorf("authtest: discovery: %w", err)
	}
	if meta.TokenEndpoint == "" {
		return meta, fmt.Errorf("authtest: discovery has no token_endpoint")
	}
	return meta, nil
}

// TokenResponse is a successful token endpoint response.
type TokenResponse struct {
	AccessToken string `json:"access_token"`
	TokenType   string `json:"token_type"`
	ExpiresIn   int    `json:"expires_in"`
	Scope       string `json:"scope"`
}

// Token returns an access token for client with the requested scopes
// (space separated) for the default audience, failing the test on error.
// The provider grants only the SMART-shaped scopes the client may have;
// the token's scope claim says which.
func (p *Provider) Token(t testing.TB, client, scopes string) string {
	t.Helper()
	tr, err := p.RequestToken(context.Background(), client, scopes, "")
	if err != nil {
		t.Fatal(err)
	}
	return tr.AccessToken
}

// RequestToken performs a client_credentials token request. resource
// selects the audience (empty: the default one).
func (p *Provider) RequestToken(ctx context.Context, client, scopes, resource string) (*TokenResponse, error) {
	st, ok := p.clients[client]
	if !ok {
		return nil, fmt.Errorf("authtest: unknown client %q", client)
	}
	form := url.Values{"grant_type": {"client_credentials"}}
	if scopes != "" {
		form.Set("scope", scopes)
	}
	if resource != "" {
		form.Set("resource", resource)
	}
	if st.key == nil {
		form.Set("client_id", client)
		form.Set("client_secret", st.Secret)
	} else {
		now := time.Now()
		assertion, err := Sign("RS384", st.key, nil, map[string]any{"typ": "JWT"}, map[string]any{
			"iss": client,
			"sub": client,
			"aud": p.TokenEndpoint,
			"iat": now.Unix(),
			"exp": now.Add(4 * time.Minute).Unix(),
			"jti": randomID(),
		})
		if err != nil {
			return nil, err
		}
		form.Set("client_assertion_type", "urn:ietf:params:oauth:client-assertion-type:jwt-bearer")
		form.Set("client_assertion", assertion)
	}
	req, err := http.NewRequestWithContext(ctx, http.MethodPost, p.TokenEndpoint, strings.NewReader(form.Encode()))
	if err != nil {
		return nil, err
	}
	req.Header.Set("Content-Type", "application/x-www-form-urlencoded")
	req.Header.Set("Accept", "application/json")
	resp, err := p.http.Do(req)
	if err != nil {
		return nil, fmt.Errorf("authtest: token request: %w", err)
	}
	defer resp.Body.Close()
	body, err := io.ReadAll(io.LimitReader(resp.Body, 1<<20))
	if err != nil {
		return nil, fmt.Errorf("authtest: token response: %w", err)
	}
	if resp.StatusCode != http.StatusOK {
		var e struct {
			Error       string `json:"error"`
			Description string `json:"error_description"`
		}
		_ = json.Unmarshal(body, &e)
		return nil, fmt.Errorf("authtest: token request for client %q: %s: %s %s", client, resp.Status, e.Error, e.Description)
	}
	var tr TokenResponse
	if err := json.Unmarshal(body, &tr); err != nil || tr.AccessToken == "" {
		return nil, fmt.Errorf("authtest: token response without access_token")
	}
	return &tr, nil
}

// tailBuffer keeps the last max bytes written to it.
type tailBuffer struct {
	mu  sync.Mutex
	max int
	buf bytes.Buffer
}

func (b *tailBuffer) Write(p []byte) (int, error) {
	b.mu.Lock()
	defer b.mu.Unlock()
	b.buf.Write(p)
	if over := b.buf.Len() - b.max; over > 0 {
		b.buf.Next(over)
	}
	return len(p), nil
}

func (b *tailBuffer) String() string {
	b.mu.Lock()
	defer b.mu.Unlock()
	return b.buf.String()
}
