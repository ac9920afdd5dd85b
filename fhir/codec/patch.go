package codec

import (
	"bytes"
	"encoding/json"
	"math/big"
	"net/http"
	"strconv"
	"strings"

	"github.com/casefhir/casefhir/fhir/outcome"
)

// maxPatchOps bounds the number of operations in one JSON Patch document.
const maxPatchOps = 10000

// patchOp is one operation of a JSON Patch document.
type patchOp struct {
	Op       string          `json:"op"`
	Path     *string         `json:"path"`
	From     *string         `json:"from"`
	Value    json.RawMessage `json:"value"`
	hasValue bool
}

func (o *patchOp) UnmarshalJSON(b []byte) error {
	var raw map[string]json.RawMessage
	if err := json.Unmarshal(b, &raw); err != nil {
		return err
	}
	type plain patchOp
	var p plain
	if err := json.Unmarshal(b, &p); err != nil {
		return err
	}
	*o = patchOp(p)
	_, o.hasValue = raw["value"]
	return nil
}

func patchErr(code outcome.Code, i int, detail, diag string) *outcome.Error {
	e := &outcome.Error{Op: "codec.ApplyJSONPatch", Code: code, Detail: detail}
	if code != outcome.Processing {
		e.Status = http.StatusBadRequest
	}
	if i >= 0 {
		e.Diagnostics = "operation " + strconv.Itoa(i) + ": " + diag
	} else {
		e.Diagnostics = diag
	}
	return e
}

// ApplyJSONPatch applies an RFC 6902 JSON Patch (add, remove, replace,
// move, copy, test) to the JSON document doc and returns the result.
// Errors are *outcome.Error: a malformed patch or a path that does not
// exist is a 400 (invalid), a failed test a 422 (processing), as FHIR
// asks (https://hl7.org/fhir/R4/http.html#patch). The result is plain
// JSON; callers Decode it so FHIR validation runs.
func ApplyJSONPatch(doc, patch []byte) ([]byte, error) {
	var ops []patchOp
	if err := json.Unmarshal(patch, &ops); err != nil {
		return nil, patchErr(outcome.Structure, -1, "invalid JSON Patch document",
			"a JSON Patch document is a JSON array of operation objects")
	}
	if len(ops) > maxPatchOps {
		return nil, patchErr(outcome.TooCostly, -1, "too many patch operations", "at most "+strconv.Itoa(maxPatchOps)+" operations")
	}
	root, err := decodeAny(doc)
	if err != nil {
		return nil, patchErr(outcome.Structure, -1, "document is not valid JSON", "the target document is not valid JSON")
	}
	for i := range ops {
		op := &ops[i]
		if op.Path == nil {
			return nil, patchErr(outcome.Invalid, i, "invalid patch operation", `missing "path"`)
		}
		path, perr := parsePointer(*op.Path)
		if perr != "" {
			return nil, patchErr(outcome.Invalid, i, "invalid JSON Pointer", perr)
		}
		switch op.Op {
		case "add", "replace", "test":
			if !op.hasValue {
				return nil, patchErr(outcome.Invalid, i, "invalid patch operation", `missing "value"`)
			}
			v, verr := decodeAny(op.Value)
			if verr != nil {
				return nil, patchErr(outcome.Invalid, i, "invalid patch operation", `"value" is not valid JSON`)
			}
			switch op.Op {
			case "add":
				root, err = addAt(root, path, v)
			case "replace":
				root, err = replaceAt(root, path, v)
			case "test":
				cur, gerr := getAt(root, path)
				if gerr != nil {
					err = gerr
				} else if !jsonEqual(cur, v) {
					return nil, patchErr(outcome.Processing, i, "patch test failed", "the value at the path differs")
				}
			}
		case "remove":
			root, _, err = removeAt(root, path)
		case "move", "copy":
			if op.From == nil {
				return nil, patchErr(outcome.Invalid, i, "invalid patch operation", `missing "from"`)
			}
			from, ferr := parsePointer(*op.From)
			if ferr != "" {
				return nil, patchErr(outcome.Invalid, i, "invalid JSON Pointer", ferr)
			}
			if op.Op == "move" {
				if isPrefix(from, path) && len(from) < len(path) {
					return nil, patchErr(outcome.Invalid, i, "invalid patch operation", "cannot move a value into itself")
				}
				var v any
				root, v, err = removeAt(root, from)
				if err == nil {
					root, err = addAt(root, path, v)
				}
			} else {
				var v any
				v, err = getAt(root, from)
				if err == nil {
					root, err = addAt(root, path, deepCopy(v))
				}
			}
		default:
			return nil, patchErr(outcome.Invalid, i, "invalid patch operation", "unknown op "+strconv.Quote(op.Op))
		}
		if err != nil {
			if pe, ok := err.(*pointerError); ok {
				return nil, patchErr(outcome.Invalid, i, "patch path not found", pe.msg)
			}
			return nil, err
		}
	}
	out, err := json.Marshal(root)
	if err != nil {
		return nil, outcome.Wrap(err, outcome.Exception, "codec.ApplyJSONPatch", "patched document could not be encoded")
	}
	return out, nil
}

