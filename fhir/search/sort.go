package search

import "github.com/casefhir/casefhir/fhir/store"

// KeySort is the index key under which sort values are extracted at write
// time: Index["_sort"][<parameter key>] = {"a": v, "d": w}, where v is the
// value the resource sorts by in ascending order (the smallest: string
// normalised, token code, local reference, uri, the low end of a date,
// number or quantity range) and w the one for descending order (the
// largest; the high end of ranges). A store sorts by "_sort.<key>.a" or
// "_sort.<key>.d": one scalar per resource and direction, served from an
// index.
const KeySort = "_sort"

// Sort-value sub-keys.
const (
	kAsc  = "a"
	kDesc = "d"
)

// sortable reports whether parameters of type t can be _sort keys.
func sortable(t ParamType) bool {
	switch t {
	case TypeString, TypeToken, TypeReference, TypeURI, TypeDate, TypeNumber, TypeQuantity:
		return true
	}
	return false
}

// sortValues extracts the sort values of every sortable parameter of the
// index tree idx (nil when there are none).
func sortValues(params []*Param, idx map[string]any) map[string]any {
	var out map[string]any
	for _, p := range params {
		if !sortable(p.Type) || p.Code == "_id" || p.Code == "_lastUpdated" {
			continue
		}
		if _, ok := idx[p.key]; !ok {
			continue
		}
		a, d := SortValue(p, idx, false), SortValue(p, idx, true)
		if a == nil && d == nil {
			continue
		}
		if out == nil {
			out = map[string]any{}
		}
		v := map[string]any{}
		if a != nil {
			v[kAsc] = a
		}
		if d != nil {
			v[kDesc] = d
		}
		out[p.key] = v
	}
	return out
}

// SortPath returns the store sort key of one _sort key: _id and
// _lastUpdated sort by store.PathID and store.PathLastUpdated, every other
// parameter by its extracted sort value ("_sort.<key>.a" ascending,
// "_sort.<key>.d" descending).
func (k SortKey) SortPath() store.SortKey {
	switch k.Code {
	case "_id":
		return store.SortKey{Path: store.PathID, Desc: k.Desc}
	case "_lastUpdated":
		return store.SortKey{Path: store.PathLastUpdated, Desc: k.Desc}
	}
	key := indexKey(k.Code)
	if k.Param != nil {
		key = k.Param.key
	}
	sub := kAsc
	if k.Desc {
		sub = kDesc
	}
	return store.SortKey{Path: KeySort + "." + key + "." + sub, Desc: k.Desc}
}

// StoreSort returns the query's _sort keys as store sort keys (nil without
// _sort: the store's own order, see store.FindOptions.Sort).
func (q *Query) StoreSort() []store.SortKey {
	if len(q.Sort) == 0 {
		return nil
	}
	out := make([]store.SortKey, len(q.Sort))
	for i, k := range q.Sort {
		out[i] = k.SortPath()
	}
	return out
}

// SortSources returns, per resource type, the sort paths (see KeySort)
// whose values are a bound of another index path of the same resource,
// with that path, for a store that derives them (store.SortDeriver):
// ascending ("_sort.<key>.a") the smallest of a string's normalised
// values, a token's codes, a uri, the low ends of date, number and
// quantity ranges; descending ("_sort.<key>.d") the largest of the same,
// with the high ends of ranges. SortValue computes exactly these.
// Reference parameters are left out: their sort value spans two paths
// (local references and absolute URLs).
func (r *Registry) SortSources() map[string]map[string]store.SortSource {
	out := map[string]map[string]store.SortSource{}
	for typ, params := range r.types {
		for _, p := range params {
			if !sortable(p.Type) || p.Code == "_id" || p.Code == "_lastUpdated" {
				continue
			}
			asc, desc := p.key, p.key
			switch p.Type {
			case TypeString:
				asc, desc = p.key+"."+kNorm, p.key+"."+kNorm
			case TypeToken:
				asc, desc = p.key+"."+kCode, p.key+"."+kCode
			case TypeURI:
			case TypeDate, TypeNumber, TypeQuantity:
				asc, desc = p.key+"."+kLo, p.key+"."+kHi
			default:
				continue
			}
			if out[typ] == nil {
				out[typ] = map[string]store.SortSource{}
			}
			out[typ][KeySort+"."+p.key+"."+kAsc] = store.SortSource{Path: asc}
			out[typ][KeySort+"."+p.key+"."+kDesc] = store.SortSource{Path: desc, Max: true}
		}
	}
	return out
}
