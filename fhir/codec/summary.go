package codec

import (
	"bytes"
	_ "embed"
	"encoding/json"
	"strings"
	"sync"

	"google.golang.org/protobuf/reflect/protoreflect"

	"github.com/casefhir/casefhir/fhir/outcome"
)

// summaryJSON lists, per R4 resource type, the element paths the R4 4.0.1
// StructureDefinitions mark isSummary (Σ), nested backbone paths included
// and choice elements ending in [x]. It is a copy of
// ../shared/fhir-r4/definitions/summary-elements.json (a test keeps them
// equal), embedded so that the binary needs no file at run time.
//
//go:embed summary_elements.json
var summaryJSON []byte

// sumNode is one level of the Σ tree: the summary elements below a
// resource or a backbone element.
type sumNode struct {
	// kids maps an element name (a choice by its base: "value") to its
	// node. A kid with no kids of its own is kept whole.
	kids map[string]*sumNode
	// choice holds the choice elements of this level by base name.
	choice map[string]bool
	// listed is set when the element itself is Σ (not only some of its
	// descendants).
	listed bool
}

// summaryTables is built on first use and read-only afterwards.
var summaryTables = sync.OnceValue(func() map[string]*sumNode {
	var doc struct {
		Resources map[string][]string `json:"resources"`
	}
	if err := json.Unmarshal(summaryJSON, &doc); err != nil {
		panic("codec: embedded summary_elements.json: " + err.Error()) // a build defect, caught by every test
	}
	out := make(map[string]*sumNode, len(doc.Resources))
	for typ, paths := range doc.Resources {
		root := &sumNode{}
		for _, p := range paths {
			n := root
			for _, seg := range strings.Split(p, ".") {
				name, isChoice := strings.CutSuffix(seg, "[x]")
				if n.kids == nil {
					n.kids = map[string]*sumNode{}
				}
				if isChoice {
					if n.choice == nil {
						n.choice = map[string]bool{}
					}
					n.choice[name] = true
				}
				k := n.kids[name]
				if k == nil {
					k = &sumNode{}
					n.kids[name] = k
				}
				n = k
			}
			n.listed = true
		}
		out[typ] = root
	}
	return out
})

// name returns the element a JSON property of this level belongs to:
// "_birthDate" → "birthDate", "valueQuantity" → "value" for value[x].
func (n *sumNode) name(key string) string {
	if len(key) > 1 && key[0] == '_' {
		key = key[1:]
	}
	if _, ok := n.kids[key]; ok {
		return key
	}
	for i := 1; i < len(key); i++ {
		if key[i] >= 'A' && key[i] <= 'Z' && n.choice[key[:i]] {
			return key[:i]
		}
	}
	return key
}

// filterSummary keeps, in the JSON value of a backbone element (an object
// or an array of objects), the members that are Σ at node n or mandatory
// in md (so the result stays valid), recursively. It returns nil when
// nothing is left (the element is then left out).
func filterSummary(value []byte, n *sumNode, md protoreflect.MessageDescriptor) ([]byte, error) {
	dec := json.NewDecoder(bytes.NewReader(value))
	dec.UseNumber()
	var v any
	if err := dec.Decode(&v); err != nil {
		return nil, outcome.Wrap(err, outcome.Exception, "codec.Summary", "stored element is not JSON")
	}
	if v = filterValue(v, n, md); v == nil {
		return nil, nil
	}
	var buf bytes.Buffer
	enc := json.NewEncoder(&buf)
	enc.SetEscapeHTML(false)
	if err := enc.Encode(v); err != nil {
		return nil, outcome.Wrap(err, outcome.Exception, "codec.Summary", "element could not be encoded")
	}
	return bytes.TrimRight(buf.Bytes(), "\n"), nil
}

// filterValue filters v in place; it returns nil when nothing is left.
func filterValue(v any, n *sumNode, md protoreflect.MessageDescriptor) any {
	switch x := v.(type) {
	case []any:
		out := x[:0]
		for _, e := range x {
			if e = filterValue(e, n, md); e != nil {
				out = append(out, e)
			}
		}
		if len(out) == 0 {
			return nil
		}
		return out
	case map[string]any:
		sigma := false // a Σ member is left
		for k, val := range x {
			name := summaryName(k, n, md)
			var f protoreflect.FieldDescriptor
			if md != nil {
				f = md.Fields().ByJSONName(name)
			}
			kid := n.kids[name]
			switch {
			case kid != nil && len(kid.kids) > 0:
				var sub protoreflect.MessageDescriptor
				if f != nil {
					sub = f.Message()
				}
				if val = filterValue(val, kid, sub); val == nil {
					delete(x, k)
				} else {
					x[k], sigma = val, true
				}
			case kid != nil:
				sigma = true
			case f != nil && required(f):
			default:
				delete(x, k)
			}
		}
		// An element that is not Σ itself, kept for Σ descendants, goes
		// when none is left (its mandatory members alone do not keep it).
		if len(x) == 0 || (!sigma && !n.listed) {
			return nil
		}
		return x
	}
	return v
}

// summaryName is sumNode.name that also knows the choice elements of md
// that are not Σ (so that a mandatory one is recognised).
func summaryName(key string, n *sumNode, md protoreflect.MessageDescriptor) string {
	name := n.name(key)
	if md == nil || md.Fields().ByJSONName(name) != nil {
		return name
	}
	for i := 1; i < len(name); i++ {
		if name[i] >= 'A' && name[i] <= 'Z' {
			if f := md.Fields().ByJSONName(name[:i]); f != nil && f.Message() != nil && isChoice(f.Message()) {
				return name[:i]
			}
		}
	}
	return name
}
