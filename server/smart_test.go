package server_test

import (
	"encoding/json"
	"net"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/casefhir/casefhir/server"
	"github.com/casefhir/casefhir/server/auth/authtest"
	"github.com/casefhir/casefhir/server/servertest"
)

// smartEnv is a casefhir server with --auth=smart whose issuer is a real
// OpenID provider (oidc-provider) on loopback.
type smartEnv struct {
	prov *authtest.Provider
	s    *servertest.Server
}

// smartOptions tune startSMART.
type smartOptions struct {
	// DataDir reuses a data directory.
	DataDir string
	// AuditOff turns the audit trail off.
	AuditOff bool
}

// listenLoopback opens the listener first so that the FHIR base URL (the
// tokens' audience) is known before the provider and the server start.
func listenLoopback(t testing.TB) (net.Listener, string) {
	t.Helper()
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	return ln, "http://" + ln.Addr().String() + "/fhir"
}

// startSMART starts the provider with clients and a server that accepts
// its tokens.
func startSMART(t testing.TB, o smartOptions, clients ...authtest.Client) *smartEnv {
	t.Helper()
	ln, base := listenLoopback(t)
	prov := authtest.StartProvider(t, authtest.ProviderOptions{Audience: base, Clients: clients})
	s := servertest.Start(t, servertest.Options{Listener: ln, DataDir: o.DataDir, Config: server.Config{
		Auth: server.AuthSMART, OIDCIssuer: prov.Issuer, OIDCAudience: base, BaseURL: base, AuditOff: o.AuditOff,
		App: server.AppOff, // the FHIR API alone; the app has its own tests
	}})
	return &smartEnv{prov: prov, s: s}
}

// do sends a request with a bearer token ("" sends none).
func (e *smartEnv) do(t testing.TB, tok, method, path string, body any, hdr ...string) *servertest.Response {
	t.Helper()
	return doAs(t, e.s, tok, method, path, body, hdr...)
}

func doAs(t testing.TB, s *servertest.Server, tok, method, path string, body any, hdr ...string) *servertest.Response {
	t.Helper()
	if tok != "" {
		hdr = append(hdr, "Authorization", "Bearer "+tok)
	}
	return s.Do(t, method, path, body, hdr...)
}

// issueDiagnostics returns the details and diagnostics of an
// OperationOutcome body, joined.
func issueText(r *servertest.Response) string {
	var oo struct {
		Issue []struct {
			Details struct {
				Text string `json:"text"`
			} `json:"details"`
			Diagnostics string `json:"diagnostics"`
		} `json:"issue"`
	}
	_ = json.Unmarshal(r.Body, &oo)
	var b strings.Builder
	for _, i := range oo.Issue {
		b.WriteString(i.Details.Text + " " + i.Diagnostics + "\n")
	}
	return b.String()
}

// bundleIDs returns "Type/id" of every resource in a Bundle.
func bundleIDs(r *servertest.Response) []string {
	var b struct {
		Entry []struct {
			Resource struct {
				ResourceType string `json:"resourceType"`
				ID           string `json:"id"`
			} `json:"resource"`
		} `json:"entry"`
	}
	_ = json.Unmarshal(r.Body, &b)
	var out []string
	for _, e := range b.Entry {
		if e.Resource.ResourceType != "" && e.Resource.ResourceType != "OperationOutcome" {
			out = append(out, e.Resource.ResourceType+"/"+e.Resource.ID)
		}
	}
	return out
}

