// Package conformance holds what casefhir publishes about itself: the
// official R4 SearchParameter bundle (embedded JSON), the project's own
// SearchParameters (generated: episode-of-care on every linkable type,
// EpisodeOfCare phase and team, RiskAssessment status), the embedded
// case-management CodeSystems, ValueSets, extension StructureDefinitions
// and OperationDefinitions, and the CapabilityStatement builder, which
// renders what the server reports it has wired (types, interactions,
// search parameters, operations with their definitions, SMART security).
//
// It serves data and builds documents from inputs; it does no I/O besides
// reading its embedded files and never imports server, a store
// implementation or package auth (the SMART discovery document is built by
// package auth).
package conformance
