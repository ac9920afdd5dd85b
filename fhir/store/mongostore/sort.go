package mongostore

import (
	"cmp"
	"slices"
	"strconv"
	"strings"
	"time"

	"github.com/casefhir/casefhir/fhir/store"
)

// sortResources sorts rs like MongoDB sorts documents by keys (an array
// sorts by its smallest element ascending, its largest descending; missing
// sorts as null, lowest), then by id.
func sortResources(rs []*store.Resource, keys []store.SortKey) {
	slices.SortStableFunc(rs, func(a, b *store.Resource) int {
		for _, k := range keys {
			c := compareSortValue(sortValue(a, k), sortValue(b, k))
			if k.Desc {
				c = -c
			}
			if c != 0 {
				return c
			}
		}
		return cmp.Compare(a.ID, b.ID)
	})
}

// sortValue returns the value r sorts by for k.
func sortValue(r *store.Resource, k store.SortKey) any {
	var vals []any
	switch k.Path {
	case store.PathID:
		return r.ID
	case store.PathLastUpdated:
		return r.LastUpdated
	default:
		vals = collect(nil, r.Index, strings.Split(k.Path, "."))
	}
	var best any
	found := false
	for _, v := range vals {
		c := compareSortValue(v, best)
		if !found || (k.Desc && c > 0) || (!k.Desc && c < 0) {
			best, found = v, true
		}
	}
	return best
}

// collect gathers the scalar values at path, expanding arrays as MongoDB does.
func collect(out []any, node any, segs []string) []any {
	if len(segs) == 0 {
		if a, ok := node.([]any); ok {
			for _, e := range a {
				if _, nested := e.([]any); !nested {
					out = append(out, e)
				}
			}
			return out
		}
		return append(out, node)
	}
	switch n := node.(type) {
	case map[string]any:
		if v, ok := n[segs[0]]; ok {
			out = collect(out, v, segs[1:])
		}
	case []any:
		if i, err := strconv.Atoi(segs[0]); err == nil && i >= 0 && i < len(n) {
			out = collect(out, n[i], segs[1:])
		}
		for _, e := range n {
			if _, ok := e.(map[string]any); ok {
				out = collect(out, e, segs)
			}
		}
	}
	return out
}

// sortRank is the BSON comparison order of the kinds an index holds.
func sortRank(v any) int {
	switch v.(type) {
	case nil:
		return 1
	case float64, int, int32, int64:
		return 2
	case string:
		return 3
	case map[string]any:
		return 4
	case []any:
		return 5
	case bool:
		return 8
	case time.Time:
		return 9
	}
	return 10
}

func compareSortValue(a, b any) int {
	ra, rb := sortRank(a), sortRank(b)
	if ra != rb {
		return cmp.Compare(ra, rb)
	}
	switch x := a.(type) {
	case string:
		return strings.Compare(x, b.(string))
	case time.Time:
		return x.Compare(b.(time.Time))
	case bool:
		y := b.(bool)
		switch {
		case x == y:
			return 0
		case !x:
			return -1
		}
		return 1
	case float64, int, int32, int64:
		return cmp.Compare(toFloat(a), toFloat(b))
	}
	return 0
}

func toFloat(v any) float64 {
	switch n := v.(type) {
	case float64:
		return n
	case int:
		return float64(n)
	case int32:
		return float64(n)
	case int64:
		return float64(n)
	}
	return 0
}
