// Package authtest provides token issuers for tests of casefhir's SMART
// support, used by server/auth and by the server's HTTP tests.
//
//   - [StartProvider] runs a real OpenID provider (the npm package
//     oidc-provider, from server/auth/testdata/oidc) on loopback. It installs
//     the pinned packages itself with npm ci when they are missing, so a
//     fresh machine with Go and Node needs nothing else. [Provider.Token]
//     obtains JWT access tokens by client_credentials with private_key_jwt
//     (SMART Backend Services) or client_secret_post. It also registers
//     SMART apps for the authorization code flow with PKCE (confidential
//     with client_secret_basic, or public), resolves an EHR's launch value
//     to its context (patient and fhirUser in the token response and the
//     access token, aud from the aud parameter) and completes every
//     interaction without a human (auto-login of a test user,
//     auto-consent), so that a browser test can follow the real redirects.
//   - [NewLocalIssuer] is an in-process issuer (discovery + JWKS on an
//     httptest server) that mints arbitrary tokens, including broken ones
//     (wrong audience or issuer, expired, not yet valid, bad signature,
//     unknown key id, alg none or HS256), and rotates keys.
//
// It is for tests only: production code must not import it. It keeps no
// package-level mutable state and never logs tokens.
package authtest