// TestSMARTPublicEndpointsAndDiscovery checks the public endpoints (with
// no token, a valid one and an invalid one), the SMART configuration
// document and the CapabilityStatement's security section.
func TestSMARTPublicEndpointsAndDiscovery(t *testing.T) {
	e := startSMART(t, smartOptions{}, authtest.Client{ID: "backend"})
	good := e.prov.Token(t, "backend", "system/*.rs")
	for _, tok := range []string{"", good, "not-a-jwt", good[:len(good)-4] + "AAAA"} {
		for _, path := range []string{"metadata", ".well-known/smart-configuration", "/.well-known/smart-configuration"} {
			r := e.do(t, tok, "GET", path, nil)
			if r.Status != 200 {
				t.Errorf("GET %s (token %v): status %d: %s", path, tok != "", r.Status, r.Body)
			}
			if r.Header.Get("WWW-Authenticate") != "" {
				t.Errorf("GET %s: a public endpoint sent a challenge", path)
			}
		}
	}

	r := e.do(t, "", "GET", ".well-known/smart-configuration", nil)
	var doc struct {
		Issuer                 string   `json:"issuer"`
		AuthorizationEndpoint  string   `json:"authorization_endpoint"`
		TokenEndpoint          string   `json:"token_endpoint"`
		JWKSURI                string   `json:"jwks_uri"`
		GrantTypes             []string `json:"grant_types_supported"`
		AuthMethods            []string `json:"token_endpoint_auth_methods_supported"`
		CodeChallengeMethods   []string `json:"code_challenge_methods_supported"`
		ScopesSupported        []string `json:"scopes_supported"`
		Capabilities           []string `json:"capabilities"`
		ResponseTypesSupported []string `json:"response_types_supported"`
	}
	if err := json.Unmarshal(r.Body, &doc); err != nil {
		t.Fatalf("smart-configuration: %v: %s", err, r.Body)
	}
	if doc.Issuer != e.prov.Issuer || doc.TokenEndpoint != e.prov.TokenEndpoint || !strings.HasPrefix(doc.JWKSURI, e.prov.Issuer) ||
		!strings.HasPrefix(doc.AuthorizationEndpoint, e.prov.Issuer) {
		t.Errorf("smart-configuration endpoints: %s", r.Body)
	}
	if !slices.Equal(doc.CodeChallengeMethods, []string{"S256"}) {
		t.Errorf("code_challenge_methods_supported = %v, want [S256]", doc.CodeChallengeMethods)
	}
	if !slices.Contains(doc.GrantTypes, "client_credentials") || !slices.Contains(doc.GrantTypes, "authorization_code") {
		t.Errorf("grant_types_supported = %v", doc.GrantTypes)
	}
	if !slices.Contains(doc.AuthMethods, "private_key_jwt") {
		t.Errorf("token_endpoint_auth_methods_supported = %v", doc.AuthMethods)
	}
	for _, s := range []string{"patient/*.rs", "user/*.cruds", "system/*.rs", "launch/patient", "fhirUser"} {
		if !slices.Contains(doc.ScopesSupported, s) {
			t.Errorf("scopes_supported lacks %s", s)
		}
	}
	for _, c := range []string{"launch-standalone", "client-confidential-asymmetric", "permission-v1", "permission-v2", "permission-patient", "context-standalone-patient"} {
		if !slices.Contains(doc.Capabilities, c) {
			t.Errorf("capabilities lack %s: %v", c, doc.Capabilities)
		}
	}
	if r2 := e.do(t, "", "GET", "/.well-known/smart-configuration", nil); string(r2.Body) != string(r.Body) {
		t.Errorf("the two smart-configuration URLs differ")
	}

	cs := e.do(t, "not-a-jwt", "GET", "metadata", nil)
	var capst struct {
		Rest []struct {
			Security struct {
				Service []struct {
					Coding []struct{ System, Code string } `json:"coding"`
				} `json:"service"`
				Extension []struct {
					URL       string `json:"url"`
					Extension []struct {
						URL      string `json:"url"`
						ValueURI string `json:"valueUri"`
					} `json:"extension"`
				} `json:"extension"`
			} `json:"security"`
		} `json:"rest"`
	}
	if err := json.Unmarshal(cs.Body, &capst); err != nil || len(capst.Rest) == 0 {
		t.Fatalf("CapabilityStatement: %v", err)
	}
	sec := capst.Rest[0].Security
	if len(sec.Service) == 0 || len(sec.Service[0].Coding) == 0 || sec.Service[0].Coding[0].Code != "SMART-on-FHIR" ||
		sec.Service[0].Coding[0].System != "http://terminology.hl7.org/CodeSystem/restful-security-service" {
		t.Errorf("rest.security.service = %+v", sec.Service)
	}
	uris := map[string]string{}
	for _, x := range sec.Extension {
		if x.URL == "http://fhir-registry.smarthealthit.org/StructureDefinition/oauth-uris" {
			for _, y := range x.Extension {
				uris[y.URL] = y.ValueURI
			}
		}
	}
	if uris["token"] != e.prov.TokenEndpoint || uris["authorize"] == "" {
		t.Errorf("oauth-uris extension = %v", uris)
	}
}

