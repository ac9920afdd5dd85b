package search

import (
	"net/url"
	"sort"
	"strconv"
	"strings"
	"time"

	"github.com/casefhir/casefhir/fhir"
	"github.com/casefhir/casefhir/fhir/outcome"
)

// Query is a parsed search: what to match (Clauses, all of which must hold)
// and how to present the result (the other fields).
type Query struct {
	// Type is the searched type ("" for a whole-system search).
	Type string
	// Types is the _type list of a whole-system search.
	Types []string
	// Clauses must all match (repeated parameters AND).
	Clauses []*Clause
	// Include and RevInclude are the _include and _revinclude requests.
	Include, RevInclude []Include
	// Sort lists the _sort keys in order.
	Sort []SortKey
	// Count is _count (0 when absent; see HasCount).
	Count    int
	HasCount bool
	// Total is _total: "", "none", "estimate" or "accurate".
	Total string
	// Summary is _summary: "", "true", "text", "data", "count" or "false".
	Summary string
	// Elements is _elements.
	Elements []string
	// Unknown lists the parameter names ignored in lenient mode (unknown,
	// or known but unsupported); they are left out of SelfParams.
	Unknown []string
	// Base is the server's public base URL (no trailing slash). When set,
	// absolute reference values under it are matched as local references.
	Base string

	reg     *Registry
	now     time.Time
	perType map[string]*Query // whole-system search with _type: one query per type
	other   url.Values        // recognised parameters kept verbatim (_format, _pretty)
}

// Clause is one search parameter occurrence: its values are ORed.
type Clause struct {
	// Name is the parameter as written, without values (e.g.
	// "subject:Patient.name", "_has:Observation:patient:code").
	Name string
	// Param is the parameter searched (the reference parameter for chains).
	Param *Param
	// Modifier is the modifier without ':' ("exact", "missing", ...). For
	// a type modifier (:Patient) it is the type name; see TargetType.
	Modifier string
	// TargetType is the type of a :[type] modifier or of a chain.
	TargetType string
	// Values are ORed.
	Values []*Value
	// Chain, for a chained parameter, holds the inner searches, one per
	// possible target type, whose matches the reference must point to.
	Chain []*Query
	// Has, for a reverse chain, is the search on the referring type.
	Has *HasClause

	resolved bool
	refs     map[string]struct{}
}

// HasClause is a reverse chain: _has:Type:param:... selects the resources
// that resources of Type point to through param and that match Inner.
type HasClause struct {
	Type  string // the referring type
	Param string // its reference parameter
	Inner *Query // the search on Type
}

// Include is one _include or _revinclude.
type Include struct {
	// Source is the type holding the reference ("*" for _include=*).
	Source string
	// Param is the reference parameter code ("*" for all of them).
	Param string
	// Target restricts the referenced type ("" for any).
	Target  string
	Iterate bool
}

// SortKey is one _sort key.
type SortKey struct {
	Code  string
	Desc  bool
	Param *Param
}

// Value is one parsed search value.
type Value struct {
	// Raw is the value as written (escapes unresolved), for links.
	Raw string
	// Prefix is the comparison prefix (eq when absent) for ordered types.
	Prefix string

	str      string // string: normalised (or exact for :exact); token :text: normalised
	system   string // token/quantity system
	code     string // token code / identifier value; quantity code
	hasSys   bool   // token: a '|' was given
	ofType   string // token :of-type: "sys|code|value"
	date     dateRange
	num      number
	ref      string   // reference: "Type/id", id, or URL
	refKind  int      // refLocal, refID, refURL
	missing  bool     // :missing value
	comps    []*Value // composite components
	prefixes []any    // uri :above
	ptype    ParamType
}

const (
	refLocal = iota
	refID
	refURL
)

var resultParams = map[string]bool{
	"_sort": true, "_count": true, "_total": true, "_summary": true, "_elements": true,
	"_include": true, "_revinclude": true, "_format": true, "_pretty": true, "_type": true,
}

