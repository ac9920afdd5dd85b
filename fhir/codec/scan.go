package codec

import (
	"bytes"
	"strconv"
	"strings"

	"github.com/casefhir/casefhir/fhir/outcome"
)

// MaxDepth is the deepest JSON nesting (objects and arrays) Decode accepts.
// Real resources stay far below it (a deeply nested Questionnaire reaches
// about 30); the limit bounds the work and stack a hostile body can cause.
const MaxDepth = 100

// scanResult is what the pre-scan found.
type scanResult struct {
	issues []outcome.Issue
	// fatal means the body must not be handed to jsonformat (not an object,
	// too deep).
	fatal bool
	// syntax means the scan hit invalid JSON; jsonformat reports it.
	syntax bool
	// nulls are the offsets of null array elements that align a primitive
	// array with its "_x" extension array (or the reverse). jsonformat
	// rejects them, so Decode hands it a copy with each replaced by "{}  ",
	// which it reads as "no value here".
	nulls []int
}

// pathSeg is one step of the location being scanned: an object key or an
// array index.
type pathSeg struct {
	key []byte
	idx int
}

// scanner checks the FHIR JSON rules that jsonformat lets through: JSON
// objects and arrays must not be empty, strings must not be empty, null
// only as a placeholder inside arrays, property names are case sensitive
// (jsonformat accepts "Gender" for "gender") and unique (jsonformat keeps
// the last of two), bounded depth, and the body must be one JSON object.
//
// It is a single allocation-light pass; it does not decode values. On a
// syntax error it stops and leaves the reporting to jsonformat.
type scanner struct {
	b      []byte
	i      int
	depth  int
	path   []pathSeg
	res    scanResult
	rtype  string // top-level resourceType, for paths
	issues []pendingIssue
}

type pendingIssue struct {
	code   outcome.Code
	detail string
	diag   string
	path   string // without the root resource type
}

func scan(b []byte) scanResult {
	s := &scanner{b: b}
	s.ws()
	if s.i >= len(b) {
		return scanResult{fatal: true, issues: []outcome.Issue{{
			Severity: outcome.ErrorSev, Code: outcome.Structure, Detail: "empty body",
			Diagnostics: "the request body is empty",
		}}}
	}
	if b[s.i] != '{' {
		return scanResult{fatal: true, issues: []outcome.Issue{{
			Severity: outcome.ErrorSev, Code: outcome.Structure, Detail: "resource must be a JSON object",
			Diagnostics: "the body is not a JSON object",
		}}}
	}
	ok := s.value()
	if ok {
		s.ws()
		if s.i != len(b) {
			ok = false
			s.res.syntax = true
		}
	}
	if !ok && !s.res.fatal {
		// Invalid JSON: jsonformat says where.
		return scanResult{syntax: true}
	}
	root := s.rtype
	if root == "" || !isIdent(root) {
		root = "Resource"
	}
	for _, p := range s.issues {
		s.res.issues = append(s.res.issues, outcome.Issue{
			Severity: outcome.ErrorSev, Code: p.code, Detail: p.detail,
			Diagnostics: p.diag, Expression: []string{root + p.path},
		})
	}
	return s.res
}

func isIdent(s string) bool {
	for i := 0; i < len(s); i++ {
		c := s[i]
		if !(c >= 'a' && c <= 'z' || c >= 'A' && c <= 'Z' || c >= '0' && c <= '9') {
			return false
		}
	}
	return s != ""
}

func (s *scanner) ws() {
	for s.i < len(s.b) {
		switch s.b[s.i] {
		case ' ', '\t', '\n', '\r':
			s.i++
		default:
			return
		}
	}
}

// pathString renders the current path (FHIRPath style, without the root
// type), optionally with one more key.
func (s *scanner) pathString(extra []byte) string {
	var sb strings.Builder
	for _, p := range s.path {
		if p.key != nil {
			sb.WriteByte('.')
			sb.Write(elementName(p.key))
		} else {
			sb.WriteByte('[')
			sb.WriteString(strconv.Itoa(p.idx))
			sb.WriteByte(']')
		}
	}
	if extra != nil {
		sb.WriteByte('.')
		sb.Write(elementName(extra))
	}
	return sb.String()
}

