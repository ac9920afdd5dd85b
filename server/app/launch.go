package app

import (
	"context"
	"crypto/sha256"
	"encoding/base64"
	"encoding/json"
	"fmt"
	"io"
	"net/http"
	"net/url"
	"slices"
	"strings"
	"time"
)

// smartConfig is what the app needs of a SMART discovery document.
type smartConfig struct {
	AuthorizationEndpoint string   `json:"authorization_endpoint"`
	TokenEndpoint         string   `json:"token_endpoint"`
	CodeChallengeMethods  []string `json:"code_challenge_methods_supported"`
	Capabilities          []string `json:"capabilities"`
}

// handleLaunch is the EHR launch: /launch?iss=<FHIR base>&launch=<opaque>
// (SMART App Launch 2.x).
func (a *App) handleLaunch(w http.ResponseWriter, r *http.Request) {
	q := r.URL.Query()
	iss, launch := q.Get("iss"), q.Get("launch")
	if a.cfg.AuthOff {
		http.Redirect(w, r, a.cfg.AppBase+"/", http.StatusSeeOther)
		return
	}
	if iss == "" || launch == "" {
		a.errorPage(w, r, http.StatusBadRequest, "This launch is incomplete", "An EHR launch needs the iss and launch parameters. Launch the app again from your EHR.")
		return
	}
	if !a.issuerAllowed(iss) {
		a.log.Warn("app: launch refused: unknown iss")
		a.errorPage(w, r, http.StatusBadRequest, "This launch names another server", "The app only works with the FHIR server it belongs to. Launch it again from your EHR.")
		return
	}
	a.startAuthorization(w, r, strings.TrimSuffix(iss, "/"), launch)
}

// startAuthorization discovers the authorization server of iss and
// redirects the browser to its authorization endpoint (code flow with
// PKCE S256 and state). launch is "" for a standalone launch.
func (a *App) startAuthorization(w http.ResponseWriter, r *http.Request, iss, launch string) {
	sc, err := a.discover(r.Context(), iss)
	if err != nil {
		a.log.Warn("app: SMART discovery failed", "error", err.Error())
		a.errorPage(w, r, http.StatusBadGateway, "The sign-in service is unavailable", "The app could not reach the server's sign-in service. Try again in a moment.")
		return
	}
	// One browser id for all the sign-ins of a browser, so that launches in
	// two tabs do not undo each other.
	browser := randomString(24)
	if c, err := r.Cookie(loginCookie); err == nil && len(c.Value) == len(browser) {
		browser = c.Value
	}
	p := &pending{state: randomString(24), browser: browser, verifier: randomString(48),
		iss: iss, launch: launch, tokenEndpoint: sc.TokenEndpoint, created: a.now()}
	a.mu.Lock()
	a.gcLocked()
	if len(a.login) >= maxLogins {
		a.mu.Unlock()
		a.errorPage(w, r, http.StatusServiceUnavailable, "Too many sign-ins at once", "Try again in a few minutes.")
		return
	}
	a.login[p.state] = p
	a.mu.Unlock()
	a.setCookie(w, loginCookie, p.browser, loginTTL)

	scope := "openid fhirUser " + a.cfg.Scopes
	if launch != "" {
		scope = "launch " + scope
	}
	sum := sha256.Sum256([]byte(p.verifier))
	v := url.Values{
		"response_type":         {"code"},
		"client_id":             {a.cfg.ClientID},
		"redirect_uri":          {a.RedirectURI()},
		"scope":                 {scope},
		"state":                 {p.state},
		"aud":                   {iss},
		"code_challenge":        {base64.RawURLEncoding.EncodeToString(sum[:])},
		"code_challenge_method": {"S256"},
	}
	if launch != "" {
		v.Set("launch", launch)
	}
	sep := "?"
	if strings.Contains(sc.AuthorizationEndpoint, "?") {
		sep = "&"
	}
	http.Redirect(w, r, sc.AuthorizationEndpoint+sep+v.Encode(), http.StatusFound)
}

// discover fetches <iss>/.well-known/smart-configuration.
func (a *App) discover(ctx context.Context, iss string) (*smartConfig, error) {
	ctx, cancel := context.WithTimeout(ctx, 15*time.Second)
	defer cancel()
	req, err := http.NewRequestWithContext(ctx, http.MethodGet, iss+"/.well-known/smart-configuration", nil)
	if err != nil {
		return nil, err
	}
	req.Header.Set("Accept", "application/json")
	resp, err := a.http.Do(req)
	if err != nil {
		return nil, err
	}
	defer resp.Body.Close()
	if resp.StatusCode != http.StatusOK {
		return nil, fmt.Errorf("smart-configuration: %s", resp.Status)
	}
	var sc smartConfig
	if err := json.NewDecoder(io.LimitReader(resp.Body, 1<<20)).Decode(&sc); err != nil {
		return nil, fmt.Errorf("smart-configuration: %v", err)
	}
	for _, e := range []string{sc.AuthorizationEndpoint, sc.TokenEndpoint} {
		u, err := url.Parse(e)
		if err != nil || (u.Scheme != "https" && u.Scheme != "http") || u.Host == "" {
			return nil, fmt.Errorf("smart-configuration: bad endpoint")
		}
	}
	if len(sc.CodeChallengeMethods) > 0 && !slices.Contains(sc.CodeChallengeMethods, "S256") {
		return nil, fmt.Errorf("smart-configuration: S256 PKCE not supported")
	}
	return &sc, nil
}

