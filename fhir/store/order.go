package store

import (
	"cmp"
	"fmt"
)

// PositionOf returns r's position in the order of keys (see FindOptions):
// the value of each sort path in r (the smallest for an ascending key, the
// largest for a descending one, nil when there is none) and r's id. Pass
// it as FindOptions.After to read the rows after r.
func PositionOf(r *Resource, keys []SortKey) Position {
	p := Position{ID: r.ID, Values: make([]any, len(keys))}
	for i, k := range keys {
		p.Values[i] = SortValueOf(r, k)
	}
	return p
}

// SortValueOf returns the value r sorts by for key k: the smallest scalar
// at k.Path for an ascending key, the largest for a descending one, nil
// when there is none.
func SortValueOf(r *Resource, k SortKey) any {
	var best any
	anyScalar(lookup(r, k.Path), func(x any) bool {
		switch x.(type) {
		case nil, map[string]any, []any:
			return false
		}
		if best == nil {
			best = x
			return false
		}
		if c, ok := compare(x, best); ok && ((k.Desc && c > 0) || (!k.Desc && c < 0)) {
			best = x
		}
		return false
	})
	return best
}

// ComparePositions orders two positions under keys: negative when a comes
// first. Missing values (nil) come after present ones in either direction;
// ids break ties, ascending. It is the reference order every Store's Find
// follows.
func ComparePositions(a, b Position, keys []SortKey) int {
	for i, k := range keys {
		var x, y any
		if i < len(a.Values) {
			x = a.Values[i]
		}
		if i < len(b.Values) {
			y = b.Values[i]
		}
		switch {
		case x == nil && y == nil:
			continue
		case x == nil:
			return 1
		case y == nil:
			return -1
		}
		c, _ := compare(x, y)
		if k.Desc {
			c = -c
		}
		if c != 0 {
			return c
		}
	}
	switch {
	case a.ID < b.ID:
		return -1
	case a.ID > b.ID:
		return 1
	}
	return 0
}

// CompareVersions orders version keys as History returns them (the
// reference order every Store's History follows): LastUpdated descending,
// Type and ID ascending, VersionID descending.
func CompareVersions(a, b VersionKey) int {
	if c := b.LastUpdated.Compare(a.LastUpdated); c != 0 {
		return c
	}
	if c := cmp.Compare(a.Type, b.Type); c != 0 {
		return c
	}
	if c := cmp.Compare(a.ID, b.ID); c != 0 {
		return c
	}
	return cmp.Compare(b.VersionID, a.VersionID)
}

// DriverError is the PHI-free summary of a database driver error that a
// store's *outcome.Error wraps: the backend, the kind of failure and the
// driver's code, never the statement, the filter or a quoted key value.
type DriverError struct {
	Backend, Kind string
	Code          int
}

func (e DriverError) Error() string {
	if e.Code != 0 {
		return fmt.Sprintf("%s %s (code %d)", e.Backend, e.Kind, e.Code)
	}
	return e.Backend + " " + e.Kind
}
