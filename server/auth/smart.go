package auth

import (
	"encoding/json"
	"slices"
)

// IssuerMetadata is the part of an OpenID Connect / OAuth 2.0
// authorization server's discovery metadata that SMART discovery uses
// (OpenID Connect Discovery 1.0, RFC 8414).
type IssuerMetadata struct {
	Issuer                                     string   `json:"issuer"`
	AuthorizationEndpoint                      string   `json:"authorization_endpoint,omitempty"`
	TokenEndpoint                              string   `json:"token_endpoint,omitempty"`
	JWKSURI                                    string   `json:"jwks_uri,omitempty"`
	UserinfoEndpoint                           string   `json:"userinfo_endpoint,omitempty"`
	RegistrationEndpoint                       string   `json:"registration_endpoint,omitempty"`
	IntrospectionEndpoint                      string   `json:"introspection_endpoint,omitempty"`
	RevocationEndpoint                         string   `json:"revocation_endpoint,omitempty"`
	ScopesSupported                            []string `json:"scopes_supported,omitempty"`
	ResponseTypesSupported                     []string `json:"response_types_supported,omitempty"`
	GrantTypesSupported                        []string `json:"grant_types_supported,omitempty"`
	TokenEndpointAuthMethodsSupported          []string `json:"token_endpoint_auth_methods_supported,omitempty"`
	TokenEndpointAuthSigningAlgValuesSupported []string `json:"token_endpoint_auth_signing_alg_values_supported,omitempty"`
	CodeChallengeMethodsSupported              []string `json:"code_challenge_methods_supported,omitempty"`
}

func (m IssuerMetadata) clone() IssuerMetadata {
	m.ScopesSupported = slices.Clone(m.ScopesSupported)
	m.ResponseTypesSupported = slices.Clone(m.ResponseTypesSupported)
	m.GrantTypesSupported = slices.Clone(m.GrantTypesSupported)
	m.TokenEndpointAuthMethodsSupported = slices.Clone(m.TokenEndpointAuthMethodsSupported)
	m.TokenEndpointAuthSigningAlgValuesSupported = slices.Clone(m.TokenEndpointAuthSigningAlgValuesSupported)
	m.CodeChallengeMethodsSupported = slices.Clone(m.CodeChallengeMethodsSupported)
	return m
}

// SMARTConfig is what the server adds to the issuer's metadata in its
// SMART configuration document.
type SMARTConfig struct {
	// EHRLaunch declares that EHRs launch apps against this server
	// (launch-ehr, context-ehr-patient, context-ehr-encounter).
	EHRLaunch bool
	// ManagementEndpoint is a user-facing URL where authorizations can be
	// reviewed and revoked, if any.
	ManagementEndpoint string
	// Scopes are added to scopes_supported (the issuer's scopes_supported
	// and the SMART scopes casefhir understands are always listed).
	Scopes []string
	// Capabilities are added to the derived capabilities.
	Capabilities []string
}

// smartScopes are the SMART scopes casefhir enforces, listed in
// scopes_supported.
func smartScopes() []string {
	return []string{
		"openid", "fhirUser", "profile", "launch", "launch/patient", "launch/encounter",
		"offline_access", "online_access",
		"patient/*.rs", "patient/*.cruds", "user/*.rs", "user/*.cruds", "system/*.rs", "system/*.cruds",
		"patient/*.read", "patient/*.write", "patient/*.*", "user/*.read", "user/*.write", "user/*.*",
		"system/*.read", "system/*.write", "system/*.*",
	}
}

// smartDocument is the SMART App Launch 2.x configuration document
// (https://hl7.org/fhir/smart-app-launch/conformance.html), in field order.
type smartDocument struct {
	Issuer                                     string   `json:"issuer,omitempty"`
	JWKSURI                                    string   `json:"jwks_uri,omitempty"`
	AuthorizationEndpoint                      string   `json:"authorization_endpoint,omitempty"`
	GrantTypesSupported                        []string `json:"grant_types_supported"`
	TokenEndpoint                              string   `json:"token_endpoint"`
	TokenEndpointAuthMethodsSupported          []string `json:"token_endpoint_auth_methods_supported,omitempty"`
	TokenEndpointAuthSigningAlgValuesSupported []string `json:"token_endpoint_auth_signing_alg_values_supported,omitempty"`
	RegistrationEndpoint                       string   `json:"registration_endpoint,omitempty"`
	UserinfoEndpoint                           string   `json:"userinfo_endpoint,omitempty"`
	ScopesSupported                            []string `json:"scopes_supported,omitempty"`
	ResponseTypesSupported                     []string `json:"response_types_supported,omitempty"`
	ManagementEndpoint                         string   `json:"management_endpoint,omitempty"`
	IntrospectionEndpoint                      string   `json:"introspection_endpoint,omitempty"`
	RevocationEndpoint                         string   `json:"revocation_endpoint,omitempty"`
	Capabilities                               []string `json:"capabilities"`
	CodeChallengeMethodsSupported              []string `json:"code_challenge_methods_supported"`
}

