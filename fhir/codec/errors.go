package codec

import (
	"net/http"
	"reflect"
	"strconv"
	"strings"

	"github.com/casefhir/casefhir/fhir/outcome"
	"google.golang.org/protobuf/proto"
	"google.golang.org/protobuf/reflect/protoreflect"

	apb "github.com/google/fhir/go/proto/google/fhir/proto/annotations_go_proto"
)

// jfError is one problem reported by jsonformat. jsonformat's error types
// live in an internal package, so their exported fields are read by
// reflection (see jfErrors).
type jfError struct {
	path, details, diagnostics string
}

// jfErrors flattens an error returned by jsonformat (an UnmarshalError or a
// list of them) into its parts. ok is false for any other error.
func jfErrors(err error) (out []jfError, ok bool) {
	v := reflect.ValueOf(err)
	one := func(e reflect.Value) bool {
		if e.Kind() == reflect.Pointer {
			if e.IsNil() {
				return false
			}
			e = e.Elem()
		}
		if e.Kind() != reflect.Struct {
			return false
		}
		p, d, g := e.FieldByName("Path"), e.FieldByName("Details"), e.FieldByName("Diagnostics")
		if !p.IsValid() || !d.IsValid() || !g.IsValid() || p.Kind() != reflect.String ||
			d.Kind() != reflect.String || g.Kind() != reflect.String {
			return false
		}
		out = append(out, jfError{path: p.String(), details: d.String(), diagnostics: g.String()})
		return true
	}
	if v.Kind() == reflect.Slice {
		for i := 0; i < v.Len(); i++ {
			if !one(v.Index(i)) {
				return nil, false
			}
		}
		return out, len(out) > 0
	}
	if !one(v) {
		return nil, false
	}
	return out, true
}

// classify maps a jsonformat problem to an issue code and a fixed,
// PHI-free detail.
func classify(e jfError) (outcome.Code, string) {
	d := e.details
	switch {
	case d == "invalid JSON":
		return outcome.Structure, "invalid JSON"
	case d == "unknown field":
		return outcome.Structure, "unknown element"
	case d == "unknown resource type":
		return outcome.Structure, "unknown resource type"
	case d == "invalid resource type":
		return outcome.Structure, "invalid resourceType"
	case d == `missing required field "resourceType"`:
		return outcome.Structure, "missing resourceType"
	case strings.HasPrefix(d, "missing required field"):
		return outcome.Required, "missing required element"
	case strings.HasPrefix(d, "cannot accept multiple values"):
		return outcome.Structure, "more than one value for a choice element"
	case d == "expected array":
		return outcome.Structure, "expected a JSON array"
	case strings.HasPrefix(d, "array length mismatch"):
		return outcome.Structure, "primitive and extension arrays differ in length"
	case d == "invalid field" || d == "invalid extension field":
		return outcome.Structure, "invalid element"
	case strings.HasPrefix(d, "field exceeded the maximum nesting depth"):
		return outcome.Structure, "nesting too deep"
	case strings.HasPrefix(d, "invalid reference to a"):
		return outcome.Value, "reference to a resource type not allowed here"
	case d == "invalid reference":
		return outcome.Value, "invalid reference"
	case d == "code type mismatch":
		return outcome.Value, "invalid code"
	case strings.HasPrefix(d, "string exceeds maximum size"):
		return outcome.Value, "string too long"
	case strings.HasPrefix(d, "string contains invalid characters"):
		return outcome.Value, "string contains invalid characters"
	case d == "expected UTF-8 encoding":
		return outcome.Value, "invalid UTF-8"
	}
	// Primitive values: "expected date", "invalid Id format", ...
	if want, isPrimitive := primitiveKind(d); isPrimitive {
		if got := foundKind(e.diagnostics); got != 0 && got != want {
			return outcome.Structure, "wrong JSON type"
		}
		return outcome.Value, "invalid value"
	}
	return outcome.Invalid, "invalid content"
}

// primitiveKind returns the JSON kind ('s' string, 'n' number, 'b'
// boolean) a jsonformat primitive error expects.
func primitiveKind(d string) (byte, bool) {
	switch {
	case d == "expected boolean":
		return 'b', true
	case d == "expected integer", d == "expected decimal", d == "expected positive integer",
		d == "invalid positive integer", d == "invalid non-negative integer",
		strings.HasPrefix(d, "non-negative integer out of range"):
		return 'n', true
	case strings.HasPrefix(d, "expected "), d == "invalid time",
		strings.HasPrefix(d, "invalid ") && strings.HasSuffix(d, " format"),
		d == "invalid uri", d == "invalid url", d == "invalid canonical":
		return 's', true
	}
	return 0, false
}

// foundKind reads the JSON kind of the raw value in a jsonformat
// diagnostic ("found 12", `found "x"`, "found " for null). 'z' is null.
func foundKind(diag string) byte {
	raw, ok := strings.CutPrefix(diag, "found ")
	if !ok {
		return 0
	}
	raw = strings.TrimSpace(raw)
	if raw == "" || raw == "null" {
		return 'z'
	}
	switch c := raw[0]; {
	case c == '"':
		return 's'
	case c == 't' || c == 'f':
		return 'b'
	case c == '-' || c >= '0' && c <= '9':
		return 'n'
	case c == '{' || c == '[':
		return 'o'
	}
	return 0
}

