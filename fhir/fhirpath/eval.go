package fhirpath

import (
	"encoding/json"
	"math"
	"strconv"
	"strings"
)

// Item is one element of a FHIRPath collection: a JSON value as decoded by
// encoding/json (map[string]any, string, json.Number or float64, bool) and,
// when known, its FHIR type name ("Quantity", "dateTime", "Patient", ...).
// The type is known for choice elements (valueQuantity gives "Quantity"),
// resources (their resourceType) and resolve() results; otherwise it is "".
type Item struct {
	Value any
	Type  string
}

// Eval evaluates e with resource as the context (%resource and the initial
// $this). resource is normally a map[string]any decoded from JSON. Arrays
// are flattened into the returned collection.
func (e *Expr) Eval(resource any) []Item {
	root := Item{Value: resource, Type: resourceType(resource)}
	ev := evaluator{root: root}
	return ev.eval(e.root, []Item{root})
}

// EvalItem evaluates e with item as the initial $this and %resource.
func (e *Expr) EvalItem(item Item) []Item {
	ev := evaluator{root: item}
	return ev.eval(e.root, []Item{item})
}

func resourceType(v any) string {
	if m, ok := v.(map[string]any); ok {
		if s, ok := m["resourceType"].(string); ok {
			return s
		}
	}
	return ""
}

type evaluator struct {
	root Item
}

func (ev *evaluator) eval(n *node, focus []Item) []Item {
	switch n.kind {
	case kThis:
		if n.name != "" {
			return []Item{ev.root}
		}
		return focus
	case kString:
		return []Item{{Value: n.str, Type: "string"}}
	case kNumber:
		return []Item{{Value: json.Number(n.str), Type: "decimal"}}
	case kBool:
		return []Item{{Value: n.b, Type: "boolean"}}
	case kEmpty:
		return nil
	case kUnary:
		in := ev.eval(n.args[0], focus)
		if n.name == "+" {
			return in
		}
		if len(in) != 1 {
			return nil
		}
		f, ok := toFloat(in[0].Value)
		if !ok {
			return nil
		}
		return []Item{{Value: -f, Type: "decimal"}}
	case kIndex:
		in := ev.eval(n.args[0], focus)
		idx := ev.eval(n.args[1], focus)
		if len(idx) != 1 {
			return nil
		}
		f, ok := toFloat(idx[0].Value)
		if !ok || f < 0 || f != math.Trunc(f) || int(f) >= len(in) {
			return nil
		}
		return in[int(f) : int(f)+1]
	case kTypeOp:
		in := ev.eval(n.args[0], focus)
		if n.name == "as" {
			return filterType(in, n.str)
		}
		if len(in) != 1 {
			return nil
		}
		return boolItem(isType(in[0], n.str))
	case kBinary:
		return ev.binary(n, focus)
	case kInvoke:
		var recv []Item
		if n.args[0] == nil {
			recv = focus
			if !n.call {
				// A leading identifier: a type name filters the context,
				// anything else is a member of it.
				if isTypeName(n.name) {
					return filterType(recv, n.name)
				}
			}
		} else {
			recv = ev.eval(n.args[0], focus)
		}
		if !n.call {
			return member(recv, n.name)
		}
		return ev.call(n, recv)
	}
	return nil
}

// isTypeName reports whether an identifier names a type rather than an
// element: FHIR element names start lower-case, type names upper-case.
func isTypeName(s string) bool { return s != "" && s[0] >= 'A' && s[0] <= 'Z' }

func boolItem(b bool) []Item { return []Item{{Value: b, Type: "boolean"}} }

// choiceTypes maps the suffix of a choice element (valueQuantity) to its
// FHIR type name.
var choiceTypes = map[string]string{
	"Base64Binary": "base64Binary", "Boolean": "boolean", "Canonical": "canonical", "Code": "code",
	"Date": "date", "DateTime": "dateTime", "Decimal": "decimal", "Id": "id", "Instant": "instant",
	"Integer": "integer", "Markdown": "markdown", "Oid": "oid", "PositiveInt": "positiveInt",
	"String": "string", "Time": "time", "UnsignedInt": "unsignedInt", "Uri": "uri", "Url": "url",
	"Uuid":    "uuid",
	"Address": "Address", "Age": "Age", "Annotation": "Annotation", "Attachment": "Attachment",
	"CodeableConcept": "CodeableConcept", "Coding": "Coding", "ContactPoint": "ContactPoint",
	"Count": "Count", "Distance": "Distance", "Duration": "Duration", "HumanName": "HumanName",
	"Identifier": "Identifier", "Money": "Money", "Period": "Period", "Quantity": "Quantity",
	"Range": "Range", "Ratio": "Ratio", "Reference": "Reference", "SampledData": "SampledData",
	"Signature": "Signature", "Timing": "Timing", "ContactDetail": "ContactDetail",
	"Contributor": "Contributor", "DataRequirement": "DataRequirement", "Expression": "Expression",
	"ParameterDefinition": "ParameterDefinition", "RelatedArtifact": "RelatedArtifact",
	"TriggerDefinition": "TriggerDefinition", "UsageContext": "UsageContext", "Dosage": "Dosage",
	"Meta": "Meta",
}