// maxChainDepth bounds chains and nested _has.
const maxChainDepth = 5

// Parse parses a search query for typ ("" for a whole-system search). With
// strict true, unknown or unsupported parameters are errors (400);
// otherwise they are ignored and listed in Query.Unknown. Malformed values
// are always errors (400). Error Details never contain search values; the
// offending value is only in Diagnostics.
func (r *Registry) Parse(typ string, q url.Values, strict bool) (*Query, error) {
	if typ != "" && !fhir.IsResourceType(typ) {
		return nil, outcome.Errorf(outcome.NotSupported, "unknown resource type").WithStatus(400).WithDiagnostics(typ)
	}
	return r.parse(typ, q, strict, 0, time.Now())
}

func (r *Registry) parse(typ string, q url.Values, strict bool, depth int, now time.Time) (*Query, error) {
	qu := &Query{Type: typ, reg: r, now: now}
	names := make([]string, 0, len(q))
	for k := range q {
		names = append(names, k)
	}
	sort.Strings(names)
	if typ == "" {
		if ts, ok := q["_type"]; ok {
			for _, v := range ts {
				for _, t := range strings.Split(v, ",") {
					t = strings.TrimSpace(t)
					if t == "" {
						continue
					}
					if !fhir.IsResourceType(t) {
						return nil, badValue("_type", "unknown resource type in _type", t)
					}
					qu.Types = appendUnique(qu.Types, t)
				}
			}
			if len(qu.Types) > 0 {
				qu.perType = map[string]*Query{}
				rest := url.Values{}
				for k, v := range q {
					if k != "_type" && !resultParams[k] {
						rest[k] = v
					}
				}
				for _, t := range qu.Types {
					sub, err := r.parse(t, rest, strict, depth, now)
					if err != nil {
						return nil, err
					}
					qu.perType[t] = sub
				}
			}
		}
	}
	for _, name := range names {
		vals := q[name]
		if base, ok := iterateName(name); ok {
			if err := qu.parseIncludes(base, vals, strict, true); err != nil {
				return nil, err
			}
			continue
		}
		if resultParams[name] {
			if err := qu.parseResult(name, vals, strict); err != nil {
				return nil, err
			}
			continue
		}
		if qu.perType != nil {
			// Each per-type query validated the parameter; keep the first
			// type's clauses on the system query for SelfParams.
			sub := qu.perType[qu.Types[0]]
			for _, c := range sub.Clauses {
				if c.Name == name {
					qu.Clauses = append(qu.Clauses, c)
				}
			}
			if containsString(sub.Unknown, name) {
				qu.Unknown = appendUnique(qu.Unknown, name)
			}
			continue
		}
		for _, v := range vals {
			c, err := r.parseClause(typ, name, v, strict, depth, now)
			if err != nil {
				return nil, err
			}
			if c == nil {
				qu.Unknown = appendUnique(qu.Unknown, name)
				continue
			}
			qu.Clauses = append(qu.Clauses, c)
		}
	}
	return qu, nil
}

func appendUnique(list []string, s string) []string {
	if containsString(list, s) {
		return list
	}
	return append(list, s)
}

func containsString(list []string, s string) bool {
	for _, x := range list {
		if x == s {
			return true
		}
	}
	return false
}

// unknownParam returns the error for an unknown/unsupported parameter in
// strict mode, or nil in lenient mode.
func unknownParam(strict bool, detail, name string) error {
	if !strict {
		return nil
	}
	return outcome.New(outcome.NotSupported, detail).WithStatus(400).WithDiagnostics(name)
}

func badValue(name, detail, value string) error {
	return outcome.Errorf(outcome.Invalid, "invalid value for search parameter %s: %s", safeName(name), detail).
		WithDiagnostics(name + "=" + value)
}