type pointerError struct{ msg string }

func (e *pointerError) Error() string { return e.msg }

func decodeAny(b []byte) (any, error) {
	d := json.NewDecoder(bytes.NewReader(b))
	d.UseNumber()
	var v any
	if err := d.Decode(&v); err != nil {
		return nil, err
	}
	if len(bytes.TrimSpace(b[d.InputOffset():])) != 0 {
		return nil, &pointerError{"trailing data"}
	}
	return v, nil
}

// parsePointer splits an RFC 6901 JSON Pointer into unescaped tokens.
func parsePointer(p string) ([]string, string) {
	if p == "" {
		return nil, ""
	}
	if p[0] != '/' {
		return nil, "a JSON Pointer must be empty or start with '/'"
	}
	toks := strings.Split(p[1:], "/")
	for i, t := range toks {
		if strings.IndexByte(t, '~') < 0 {
			continue
		}
		var b strings.Builder
		for j := 0; j < len(t); j++ {
			if t[j] != '~' {
				b.WriteByte(t[j])
				continue
			}
			if j+1 >= len(t) || (t[j+1] != '0' && t[j+1] != '1') {
				return nil, "'~' must be followed by '0' or '1' in a JSON Pointer"
			}
			if t[j+1] == '0' {
				b.WriteByte('~')
			} else {
				b.WriteByte('/')
			}
			j++
		}
		toks[i] = b.String()
	}
	return toks, ""
}

func isPrefix(a, b []string) bool {
	if len(a) > len(b) {
		return false
	}
	for i := range a {
		if a[i] != b[i] {
			return false
		}
	}
	return true
}

// arrayIndex parses an array index token; "-" (end) only when allowEnd.
func arrayIndex(tok string, n int, allowEnd bool) (int, error) {
	if tok == "-" {
		if allowEnd {
			return n, nil
		}
		return 0, &pointerError{"'-' refers to a nonexistent array element"}
	}
	if tok == "" || (len(tok) > 1 && tok[0] == '0') {
		return 0, &pointerError{"invalid array index " + strconv.Quote(tok)}
	}
	for i := 0; i < len(tok); i++ {
		if tok[i] < '0' || tok[i] > '9' {
			return 0, &pointerError{"invalid array index " + strconv.Quote(tok)}
		}
	}
	i, err := strconv.Atoi(tok)
	if err != nil {
		return 0, &pointerError{"invalid array index " + strconv.Quote(tok)}
	}
	max := n - 1
	if allowEnd {
		max = n
	}
	if i > max {
		return 0, &pointerError{"array index " + tok + " out of range"}
	}
	return i, nil
}

func getAt(root any, path []string) (any, error) {
	cur := root
	for _, tok := range path {
		switch c := cur.(type) {
		case map[string]any:
			v, ok := c[tok]
			if !ok {
				return nil, &pointerError{"no member " + strconv.Quote(tok)}
			}
			cur = v
		case []any:
			i, err := arrayIndex(tok, len(c), false)
			if err != nil {
				return nil, err
			}
			cur = c[i]
		default:
			return nil, &pointerError{"path goes through a primitive value"}
		}
	}
	return cur, nil
}

