package search

import (
	"math"
	"sort"
	"strings"
	"time"

	"github.com/casefhir/casefhir/fhir/store"
)

// Filter compiles the query's clauses into a store filter that selects a
// superset of the matches (never missing one); Matches then decides
// exactly. Chain and _has clauses must be resolved first (unresolved ones
// compile to "all").
func (q *Query) Filter() *store.Filter {
	fs := make([]*store.Filter, 0, len(q.Clauses))
	for _, c := range q.Clauses {
		fs = append(fs, q.clauseFilter(c))
	}
	return store.And(fs...)
}

// Matches reports whether a resource with this index matches every clause,
// with FHIR semantics. Unresolved chain and _has clauses never match.
func (q *Query) Matches(index map[string]any) bool {
	for _, c := range q.Clauses {
		if !q.clauseMatches(c, index) {
			return false
		}
	}
	return true
}

// ---- filters ----

func path(key, sub string) string { return key + "." + sub }

func (q *Query) clauseFilter(c *Clause) *store.Filter {
	key := c.Param.key
	if c.Has != nil {
		if !c.resolved {
			return store.All()
		}
		ids := make([]any, 0, len(c.refs))
		for _, r := range sortedRefs(c.refs) {
			if t, id, ok := strings.Cut(r, "/"); ok && t == q.Type {
				ids = append(ids, id)
			}
		}
		return &store.Filter{Op: store.OpIn, Path: store.PathID, Values: ids}
	}
	if c.Chain != nil {
		if !c.resolved {
			return store.All()
		}
		refs := make([]any, 0, len(c.refs))
		for _, r := range sortedRefs(c.refs) {
			refs = append(refs, r)
		}
		return &store.Filter{Op: store.OpIn, Path: path(key, kRef), Values: refs}
	}
	if c.Modifier == "missing" {
		return store.Exists(key, !c.Values[0].missing)
	}
	if c.Param.Code == "_id" && c.Modifier == "" {
		ids := make([]any, 0, len(c.Values))
		for _, v := range c.Values {
			if !v.hasSys {
				ids = append(ids, v.code)
			} else {
				return store.All()
			}
		}
		return store.In(store.PathID, ids...)
	}
	if c.Modifier == "not" {
		ors := make([]*store.Filter, 0, len(c.Values))
		for _, v := range c.Values {
			ors = append(ors, tokenFilter(key, v))
		}
		return store.Not(store.Or(ors...))
	}
	ors := make([]*store.Filter, 0, len(c.Values))
	for _, v := range c.Values {
		f := q.valueFilter(c.Param.Type, key, c.Modifier, v)
		if f.Op == store.OpAll {
			return f
		}
		ors = append(ors, f)
	}
	return store.Or(ors...)
}

func sortedRefs(m map[string]struct{}) []string {
	out := make([]string, 0, len(m))
	for r := range m {
		out = append(out, r)
	}
	sort.Strings(out)
	return out
}

func tokenFilter(key string, v *Value) *store.Filter {
	switch {
	case v.ofType != "":
		return store.Eq(path(key, kOfType), v.ofType)
	case !v.hasSys:
		return store.Eq(path(key, kCode), v.code)
	case v.code == "":
		return store.Eq(path(key, kSys), v.system)
	default:
		return store.Eq(path(key, kSysCode), v.system+"|"+v.code)
	}
}