// elementName maps a JSON property name to its element name: "_given" is
// the primitive extension part of "given".
func elementName(k []byte) []byte {
	if len(k) > 1 && k[0] == '_' {
		return k[1:]
	}
	return k
}

func (s *scanner) add(code outcome.Code, detail, diag string, extra []byte) {
	const maxIssues = 100
	if len(s.issues) >= maxIssues {
		return
	}
	s.issues = append(s.issues, pendingIssue{code: code, detail: detail, diag: diag, path: s.pathString(extra)})
}

// value scans one JSON value at s.i. It returns false on a syntax error or
// a fatal problem.
func (s *scanner) value() bool {
	s.ws()
	if s.i >= len(s.b) {
		return false
	}
	switch c := s.b[s.i]; {
	case c == '{':
		return s.object()
	case c == '[':
		// An array inside an array: no partner, so nulls are reported.
		nulls, ok := s.array()
		if ok && len(nulls) > 0 {
			s.add(outcome.Structure, "null value", "null is only allowed to align a primitive array with its extensions", nil)
		}
		return ok
	case c == '"':
		str, ok := s.str()
		if !ok {
			return false
		}
		if len(str) == 0 {
			s.add(outcome.Value, "empty string", "string values must not be empty; omit the element instead", nil)
		}
		return true
	case c == 't':
		return s.lit("true")
	case c == 'f':
		return s.lit("false")
	case c == 'n':
		return s.lit("null")
	case c == '-' || c >= '0' && c <= '9':
		return s.number()
	default:
		return false
	}
}

func (s *scanner) lit(w string) bool {
	if !bytes.HasPrefix(s.b[s.i:], []byte(w)) {
		return false
	}
	s.i += len(w)
	return true
}

func (s *scanner) number() bool {
	start := s.i
	for s.i < len(s.b) {
		c := s.b[s.i]
		if c == '-' || c == '+' || c == '.' || c == 'e' || c == 'E' || c >= '0' && c <= '9' {
			s.i++
			continue
		}
		break
	}
	return s.i > start
}

// str scans a JSON string at s.i and returns its raw content (escapes not
// decoded).
func (s *scanner) str() ([]byte, bool) {
	s.i++ // opening quote
	start := s.i
	for s.i < len(s.b) {
		switch c := s.b[s.i]; {
		case c == '"':
			raw := s.b[start:s.i]
			s.i++
			return raw, true
		case c == '\\':
			s.i += 2
		case c < 0x20:
			return nil, false
		default:
			s.i++
		}
	}
	return nil, false
}

func (s *scanner) push(seg pathSeg) bool {
	s.depth++
	if s.depth > MaxDepth {
		s.res.fatal = true
		s.res.issues = []outcome.Issue{{
			Severity: outcome.ErrorSev, Code: outcome.Structure, Detail: "nesting too deep",
			Diagnostics: "JSON nesting exceeds " + strconv.Itoa(MaxDepth) + " levels",
		}}
		return false
	}
	s.path = append(s.path, seg)
	return true
}

func (s *scanner) pop() {
	s.depth--
	s.path = s.path[:len(s.path)-1]
}

