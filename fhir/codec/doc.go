// Package codec owns casefhir's FHIR R4 JSON handling on top of google/fhir
// jsonformat: decoding and validating a resource once on write (Decode),
// producing the canonical stored JSON with id and meta set (Finalize),
// encoding protos (Encode), shaping stored JSON for _summary and _elements
// without the proto codec (Summary, Elements, Pretty), and JSON Patch
// (ApplyJSONPatch).
//
// Decode adds to jsonformat the FHIR JSON rules it lets through (empty
// objects, arrays and strings, null outside primitive alignment, duplicate
// or wrongly cased property names, depth), validates contained resources,
// and turns every problem into one outcome.Issue with a FHIRPath
// expression and a PHI-free Detail.
//
// It must not: import fhir/validate, server, mapping or a store; do I/O;
// log (Diagnostics and resource content may be PHI); keep package-level
// mutable state; run the proto codec on the read path (Summary, Elements
// and Pretty work on the stored bytes).
package codec
