package mongostore

import (
	"time"

	"github.com/casefhir/casefhir/fhir/store"
)

// canPush reports whether leaf filter f may be evaluated by the database.
// MongoDB evaluates every operator exactly as Filter.Match does. For
// FerretDB v1.24 (embedded) the answer comes from TestPushdownAgreesWithMatch,
// which compares FerretDB's answers with Match's on a fixture covering
// arrays of sub-documents, dates, numbers and regex metacharacters.
func (s *Store) canPush(f *store.Filter) bool {
	switch {
	case s.pushable != nil:
		return s.pushable(f)
	case !s.embedded:
		return true
	}
	return ferretPushable(f)
}

// ferretPushable lists what FerretDB v1.24 gets right (see canPush). On
// the test fixture it agrees with Match for every operator: equality and
// $in through arrays of sub-documents (also nested ones and numeric path
// segments), whole-array and null equality, type-bracketed comparisons on
// strings, numbers, booleans and dates, anchored and unanchored $regex with
// quoted metacharacters, $exists through arrays, $and, $or and $nor. Its
// sorting (array min/max, missing fields first) agrees with MongoDB's too
// (storetest FindSortSkipLimit). Should a FerretDB upgrade break an
// operator, the test fails and the operator is removed here; it is then
// evaluated in Go.
func ferretPushable(f *store.Filter) bool {
	switch f.Op {
	case store.OpEq, store.OpIn, store.OpLt, store.OpLte, store.OpGt, store.OpGte,
		store.OpPrefix, store.OpContains, store.OpExists:
		return true
	}
	return false
}

// normFilter returns f with time values truncated to milliseconds (BSON
// date precision), so the database and Match agree. f is not modified.
func normFilter(f *store.Filter) *store.Filter {
	if f == nil {
		return store.All()
	}
	g := *f
	g.Value = normValue(f.Value)
	if f.Values != nil {
		g.Values = make([]any, len(f.Values))
		for i, v := range f.Values {
			g.Values[i] = normValue(v)
		}
	}
	if f.Children != nil {
		g.Children = make([]*store.Filter, len(f.Children))
		for i, c := range f.Children {
			g.Children[i] = normFilter(c)
		}
	}
	return &g
}

func normValue(v any) any {
	if t, ok := v.(time.Time); ok {
		return ms(t)
	}
	return v
}
