// Package auth makes casefhir a SMART App Launch 2.x resource server
// (https://hl7.org/fhir/smart-app-launch/): it verifies OpenID Connect
// access tokens, parses SMART scopes and decides what a caller may do.
//
// It owns:
//   - [Verifier]: discovery and JWKS of one issuer (go-oidc; only this
//     package may import it), signature with asymmetric algorithms only,
//     iss, aud, exp and nbf. Failures are *outcome.Error values with code
//     login (401) carrying a WWW-Authenticate: Bearer challenge.
//   - [Principal]: who a request acts for (subject, client, fhirUser,
//     patient claim, scopes), plus [Anonymous] and [Unrestricted].
//   - The scope grammar ([ParseScope], SMART v1 and v2 with granular
//     restrictions). Syntax it does not understand grants nothing.
//   - Access decisions ([Principal.Allow]): a [Grant] with the patient
//     compartment and granular restrictions the caller must enforce, or a
//     403 forbidden error naming the missing scope.
//   - The SMART configuration document ([DiscoveryDocument]).
//
// It must not: log, return or store access tokens (errors carry fixed
// descriptions only); read flags or the environment (callers pass
// [Config]); keep package-level mutable state; touch the store, HTTP
// routing or search evaluation (it hands restrictions to the callers that
// apply them).
package auth
