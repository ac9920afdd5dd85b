// Package validate owns the write-time rules a FHIR server must enforce that
// jsonformat (and so fhir/codec) does not check: the resource type is one
// casefhir serves, the id (body and URL) has FHIR id syntax and agrees with
// the request, reference strings are well formed (Type/id[/_history/v], an
// absolute URL, #fragment, urn:uuid:, urn:oid:) with absolute Type/id
// targets of an allowed type, and the narrative is XHTML-shaped.
//
// It works on a decoded resource (*codec.Parsed) and returns
// *outcome.Error values with FHIRPath expressions and PHI-free details.
// It must not: do I/O or look anything up in a store (reference targets
// are not resolved here), log, keep package-level mutable state, or be
// imported by fhir/codec.
package validate
