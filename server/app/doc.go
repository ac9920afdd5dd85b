// Package app is the case manager's SMART app, served by casefhir at
// /app/: a worklist of managed cases, the case page (timeline of phases and
// statuses, care team, care plan, risks, coverage, tasks, encounters and
// appointments, the outcome evaluation) and the case actions ($open-case,
// $transition, completing a task).
//
// It is a client of the FHIR API like any third-party SMART app: it talks
// to the server only over HTTP with the user's access token, never through
// internal calls. It implements the SMART App Launch 2.x EHR launch (and
// the standalone launch): discovery of <iss>/.well-known/smart-configuration,
// the authorization code flow with PKCE (S256) and state, the code exchanged
// with client_secret_basic. Tokens stay on the server side; the browser
// holds only an HttpOnly, SameSite session cookie, and every form carries a
// CSRF token. With auth off (loopback only) it opens without a login.
//
// Pages are server-rendered with html/template, with small hand-written CSS
// and script (no build step). The package is plain net/http: an
// http.Handler that the server mounts under /app/. It must not import Gin,
// go-oidc, the server, the interactions or a store; it must never log
// resource contents, tokens or other PHI, and never show raw JSON or stack
// traces to the user.
package app
