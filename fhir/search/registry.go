package search

import (
	"bytes"
	"encoding/json"
	"fmt"
	"sort"
	"strings"

	"github.com/casefhir/casefhir/fhir"
	"github.com/casefhir/casefhir/fhir/fhirpath"
)

// ParamType is a SearchParameter type
// (https://hl7.org/fhir/R4/valueset-search-param-type.html).
type ParamType string

// The R4 search parameter types.
const (
	TypeNumber    ParamType = "number"
	TypeDate      ParamType = "date"
	TypeString    ParamType = "string"
	TypeToken     ParamType = "token"
	TypeReference ParamType = "reference"
	TypeComposite ParamType = "composite"
	TypeQuantity  ParamType = "quantity"
	TypeURI       ParamType = "uri"
	TypeSpecial   ParamType = "special"
)

// Param is one search parameter as bound to one resource type (or to
// Resource/DomainResource for the common parameters). It is immutable.
type Param struct {
	// Code is the name used in queries ("subject", "_lastUpdated").
	Code string
	// URL is the SearchParameter's canonical URL (its definition).
	URL string
	// Type is the parameter type.
	Type ParamType
	// Base lists the resource types the definition applies to.
	Base []string
	// Expression is the FHIRPath expression as published (all bases).
	Expression string
	// Target lists the resource types a reference parameter may point to.
	Target []string
	// Components are the parts of a composite parameter, in order.
	Components []Component
	// Description is the definition's description.
	Description string
	// Unsupported says why the parameter cannot be searched ("" when it
	// can). Unsupported parameters are still listed by Lookup so callers
	// can report them precisely.
	Unsupported string

	key  string         // index key
	expr *fhirpath.Expr // expression restricted to this type
}

// Component is one part of a composite parameter.
type Component struct {
	// Definition is the canonical URL of the component's SearchParameter.
	Definition string
	// Expression is relative to each value of the composite's expression.
	Expression string
	// Type is the component's parameter type (from its definition).
	Type ParamType

	expr *fhirpath.Expr
}

// Key returns the parameter's key in the index tree (the code, with '.'
// and a leading '$' escaped).
func (p *Param) Key() string { return p.key }

// Supported reports whether the parameter can be searched.
func (p *Param) Supported() bool { return p.Unsupported == "" }

// Registry holds the search parameters of every resource type. It is
// immutable after NewRegistry and safe for concurrent use.
type Registry struct {
	byType map[string]map[string]*Param // type -> code -> param (type-specific only)
	common map[string]*Param            // Resource and DomainResource parameters
	byURL  map[string]*Param            // canonical URL -> definition-level param
	types  map[string][]*Param          // type -> all params, sorted by code (incl. common)
}

// spDoc is the subset of a SearchParameter resource the registry reads.
type spDoc struct {
	ResourceType string   `json:"resourceType"`
	URL          string   `json:"url"`
	Code         string   `json:"code"`
	Type         string   `json:"type"`
	Base         []string `json:"base"`
	Expression   string   `json:"expression"`
	Target       []string `json:"target"`
	Description  string   `json:"description"`
	Status       string   `json:"status"`
	Component    []struct {
		Definition string `json:"definition"`
		Expression string `json:"expression"`
	} `json:"component"`
}

// unsupportedCodes are parameters the server recognises but does not
// implement.
var unsupportedCodes = map[string]string{
	"_text":    "narrative search is not supported",
	"_content": "full-text search is not supported",
	"_query":   "named queries are not supported",
	"_list":    "list-based search is not supported",
}