// safeName keeps a parameter name for Details only if it is made of
// identifier characters (it may otherwise be arbitrary client text).
func safeName(name string) string {
	if len(name) > 100 {
		return "(long name)"
	}
	for i := 0; i < len(name); i++ {
		c := name[i]
		if !(isIdentByte(c) || c == ':' || c == '.' || c == '_' || c == '-') {
			return "(name)"
		}
	}
	return name
}

func isIdentByte(c byte) bool {
	return c >= 'a' && c <= 'z' || c >= 'A' && c <= 'Z' || c >= '0' && c <= '9'
}

func (qu *Query) parseResult(name string, vals []string, strict bool) error {
	r := qu.reg
	last := vals[len(vals)-1]
	switch name {
	case "_count":
		n, err := strconv.Atoi(last)
		if err != nil || n < 0 {
			return badValue(name, "not a non-negative integer", last)
		}
		qu.Count, qu.HasCount = n, true
	case "_total":
		switch last {
		case "none", "estimate", "accurate":
			qu.Total = last
		default:
			return badValue(name, "want none, estimate or accurate", last)
		}
	case "_summary":
		switch last {
		case "true", "text", "data", "count", "false":
			qu.Summary = last
		default:
			return badValue(name, "want true, text, data, count or false", last)
		}
	case "_elements":
		for _, v := range vals {
			for _, e := range strings.Split(v, ",") {
				if e = strings.TrimSpace(e); e != "" {
					qu.Elements = appendUnique(qu.Elements, e)
				}
			}
		}
	case "_sort":
		for _, v := range vals {
			for _, k := range strings.Split(v, ",") {
				k = strings.TrimSpace(k)
				if k == "" {
					continue
				}
				desc := strings.HasPrefix(k, "-")
				code := strings.TrimPrefix(k, "-")
				p, ok := r.lookupFor(qu.Type, code)
				if !ok || !p.Supported() || p.Type == TypeComposite {
					if err := unknownParam(strict, "unknown or unsupported _sort parameter", code); err != nil {
						return err
					}
					qu.Unknown = appendUnique(qu.Unknown, "_sort")
					continue
				}
				qu.Sort = append(qu.Sort, SortKey{Code: code, Desc: desc, Param: p})
			}
		}
	case "_include", "_revinclude":
		return qu.parseIncludes(name, vals, strict, false)
	case "_type":
		if qu.Type != "" {
			return unknownParamOrIgnore(qu, strict, name)
		}
	case "_format", "_pretty":
		if qu.other == nil {
			qu.other = url.Values{}
		}
		qu.other[name] = vals
	}
	return nil
}

// iterateName recognises _include:iterate (and the R3 spelling :recurse).
func iterateName(name string) (string, bool) {
	base, mod, ok := strings.Cut(name, ":")
	if !ok || (base != "_include" && base != "_revinclude") || (mod != "iterate" && mod != "recurse") {
		return "", false
	}
	return base, true
}

func (qu *Query) parseIncludes(name string, vals []string, strict, iterate bool) error {
	for _, v := range vals {
		inc, err := qu.parseInclude(name, v, strict)
		if err != nil {
			return err
		}
		if inc == nil {
			qu.Unknown = appendUnique(qu.Unknown, name)
			continue
		}
		inc.Iterate = inc.Iterate || iterate
		if name == "_include" {
			qu.Include = append(qu.Include, *inc)
		} else {
			qu.RevInclude = append(qu.RevInclude, *inc)
		}
	}
	return nil
}

func unknownParamOrIgnore(qu *Query, strict bool, name string) error {
	if err := unknownParam(strict, "_type is only valid in a whole-system search", name); err != nil {
		return err
	}
	qu.Unknown = appendUnique(qu.Unknown, name)
	return nil
}

// lookupFor looks a parameter up for typ, or for a system search the
// common parameters.
func (r *Registry) lookupFor(typ, code string) (*Param, bool) {
	return r.Lookup(typ, code)
}

