// Command casefhir runs the casefhir FHIR R4 server (serve), uploads FHIR
// data to a server (load) and prints its version (version).
//
// main is a few lines; run holds the testable logic: flags and
// environment to a server.Config, wiring, serving and graceful shutdown.
// Nothing imports this package.
package main
