// Package mapping owns case management on FHIR R4: the managed case
// (an EpisodeOfCare carrying the case-phase extension), its vocabulary,
// the status state machine with its guards, the phase rules, the
// server-maintained status and phase histories, the invariants on resources
// linked to a case, and the domain logic of the case operations
// ($transition, $open-case, and what $everything and $timeline follow and
// how they order their output). The contract is
// ../shared/design/case-model.md.
//
// Everything here is a pure function over resources held as generic JSON
// (map[string]any as produced by encoding/json; see [Decode]). What the
// rules need to know about other stored resources comes through the small
// [Reader] interface, which the server implements over its store; tests use
// a fake. Broken rules are reported as one *outcome.Error (business-rule,
// HTTP 422) with one issue per rule, coded from
// https://casefhir.org/fhir/CodeSystem/case-rule.
//
// The package must not import server or any store implementation, do I/O,
// keep package-level mutable state, or log: resources carry PHI. Issue
// Details name rules and resource references only, never resource content.
package mapping