// NewRegistry builds a registry from SearchParameter definitions: each
// argument is a Bundle of SearchParameters or a single SearchParameter
// (JSON). A later definition with the same base type and code replaces an
// earlier one. Every expression is compiled here, once.
func NewRegistry(bundles ...[]byte) (*Registry, error) {
	r := &Registry{
		byType: map[string]map[string]*Param{},
		common: map[string]*Param{},
		byURL:  map[string]*Param{},
		types:  map[string][]*Param{},
	}
	var docs []spDoc
	for i, b := range bundles {
		var probe struct {
			ResourceType string `json:"resourceType"`
			Entry        []struct {
				Resource json.RawMessage `json:"resource"`
			} `json:"entry"`
		}
		if err := json.Unmarshal(b, &probe); err != nil {
			return nil, fmt.Errorf("search: definitions %d: %w", i, err)
		}
		var raws []json.RawMessage
		switch probe.ResourceType {
		case "Bundle":
			for _, e := range probe.Entry {
				raws = append(raws, e.Resource)
			}
		case "SearchParameter":
			raws = append(raws, b)
		default:
			return nil, fmt.Errorf("search: definitions %d: want a Bundle or SearchParameter, got %q", i, probe.ResourceType)
		}
		for _, raw := range raws {
			var d spDoc
			if err := json.Unmarshal(raw, &d); err != nil {
				return nil, fmt.Errorf("search: definitions %d: %w", i, err)
			}
			if d.ResourceType != "SearchParameter" || d.Code == "" {
				continue
			}
			docs = append(docs, d)
		}
	}
	// Definition-level params first, so composites can find their components.
	defs := make([]*Param, len(docs))
	for i, d := range docs {
		p := &Param{
			Code: d.Code, URL: d.URL, Type: ParamType(d.Type), Base: d.Base,
			Expression: d.Expression, Target: d.Target, Description: d.Description,
			key: indexKey(d.Code),
		}
		for _, c := range d.Component {
			p.Components = append(p.Components, Component{Definition: c.Definition, Expression: c.Expression})
		}
		defs[i] = p
		if p.URL != "" {
			r.byURL[p.URL] = p
		}
	}
	for _, def := range defs {
		var whole *fhirpath.Expr
		reason := unsupportedCodes[def.Code]
		if reason == "" {
			switch def.Type {
			case TypeNumber, TypeDate, TypeString, TypeToken, TypeReference, TypeComposite, TypeQuantity, TypeURI:
			case TypeSpecial:
				reason = "special parameters are not supported"
			default:
				reason = "unknown parameter type"
			}
		}
		if reason == "" {
			if def.Expression == "" {
				reason = "the definition has no expression"
			} else if e, err := fhirpath.Parse(def.Expression); err != nil {
				reason = "the expression is not supported"
			} else {
				whole = e
			}
		}
		comps := make([]Component, len(def.Components))
		copy(comps, def.Components)
		for i := range comps {
			c := &comps[i]
			if cd := r.byURL[c.Definition]; cd != nil {
				c.Type = cd.Type
			}
			e, err := fhirpath.Parse(c.Expression)
			if reason == "" && (err != nil || c.Type == "" || c.Type == TypeComposite || c.Type == TypeSpecial) {
				reason = "a composite component is not supported"
			}
			c.expr = e
		}
		for _, base := range def.Base {
			p := *def
			p.Components = comps
			p.Unsupported = reason
			if whole != nil {
				if base == "Resource" || base == "DomainResource" {
					p.expr = whole
				} else {
					p.expr = whole.ForType(base)
					if p.expr == nil && p.Unsupported == "" {
						p.Unsupported = "the expression selects nothing on this type"
					}
				}
			}
			if base == "Resource" || base == "DomainResource" {
				r.common[p.Code] = &p
				continue
			}
			m := r.byType[base]
			if m == nil {
				m = map[string]*Param{}
				r.byType[base] = m
			}
			m[p.Code] = &p
		}
	}
	for _, t := range fhir.ResourceTypes() {
		var list []*Param
		for code, p := range r.common {
			if _, shadowed := r.byType[t][code]; !shadowed {
				list = append(list, p)
			}
		}
		for _, p := range r.byType[t] {
			list = append(list, p)
		}
		sort.Slice(list, func(i, j int) bool { return list[i].Code < list[j].Code })
		r.types[t] = list
	}
	return r, nil
}

// Lookup returns the parameter code of resource type typ (type-specific
// first, then the Resource/DomainResource ones). typ "" looks up the common
// parameters only. Unsupported parameters are returned too (see
// Param.Supported).
func (r *Registry) Lookup(typ, code string) (*Param, bool) {
	if p, ok := r.byType[typ][code]; ok {
		return p, true
	}
	p, ok := r.common[code]
	return p, ok
}

// Params lists every parameter of typ, supported or not, sorted by code.
// For the CapabilityStatement keep those with Supported() true.
func (r *Registry) Params(typ string) []*Param {
	if typ == "" {
		list := make([]*Param, 0, len(r.common))
		for _, p := range r.common {
			list = append(list, p)
		}
		sort.Slice(list, func(i, j int) bool { return list[i].Code < list[j].Code })
		return list
	}
	return r.types[typ]
}

// ByURL returns the definition with the given canonical URL (not bound to a
// type: its expression is not compiled per type).
func (r *Registry) ByURL(url string) (*Param, bool) {
	p, ok := r.byURL[url]
	return p, ok
}

// ReferenceParams lists the supported reference parameters of typ (for
// _include=Type:* and the CapabilityStatement's searchInclude).
func (r *Registry) ReferenceParams(typ string) []*Param {
	var out []*Param
	for _, p := range r.Params(typ) {
		if p.Type == TypeReference && p.Supported() {
			out = append(out, p)
		}
	}
	return out
}

// indexKey escapes a parameter code for use as a key of the index tree
// (BSON field names must not contain '.' nor start with '$').
func indexKey(code string) string {
	if !strings.ContainsAny(code, ".$%") {
		return code
	}
	var b bytes.Buffer
	for i := 0; i < len(code); i++ {
		c := code[i]
		switch {
		case c == '.' || c == '%' || (c == '$' && i == 0):
			fmt.Fprintf(&b, "%%%02X", c)
		default:
			b.WriteByte(c)
		}
	}
	return b.String()
}
