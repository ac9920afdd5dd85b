// Package fhir holds casefhir's shared FHIR vocabulary: the R4 resource
// types, id syntax, references (parse and format), ETag and instant helpers.
//
// It is pure: no I/O, no database, no HTTP framework, and it never imports
// server, mapping or conformance.
package fhir
