// Package fhirpath evaluates the subset of FHIRPath
// (http://hl7.org/fhirpath/N1/) that SearchParameter expressions and simple
// invariants use, over resources decoded by encoding/json into generic
// values (map[string]any, []any, string, json.Number or float64, bool).
//
// Supported: paths with choice-type resolution (Observation.value finds
// valueQuantity and knows it is a Quantity), the union operator |, where,
// select, exists, empty, not, first, last, tail, single, count, distinct,
// all, iif, startsWith, hasValue, extension(url), resolve() (judged from the
// reference text only, so resolve() is Patient works without a database),
// as/is/ofType (operator and function forms), indexers, string, number and
// boolean literals, = != ~ !~ < > <= >= in contains and or xor implies, and
// arithmetic. Expressions are parsed once into an immutable Expr; unknown
// functions are a parse error, so a caller learns at load time which
// expressions it cannot evaluate.
//
// The package owns expression parsing and evaluation only. It must not know
// about search, storage or HTTP, and it imports nothing of casefhir's.
package fhirpath