func (q *Query) valueFilter(t ParamType, key, mod string, v *Value) *store.Filter {
	switch t {
	case TypeString:
		switch mod {
		case "exact":
			return store.Eq(path(key, kExact), v.str)
		case "contains":
			return store.Contains(path(key, kNorm), v.str)
		}
		return store.Prefix(path(key, kNorm), v.str)
	case TypeToken:
		if mod == "text" {
			return store.Contains(path(key, kText), v.str)
		}
		return tokenFilter(key, v)
	case TypeURI:
		switch mod {
		case "below":
			return store.Prefix(key, v.str)
		case "above":
			return store.In(key, v.prefixes...)
		}
		return store.Eq(key, v.str)
	case TypeReference:
		if mod == "identifier" {
			return tokenFilter(path(key, kRefIdent), v)
		}
		switch v.refKind {
		case refLocal:
			return store.Eq(path(key, kRef), v.ref)
		case refID:
			return store.Eq(path(key, kRefID), v.ref)
		}
		switch mod {
		case "below":
			return store.Prefix(path(key, kRefURL), v.ref)
		case "above":
			return store.In(path(key, kRefURL), v.prefixes...)
		}
		if local, ok := q.localRef(v.ref); ok {
			return store.Or(store.Eq(path(key, kRefURL), v.ref), store.Eq(path(key, kRef), local))
		}
		return store.Eq(path(key, kRefURL), v.ref)
	case TypeDate:
		return rangeFilter(key, v.Prefix, v.date.lo, v.date.hi, q.approxDate(v.date))
	case TypeNumber, TypeQuantity:
		f := numberFilter(key, v)
		if t == TypeQuantity && v.code != "" {
			unit := store.Or(store.Eq(path(key, kQCode), v.code), store.Eq(path(key, kUnit), v.code))
			if v.hasSys {
				unit = store.And(store.Eq(path(key, kSys), v.system), store.Eq(path(key, kQCode), v.code))
			}
			f = store.And(f, unit)
		}
		return f
	case TypeComposite:
		fs := make([]*store.Filter, 0, len(v.comps))
		for i, cv := range v.comps {
			cp := path(key, compKey(i))
			f := q.valueFilter(cv.ptype, cp, "", cv)
			fs = append(fs, f)
		}
		return store.And(fs...)
	}
	return store.All()
}

// rangeFilter narrows ordered values stored as {lo, hi} (hi exclusive for
// dates, inclusive for numbers; the narrowing holds for both).
func rangeFilter(key, prefix string, lo, hi any, ap [2]any) *store.Filter {
	l, h := path(key, kLo), path(key, kHi)
	switch prefix {
	case "eq":
		return store.And(store.Gte(l, lo), store.Lte(h, hi))
	case "gt":
		return store.Gt(h, hi)
	case "lt":
		return store.Lt(l, lo)
	case "ge":
		return store.Gt(h, lo)
	case "le":
		return store.Lt(l, hi)
	case "sa":
		return store.Gte(l, hi)
	case "eb":
		return store.Lte(h, lo)
	case "ap":
		return store.And(store.Lte(l, ap[1]), store.Gte(h, ap[0]))
	}
	return store.Exists(key, true) // ne
}

func numberFilter(key string, v *Value) *store.Filter {
	n := v.num
	l, h := path(key, kLo), path(key, kHi)
	switch v.Prefix {
	case "eq":
		return store.And(store.Gte(l, n.lo), store.Lt(h, n.hi))
	case "gt":
		return store.Gt(h, n.v)
	case "lt":
		return store.Lt(l, n.v)
	case "ge":
		return store.Gte(h, n.v)
	case "le":
		return store.Lte(l, n.v)
	case "sa":
		return store.Gt(l, n.v)
	case "eb":
		return store.Lt(h, n.v)
	case "ap":
		lo, hi := approxNumber(n)
		return store.And(store.Lte(l, hi), store.Gte(h, lo))
	}
	return store.Exists(key, true) // ne
}

func approxNumber(n number) (float64, float64) {
	d := math.Abs(n.v) * 0.1
	if d == 0 {
		d = n.hi - n.v
	}
	return n.v - d, n.v + d
}

// approxDate widens a date range by 10% of its distance from now (at least
// one day), the server's reading of "ap".
func (q *Query) approxDate(dr dateRange) [2]any {
	gap := q.now.Sub(dr.lo)
	if g := dr.hi.Sub(q.now); g > gap {
		gap = g
	}
	if gap < 0 {
		gap = -gap
	}
	d := gap / 10
	if d < 24*time.Hour {
		d = 24 * time.Hour
	}
	return [2]any{clampTime(dr.lo.Add(-d)), clampTime(dr.hi.Add(d))}
}