// member returns the children called name of each item, flattening arrays.
// A missing name falls back to a choice element name[Type].
func member(in []Item, name string) []Item {
	var out []Item
	for _, it := range in {
		m, ok := it.Value.(map[string]any)
		if !ok {
			continue
		}
		if v, ok := m[name]; ok {
			out = appendValue(out, v, "")
			continue
		}
		for k, v := range m {
			if len(k) > len(name) && strings.HasPrefix(k, name) {
				if t, ok := choiceTypes[k[len(name):]]; ok {
					out = appendValue(out, v, t)
				}
			}
		}
	}
	return out
}

func appendValue(out []Item, v any, typ string) []Item {
	switch x := v.(type) {
	case nil:
		return out
	case []any:
		for _, e := range x {
			if e != nil {
				if typ == "" {
					out = append(out, Item{Value: e, Type: resourceType(e)})
				} else {
					out = append(out, Item{Value: e, Type: typ})
				}
			}
		}
		return out
	default:
		if typ == "" {
			typ = resourceType(v)
		}
		return append(out, Item{Value: v, Type: typ})
	}
}

func filterType(in []Item, t string) []Item {
	var out []Item
	for _, it := range in {
		if isType(it, t) {
			if it.Type == "" {
				it.Type = t
			}
			out = append(out, it)
		}
	}
	return out
}

// quantitySubtypes are the types whose values are also Quantities.
var quantitySubtypes = map[string]bool{"Age": true, "Count": true, "Distance": true, "Duration": true, "SimpleQuantity": true, "MoneyQuantity": true}

// isType reports whether it is of FHIR type t. The comparison ignores the
// case of the first letter (FHIRPath System.DateTime vs FHIR dateTime).
// Items of unknown type match any type their JSON shape can have.
func isType(it Item, t string) bool {
	if t == "" {
		return false
	}
	if it.Type != "" {
		if sameType(it.Type, t) {
			return true
		}
		switch {
		case sameType(t, "Quantity") && quantitySubtypes[it.Type]:
			return true
		case (t == "Resource" || t == "DomainResource") && isTypeName(it.Type) && resourceType(it.Value) != "":
			return true
		case sameType(t, "string") && stringLike[strings.ToLower(it.Type)]:
			return true
		}
		return false
	}
	switch it.Value.(type) {
	case string:
		return !isTypeName(t) || stringLike[strings.ToLower(t)]
	case bool:
		return sameType(t, "boolean")
	case json.Number, float64:
		return sameType(t, "decimal") || sameType(t, "integer") || sameType(t, "positiveInt") || sameType(t, "unsignedInt")
	case map[string]any:
		return isTypeName(t) && !stringLike[strings.ToLower(t)] && t != "Boolean" && t != "Decimal" && t != "Integer"
	}
	return false
}

// stringLike are the (lower-cased) primitive types carried as JSON strings.
var stringLike = map[string]bool{
	"string": true, "code": true, "id": true, "uri": true, "url": true, "canonical": true, "oid": true,
	"uuid": true, "markdown": true, "base64binary": true, "date": true, "datetime": true, "instant": true,
	"time": true,
}

func sameType(a, b string) bool {
	if a == b {
		return true
	}
	if len(a) != len(b) || len(a) == 0 {
		return false
	}
	return strings.EqualFold(a[:1], b[:1]) && a[1:] == b[1:]
}