// parseInclude parses Source:param[:Target] (name may carry :iterate or
// :recurse). nil, nil means ignored (lenient).
func (qu *Query) parseInclude(name, v string, strict bool) (*Include, error) {
	r := qu.reg
	inc := &Include{}
	if v == "*" {
		inc.Source, inc.Param = "*", "*"
		return inc, nil
	}
	parts := strings.Split(v, ":")
	if len(parts) >= 2 && (parts[len(parts)-1] == "iterate" || parts[len(parts)-1] == "recurse") {
		inc.Iterate = true
		parts = parts[:len(parts)-1]
	}
	if len(parts) < 2 || len(parts) > 3 {
		return nil, badValue(name, "want Type:param[:Target]", v)
	}
	inc.Source, inc.Param = parts[0], parts[1]
	if len(parts) == 3 {
		inc.Target = parts[2]
		if !fhir.IsResourceType(inc.Target) {
			return nil, badValue(name, "unknown target type", v)
		}
	}
	if !fhir.IsResourceType(inc.Source) {
		return nil, badValue(name, "unknown source type", v)
	}
	if inc.Param == "*" {
		return inc, nil
	}
	p, ok := r.Lookup(inc.Source, inc.Param)
	if !ok || p.Type != TypeReference || !p.Supported() {
		if err := unknownParam(strict, "unknown reference parameter in "+name, v); err != nil {
			return nil, err
		}
		return nil, nil
	}
	return inc, nil
}

// splitEscaped splits s on unescaped sep, keeping escapes.
func splitEscaped(s string, sep byte) []string {
	var out []string
	start := 0
	for i := 0; i < len(s); i++ {
		switch s[i] {
		case '\\':
			i++
		case sep:
			out = append(out, s[start:i])
			start = i + 1
		}
	}
	return append(out, s[start:])
}

// unescape resolves \, \| \$ and \\.
func unescape(s string) string {
	if strings.IndexByte(s, '\\') < 0 {
		return s
	}
	var b strings.Builder
	for i := 0; i < len(s); i++ {
		if s[i] == '\\' && i+1 < len(s) {
			i++
		}
		b.WriteByte(s[i])
	}
	return b.String()
}

// parseClause parses one name=value occurrence. nil, nil means ignored.
func (r *Registry) parseClause(typ, name, value string, strict bool, depth int, now time.Time) (*Clause, error) {
	if depth > maxChainDepth {
		return nil, badValue(name, "chain too deep", value)
	}
	if strings.HasPrefix(name, "_has:") {
		return r.parseHas(typ, name, value, strict, depth, now)
	}
	// name = code[:modifier][.chain]
	head, chain := name, ""
	if i := strings.IndexByte(name, '.'); i >= 0 {
		head, chain = name[:i], name[i+1:]
	}
	code, mod := head, ""
	if i := strings.IndexByte(head, ':'); i >= 0 {
		code, mod = head[:i], head[i+1:]
	}
	p, ok := r.Lookup(typ, code)
	if !ok {
		return nil, unknownParam(strict, "unknown search parameter", name)
	}
	if !p.Supported() {
		return nil, unknownParam(strict, "unsupported search parameter", name)
	}
	c := &Clause{Name: name, Param: p}
	if mod != "" {
		if fhir.IsResourceType(mod) {
			if p.Type != TypeReference {
				return nil, badValue(name, "a type modifier needs a reference parameter", value)
			}
			c.TargetType = mod
		} else {
			if !modifierAllowed(p.Type, mod) {
				return nil, unknownParam(strict, "unsupported modifier", name)
			}
			c.Modifier = mod
		}
	}
	if chain != "" {
		if p.Type != TypeReference || c.Modifier != "" {
			return nil, unknownParam(strict, "chaining needs a reference parameter", name)
		}
		targets := p.Target
		if c.TargetType != "" {
			targets = []string{c.TargetType}
		}
		innerCode := chain
		if i := strings.IndexAny(chain, ".:"); i >= 0 {
			innerCode = chain[:i]
		}
		for _, t := range targets {
			if _, ok := r.Lookup(t, innerCode); !ok {
				continue
			}
			inner, err := r.parseClause(t, chain, value, strict, depth+1, now)
			if err != nil {
				return nil, err
			}
			if inner == nil {
				return nil, nil
			}
			c.Chain = append(c.Chain, &Query{Type: t, reg: r, now: now, Clauses: []*Clause{inner}})
		}
		if len(c.Chain) == 0 {
			return nil, unknownParam(strict, "unknown chained parameter", name)
		}
		return c, nil
	}
	if c.Modifier == "missing" {
		switch value {
		case "true", "false":
			c.Values = []*Value{{Raw: value, missing: value == "true"}}
			return c, nil
		}
		return nil, badValue(name, "want true or false", value)
	}
	for _, raw := range splitEscaped(value, ',') {
		v, err := c.parseValue(raw, name)
		if err != nil {
			return nil, err
		}
		c.Values = append(c.Values, v)
	}
	return c, nil
}