// issueFromJSONPath builds an issue from a jsonformat parse error, whose
// path is made of the JSON property names as sent.
func issueFromParse(e jfError) outcome.Issue {
	code, detail := classify(e)
	expr := jsonPathToFHIRPath(e.path)
	switch {
	case e.details == "unknown field":
		// The path is the parent; the diagnostic is the quoted property.
		if k, err := strconv.Unquote(e.diagnostics); err == nil {
			expr = joinPath(expr, string(elementName([]byte(k))))
		}
	case strings.HasPrefix(e.details, "cannot accept multiple values for "):
		// "... for multiple_birth field": name the choice element itself,
		// whichever of its properties jsonformat met second.
		f := strings.TrimSuffix(strings.TrimPrefix(e.details, "cannot accept multiple values for "), " field")
		expr = joinPath(expr, snakeToLowerCamel(f))
	}
	return makeIssue(code, detail, e, expr)
}

func makeIssue(code outcome.Code, detail string, e jfError, expr string) outcome.Issue {
	diag := e.details
	if e.diagnostics != "" {
		diag += ": " + strings.ToValidUTF8(e.diagnostics, "\uFFFD")
	}
	is := outcome.Issue{Severity: outcome.ErrorSev, Code: code, Detail: detail, Diagnostics: diag}
	if expr != "" {
		is.Expression = []string{expr}
	}
	return is
}

func snakeToLowerCamel(s string) string {
	parts := strings.Split(s, "_")
	for i := 1; i < len(parts); i++ {
		parts[i] = upperFirst(parts[i])
	}
	return strings.Join(parts, "")
}

func joinPath(a, b string) string {
	if a == "" {
		return b
	}
	return a + "." + b
}

// jsonPathToFHIRPath converts a jsonformat parse path
// ("Patient.contained[0].Observation._status") to FHIRPath
// ("Patient.contained[0].status"): the resource type jsonformat inserts for
// contained and Bundle resources is dropped and "_x" becomes "x".
func jsonPathToFHIRPath(p string) string {
	if p == "" {
		return ""
	}
	segs := strings.Split(p, ".")
	out := segs[:1]
	for _, s := range segs[1:] {
		if s != "" && s[0] >= 'A' && s[0] <= 'Z' {
			continue // inserted resource type
		}
		if len(s) > 1 && s[0] == '_' {
			s = s[1:]
		}
		out = append(out, s)
	}
	return strings.Join(out, ".")
}

// protoPathToFHIRPath converts a path reported by jsonformat's validator,
// which is built from proto field names ("Observation.value.sampledData",
// "Bundle.entry[0].resource.observation.status",
// "Patient.link[0].other.patientId"), into the JSON-name form used for
// every issue ("Observation.valueSampledData",
// "Bundle.entry[0].resource.status", "Patient.link[0].other.reference"),
// walking the resource's message descriptor.
func protoPathToFHIRPath(root protoreflect.MessageDescriptor, p string) string {
	segs := strings.Split(p, ".")
	if len(segs) == 0 || root == nil {
		return p
	}
	out := []string{segs[0]}
	cur := root
	for i := 1; i < len(segs); i++ {
		name, idx := splitIndex(segs[i])
		if cur == nil {
			out = append(out, segs[i])
			continue
		}
		fd := fieldByJSONName(cur, name)
		if fd == nil {
			out = append(out, segs[i])
			cur = nil
			continue
		}
		if isReference(cur) && fd.ContainingOneof() != nil {
			out = append(out, "reference"+idx)
			cur = nil
			continue
		}
		md := fd.Message()
		switch {
		case md != nil && isChoice(md) && i+1 < len(segs):
			opt, optIdx := splitIndex(segs[i+1])
			ofd := fieldByJSONName(md, opt)
			out = append(out, name+upperFirst(opt)+idx+optIdx)
			i++
			if ofd != nil {
				cur = ofd.Message()
			} else {
				cur = nil
			}
		case md != nil && md.Name() == "ContainedResource" && i+1 < len(segs):
			out = append(out, segs[i])
			typ, _ := splitIndex(segs[i+1])
			i++
			if tfd := fieldByJSONName(md, typ); tfd != nil {
				cur = tfd.Message()
			} else {
				cur = nil
			}
		default:
			out = append(out, segs[i])
			cur = md
		}
	}
	return strings.Join(out, ".")
}

func splitIndex(s string) (name, idx string) {
	if i := strings.IndexByte(s, '['); i >= 0 {
		return s[:i], s[i:]
	}
	return s, ""
}

func fieldByJSONName(md protoreflect.MessageDescriptor, name string) protoreflect.FieldDescriptor {
	if fd := md.Fields().ByJSONName(name); fd != nil {
		return fd
	}
	return md.Fields().ByName(protoreflect.Name(name))
}

func upperFirst(s string) string {
	if s == "" || s[0] < 'a' || s[0] > 'z' {
		return s
	}
	return string(s[0]-'a'+'A') + s[1:]
}

func isChoice(md protoreflect.MessageDescriptor) bool {
	return proto.GetExtension(md.Options(), apb.E_IsChoiceType).(bool)
}

func isReference(md protoreflect.MessageDescriptor) bool {
	return md.Name() == "Reference" && md.Oneofs().ByName("reference") != nil
}

// decodeError builds the 400 error for a list of issues.
func decodeError(issues []outcome.Issue) *outcome.Error {
	first := issues[0]
	e := &outcome.Error{
		Op: "codec.Decode", Code: first.Code, Status: http.StatusBadRequest,
		Detail: first.Detail, Diagnostics: first.Diagnostics, Expression: first.Expression,
	}
	if len(issues) > 1 {
		e.Issues = append([]outcome.Issue(nil), issues[1:]...)
	}
	return e
}