func (s *scanner) object() bool {
	s.i++ // '{'
	s.ws()
	if s.i < len(s.b) && s.b[s.i] == '}' {
		s.i++
		s.add(outcome.Invariant, "empty JSON object", "ele-1: an element must have a value or children; omit empty objects", nil)
		return true
	}
	top := s.depth == 0
	var keys [][]byte
	var keySet map[string]struct{}
	var withNulls []nullArray
	for {
		s.ws()
		if s.i >= len(s.b) || s.b[s.i] != '"' {
			return false
		}
		key, ok := s.str()
		if !ok {
			return false
		}
		s.ws()
		if s.i >= len(s.b) || s.b[s.i] != ':' {
			return false
		}
		s.i++
		// Duplicate property names: linear for small objects, a set beyond.
		dup := false
		if keySet == nil {
			for _, k := range keys {
				if bytes.Equal(k, key) {
					dup = true
					break
				}
			}
			keys = append(keys, key)
			if len(keys) > 32 {
				keySet = make(map[string]struct{}, 64)
				for _, k := range keys {
					keySet[string(k)] = struct{}{}
				}
			}
		} else {
			if _, dup = keySet[string(key)]; !dup {
				keySet[string(key)] = struct{}{}
			}
		}
		if dup {
			s.add(outcome.Structure, "duplicate JSON property", "property "+strconv.Quote(string(key))+" appears more than once", key)
		}
		if !validKey(key) {
			s.add(outcome.Structure, "unknown element", "unknown element "+strconv.Quote(string(key)), key)
		}
		s.ws()
		if s.i < len(s.b) && s.b[s.i] == 'n' {
			if !s.lit("null") {
				return false
			}
			s.add(outcome.Structure, "null value", "null is only allowed inside arrays of primitives; omit the element instead", key)
		} else {
			if top && string(key) == "resourceType" && s.i < len(s.b) && s.b[s.i] == '"' {
				save := s.i
				if rt, ok := s.str(); ok {
					s.rtype = string(rt)
				}
				s.i = save
			}
			if !s.push(pathSeg{key: key}) {
				return false
			}
			if s.i < len(s.b) && s.b[s.i] == '[' {
				nulls, ok := s.array()
				if !ok {
					return false
				}
				if len(nulls) > 0 {
					withNulls = append(withNulls, nullArray{key: key, offsets: nulls})
				}
			} else if !s.value() {
				return false
			}
			s.pop()
		}
		s.ws()
		if s.i >= len(s.b) {
			return false
		}
		switch s.b[s.i] {
		case ',':
			s.i++
		case '}':
			s.i++
			s.checkNulls(withNulls, keys, keySet)
			return true
		default:
			return false
		}
	}
}

// nullArray records the null elements of one array property.
type nullArray struct {
	key     []byte
	offsets []int
}

// checkNulls accepts the nulls of an array whose partner ("given" for
// "_given" and the reverse) is present in the same object, and reports the
// others.
func (s *scanner) checkNulls(arrays []nullArray, keys [][]byte, keySet map[string]struct{}) {
	for _, a := range arrays {
		var partner string
		if len(a.key) > 1 && a.key[0] == '_' {
			partner = string(a.key[1:])
		} else {
			partner = "_" + string(a.key)
		}
		found := false
		if keySet != nil {
			_, found = keySet[partner]
		} else {
			for _, k := range keys {
				if string(k) == partner {
					found = true
					break
				}
			}
		}
		if found {
			s.res.nulls = append(s.res.nulls, a.offsets...)
			continue
		}
		s.add(outcome.Structure, "null value", "null is only allowed to align a primitive array with its extensions", a.key)
	}
}

// validKey reports whether a property name can be a FHIR element name: a
// lower-case ASCII letter first (after the "_" of a primitive's extension
// part), then letters and digits.
func validKey(k []byte) bool {
	if len(k) > 1 && k[0] == '_' {
		k = k[1:]
	}
	if len(k) == 0 || k[0] < 'a' || k[0] > 'z' {
		return false
	}
	for _, c := range k[1:] {
		if !(c >= 'a' && c <= 'z' || c >= 'A' && c <= 'Z' || c >= '0' && c <= '9') {
			return false
		}
	}
	return true
}

// array scans an array and returns the offsets of its null elements.
func (s *scanner) array() ([]int, bool) {
	s.i++ // '['
	s.ws()
	if s.i < len(s.b) && s.b[s.i] == ']' {
		s.i++
		s.add(outcome.Structure, "empty JSON array", "arrays must not be empty; omit the element instead", nil)
		return nil, true
	}
	var nulls []int
	for n := 0; ; n++ {
		if !s.push(pathSeg{idx: n}) {
			return nil, false
		}
		s.ws()
		if s.i < len(s.b) && s.b[s.i] == 'n' {
			// null keeps primitive arrays and their "_x" arrays aligned.
			nulls = append(nulls, s.i)
			if !s.lit("null") {
				return nil, false
			}
		} else if !s.value() {
			return nil, false
		}
		s.pop()
		s.ws()
		if s.i >= len(s.b) {
			return nil, false
		}
		switch s.b[s.i] {
		case ',':
			s.i++
		case ']':
			s.i++
			return nulls, true
		default:
			return nil, false
		}
	}
}