func modifierAllowed(t ParamType, mod string) bool {
	switch mod {
	case "missing":
		return true
	case "exact", "contains":
		return t == TypeString
	case "text":
		return t == TypeToken
	case "not", "of-type":
		return t == TypeToken
	case "identifier":
		return t == TypeReference
	case "above", "below":
		return t == TypeURI || t == TypeReference
	}
	return false
}

// parseHas parses _has:Type:ref:rest=value.
func (r *Registry) parseHas(typ, name, value string, strict bool, depth int, now time.Time) (*Clause, error) {
	parts := strings.SplitN(name, ":", 4)
	if len(parts) != 4 || parts[1] == "" || parts[2] == "" || parts[3] == "" {
		return nil, badValue("_has", "want _has:Type:param:search", name)
	}
	rtype, rparam, rest := parts[1], parts[2], parts[3]
	if !fhir.IsResourceType(rtype) {
		return nil, badValue("_has", "unknown resource type", name)
	}
	p, ok := r.Lookup(rtype, rparam)
	if !ok || p.Type != TypeReference || !p.Supported() {
		return nil, unknownParam(strict, "unknown reference parameter in _has", name)
	}
	inner, err := r.parseClause(rtype, rest, value, strict, depth+1, now)
	if err != nil || inner == nil {
		return nil, err
	}
	id, _ := r.Lookup(typ, "_id")
	return &Clause{
		Name:  name,
		Param: id,
		Has:   &HasClause{Type: rtype, Param: rparam, Inner: &Query{Type: rtype, reg: r, now: now, Clauses: []*Clause{inner}}},
	}, nil
}

var prefixes = map[string]bool{"eq": true, "ne": true, "gt": true, "lt": true, "ge": true, "le": true, "sa": true, "eb": true, "ap": true}

func takePrefix(s string) (string, string) {
	if len(s) >= 2 && prefixes[s[:2]] {
		return s[:2], s[2:]
	}
	return "eq", s
}

// parseValue parses one (OR-ed) value of c.
func (c *Clause) parseValue(raw, name string) (*Value, error) {
	return parseTyped(c.Param.Type, c.Param, c.Modifier, c.TargetType, raw, name)
}

