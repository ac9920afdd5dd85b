package codec

import (
	"bytes"
	"encoding/json"
	"strings"
	"sync"

	"github.com/casefhir/casefhir/fhir/outcome"
	"google.golang.org/protobuf/proto"
	"google.golang.org/protobuf/reflect/protoreflect"

	apb "github.com/google/fhir/go/proto/google/fhir/proto/annotations_go_proto"
	bcrpb "github.com/google/fhir/go/proto/google/fhir/proto/r4/core/resources/bundle_and_contained_resource_go_proto"
)

// The _summary modes (https://hl7.org/fhir/R4/search.html#summary).
const (
	SummaryTrue  = "true"
	SummaryText  = "text"
	SummaryData  = "data"
	SummaryCount = "count"
	SummaryFalse = "false"
)

// SubsettedSystem and SubsettedCode make the tag marking a resource that
// was returned with some elements left out.
const (
	SubsettedSystem = "http://terminology.hl7.org/CodeSystem/v3-ObservationValue"
	SubsettedCode   = "SUBSETTED"
)

var subsettedTag = json.RawMessage(`{"system":"` + SubsettedSystem + `","code":"` + SubsettedCode + `","display":"Resource encoded in summary mode"}`)

// typeInfo is what shaping needs to know about one resource type, read once
// from the R4 proto descriptors.
type typeInfo struct {
	// mandatory holds the top-level elements with minimum cardinality 1.
	mandatory map[string]bool
	// choice holds the top-level choice elements by base name ("value" for
	// value[x]).
	choice map[string]bool
	// md describes the type's proto message.
	md protoreflect.MessageDescriptor
}

// typeInfos is built on first use and read-only afterwards.
var typeInfos = sync.OnceValue(func() map[string]*typeInfo {
	out := map[string]*typeInfo{}
	od := (&bcrpb.ContainedResource{}).ProtoReflect().Descriptor().Oneofs().ByName("oneof_resource")
	for i := 0; i < od.Fields().Len(); i++ {
		md := od.Fields().Get(i).Message()
		ti := &typeInfo{mandatory: map[string]bool{}, choice: map[string]bool{}, md: md}
		fields := md.Fields()
		for j := 0; j < fields.Len(); j++ {
			f := fields.Get(j)
			if f.Message() != nil && isChoice(f.Message()) {
				ti.choice[f.JSONName()] = true
			}
			if required(f) {
				ti.mandatory[f.JSONName()] = true
			}
		}
		out[string(md.Name())] = ti
	}
	return out
})

func required(f protoreflect.FieldDescriptor) bool {
	r, _ := proto.GetExtension(f.Options(), apb.E_ValidationRequirement).(apb.Requirement)
	return r == apb.Requirement_REQUIRED_BY_FHIR
}

// member is one top-level property of a stored resource.
type member struct {
	key   string
	value []byte
}

// splitTop splits a JSON object into its top-level members in order,
// without decoding the values.
func splitTop(b []byte) ([]member, error) {
	s := &scanner{b: b}
	s.ws()
	if s.i >= len(b) || b[s.i] != '{' {
		return nil, errNotObject
	}
	s.i++
	var out []member
	s.ws()
	if s.i < len(b) && b[s.i] == '}' {
		return out, nil
	}
	for {
		s.ws()
		if s.i >= len(b) || b[s.i] != '"' {
			return nil, errNotObject
		}
		kraw, ok := s.str()
		if !ok {
			return nil, errNotObject
		}
		key := string(kraw)
		if bytes.IndexByte(kraw, '\\') >= 0 {
			if err := json.Unmarshal(b[s.i-len(kraw)-2:s.i], &key); err != nil {
				return nil, errNotObject
			}
		}
		s.ws()
		if s.i >= len(b) || b[s.i] != ':' {
			return nil, errNotObject
		}
		s.i++
		s.ws()
		start := s.i
		if !s.skip() {
			return nil, errNotObject
		}
		out = append(out, member{key: key, value: b[start:s.i]})
		s.ws()
		if s.i >= len(b) {
			return nil, errNotObject
		}
		switch b[s.i] {
		case ',':
			s.i++
		case '}':
			return out, nil
		default:
			return nil, errNotObject
		}
	}
}

var errNotObject = outcome.New(outcome.Exception, "stored resource is not a JSON object").WithOp("codec.shape")