func (q *Query) localRef(u string) (string, bool) {
	if q.Base == "" || !strings.HasPrefix(u, q.Base+"/") {
		return "", false
	}
	rest := strings.TrimPrefix(u, q.Base+"/")
	t, id, ok := strings.Cut(rest, "/")
	if !ok || strings.Contains(id, "/") || t == "" || id == "" {
		return "", false
	}
	return t + "/" + id, true
}

// ---- exact matching ----

func strs(v any) []string {
	switch x := v.(type) {
	case []any:
		out := make([]string, 0, len(x))
		for _, e := range x {
			if s, ok := e.(string); ok {
				out = append(out, s)
			}
		}
		return out
	case []string:
		return x
	case string:
		return []string{x}
	}
	return nil
}

func maps(v any) []map[string]any {
	switch x := v.(type) {
	case []any:
		out := make([]map[string]any, 0, len(x))
		for _, e := range x {
			if m, ok := e.(map[string]any); ok {
				out = append(out, m)
			}
		}
		return out
	case []map[string]any:
		return x
	case map[string]any:
		return []map[string]any{x}
	}
	return nil
}

func has(list []string, s string) bool {
	for _, x := range list {
		if x == s {
			return true
		}
	}
	return false
}

func (q *Query) clauseMatches(c *Clause, index map[string]any) bool {
	if c.Has != nil {
		if !c.resolved {
			return false
		}
		for _, id := range tokenCodes(index["_id"]) {
			if _, ok := c.refs[q.Type+"/"+id]; ok {
				return true
			}
		}
		return false
	}
	val, present := index[c.Param.key]
	if c.Chain != nil {
		if !c.resolved {
			return false
		}
		m, _ := val.(map[string]any)
		for _, r := range strs(m[kRef]) {
			if _, ok := c.refs[r]; ok {
				return true
			}
		}
		return false
	}
	if c.Modifier == "missing" {
		return present == !c.Values[0].missing
	}
	if c.Modifier == "not" {
		for _, v := range c.Values {
			if tokenMatches(val, v) {
				return false
			}
		}
		return true
	}
	if !present {
		return false
	}
	for _, v := range c.Values {
		if q.valueMatches(c.Param.Type, c.Modifier, c.TargetType, val, v) {
			return true
		}
	}
	return false
}

func tokenCodes(v any) []string {
	m, _ := v.(map[string]any)
	return strs(m[kCode])
}

func tokenMatches(val any, v *Value) bool {
	m, _ := val.(map[string]any)
	if m == nil {
		return false
	}
	switch {
	case v.ofType != "":
		return has(strs(m[kOfType]), v.ofType)
	case !v.hasSys:
		return has(strs(m[kCode]), v.code)
	case v.code == "":
		return has(strs(m[kSys]), v.system)
	}
	return has(strs(m[kSysCode]), v.system+"|"+v.code)
}

func textMatches(texts []string, s string) bool {
	for _, t := range texts {
		if strings.HasPrefix(t, s) || strings.Contains(t, " "+s) {
			return true
		}
	}
	return false
}