// TestSMARTTokensAndScopes covers a missing token, tokens without the
// needed scope, v1 and v2 scopes, system/ (client_credentials with
// private_key_jwt), user/ acting for fhirUser, and a granular
// patient/Observation.rs?category=laboratory scope on reads and searches.
func TestSMARTTokensAndScopes(t *testing.T) {
	const pid = "smart-pat"
	e := startSMART(t, smartOptions{},
		authtest.Client{ID: "backend"},
		authtest.Client{ID: "clinician", Secret: "clinician-secret-0123456789abcdef0123456789", Claims: map[string]any{"fhirUser": "Practitioner/smart-doc"}},
		authtest.Client{ID: "patient-app", Claims: map[string]any{"patient": pid, "fhirUser": "Patient/" + pid}},
		authtest.Client{ID: "no-context"},
	)
	admin := e.prov.Token(t, "backend", "system/*.cruds")
	put := func(typ, id string, res map[string]any) {
		t.Helper()
		res["resourceType"], res["id"] = typ, id
		wantStatus(t, e.do(t, admin, "PUT", typ+"/"+id, res), 201)
	}
	put("Patient", pid, map[string]any{"name": []any{map[string]any{"family": "Smart"}}})
	put("Practitioner", "smart-doc", map[string]any{"name": []any{map[string]any{"family": "Doc"}}})
	obs := func(id, cat string) {
		put("Observation", id, map[string]any{"status": "final", "subject": caseRef("Patient/" + pid),
			"category": []any{map[string]any{"coding": []any{map[string]any{
				"system": "http://terminology.hl7.org/CodeSystem/observation-category", "code": cat}}}},
			"code": map[string]any{"text": cat}})
	}
	obs("smart-lab", "laboratory")
	obs("smart-vital", "vital-signs")

	t.Run("missing token", func(t *testing.T) {
		for _, path := range []string{"Patient/" + pid, "Observation", "_history", "EpisodeOfCare/x/$everything"} {
			r := e.do(t, "", "GET", path, nil)
			wantStatus(t, r, 401)
			wantIssue(t, r, "login")
			if !strings.HasPrefix(r.Header.Get("WWW-Authenticate"), "Bearer") {
				t.Errorf("GET %s: WWW-Authenticate %q", path, r.Header.Get("WWW-Authenticate"))
			}
		}
		r := e.do(t, "", "POST", "Patient", map[string]any{"resourceType": "Patient"})
		wantStatus(t, r, 401)
	})

	t.Run("malformed token", func(t *testing.T) {
		r := e.do(t, "a.b.c", "GET", "Patient/"+pid, nil)
		wantStatus(t, r, 401)
		if !strings.Contains(r.Header.Get("WWW-Authenticate"), `error="invalid_token"`) {
			t.Errorf("WWW-Authenticate %q", r.Header.Get("WWW-Authenticate"))
		}
	})

	t.Run("missing scope", func(t *testing.T) {
		tok := e.prov.Token(t, "backend", "system/Coverage.rs")
		r := e.do(t, tok, "GET", "Patient/"+pid, nil)
		wantStatus(t, r, 403)
		wantIssue(t, r, "forbidden")
		if !strings.Contains(issueText(r), "system/Patient.r") {
			t.Errorf("403 does not name the missing scope: %s", r.Body)
		}
		if !strings.Contains(r.Header.Get("WWW-Authenticate"), "insufficient_scope") {
			t.Errorf("WWW-Authenticate %q", r.Header.Get("WWW-Authenticate"))
		}
		r = e.do(t, tok, "POST", "Coverage", map[string]any{"resourceType": "Coverage"})
		wantStatus(t, r, 403)
		if !strings.Contains(issueText(r), "system/Coverage.c") {
			t.Errorf("403 does not name system/Coverage.c: %s", r.Body)
		}
		// A read-only v1 scope does not allow writes.
		ro := e.prov.Token(t, "backend", "system/Observation.read")
		wantStatus(t, e.do(t, ro, "GET", "Observation/smart-lab", nil), 200)
		r = e.do(t, ro, "DELETE", "Observation/smart-lab", nil)
		wantStatus(t, r, 403)
		if !strings.Contains(issueText(r), "system/Observation.d") {
			t.Errorf("403 does not name system/Observation.d: %s", r.Body)
		}
		// A v2 search-only scope does not allow a read by id.
		so := e.prov.Token(t, "backend", "system/Observation.s")
		wantStatus(t, e.do(t, so, "GET", "Observation?_id=smart-lab", nil), 200)
		wantStatus(t, e.do(t, so, "GET", "Observation/smart-lab", nil), 403)
		// A patient/ scope without a patient claim grants nothing.
		nc := e.prov.Token(t, "no-context", "patient/*.rs")
		wantStatus(t, e.do(t, nc, "GET", "Observation/smart-lab", nil), 403)
	})

	t.Run("v1 and v2 system scopes", func(t *testing.T) {
		for _, scope := range []string{"system/*.read", "system/Observation.read", "system/*.rs", "system/Observation.rs", "system/*.*"} {
			tok := e.prov.Token(t, "backend", scope)
			r := e.do(t, tok, "GET", "Observation?_count=10", nil)
			wantStatus(t, r, 200)
			if ids := bundleIDs(r); !slices.Contains(ids, "Observation/smart-lab") || !slices.Contains(ids, "Observation/smart-vital") {
				t.Errorf("%s: search found %v", scope, ids)
			}
		}
		w1 := e.prov.Token(t, "backend", "system/Task.write")
		r := e.do(t, w1, "POST", "Task", map[string]any{"resourceType": "Task", "status": "requested", "intent": "order"})
		wantStatus(t, r, 201)
		wantStatus(t, e.do(t, w1, "GET", "Task/"+r.JSON()["id"].(string), nil), 403)
		w2 := e.prov.Token(t, "backend", "system/Task.cud")
		wantStatus(t, e.do(t, w2, "DELETE", "Task/"+r.JSON()["id"].(string), nil), 204)
	})

	t.Run("user scopes act for fhirUser", func(t *testing.T) {
		tok := e.prov.Token(t, "clinician", "user/*.cruds fhirUser openid")
		r := e.do(t, tok, "GET", "Observation?_count=10", nil)
		wantStatus(t, r, 200)
		if len(bundleIDs(r)) < 2 {
			t.Errorf("user/*.cruds search found %v", bundleIDs(r))
		}
		r = e.do(t, tok, "POST", "Observation", map[string]any{"resourceType": "Observation", "status": "preliminary",
			"code": map[string]any{"text": "by clinician"}, "subject": caseRef("Patient/" + pid), "performer": []any{caseRef("Practitioner/smart-doc")}})
		wantStatus(t, r, 201)
		// The audit trail names the fhirUser the token acts for.
		aud := e.prov.Token(t, "backend", "system/AuditEvent.rs")
		deadline := time.Now().Add(10 * time.Second)
		for {
			a := e.do(t, aud, "GET", "AuditEvent?_count=200", nil)
			wantStatus(t, a, 200)
			if strings.Contains(string(a.Body), "Practitioner/smart-doc") && strings.Contains(string(a.Body), `"value":"clinician"`) {
				break
			}
			if time.Now().After(deadline) {
				t.Fatalf("no AuditEvent names fhirUser Practitioner/smart-doc and client clinician")
			}
			time.Sleep(50 * time.Millisecond)
		}
		// Without an explicit AuditEvent scope the trail is closed, even to user/*.
		wantStatus(t, e.do(t, tok, "GET", "AuditEvent", nil), 403)
	})

	t.Run("granular patient scope", func(t *testing.T) {
		tok := e.prov.Token(t, "patient-app", "patient/Observation.rs?category=laboratory patient/Patient.rs launch/patient")
		wantStatus(t, e.do(t, tok, "GET", "Observation/smart-lab", nil), 200)
		wantStatus(t, e.do(t, tok, "GET", "Observation/smart-vital", nil), 404)
		wantStatus(t, e.do(t, tok, "GET", "Observation/smart-vital/_history/1", nil), 404)
		for _, path := range []string{"Observation", "Observation?code:text=vital-signs,laboratory", "Observation?patient=" + pid,
			"Patient/" + pid + "/Observation", "Observation/_history", "Patient?_id=" + pid + "&_revinclude=Observation:subject"} {
			r := e.do(t, tok, "GET", path, nil)
			wantStatus(t, r, 200)
			if strings.Contains(string(r.Body), "smart-vital") || !strings.Contains(string(r.Body), "smart-lab") {
				t.Errorf("GET %s under a laboratory-only scope: %v", path, bundleIDs(r))
			}
		}
		wantStatus(t, e.do(t, tok, "GET", "Condition", nil), 403)
		wantStatus(t, e.do(t, tok, "GET", "Patient/"+pid, nil), 200)
	})
}