// skip moves past one JSON value without checks beyond balance.
func (s *scanner) skip() bool {
	if s.i >= len(s.b) {
		return false
	}
	switch s.b[s.i] {
	case '"':
		_, ok := s.str()
		return ok
	case '{', '[':
		depth := 0
		for s.i < len(s.b) {
			switch s.b[s.i] {
			case '"':
				if _, ok := s.str(); !ok {
					return false
				}
				continue
			case '{', '[':
				depth++
			case '}', ']':
				depth--
				if depth == 0 {
					s.i++
					return true
				}
			}
			s.i++
		}
		return false
	default:
		start := s.i
		for s.i < len(s.b) {
			switch s.b[s.i] {
			case ',', '}', ']', ' ', '\t', '\n', '\r':
				return s.i > start
			}
			s.i++
		}
		return s.i > start
	}
}

// resourceType returns the value of the resourceType member.
func resourceType(ms []member) string {
	for _, m := range ms {
		if m.key == "resourceType" {
			var t string
			if json.Unmarshal(m.value, &t) == nil {
				return t
			}
		}
	}
	return ""
}

// baseName returns the element a property belongs to: "_birthDate" →
// "birthDate", "valueQuantity" → "value" when value[x] is a choice of the
// type.
func baseName(key string, ti *typeInfo) string {
	if len(key) > 1 && key[0] == '_' {
		key = key[1:]
	}
	if ti != nil && len(ti.choice) > 0 {
		for i := 1; i < len(key); i++ {
			if key[i] >= 'A' && key[i] <= 'Z' && ti.choice[key[:i]] {
				return key[:i]
			}
		}
	}
	return key
}

// always kept by every subsetting mode.
func alwaysKept(name string) bool {
	return name == "resourceType" || name == "id" || name == "meta"
}

// Summary returns the stored resource shaped for _summary=mode
// (https://hl7.org/fhir/R4/search.html#summary), working on the JSON bytes
// only. true keeps the elements the R4 definitions mark Σ, at every level
// (see summaryJSON), plus id, meta, implicitRules, modifierExtension and
// the mandatory elements; text keeps id, meta, implicitRules, text and the mandatory
// elements; data drops text; false returns stored unchanged. Every mode but
// false adds the SUBSETTED tag to meta.tag. count applies to searches only
// and is a 400 here, as is an unknown mode.
func Summary(stored []byte, mode string) ([]byte, error) {
	switch mode {
	case SummaryFalse:
		return stored, nil
	case SummaryTrue, SummaryText, SummaryData:
	case SummaryCount:
		return nil, outcome.New(outcome.Invalid, "_summary=count applies to searches only").WithOp("codec.Summary")
	default:
		return nil, outcome.New(outcome.Invalid, "unknown _summary value").WithOp("codec.Summary").
			WithDiagnostics("_summary must be one of true, text, data, count, false")
	}
	ms, err := splitTop(stored)
	if err != nil {
		return nil, err
	}
	typ := resourceType(ms)
	ti := typeInfos()[typ]
	var keep func(name string) bool
	var nested func(name string, value []byte) ([]byte, error)
	switch mode {
	case SummaryTrue:
		sum := summaryTables()[typ]
		if sum == nil {
			// Not an R4 resource type (the codec stores none): data.
			keep = func(name string) bool { return name != "text" }
			break
		}
		keep = func(name string) bool {
			return name == "implicitRules" || name == "modifierExtension" ||
				(ti != nil && ti.mandatory[name]) || sum.kids[name] != nil
		}
		var md protoreflect.MessageDescriptor
		if ti != nil {
			md = ti.md
		}
		nested = func(name string, value []byte) ([]byte, error) {
			kid := sum.kids[name]
			if kid == nil || len(kid.kids) == 0 {
				return value, nil // a datatype or primitive: whole
			}
			var sub protoreflect.MessageDescriptor
			if md != nil {
				if f := md.Fields().ByJSONName(name); f != nil {
					sub = f.Message()
				}
			}
			return filterSummary(value, kid, sub)
		}
	case SummaryText:
		keep = func(name string) bool {
			return name == "implicitRules" || name == "text" || (ti != nil && ti.mandatory[name])
		}
	case SummaryData:
		keep = func(name string) bool { return name != "text" }
	}
	return subsetWith(ms, ti, keep, nested)
}