// tokenResponse is the token endpoint's answer with the SMART context.
type tokenResponse struct {
	AccessToken string `json:"access_token"`
	TokenType   string `json:"token_type"`
	ExpiresIn   int    `json:"expires_in"`
	Scope       string `json:"scope"`
	Patient     string `json:"patient"`
	FHIRUser    string `json:"fhirUser"`
	Error       string `json:"error"`
}

// handleCallback completes the authorization: it checks state against the
// browser that started the login, exchanges the code (with the PKCE
// verifier and client_secret_basic) and opens a session.
func (a *App) handleCallback(w http.ResponseWriter, r *http.Request) {
	q := r.URL.Query()
	state := q.Get("state")
	var browser string
	if c, err := r.Cookie(loginCookie); err == nil {
		browser = c.Value
	}
	a.mu.Lock()
	p := a.login[state]
	if p != nil && equal(browser, p.browser) {
		delete(a.login, state) // one use only
	} else {
		p = nil
	}
	a.mu.Unlock()
	if p == nil || a.now().Sub(p.created) > loginTTL {
		a.log.Warn("app: callback refused: unknown or foreign state")
		a.errorPage(w, r, http.StatusBadRequest, "This sign-in is not valid", "The sign-in answer does not belong to a sign-in started in this browser, or it has expired. Launch the app again.")
		return
	}
	if e := q.Get("error"); e != "" {
		a.log.Warn("app: authorization refused", "error", e)
		a.errorPage(w, r, http.StatusForbidden, "Sign-in was refused", "The sign-in service did not grant access ("+e+"). Ask your administrator for access, then launch the app again.")
		return
	}
	code := q.Get("code")
	if code == "" {
		a.errorPage(w, r, http.StatusBadRequest, "This sign-in is not valid", "The sign-in answer has no authorization code. Launch the app again.")
		return
	}
	tr, err := a.exchange(r.Context(), p, code)
	if err != nil {
		a.log.Warn("app: code exchange failed", "error", err.Error())
		a.errorPage(w, r, http.StatusBadGateway, "Sign-in failed", "The app could not complete the sign-in. Launch it again.")
		return
	}
	s := &session{base: p.iss, token: tr.AccessToken, patient: tr.Patient, fhirUser: tr.FHIRUser,
		scope: tr.Scope, launched: p.launch != ""}
	if tr.ExpiresIn > 0 {
		s.expires = a.now().Add(time.Duration(tr.ExpiresIn) * time.Second)
	}
	if s.fhirUser == "" {
		s.fhirUser = fhirUserClaim(tr.AccessToken)
	}
	s.userName, s.patientName = s.fhirUser, ""
	if s.fhirUser != "" {
		if u, err := a.getJSON(r.Context(), s, s.fhirUser); err == nil && humanName(u) != "" {
			s.userName = humanName(u)
		}
	}
	if s.patient != "" {
		s.patientName = patientRef(s.patient)
		if p, err := a.getJSON(r.Context(), s, patientRef(s.patient)); err == nil && humanName(p) != "" {
			s.patientName = humanName(p)
		}
	}
	a.newSession(w, s)
	a.log.Info("app: signed in", "launch", map[bool]string{true: "ehr", false: "standalone"}[s.launched], "patientContext", s.patient != "")
	http.Redirect(w, r, a.cfg.AppBase+"/", http.StatusSeeOther)
}

// exchange trades the code for tokens at the token endpoint.
func (a *App) exchange(ctx context.Context, p *pending, code string) (*tokenResponse, error) {
	ctx, cancel := context.WithTimeout(ctx, 20*time.Second)
	defer cancel()
	form := url.Values{
		"grant_type":    {"authorization_code"},
		"code":          {code},
		"redirect_uri":  {a.RedirectURI()},
		"code_verifier": {p.verifier},
	}
	req, err := http.NewRequestWithContext(ctx, http.MethodPost, p.tokenEndpoint, strings.NewReader(form.Encode()))
	if err != nil {
		return nil, err
	}
	req.Header.Set("Content-Type", "application/x-www-form-urlencoded")
	req.Header.Set("Accept", "application/json")
	req.SetBasicAuth(url.QueryEscape(a.cfg.ClientID), url.QueryEscape(a.cfg.ClientSecret))
	resp, err := a.http.Do(req)
	if err != nil {
		return nil, err
	}
	defer resp.Body.Close()
	var tr tokenResponse
	if err := json.NewDecoder(io.LimitReader(resp.Body, 1<<20)).Decode(&tr); err != nil {
		return nil, fmt.Errorf("token response: %s", resp.Status)
	}
	if resp.StatusCode != http.StatusOK || tr.AccessToken == "" {
		return nil, fmt.Errorf("token response: %s %s", resp.Status, tr.Error)
	}
	if !strings.EqualFold(tr.TokenType, "bearer") && tr.TokenType != "" {
		return nil, fmt.Errorf("token response: token type %q", tr.TokenType)
	}
	return &tr, nil
}

// fhirUserClaim reads the fhirUser claim of a JWT access token without
// verifying it (the FHIR server verifies the token; the app only needs
// to know whom to show as the user).
func fhirUserClaim(tok string) string {
	parts := strings.Split(tok, ".")
	if len(parts) != 3 {
		return ""
	}
	b, err := base64.RawURLEncoding.DecodeString(parts[1])
	if err != nil {
		return ""
	}
	var c struct {
		FHIRUser string `json:"fhirUser"`
	}
	_ = json.Unmarshal(b, &c)
	return c.FHIRUser
}