func (ev *evaluator) binary(n *node, focus []Item) []Item {
	switch n.name {
	case "|":
		l := ev.eval(n.args[0], focus)
		r := ev.eval(n.args[1], focus)
		return union(l, r)
	case "and", "or", "xor", "implies":
		l := truth(ev.eval(n.args[0], focus))
		// short-circuit where the result is decided
		switch {
		case n.name == "and" && l == fFalse:
			return boolItem(false)
		case n.name == "or" && l == fTrue:
			return boolItem(true)
		case n.name == "implies" && l == fFalse:
			return boolItem(true)
		}
		r := truth(ev.eval(n.args[1], focus))
		return logic(n.name, l, r)
	case "=", "!=", "~", "!~":
		l := ev.eval(n.args[0], focus)
		r := ev.eval(n.args[1], focus)
		if len(l) == 0 || len(r) == 0 {
			return nil
		}
		eq := equalCollections(l, r, n.name == "~" || n.name == "!~")
		if n.name == "!=" || n.name == "!~" {
			eq = !eq
		}
		return boolItem(eq)
	case "<", ">", "<=", ">=":
		l := ev.eval(n.args[0], focus)
		r := ev.eval(n.args[1], focus)
		if len(l) != 1 || len(r) != 1 {
			return nil
		}
		c, ok := compare(l[0].Value, r[0].Value)
		if !ok {
			return nil
		}
		switch n.name {
		case "<":
			return boolItem(c < 0)
		case ">":
			return boolItem(c > 0)
		case "<=":
			return boolItem(c <= 0)
		default:
			return boolItem(c >= 0)
		}
	case "in", "contains":
		l := ev.eval(n.args[0], focus)
		r := ev.eval(n.args[1], focus)
		if n.name == "contains" {
			l, r = r, l
		}
		if len(l) == 0 {
			return nil
		}
		if len(l) != 1 {
			return nil
		}
		for _, x := range r {
			if equalValues(l[0].Value, x.Value, false) {
				return boolItem(true)
			}
		}
		return boolItem(false)
	case "&":
		l := ev.eval(n.args[0], focus)
		r := ev.eval(n.args[1], focus)
		return []Item{{Value: str(l) + str(r), Type: "string"}}
	case "+", "-", "*", "/", "div", "mod":
		l := ev.eval(n.args[0], focus)
		r := ev.eval(n.args[1], focus)
		if len(l) != 1 || len(r) != 1 {
			return nil
		}
		if n.name == "+" {
			if a, ok := l[0].Value.(string); ok {
				if b, ok := r[0].Value.(string); ok {
					return []Item{{Value: a + b, Type: "string"}}
				}
			}
		}
		a, ok1 := toFloat(l[0].Value)
		b, ok2 := toFloat(r[0].Value)
		if !ok1 || !ok2 {
			return nil
		}
		var v float64
		switch n.name {
		case "+":
			v = a + b
		case "-":
			v = a - b
		case "*":
			v = a * b
		case "/":
			if b == 0 {
				return nil
			}
			v = a / b
		case "div":
			if b == 0 {
				return nil
			}
			v = math.Trunc(a / b)
		case "mod":
			if b == 0 {
				return nil
			}
			v = math.Mod(a, b)
		}
		return []Item{{Value: v, Type: "decimal"}}
	}
	return nil
}

func str(in []Item) string {
	if len(in) == 1 {
		if s, ok := in[0].Value.(string); ok {
			return s
		}
	}
	return ""
}

type tri int

const (
	fEmpty tri = iota
	fFalse
	fTrue
)

// truth converts a collection to a three-valued boolean: empty, or the
// singleton boolean, or true for any other singleton (FHIRPath singleton
// evaluation of collections).
func truth(in []Item) tri {
	if len(in) == 0 {
		return fEmpty
	}
	if len(in) == 1 {
		if b, ok := in[0].Value.(bool); ok {
			if b {
				return fTrue
			}
			return fFalse
		}
	}
	return fTrue
}

func logic(op string, l, r tri) []Item {
	res := fEmpty
	switch op {
	case "and":
		switch {
		case l == fFalse || r == fFalse:
			res = fFalse
		case l == fTrue && r == fTrue:
			res = fTrue
		}
	case "or":
		switch {
		case l == fTrue || r == fTrue:
			res = fTrue
		case l == fFalse && r == fFalse:
			res = fFalse
		}
	case "xor":
		if l != fEmpty && r != fEmpty {
			if l != r {
				res = fTrue
			} else {
				res = fFalse
			}
		}
	case "implies":
		switch {
		case l == fFalse || r == fTrue:
			res = fTrue
		case l == fTrue && r == fFalse:
			res = fFalse
		}
	}
	if res == fEmpty {
		return nil
	}
	return boolItem(res == fTrue)
}

