package store

import (
	"reflect"
	"strconv"
	"strings"
	"time"
)

// String returns the name of op.
func (op Op) String() string {
	switch op {
	case OpAll:
		return "all"
	case OpAnd:
		return "and"
	case OpOr:
		return "or"
	case OpNot:
		return "not"
	case OpEq:
		return "eq"
	case OpIn:
		return "in"
	case OpLt:
		return "lt"
	case OpLte:
		return "lte"
	case OpGt:
		return "gt"
	case OpGte:
		return "gte"
	case OpPrefix:
		return "prefix"
	case OpContains:
		return "contains"
	case OpExists:
		return "exists"
	}
	return "op(" + strconv.Itoa(int(op)) + ")"
}

// Match reports whether r satisfies f, evaluated in Go over r.Index and the
// PathID / PathLastUpdated paths, with MongoDB query semantics:
//
//   - a dotted path through an array visits every element (and a numeric
//     segment also selects that element), and a leaf that is an array
//     matches when the whole array or any element does;
//   - comparisons (Lt, Lte, Gt, Gte) only hold between values of the same
//     kind: strings (byte order), numbers (any Go integer or float, compared
//     as float64), time.Time, bool (false < true);
//   - Eq (or an In value) of nil matches a missing path;
//   - Prefix and Contains apply to strings only, case-sensitively;
//   - Exists is true when the path leads to any value at all;
//   - Not holds when none of its children match.
//
// A nil filter matches everything. Match never modifies f or r.
func (f *Filter) Match(r *Resource) bool {
	if f == nil {
		return true
	}
	switch f.Op {
	case OpAll:
		return true
	case OpAnd:
		for _, c := range f.Children {
			if !c.Match(r) {
				return false
			}
		}
		return true
	case OpOr:
		for _, c := range f.Children {
			if c.Match(r) {
				return true
			}
		}
		return false
	case OpNot:
		for _, c := range f.Children {
			if c.Match(r) {
				return false
			}
		}
		return true
	}
	vals := lookup(r, f.Path)
	switch f.Op {
	case OpExists:
		want, _ := f.Value.(bool)
		return (len(vals) > 0) == want
	case OpEq:
		return matchEq(vals, f.Value)
	case OpIn:
		for _, v := range f.Values {
			if matchEq(vals, v) {
				return true
			}
		}
		return false
	case OpLt, OpLte, OpGt, OpGte:
		return anyScalar(vals, func(x any) bool {
			c, ok := compare(x, f.Value)
			if !ok {
				return false
			}
			switch f.Op {
			case OpLt:
				return c < 0
			case OpLte:
				return c <= 0
			case OpGt:
				return c > 0
			default:
				return c >= 0
			}
		})
	case OpPrefix, OpContains:
		s, ok := f.Value.(string)
		if !ok {
			return false
		}
		return anyScalar(vals, func(x any) bool {
			v, ok := x.(string)
			if !ok {
				return false
			}
			if f.Op == OpPrefix {
				return strings.HasPrefix(v, s)
			}
			return strings.Contains(v, s)
		})
	}
	return false
}

// lookup returns the values path leads to in r (array leaves unexpanded).
func lookup(r *Resource, path string) []any {
	switch path {
	case PathID:
		return []any{r.ID}
	case PathLastUpdated:
		return []any{r.LastUpdated}
	}
	if r.Index == nil || path == "" {
		return nil
	}
	return walk(nil, r.Index, strings.Split(path, "."))
}

func walk(out []any, node any, segs []string) []any {
	if len(segs) == 0 {
		return append(out, node)
	}
	switch n := node.(type) {
	case map[string]any:
		if v, ok := n[segs[0]]; ok {
			out = walk(out, v, segs[1:])
		}
	case []any:
		if i, err := strconv.Atoi(segs[0]); err == nil && i >= 0 && i < len(n) {
			out = walk(out, n[i], segs[1:])
		}
		for _, e := range n {
			if _, isArr := e.([]any); isArr {
				continue // MongoDB does not traverse nested arrays implicitly
			}
			if _, isMap := e.(map[string]any); isMap {
				out = walk(out, e, segs)
			}
		}
	}
	return out
}

// anyScalar reports whether pred holds for any value, expanding array leaves
// one level.
func anyScalar(vals []any, pred func(any) bool) bool {
	for _, v := range vals {
		if a, ok := v.([]any); ok {
			for _, e := range a {
				if pred(e) {
					return true
				}
			}
			continue
		}
		if pred(v) {
			return true
		}
	}
	return false
}

func matchEq(vals []any, want any) bool {
	if want == nil {
		if len(vals) == 0 {
			return true
		}
		return anyScalar(vals, func(x any) bool { return x == nil })
	}
	for _, v := range vals {
		if equal(v, want) { // the whole value, e.g. an array equal to an array
			return true
		}
	}
	return anyScalar(vals, func(x any) bool { return equal(x, want) })
}

func equal(a, b any) bool {
	if c, ok := compare(a, b); ok {
		return c == 0
	}
	switch a.(type) {
	case []any, map[string]any:
		return reflect.DeepEqual(a, b)
	}
	return false
}

// compare orders a and b when they are of the same kind.
func compare(a, b any) (int, bool) {
	switch x := a.(type) {
	case string:
		y, ok := b.(string)
		if !ok {
			return 0, false
		}
		return strings.Compare(x, y), true
	case time.Time:
		y, ok := b.(time.Time)
		if !ok {
			return 0, false
		}
		return x.Compare(y), true
	case bool:
		y, ok := b.(bool)
		if !ok {
			return 0, false
		}
		switch {
		case x == y:
			return 0, true
		case !x:
			return -1, true
		default:
			return 1, true
		}
	}
	x, ok := number(a)
	if !ok {
		return 0, false
	}
	y, ok := number(b)
	if !ok {
		return 0, false
	}
	switch {
	case x < y:
		return -1, true
	case x > y:
		return 1, true
	case x == y:
		return 0, true
	}
	return 0, false // NaN
}

// Number returns v as a float64 when it is any Go integer or float (the
// numbers a Filter may carry), as Match compares them.
func Number(v any) (float64, bool) { return number(v) }

func number(v any) (float64, bool) {
	switch n := v.(type) {
	case float64:
		return n, true
	case float32:
		return float64(n), true
	case int:
		return float64(n), true
	case int8:
		return float64(n), true
	case int16:
		return float64(n), true
	case int32:
		return float64(n), true
	case int64:
		return float64(n), true
	case uint:
		return float64(n), true
	case uint8:
		return float64(n), true
	case uint16:
		return float64(n), true
	case uint32:
		return float64(n), true
	case uint64:
		return float64(n), true
	}
	return 0, false
}
