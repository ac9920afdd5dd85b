// Package search implements FHIR R4 search (https://hl7.org/fhir/R4/search.html)
// without a database: the SearchParameter registry, extraction of search
// values at write time into an index tree, query parsing into a typed AST,
// compilation of a query into a backend-neutral store.Filter that narrows,
// and the exact matcher that decides.
//
// # Index layout
//
// Extract returns a map from parameter code (with '.' and a leading '$'
// escaped as %2E / %24) to a value whose shape depends on the parameter
// type. Lists are []any; absent parts are omitted.
//
//	string     {n: [normalised], e: [exact]}      normalised = accents removed, lower case
//	token      {c: [code], sc: ["sys|code", "|code"], s: [sys], t: [normalised text], ot: ["tsys|tcode|value"]}
//	reference  {r: ["Type/id"], d: ["id"], u: [absolute URL, urn, canonical, canonical without |version], i: token}
//	date       [{lo: time, hi: time}]             half-open [lo, hi) in UTC, ms precision; open ends 0001 / 9999
//	number     [{lo: f, hi: f}]                   a point has lo == hi; a Range its bounds
//	quantity   [{lo, hi, s: system, c: code, u: unit}]
//	uri        ["uri", "uri without |version"]
//	composite  [{"0": component value, "1": ...}] one tuple per value of the composite's expression
//	_compartment ["Patient/<id>"]                 the patient compartments (R4 CompartmentDefinition)
//
// Every clause compiles to a filter over these paths that a store can
// evaluate with MongoDB semantics (a dotted path through an array matches
// when any element does) and that never misses a match. Conditions on two
// sub-keys of one array element (a date range inside [lo, hi), a quantity
// value with its unit, a composite) cannot be tied to one element without
// $elemMatch, so the filter may select a superset; Query.Matches re-checks
// every candidate exactly against the same index.
//
// Chained parameters and _has are represented by inner queries
// (Clause.Chain, Clause.Has); the executor runs them and turns them into
// reference sets with Clause.Resolve before compiling or matching.
//
// # Limits
//
// _text, _content, _query, _list and special parameters (Location near)
// are not supported, nor token :in/:not-in/:above/:below (terminology),
// quantity unit conversion, and references stored as absolute URLs of this
// server (they are kept as URLs, not local references). Dates without a
// time zone are read as UTC.
//
// The package owns search semantics only. It must not do I/O, import a
// database driver, server, mapping or conformance, keep mutable package
// state, or put search values into error Details or logs.
package search