func union(l, r []Item) []Item {
	out := make([]Item, 0, len(l)+len(r))
	for _, x := range l {
		out = appendDistinct(out, x)
	}
	for _, x := range r {
		out = appendDistinct(out, x)
	}
	return out
}

func appendDistinct(out []Item, x Item) []Item {
	for _, y := range out {
		if equalValues(x.Value, y.Value, false) {
			return out
		}
	}
	return append(out, x)
}

func equalCollections(l, r []Item, equiv bool) bool {
	if len(l) != len(r) {
		return false
	}
	for i := range l {
		if !equalValues(l[i].Value, r[i].Value, equiv) {
			return false
		}
	}
	return true
}

func equalValues(a, b any, equiv bool) bool {
	switch x := a.(type) {
	case string:
		y, ok := b.(string)
		if !ok {
			return false
		}
		if equiv {
			return strings.EqualFold(strings.Join(strings.Fields(x), " "), strings.Join(strings.Fields(y), " "))
		}
		return x == y
	case bool:
		y, ok := b.(bool)
		return ok && x == y
	case json.Number, float64:
		fx, _ := toFloat(x)
		fy, ok := toFloat(b)
		return ok && fx == fy
	case map[string]any:
		y, ok := b.(map[string]any)
		if !ok || len(x) != len(y) {
			return false
		}
		for k, v := range x {
			w, ok := y[k]
			if !ok || !equalValues(v, w, equiv) {
				return false
			}
		}
		return true
	case []any:
		y, ok := b.([]any)
		if !ok || len(x) != len(y) {
			return false
		}
		for i := range x {
			if !equalValues(x[i], y[i], equiv) {
				return false
			}
		}
		return true
	}
	return false
}

func compare(a, b any) (int, bool) {
	if x, ok := a.(string); ok {
		y, ok := b.(string)
		if !ok {
			return 0, false
		}
		return strings.Compare(x, y), true
	}
	x, ok1 := toFloat(a)
	y, ok2 := toFloat(b)
	if !ok1 || !ok2 {
		return 0, false
	}
	switch {
	case x < y:
		return -1, true
	case x > y:
		return 1, true
	}
	return 0, true
}

func toFloat(v any) (float64, bool) {
	switch x := v.(type) {
	case float64:
		return x, true
	case json.Number:
		f, err := strconv.ParseFloat(string(x), 64)
		return f, err == nil
	case int:
		return float64(x), true
	case int64:
		return float64(x), true
	}
	return 0, false
}

// functions are the supported FHIRPath functions with their arity range.
var functions = map[string][2]int{
	"where": {1, 1}, "select": {1, 1}, "exists": {0, 1}, "empty": {0, 0}, "not": {0, 0},
	"first": {0, 0}, "last": {0, 0}, "tail": {0, 0}, "single": {0, 0}, "count": {0, 0},
	"extension": {1, 1}, "resolve": {0, 0}, "as": {1, 1}, "is": {1, 1}, "ofType": {1, 1},
	"hasValue": {0, 0}, "all": {1, 1}, "distinct": {0, 0}, "trace": {1, 2},
	"startsWith": {1, 1}, "iif": {2, 3},
}