// Elements returns the stored resource with only the listed top-level
// elements (for _elements), plus id, meta, resourceType and the mandatory
// elements, and the SUBSETTED tag. Names may be given as "name" or
// "Patient.name"; a choice element is named by its base ("value").
// Unknown names are ignored.
func Elements(stored []byte, elements []string) ([]byte, error) {
	ms, err := splitTop(stored)
	if err != nil {
		return nil, err
	}
	typ := resourceType(ms)
	ti := typeInfos()[typ]
	want := make(map[string]bool, len(elements))
	for _, e := range elements {
		e = strings.TrimSpace(e)
		e = strings.TrimPrefix(e, typ+".")
		if e != "" {
			want[e] = true
		}
	}
	return subset(ms, ti, func(name string) bool {
		return want[name] || (ti != nil && ti.mandatory[name])
	})
}

// subset writes the members whose element keep accepts (and those always
// kept), in their stored order, with SUBSETTED added to meta.tag.
func subset(ms []member, ti *typeInfo, keep func(string) bool) ([]byte, error) {
	return subsetWith(ms, ti, keep, nil)
}

// subsetWith is subset with nested, when set, reshaping each kept
// member's value by its element name.
func subsetWith(ms []member, ti *typeInfo, keep func(string) bool, nested func(name string, value []byte) ([]byte, error)) ([]byte, error) {
	size := 2
	for _, m := range ms {
		size += len(m.key) + len(m.value) + 4
	}
	var buf bytes.Buffer
	buf.Grow(size + len(subsettedTag) + 16)
	buf.WriteByte('{')
	first := true
	sep := func() {
		if !first {
			buf.WriteByte(',')
		}
		first = false
	}
	hasMeta := false
	for _, m := range ms {
		name := baseName(m.key, ti)
		if m.key == "meta" {
			hasMeta = true
			meta, err := addSubsetted(m.value)
			if err != nil {
				return nil, err
			}
			sep()
			writeKey(&buf, m.key)
			buf.Write(meta)
			continue
		}
		if !alwaysKept(m.key) && !keep(name) {
			continue
		}
		value := m.value
		if nested != nil && !alwaysKept(m.key) && m.key[0] != '_' {
			v, err := nested(name, value)
			if err != nil {
				return nil, err
			}
			if v == nil {
				continue // nothing of the element is in the summary
			}
			value = v
		}
		sep()
		writeKey(&buf, m.key)
		buf.Write(value)
	}
	if !hasMeta {
		sep()
		buf.WriteString(`"meta":{"tag":[`)
		buf.Write(subsettedTag)
		buf.WriteString(`]}`)
	}
	buf.WriteByte('}')
	return buf.Bytes(), nil
}

func writeKey(buf *bytes.Buffer, k string) {
	b, _ := json.Marshal(k)
	buf.Write(b)
	buf.WriteByte(':')
}

// addSubsetted returns meta with the SUBSETTED tag appended to meta.tag
// (unless already there). Keys come out sorted, as jsonformat writes them.
func addSubsetted(meta []byte) ([]byte, error) {
	var m map[string]json.RawMessage
	if err := json.Unmarshal(meta, &m); err != nil {
		return nil, outcome.Wrap(err, outcome.Exception, "codec.Summary", "stored meta is not a JSON object")
	}
	var tags []json.RawMessage
	if t, ok := m["tag"]; ok {
		if err := json.Unmarshal(t, &tags); err != nil {
			return nil, outcome.Wrap(err, outcome.Exception, "codec.Summary", "stored meta.tag is not an array")
		}
		for _, t := range tags {
			var c struct{ System, Code string }
			if json.Unmarshal(t, &c) == nil && c.System == SubsettedSystem && c.Code == SubsettedCode {
				return meta, nil
			}
		}
	}
	tags = append(tags, subsettedTag)
	tb, err := json.Marshal(tags)
	if err != nil {
		return nil, outcome.Wrap(err, outcome.Exception, "codec.Summary", "meta.tag could not be encoded")
	}
	m["tag"] = tb
	out, err := json.Marshal(m)
	if err != nil {
		return nil, outcome.Wrap(err, outcome.Exception, "codec.Summary", "meta could not be encoded")
	}
	return out, nil
}

// Pretty returns b indented with two spaces, or b unchanged when it is not
// valid JSON.
func Pretty(b []byte) []byte {
	var buf bytes.Buffer
	buf.Grow(len(b) + len(b)/2)
	if err := json.Indent(&buf, b, "", "  "); err != nil {
		return b
	}
	return buf.Bytes()
}