func parseTyped(t ParamType, p *Param, mod, target, raw, name string) (*Value, error) {
	v := &Value{Raw: raw, Prefix: "eq", ptype: t}
	switch t {
	case TypeString:
		s := unescape(raw)
		if mod == "exact" {
			v.str = s
		} else {
			v.str = normalize(s)
		}
	case TypeToken:
		if mod == "text" {
			v.str = normalize(unescape(raw))
			break
		}
		parts := splitEscaped(raw, '|')
		switch {
		case mod == "of-type":
			if len(parts) != 3 || parts[2] == "" {
				return nil, badValue(name, "want system|code|value", raw)
			}
			v.ofType = unescape(parts[0]) + "|" + unescape(parts[1]) + "|" + unescape(parts[2])
		case len(parts) == 1:
			v.code = unescape(parts[0])
		case len(parts) == 2:
			v.hasSys = true
			v.system, v.code = unescape(parts[0]), unescape(parts[1])
			if v.system == "" && v.code == "" {
				return nil, badValue(name, "empty token", raw)
			}
		default:
			return nil, badValue(name, "too many '|' in token", raw)
		}
	case TypeDate:
		pre, s := takePrefix(raw)
		dr, ok := parseDate(s)
		if !ok {
			return nil, badValue(name, "not a valid date", raw)
		}
		v.Prefix, v.date = pre, dr
	case TypeNumber:
		pre, s := takePrefix(raw)
		n, ok := parseNumber(s)
		if !ok {
			return nil, badValue(name, "not a valid number", raw)
		}
		v.Prefix, v.num = pre, n
	case TypeQuantity:
		pre, s := takePrefix(raw)
		parts := splitEscaped(s, '|')
		if len(parts) != 1 && len(parts) != 3 {
			return nil, badValue(name, "want number|system|code", raw)
		}
		n, ok := parseNumber(parts[0])
		if !ok {
			return nil, badValue(name, "not a valid number", raw)
		}
		v.Prefix, v.num = pre, n
		if len(parts) == 3 {
			v.system, v.code = unescape(parts[1]), unescape(parts[2])
			v.hasSys = v.system != ""
		}
	case TypeURI:
		v.str = unescape(raw)
		if v.str == "" {
			return nil, badValue(name, "empty uri", raw)
		}
		if mod == "above" {
			v.prefixes = uriPrefixes(v.str)
		}
	case TypeReference:
		s := unescape(raw)
		if s == "" {
			return nil, badValue(name, "empty reference", raw)
		}
		if mod == "identifier" {
			tv, err := parseTyped(TypeToken, p, "", "", raw, name)
			if err != nil {
				return nil, err
			}
			tv.Raw = raw
			return tv, nil
		}
		if mod == "above" || mod == "below" {
			v.ref, v.refKind = s, refURL
			if mod == "above" {
				v.prefixes = uriPrefixes(s)
			}
			break
		}
		switch {
		case strings.Contains(s, "://") || strings.HasPrefix(s, "urn:"):
			v.ref, v.refKind = s, refURL
		case strings.Contains(s, "/"):
			ref, ok := fhir.ParseReference(s)
			if !ok || ref.Type == "" {
				return nil, badValue(name, "not a valid reference", raw)
			}
			if target != "" && ref.Type != target {
				return nil, badValue(name, "reference type does not match the type modifier", raw)
			}
			v.ref, v.refKind = ref.Local(), refLocal
		default:
			if !fhir.IsValidID(s) {
				return nil, badValue(name, "not a valid id", raw)
			}
			switch {
			case target != "":
				v.ref, v.refKind = target+"/"+s, refLocal
			case p != nil && len(p.Target) == 1:
				v.ref, v.refKind = p.Target[0]+"/"+s, refLocal
			default:
				v.ref, v.refKind = s, refID
			}
		}
	case TypeComposite:
		parts := splitEscaped(raw, '$')
		if len(parts) != len(p.Components) {
			return nil, badValue(name, "wrong number of composite components", raw)
		}
		for i, comp := range p.Components {
			cv, err := parseTyped(comp.Type, nil, "", "", parts[i], name)
			if err != nil {
				return nil, err
			}
			v.comps = append(v.comps, cv)
		}
	default:
		return nil, badValue(name, "unsupported parameter type", raw)
	}
	return v, nil
}