func (ev *evaluator) call(n *node, recv []Item) []Item {
	args := n.args[1:]
	switch n.name {
	case "where", "select", "all":
		var out []Item
		for _, it := range recv {
			r := ev.eval(args[0], []Item{it})
			switch n.name {
			case "where":
				if truth(r) == fTrue {
					out = append(out, it)
				}
			case "select":
				out = append(out, r...)
			case "all":
				if truth(r) != fTrue {
					return boolItem(false)
				}
			}
		}
		if n.name == "all" {
			return boolItem(true)
		}
		return out
	case "exists":
		if len(args) == 1 {
			for _, it := range recv {
				if truth(ev.eval(args[0], []Item{it})) == fTrue {
					return boolItem(true)
				}
			}
			return boolItem(false)
		}
		return boolItem(len(recv) > 0)
	case "empty":
		return boolItem(len(recv) == 0)
	case "not":
		switch truth(recv) {
		case fTrue:
			return boolItem(false)
		case fFalse:
			return boolItem(true)
		}
		return nil
	case "hasValue":
		if len(recv) != 1 {
			return boolItem(false)
		}
		_, isMap := recv[0].Value.(map[string]any)
		return boolItem(!isMap)
	case "first":
		if len(recv) == 0 {
			return nil
		}
		return recv[:1]
	case "last":
		if len(recv) == 0 {
			return nil
		}
		return recv[len(recv)-1:]
	case "tail":
		if len(recv) <= 1 {
			return nil
		}
		return recv[1:]
	case "single":
		if len(recv) != 1 {
			return nil
		}
		return recv
	case "count":
		return []Item{{Value: float64(len(recv)), Type: "integer"}}
	case "distinct":
		return union(recv, nil)
	case "trace":
		return recv
	case "iif":
		c := truth(ev.eval(args[0], recv))
		if c == fTrue {
			return ev.eval(args[1], recv)
		}
		if len(args) == 3 {
			return ev.eval(args[2], recv)
		}
		return nil
	case "startsWith":
		p := ev.eval(args[0], recv)
		if len(recv) != 1 || len(p) != 1 {
			return nil
		}
		s, ok1 := recv[0].Value.(string)
		ps, ok2 := p[0].Value.(string)
		if !ok1 || !ok2 {
			return nil
		}
		return boolItem(strings.HasPrefix(s, ps))
	case "extension":
		urls := ev.eval(args[0], []Item{ev.root})
		if len(urls) != 1 {
			return nil
		}
		url, _ := urls[0].Value.(string)
		var out []Item
		for _, ext := range member(recv, "extension") {
			if m, ok := ext.Value.(map[string]any); ok && m["url"] == url {
				out = append(out, Item{Value: m, Type: "Extension"})
			}
		}
		return out
	case "resolve":
		var out []Item
		for _, it := range recv {
			if t := referenceType(it.Value); t != "" {
				out = append(out, Item{Value: map[string]any{"resourceType": t}, Type: t})
			}
		}
		return out
	case "as", "ofType":
		return filterType(recv, args[0].name)
	case "is":
		if len(recv) != 1 {
			return nil
		}
		return boolItem(isType(recv[0], args[0].name))
	}
	return nil
}

// referenceType returns the resource type a Reference (or canonical/uri
// string) points at, judged from its text: "Patient/1", an absolute URL
// ending in Type/id[/_history/v], or the Reference.type element.
func referenceType(v any) string {
	var ref string
	switch x := v.(type) {
	case string:
		ref = x
	case map[string]any:
		if s, ok := x["reference"].(string); ok {
			ref = s
		} else if t, ok := x["type"].(string); ok {
			if i := strings.LastIndexByte(t, '/'); i >= 0 {
				t = t[i+1:]
			}
			return t
		}
	}
	if ref == "" || strings.HasPrefix(ref, "#") || strings.HasPrefix(ref, "urn:") {
		return ""
	}
	parts := strings.Split(ref, "/")
	n := len(parts)
	if n >= 4 && parts[n-2] == "_history" {
		parts = parts[:n-2]
		n -= 2
	}
	if n < 2 {
		return ""
	}
	t := parts[n-2]
	if !isTypeName(t) {
		return ""
	}
	for i := 0; i < len(t); i++ {
		if !isIdentPart(t[i]) {
			return ""
		}
	}
	return t
}

// ForType returns the expression restricted to resources of type typ: the
// branches of a top-level union that start with another resource type's
// name can never select anything from a typ resource and are dropped
// (SearchParameter expressions shared by several bases, e.g.
// "AllergyIntolerance.patient | CarePlan.subject..."). It returns nil when
// no branch is left.
func (e *Expr) ForType(typ string) *Expr {
	n := pruneUnion(e.root, typ)
	if n == nil {
		return nil
	}
	if n == e.root {
		return e
	}
	return &Expr{src: e.src, root: n}
}

func pruneUnion(n *node, typ string) *node {
	if n.kind == kBinary && n.name == "|" {
		l := pruneUnion(n.args[0], typ)
		r := pruneUnion(n.args[1], typ)
		switch {
		case l == nil:
			return r
		case r == nil:
			return l
		case l == n.args[0] && r == n.args[1]:
			return n
		}
		return &node{kind: kBinary, name: "|", args: []*node{l, r}}
	}
	if t := leadingType(n); t != "" && t != typ && t != "Resource" && t != "DomainResource" {
		return nil
	}
	return n
}

// leadingType returns the type name a path starts with, or "".
func leadingType(n *node) string {
	for n != nil {
		switch n.kind {
		case kInvoke:
			if n.args[0] == nil {
				if !n.call && isTypeName(n.name) {
					return n.name
				}
				return ""
			}
			n = n.args[0]
		case kIndex, kTypeOp:
			n = n.args[0]
		case kBinary:
			if n.name == "|" {
				return ""
			}
			n = n.args[0]
		default:
			return ""
		}
	}
	return ""
}
