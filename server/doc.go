// Package server is casefhir's HTTP front: configuration and its
// validation, the wiring of store, codec, search and auth, the Gin engine
// and routes, the single error renderer (every error becomes an
// OperationOutcome with the right status), health, readiness and metrics
// endpoints, and the http.Server lifecycle with graceful shutdown. It
// mounts the case manager's app (package server/app, a plain http.Handler
// that talks to the FHIR API over HTTP) under /app/; the app's HTML pages
// are its own, every FHIR error is still an OperationOutcome.
//
// It adapts HTTP to package interaction and holds no FHIR semantics of its
// own. It never reads flags or the environment: it receives a Config.
package server
