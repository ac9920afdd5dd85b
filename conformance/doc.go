// Package conformance holds what casefhir publishes about itself: the
// embedded SearchParameter, OperationDefinition, CodeSystem, ValueSet and
// extension StructureDefinition JSON, the CapabilityStatement builder and
// the SMART discovery document.
//
// It serves data and builds documents from inputs; it does no I/O besides
// reading its embedded files and never imports server or a store
// implementation.
package conformance
