package auth_test

import (
	"encoding/json"
	"reflect"
	"slices"
	"testing"

	"github.com/casefhir/casefhir/server/auth"
	"github.com/casefhir/casefhir/server/auth/authtest"
)

func TestDiscoveryDocument(t *testing.T) {
	li := authtest.NewLocalIssuer(t)
	v := newVerifier(t, li)
	meta := v.Metadata()
	var doc struct {
		Issuer                 string   `json:"issuer"`
		JWKSURI                string   `json:"jwks_uri"`
		AuthorizationEndpoint  string   `json:"authorization_endpoint"`
		TokenEndpoint          string   `json:"token_endpoint"`
		GrantTypes             []string `json:"grant_types_supported"`
		AuthMethods            []string `json:"token_endpoint_auth_methods_supported"`
		AuthSigningAlgs        []string `json:"token_endpoint_auth_signing_alg_values_supported"`
		Scopes                 []string `json:"scopes_supported"`
		ResponseTypes          []string `json:"response_types_supported"`
		Capabilities           []string `json:"capabilities"`
		CodeChallengeMethods   []string `json:"code_challenge_methods_supported"`
		ManagementEndpoint     string   `json:"management_endpoint"`
		UserinfoEndpoint       string   `json:"userinfo_endpoint"`
		IntrospectionEndpoint  string   `json:"introspection_endpoint"`
		RegistrationEndpointNo string   `json:"registration_endpoint"`
	}
	body := auth.DiscoveryDocument(meta, auth.SMARTConfig{EHRLaunch: true, ManagementEndpoint: "https://ehr.example.org/apps",
		Scopes: []string{"user/EpisodeOfCare.cru"}, Capabilities: []string{"context-banner"}})
	if err := json.Unmarshal(body, &doc); err != nil {
		t.Fatal(err)
	}
	if doc.Issuer != li.URL || doc.JWKSURI != li.URL+"/jwks" || doc.AuthorizationEndpoint != li.URL+"/authorize" ||
		doc.TokenEndpoint != li.URL+"/token" || doc.ManagementEndpoint != "https://ehr.example.org/apps" ||
		doc.UserinfoEndpoint != li.URL+"/userinfo" {
		t.Errorf("endpoints wrong: %s", body)
	}
	if want := []string{"authorization_code", "refresh_token", "client_credentials"}; !reflect.DeepEqual(doc.GrantTypes, want) {
		t.Errorf("grant types = %v, want %v (no implicit)", doc.GrantTypes, want)
	}
	if !reflect.DeepEqual(doc.CodeChallengeMethods, []string{"S256"}) {
		t.Errorf("code_challenge_methods_supported = %v", doc.CodeChallengeMethods)
	}
	if !reflect.DeepEqual(doc.AuthSigningAlgs, []string{"RS384", "ES384"}) || !slices.Contains(doc.AuthMethods, "private_key_jwt") {
		t.Errorf("auth methods %v, algs %v", doc.AuthMethods, doc.AuthSigningAlgs)
	}
	for _, s := range []string{"openid", "fhirUser", "launch/patient", "patient/*.rs", "system/*.cruds", "user/EpisodeOfCare.cru"} {
		if !slices.Contains(doc.Scopes, s) {
			t.Errorf("scopes_supported lacks %s", s)
		}
	}
	wantCaps := []string{"launch-ehr", "launch-standalone", "client-public", "client-confidential-symmetric",
		"client-confidential-asymmetric", "sso-openid-connect", "context-ehr-patient", "context-ehr-encounter",
		"context-standalone-patient", "permission-offline", "permission-online", "permission-patient", "permission-user",
		"permission-v1", "permission-v2", "context-banner"}
	if !reflect.DeepEqual(doc.Capabilities, wantCaps) {
		t.Errorf("capabilities =\n %v\nwant\n %v", doc.Capabilities, wantCaps)
	}

	// A back-end-only issuer: client_credentials + private_key_jwt.
	meta = auth.IssuerMetadata{Issuer: "https://as.example.org", TokenEndpoint: "https://as.example.org/token",
		GrantTypesSupported: []string{"client_credentials"}, TokenEndpointAuthMethodsSupported: []string{"private_key_jwt"}}
	doc.Capabilities = nil
	if err := json.Unmarshal(auth.DiscoveryDocument(meta, auth.SMARTConfig{}), &doc); err != nil {
		t.Fatal(err)
	}
	wantCaps = []string{"client-confidential-asymmetric", "permission-patient", "permission-user", "permission-v1", "permission-v2"}
	if !reflect.DeepEqual(doc.Capabilities, wantCaps) {
		t.Errorf("back-end capabilities = %v, want %v", doc.Capabilities, wantCaps)
	}
}