// DiscoveryDocument returns the JSON body of
// /.well-known/smart-configuration: the endpoints, grant types and client
// authentication methods of the issuer, the scopes casefhir understands,
// code_challenge_methods_supported ["S256"] (SMART forbids "plain") and the
// capabilities derived from both.
func DiscoveryDocument(meta IssuerMetadata, cfg SMARTConfig) []byte {
	grants := meta.GrantTypesSupported
	if len(grants) == 0 {
		// OpenID Connect Discovery default, without implicit (not SMART).
		grants = []string{"authorization_code"}
	}
	grants = slices.DeleteFunc(slices.Clone(grants), func(g string) bool { return g == "implicit" })
	authMethods := meta.TokenEndpointAuthMethodsSupported
	if len(authMethods) == 0 {
		authMethods = []string{"client_secret_basic"} // RFC 8414 default
	}
	doc := smartDocument{
		Issuer:                            meta.Issuer,
		JWKSURI:                           meta.JWKSURI,
		AuthorizationEndpoint:             meta.AuthorizationEndpoint,
		GrantTypesSupported:               grants,
		TokenEndpoint:                     meta.TokenEndpoint,
		TokenEndpointAuthMethodsSupported: slices.Clone(authMethods),
		TokenEndpointAuthSigningAlgValuesSupported: slices.Clone(meta.TokenEndpointAuthSigningAlgValuesSupported),
		RegistrationEndpoint:                       meta.RegistrationEndpoint,
		UserinfoEndpoint:                           meta.UserinfoEndpoint,
		ScopesSupported:                            union(meta.ScopesSupported, smartScopes(), cfg.Scopes),
		ResponseTypesSupported:                     slices.Clone(meta.ResponseTypesSupported),
		ManagementEndpoint:                         cfg.ManagementEndpoint,
		IntrospectionEndpoint:                      meta.IntrospectionEndpoint,
		RevocationEndpoint:                         meta.RevocationEndpoint,
		Capabilities:                               capabilities(meta, grants, authMethods, cfg),
		CodeChallengeMethodsSupported:              []string{"S256"},
	}
	b, err := json.Marshal(doc)
	if err != nil { // cannot happen: strings and string slices only
		return []byte(`{}`)
	}
	return b
}

// capabilities derives the SMART capabilities
// (https://hl7.org/fhir/smart-app-launch/conformance.html#capabilities).
func capabilities(meta IssuerMetadata, grants, authMethods []string, cfg SMARTConfig) []string {
	var caps []string
	add := func(c ...string) { caps = append(caps, c...) }
	authCode := slices.Contains(grants, "authorization_code") && meta.AuthorizationEndpoint != ""
	if authCode {
		if cfg.EHRLaunch {
			add("launch-ehr")
		}
		add("launch-standalone")
	}
	if authCode && slices.Contains(authMethods, "none") {
		add("client-public")
	}
	if slices.Contains(authMethods, "client_secret_basic") || slices.Contains(authMethods, "client_secret_post") {
		add("client-confidential-symmetric")
	}
	if slices.Contains(authMethods, "private_key_jwt") {
		add("client-confidential-asymmetric")
	}
	if authCode && meta.Issuer != "" && meta.JWKSURI != "" &&
		(len(meta.ScopesSupported) == 0 || slices.Contains(meta.ScopesSupported, "openid")) {
		add("sso-openid-connect")
	}
	if authCode {
		if cfg.EHRLaunch {
			add("context-ehr-patient", "context-ehr-encounter")
		}
		add("context-standalone-patient")
	}
	if slices.Contains(grants, "refresh_token") {
		add("permission-offline")
		if slices.Contains(meta.ScopesSupported, "online_access") {
			add("permission-online")
		}
	}
	add("permission-patient", "permission-user", "permission-v1", "permission-v2")
	return union(caps, cfg.Capabilities)
}

// union concatenates lists, dropping empty strings and repeats, keeping
// first-seen order.
func union(lists ...[]string) []string {
	var out []string
	seen := map[string]bool{}
	for _, l := range lists {
		for _, s := range l {
			if s == "" || seen[s] {
				continue
			}
			seen[s] = true
			out = append(out, s)
		}
	}
	return out
}