// TestSMARTInvalidTokens points a server at an in-process issuer that
// mints broken tokens: each is refused with 401 invalid_token.
func TestSMARTInvalidTokens(t *testing.T) {
	li := authtest.NewLocalIssuer(t)
	ln, base := listenLoopback(t)
	s := servertest.Start(t, servertest.Options{Listener: ln, Config: server.Config{
		Auth: server.AuthSMART, OIDCIssuer: li.URL, OIDCAudience: base, BaseURL: base, App: server.AppOff}})
	valid := li.Mint(t, li.Claims(base))
	wantStatus(t, doAs(t, s, valid, "GET", "Patient", nil), 200)

	claims := func(edit func(map[string]any)) map[string]any {
		c := li.Claims(base)
		edit(c)
		return c
	}
	cases := []struct {
		name string
		tok  string
	}{
		{"expired", li.Mint(t, claims(func(c map[string]any) {
			c["exp"] = time.Now().Add(-time.Minute).Unix()
			c["iat"] = time.Now().Add(-10 * time.Minute).Unix()
		}))},
		{"not yet valid", li.Mint(t, claims(func(c map[string]any) { c["nbf"] = time.Now().Add(10 * time.Minute).Unix() }))},
		{"wrong audience", li.Mint(t, claims(func(c map[string]any) { c["aud"] = "https://other.example.org/fhir" }))},
		{"wrong issuer", li.Mint(t, claims(func(c map[string]any) { c["iss"] = "https://evil.example.org" }))},
		{"bad signature", li.MintWith(t, authtest.MintOptions{Tamper: true}, li.Claims(base))},
		{"unknown kid", li.MintWith(t, authtest.MintOptions{Unpublished: true}, li.Claims(base))},
		{"alg none", li.MintWith(t, authtest.MintOptions{Alg: "none"}, li.Claims(base))},
		{"alg HS256 with the public key", li.MintWith(t, authtest.MintOptions{Alg: "HS256"}, li.Claims(base))},
	}
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			r := doAs(t, s, c.tok, "GET", "Patient", nil)
			wantStatus(t, r, 401)
			wantIssue(t, r, "login")
			if ch := r.Header.Get("WWW-Authenticate"); !strings.HasPrefix(ch, "Bearer") || !strings.Contains(ch, `error="invalid_token"`) {
				t.Errorf("WWW-Authenticate %q", ch)
			}
			// Public endpoints ignore the broken token.
			wantStatus(t, doAs(t, s, c.tok, "GET", "metadata", nil), 200)
			wantStatus(t, doAs(t, s, c.tok, "GET", ".well-known/smart-configuration", nil), 200)
		})
	}

	// A search's paging snapshot belongs to the token's subject and patient:
	// a token of the same subject bound to another patient cannot page
	// through it.
	t.Run("paging snapshot across patients of one subject", func(t *testing.T) {
		sys := li.Mint(t, li.Claims(base))
		for _, p := range []string{"snap-a", "snap-b"} {
			wantStatus(t, doAs(t, s, sys, "PUT", "Patient/"+p, map[string]any{"resourceType": "Patient", "id": p}), 201)
			for i := range 3 {
				wantStatus(t, doAs(t, s, sys, "POST", "Observation", map[string]any{"resourceType": "Observation", "status": "final",
					"code": map[string]any{"text": "snap"}, "subject": caseRef("Patient/" + p), "note": []any{map[string]any{"text": p + "-note-" + string(rune('0'+i))}}}), 201)
			}
		}
		tokFor := func(p string) string {
			return li.Mint(t, claims(func(c map[string]any) {
				c["scope"], c["patient"], c["sub"] = "patient/*.rs", p, "shared-user"
			}))
		}
		rb := doAs(t, s, tokFor("snap-b"), "GET", "Observation?_count=1", nil)
		wantStatus(t, rb, 200)
		next := bundleLink(rb.JSON(), "next")
		if next == "" || !strings.Contains(string(rb.Body), "snap-b-note") {
			t.Fatalf("B's first page: %s", rb.Body)
		}
		ra := doAs(t, s, tokFor("snap-a"), "GET", next, nil)
		if strings.Contains(string(ra.Body), "snap-b") {
			t.Errorf("A's token paged through B's search: %d %s", ra.Status, ra.Body)
		}
	})
}