func (q *Query) valueMatches(t ParamType, mod, target string, val any, v *Value) bool {
	switch t {
	case TypeString:
		m, _ := val.(map[string]any)
		switch mod {
		case "exact":
			return has(strs(m[kExact]), v.str)
		case "contains":
			for _, s := range strs(m[kNorm]) {
				if strings.Contains(s, v.str) {
					return true
				}
			}
			return false
		}
		for _, s := range strs(m[kNorm]) {
			if strings.HasPrefix(s, v.str) {
				return true
			}
		}
		return false
	case TypeToken:
		if mod == "text" {
			m, _ := val.(map[string]any)
			return textMatches(strs(m[kText]), v.str)
		}
		return tokenMatches(val, v)
	case TypeURI:
		list := strs(val)
		switch mod {
		case "below":
			for _, s := range list {
				if strings.HasPrefix(s, v.str) {
					return true
				}
			}
			return false
		case "above":
			for _, p := range v.prefixes {
				if has(list, p.(string)) {
					return true
				}
			}
			return false
		}
		return has(list, v.str)
	case TypeReference:
		m, _ := val.(map[string]any)
		if mod == "identifier" {
			return tokenMatches(m[kRefIdent], v)
		}
		switch v.refKind {
		case refLocal:
			return has(strs(m[kRef]), v.ref)
		case refID:
			return has(strs(m[kRefID]), v.ref)
		}
		urls := strs(m[kRefURL])
		switch mod {
		case "below":
			for _, s := range urls {
				if strings.HasPrefix(s, v.ref) {
					return true
				}
			}
			return false
		case "above":
			for _, p := range v.prefixes {
				if has(urls, p.(string)) {
					return true
				}
			}
			return false
		}
		if has(urls, v.ref) {
			return true
		}
		if local, ok := q.localRef(v.ref); ok {
			return has(strs(m[kRef]), local)
		}
		return false
	case TypeDate:
		ap := q.approxDate(v.date)
		for _, e := range maps(val) {
			lo, ok1 := e[kLo].(time.Time)
			hi, ok2 := e[kHi].(time.Time)
			if ok1 && ok2 && dateMatches(v.Prefix, lo, hi, v.date, ap) {
				return true
			}
		}
		return false
	case TypeNumber, TypeQuantity:
		for _, e := range maps(val) {
			lo, ok1 := toNum(e[kLo])
			hi, ok2 := toNum(e[kHi])
			if !ok1 || !ok2 || !numberMatches(v.Prefix, lo, hi, v.num) {
				continue
			}
			if t == TypeQuantity && v.code != "" {
				code, _ := e[kQCode].(string)
				if v.hasSys {
					sys, _ := e[kSys].(string)
					if sys != v.system || code != v.code {
						continue
					}
				} else if unit, _ := e[kUnit].(string); code != v.code && unit != v.code {
					continue
				}
			}
			return true
		}
		return false
	case TypeComposite:
		for _, tuple := range maps(val) {
			all := true
			for i, cv := range v.comps {
				cval, ok := tuple[compKey(i)]
				if !ok || !q.valueMatches(cv.ptype, "", "", cval, cv) {
					all = false
					break
				}
			}
			if all {
				return true
			}
		}
		return false
	}
	return false
}

func toNum(v any) (float64, bool) {
	switch x := v.(type) {
	case float64:
		return x, true
	case int:
		return float64(x), true
	case int32:
		return float64(x), true
	case int64:
		return float64(x), true
	}
	return 0, false
}

// dateMatches applies a prefix to a stored range [lo, hi) and a query range
// (https://hl7.org/fhir/R4/search.html#prefix).
func dateMatches(prefix string, lo, hi time.Time, q dateRange, ap [2]any) bool {
	contained := !lo.Before(q.lo) && !hi.After(q.hi)
	switch prefix {
	case "eq":
		return contained
	case "ne":
		return !contained
	case "gt":
		return hi.After(q.hi)
	case "lt":
		return lo.Before(q.lo)
	case "ge":
		return hi.After(q.lo)
	case "le":
		return lo.Before(q.hi)
	case "sa":
		return !lo.Before(q.hi)
	case "eb":
		return !hi.After(q.lo)
	case "ap":
		alo, ahi := ap[0].(time.Time), ap[1].(time.Time)
		return !lo.After(ahi) && !hi.Before(alo)
	}
	return false
}