// update applies f to the parent container of the last token and returns
// the new root. f returns the new container.
func update(root any, path []string, f func(parent any, tok string) (any, error)) (any, error) {
	if len(path) == 0 {
		return f(nil, "")
	}
	var rec func(cur any, rest []string) (any, error)
	rec = func(cur any, rest []string) (any, error) {
		if len(rest) == 1 {
			return f(cur, rest[0])
		}
		switch c := cur.(type) {
		case map[string]any:
			v, ok := c[rest[0]]
			if !ok {
				return nil, &pointerError{"no member " + strconv.Quote(rest[0])}
			}
			nv, err := rec(v, rest[1:])
			if err != nil {
				return nil, err
			}
			c[rest[0]] = nv
			return c, nil
		case []any:
			i, err := arrayIndex(rest[0], len(c), false)
			if err != nil {
				return nil, err
			}
			nv, err := rec(c[i], rest[1:])
			if err != nil {
				return nil, err
			}
			c[i] = nv
			return c, nil
		default:
			return nil, &pointerError{"path goes through a primitive value"}
		}
	}
	return rec(root, path)
}

func addAt(root any, path []string, v any) (any, error) {
	if len(path) == 0 {
		return v, nil
	}
	return update(root, path, func(parent any, tok string) (any, error) {
		switch c := parent.(type) {
		case map[string]any:
			c[tok] = v
			return c, nil
		case []any:
			i, err := arrayIndex(tok, len(c), true)
			if err != nil {
				return nil, err
			}
			c = append(c, nil)
			copy(c[i+1:], c[i:])
			c[i] = v
			return c, nil
		default:
			return nil, &pointerError{"parent is not an object or array"}
		}
	})
}

func removeAt(root any, path []string) (any, any, error) {
	if len(path) == 0 {
		return nil, nil, &pointerError{"cannot remove the whole document"}
	}
	var removed any
	nr, err := update(root, path, func(parent any, tok string) (any, error) {
		switch c := parent.(type) {
		case map[string]any:
			v, ok := c[tok]
			if !ok {
				return nil, &pointerError{"no member " + strconv.Quote(tok)}
			}
			removed = v
			delete(c, tok)
			return c, nil
		case []any:
			i, err := arrayIndex(tok, len(c), false)
			if err != nil {
				return nil, err
			}
			removed = c[i]
			return append(c[:i:i], c[i+1:]...), nil
		default:
			return nil, &pointerError{"parent is not an object or array"}
		}
	})
	return nr, removed, err
}

func replaceAt(root any, path []string, v any) (any, error) {
	if len(path) == 0 {
		return v, nil
	}
	return update(root, path, func(parent any, tok string) (any, error) {
		switch c := parent.(type) {
		case map[string]any:
			if _, ok := c[tok]; !ok {
				return nil, &pointerError{"no member " + strconv.Quote(tok)}
			}
			c[tok] = v
			return c, nil
		case []any:
			i, err := arrayIndex(tok, len(c), false)
			if err != nil {
				return nil, err
			}
			c[i] = v
			return c, nil
		default:
			return nil, &pointerError{"parent is not an object or array"}
		}
	})
}

func deepCopy(v any) any {
	switch c := v.(type) {
	case map[string]any:
		m := make(map[string]any, len(c))
		for k, x := range c {
			m[k] = deepCopy(x)
		}
		return m
	case []any:
		s := make([]any, len(c))
		for i, x := range c {
			s[i] = deepCopy(x)
		}
		return s
	default:
		return v
	}
}

// jsonEqual compares two decoded JSON values as RFC 6902 "test" does:
// numbers by value, objects regardless of member order.
func jsonEqual(a, b any) bool {
	switch x := a.(type) {
	case map[string]any:
		y, ok := b.(map[string]any)
		if !ok || len(x) != len(y) {
			return false
		}
		for k, v := range x {
			w, ok := y[k]
			if !ok || !jsonEqual(v, w) {
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
			if !jsonEqual(x[i], y[i]) {
				return false
			}
		}
		return true
	case json.Number:
		y, ok := b.(json.Number)
		if !ok {
			return false
		}
		if x == y {
			return true
		}
		fx, _, err1 := big.ParseFloat(string(x), 10, 512, big.ToNearestEven)
		fy, _, err2 := big.ParseFloat(string(y), 10, 512, big.ToNearestEven)
		return err1 == nil && err2 == nil && fx.Cmp(fy) == 0
	default:
		return a == b
	}
}
