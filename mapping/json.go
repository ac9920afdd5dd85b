package mapping

import (
	"bytes"
	"encoding/json"
	"strings"
	"time"

	"github.com/casefhir/casefhir/fhir"
	"github.com/casefhir/casefhir/fhir/outcome"
)

// Decode parses a resource's JSON into the generic form this package works
// on. Numbers are kept as json.Number so that decimals keep their precision
// when the resource is encoded again.
func Decode(b []byte) (map[string]any, error) {
	d := json.NewDecoder(bytes.NewReader(b))
	d.UseNumber()
	var m map[string]any
	if err := d.Decode(&m); err != nil || m == nil {
		return nil, outcome.Wrap(err, outcome.Structure, "mapping.Decode", "resource is not a JSON object")
	}
	return m, nil
}

// Encode renders a resource held in the generic form as JSON.
func Encode(m map[string]any) ([]byte, error) {
	b, err := json.Marshal(m)
	if err != nil {
		return nil, outcome.Wrap(err, outcome.Exception, "mapping.Encode", "cannot encode resource")
	}
	return b, nil
}

// Clone returns a deep copy of a resource in the generic form.
func Clone(m map[string]any) map[string]any {
	if m == nil {
		return nil
	}
	return cloneValue(m).(map[string]any)
}

func cloneValue(v any) any {
	switch x := v.(type) {
	case map[string]any:
		out := make(map[string]any, len(x))
		for k, e := range x {
			out[k] = cloneValue(e)
		}
		return out
	case []any:
		out := make([]any, len(x))
		for i, e := range x {
			out[i] = cloneValue(e)
		}
		return out
	case []map[string]any:
		out := make([]any, len(x))
		for i, e := range x {
			out[i] = cloneValue(e)
		}
		return out
	default:
		return v
	}
}

func str(m map[string]any, key string) string {
	s, _ := m[key].(string)
	return s
}

func obj(m map[string]any, key string) map[string]any {
	o, _ := m[key].(map[string]any)
	return o
}

// objs returns the objects of an array element; a single object counts as
// an array of one.
func objs(m map[string]any, key string) []map[string]any {
	switch v := m[key].(type) {
	case []any:
		out := make([]map[string]any, 0, len(v))
		for _, e := range v {
			if o, ok := e.(map[string]any); ok {
				out = append(out, o)
			}
		}
		return out
	case []map[string]any:
		return v
	case map[string]any:
		return []map[string]any{v}
	}
	return nil
}

func toAny(ms []map[string]any) []any {
	out := make([]any, len(ms))
	for i, m := range ms {
		out[i] = m
	}
	return out
}

// ResourceType returns resourceType.
func ResourceType(m map[string]any) string { return str(m, "resourceType") }

// ID returns id.
func ID(m map[string]any) string { return str(m, "id") }

// Key returns "Type/id" of a resource ("" without an id).
func Key(m map[string]any) string {
	if ID(m) == "" {
		return ""
	}
	return ResourceType(m) + "/" + ID(m)
}

// refString returns Reference.reference of a Reference object.
func refString(v any) string {
	m, _ := v.(map[string]any)
	return str(m, "reference")
}

// refLocal normalises a reference string to "Type/id" (dropping base and
// version); it returns "" when the reference is not Type/id shaped.
func refLocal(s string) string {
	r, ok := fhir.ParseReference(s)
	if !ok {
		return ""
	}
	return r.Local()
}

func reference(s string) map[string]any { return map[string]any{"reference": s} }

// extensions returns the extensions of m with the given url.
func extensions(m map[string]any, url string) []map[string]any {
	var out []map[string]any
	for _, e := range objs(m, "extension") {
		if str(e, "url") == url {
			out = append(out, e)
		}
	}
	return out
}

func extension(m map[string]any, url string) map[string]any {
	if es := extensions(m, url); len(es) > 0 {
		return es[0]
	}
	return nil
}

// removeExtensions drops every extension of m with the given url.
func removeExtensions(m map[string]any, url string) {
	all := objs(m, "extension")
	var keep []any
	for _, e := range all {
		if str(e, "url") != url {
			keep = append(keep, e)
		}
	}
	if len(keep) == 0 {
		delete(m, "extension")
		return
	}
	m["extension"] = keep
}

// setExtensions replaces every extension of m with url by exts.
func setExtensions(m map[string]any, url string, exts ...map[string]any) {
	removeExtensions(m, url)
	if len(exts) == 0 {
		return
	}
	all, _ := m["extension"].([]any)
	for _, e := range exts {
		all = append(all, e)
	}
	m["extension"] = all
}

func coding(system, code, display string) map[string]any {
	c := map[string]any{"system": system, "code": code}
	if display != "" {
		c["display"] = display
	}
	return c
}

func phaseCoding(phase string) map[string]any {
	return coding(SystemPhase, phase, PhaseDisplay(phase))
}

// codings returns the codings of a CodeableConcept.
func codings(cc map[string]any) []map[string]any { return objs(cc, "coding") }

// hasCoding reports whether a CodeableConcept has a coding system|code.
func hasCoding(cc map[string]any, system, code string) bool {
	for _, c := range codings(cc) {
		if str(c, "system") == system && str(c, "code") == code {
			return true
		}
	}
	return false
}

// present reports whether m[key] holds a non-empty value.
func present(m map[string]any, key string) bool {
	switch v := m[key].(type) {
	case nil:
		return false
	case string:
		return v != ""
	case map[string]any:
		return len(v) > 0
	case []any:
		return len(v) > 0
	default:
		return true
	}
}

// formatTime formats t as a FHIR dateTime (an instant in UTC, ms precision).
func formatTime(t time.Time) string { return fhir.FormatInstant(t) }

// parseDateTime parses a FHIR date or dateTime; partial dates give the
// start of the period they name, in UTC when they carry no zone.
func parseDateTime(s string) (time.Time, bool) {
	for _, layout := range []string{time.RFC3339Nano, "2006-01-02T15:04:05", "2006-01-02", "2006-01", "2006"} {
		if t, err := time.Parse(layout, s); err == nil {
			return t, true
		}
	}
	return time.Time{}, false
}

// walkReferences calls fn with every Reference.reference string in v, in
// no particular order. Contained resources are not entered.
func walkReferences(v any, fn func(ref string)) {
	switch x := v.(type) {
	case map[string]any:
		if s, ok := x["reference"].(string); ok && s != "" {
			fn(s)
		}
		for k, e := range x {
			if k == "contained" {
				continue
			}
			walkReferences(e, fn)
		}
	case []any:
		for _, e := range x {
			walkReferences(e, fn)
		}
	}
}

func join(ss []string) string { return strings.Join(ss, ", ") }

// Str returns the string element key of a resource or element decoded by
// encoding/json ("" when absent or not a string).
func Str(m map[string]any, key string) string { return str(m, key) }

// Obj returns the object element key (nil when absent or not an object).
func Obj(m map[string]any, key string) map[string]any { return obj(m, key) }

// Objs returns the objects of the array element key; a single object counts
// as an array of one.
func Objs(m map[string]any, key string) []map[string]any { return objs(m, key) }