// uriPrefixes returns the values a uri :above query matches: the URI and
// each of its ancestors at '/' boundaries (down to scheme://host).
func uriPrefixes(s string) []any {
	out := []any{s}
	start := 0
	if i := strings.Index(s, "://"); i >= 0 {
		start = i + 3
		if j := strings.IndexByte(s[start:], '/'); j >= 0 {
			start += j
		} else {
			return out
		}
	}
	for i := len(s) - 1; i > start; i-- {
		if s[i] == '/' {
			out = append(out, s[:i])
		}
	}
	return out
}

// ForType returns the query to run on typ: for a whole-system search with
// _type, the query bound to that type's parameters; otherwise q itself.
func (q *Query) ForType(typ string) *Query {
	if sub, ok := q.perType[typ]; ok {
		sub.Base = q.Base
		sub.Include, sub.RevInclude, sub.Sort = q.Include, q.RevInclude, q.Sort
		return sub
	}
	return q
}

// Pending returns the chain and _has clauses still to be resolved into
// reference sets (see Clause.Resolve), in order.
func (q *Query) Pending() []*Clause {
	var out []*Clause
	for _, c := range q.Clauses {
		if (c.Chain != nil || c.Has != nil) && !c.resolved {
			out = append(out, c)
		}
	}
	return out
}

// Resolve sets the references a chain or _has clause stands for: for a
// chain, the "Type/id" of every match of the inner searches; for _has, the
// "Type/id" (of the searched type) that the inner matches point to.
func (c *Clause) Resolve(refs []string) {
	c.refs = make(map[string]struct{}, len(refs))
	for _, r := range refs {
		c.refs[r] = struct{}{}
	}
	c.resolved = true
}

// Resolved reports whether Resolve was called.
func (c *Clause) Resolved() bool { return c.resolved }

// SelfParams returns the query in canonical form for the self link:
// parameters sorted, ignored ones left out, result parameters included.
func (q *Query) SelfParams() url.Values {
	out := url.Values{}
	for _, c := range q.Clauses {
		raws := make([]string, len(c.Values))
		for i, v := range c.Values {
			raws[i] = v.Raw
		}
		if c.Chain != nil || c.Has != nil {
			raws = c.innerRaws()
		}
		out[c.Name] = append(out[c.Name], strings.Join(raws, ","))
	}
	if len(q.Types) > 0 {
		out.Set("_type", strings.Join(q.Types, ","))
	}
	for _, k := range q.Sort {
		s := k.Code
		if k.Desc {
			s = "-" + s
		}
		if cur := out.Get("_sort"); cur != "" {
			s = cur + "," + s
		}
		out.Set("_sort", s)
	}
	incl := func(key string, list []Include) {
		for _, i := range list {
			s := i.Source + ":" + i.Param
			if i.Source == "*" {
				s = "*"
			}
			if i.Target != "" {
				s += ":" + i.Target
			}
			k := key
			if i.Iterate {
				k += ":iterate"
			}
			out[k] = append(out[k], s)
		}
	}
	incl("_include", q.Include)
	incl("_revinclude", q.RevInclude)
	if q.HasCount {
		out.Set("_count", strconv.Itoa(q.Count))
	}
	if q.Total != "" {
		out.Set("_total", q.Total)
	}
	if q.Summary != "" {
		out.Set("_summary", q.Summary)
	}
	if len(q.Elements) > 0 {
		out.Set("_elements", strings.Join(q.Elements, ","))
	}
	for k, v := range q.other {
		out[k] = v
	}
	return out
}

func (c *Clause) innerRaws() []string {
	var inner *Clause
	switch {
	case c.Has != nil:
		inner = c.Has.Inner.Clauses[0]
	case len(c.Chain) > 0:
		inner = c.Chain[0].Clauses[0]
	default:
		return nil
	}
	if inner.Chain != nil || inner.Has != nil {
		return inner.innerRaws()
	}
	raws := make([]string, len(inner.Values))
	for i, v := range inner.Values {
		raws[i] = v.Raw
	}
	return raws
}