// numberMatches applies a prefix to a stored value range [lo, hi] (a point
// when lo == hi) and a query number with its implicit precision.
func numberMatches(prefix string, lo, hi float64, n number) bool {
	switch prefix {
	case "eq":
		return lo >= n.lo && hi < n.hi
	case "ne":
		return !(lo >= n.lo && hi < n.hi)
	case "gt":
		return hi > n.v
	case "lt":
		return lo < n.v
	case "ge":
		return hi >= n.v
	case "le":
		return lo <= n.v
	case "sa":
		return lo > n.v
	case "eb":
		return hi < n.v
	case "ap":
		alo, ahi := approxNumber(n)
		return lo <= ahi && hi >= alo
	}
	return false
}

// ---- sorting ----

// SortValue returns the sort key i of q from an index: for ascending keys
// the smallest value the resource has, for descending ones the largest
// (https://hl7.org/fhir/R4/search.html#_sort). Values are string, float64
// or time.Time; nil when the resource has none (CompareSort puts those
// last).
func (q *Query) SortValue(index map[string]any, i int) any {
	k := q.Sort[i]
	return SortValue(k.Param, index, k.Desc)
}

// SortValue returns the sort value of parameter p from an index.
func SortValue(p *Param, index map[string]any, desc bool) any {
	val, ok := index[p.key]
	if !ok {
		return nil
	}
	var cands []any
	switch p.Type {
	case TypeString:
		m, _ := val.(map[string]any)
		for _, s := range strs(m[kNorm]) {
			cands = append(cands, s)
		}
	case TypeToken:
		m, _ := val.(map[string]any)
		for _, s := range strs(m[kCode]) {
			cands = append(cands, s)
		}
	case TypeReference:
		m, _ := val.(map[string]any)
		for _, s := range append(strs(m[kRef]), strs(m[kRefURL])...) {
			cands = append(cands, s)
		}
	case TypeURI:
		for _, s := range strs(val) {
			cands = append(cands, s)
		}
	case TypeDate, TypeNumber, TypeQuantity:
		bound := kLo
		if desc {
			bound = kHi
		}
		for _, e := range maps(val) {
			if x, ok := e[bound]; ok {
				cands = append(cands, x)
			}
		}
	}
	var best any
	for _, c := range cands {
		if best == nil {
			best = c
			continue
		}
		cmp := CompareSort(c, best)
		if (desc && cmp > 0) || (!desc && cmp < 0) {
			best = c
		}
	}
	return best
}

// CompareSort orders two sort values of one key (strings, float64s or
// time.Times); nil sorts after everything in both directions when the
// caller negates only non-nil comparisons.
func CompareSort(a, b any) int {
	switch {
	case a == nil && b == nil:
		return 0
	case a == nil:
		return 1
	case b == nil:
		return -1
	}
	switch x := a.(type) {
	case string:
		if y, ok := b.(string); ok {
			return strings.Compare(x, y)
		}
	case time.Time:
		if y, ok := b.(time.Time); ok {
			return x.Compare(y)
		}
	case float64:
		if y, ok := b.(float64); ok {
			switch {
			case x < y:
				return -1
			case x > y:
				return 1
			}
			return 0
		}
	}
	return 0
}

// ---- indexes ----

// IndexPaths lists the index paths (relative to the index tree) worth a
// database index for typ: the selective sub-key of every supported
// parameter plus the compartment list. Stores prefix them with the field
// holding the index.
func (r *Registry) IndexPaths(typ string) []string {
	var out []string
	for _, p := range r.Params(typ) {
		if !p.Supported() || p.Code == "_id" {
			continue
		}
		switch p.Type {
		case TypeString:
			out = append(out, path(p.key, kNorm))
		case TypeToken:
			out = append(out, path(p.key, kCode), path(p.key, kSysCode))
		case TypeReference:
			out = append(out, path(p.key, kRef))
		case TypeDate, TypeNumber, TypeQuantity:
			out = append(out, path(p.key, kLo), path(p.key, kHi))
		case TypeURI:
			out = append(out, p.key)
		}
	}
	return append(out, KeyCompartment)
}
