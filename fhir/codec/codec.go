package codec

import (
	"bytes"
	"fmt"
	"net/http"
	"strconv"
	"strings"
	"time"

	"github.com/google/fhir/go/fhirversion"
	"github.com/google/fhir/go/jsonformat"
	"github.com/google/fhir/go/jsonformat/fhirvalidate"
	"google.golang.org/protobuf/proto"
	"google.golang.org/protobuf/reflect/protoreflect"

	"github.com/casefhir/casefhir/fhir/outcome"

	d4pb "github.com/google/fhir/go/proto/google/fhir/proto/r4/core/datatypes_go_proto"
	bcrpb "github.com/google/fhir/go/proto/google/fhir/proto/r4/core/resources/bundle_and_contained_resource_go_proto"
)

// Codec decodes, validates and encodes FHIR R4 JSON resources with
// google/fhir jsonformat. It is safe for concurrent use: jsonformat's
// Unmarshaller and (non-analytics) Marshaller hold only read-only
// configuration after construction, so one of each is shared.
type Codec struct {
	u    *jsonformat.Unmarshaller
	m    *jsonformat.Marshaller
	opts Options
}

// Options adjust what Decode accepts. The zero value is the strict default.
type Options struct {
	// AllowAnyReferenceType accepts a reference to a resource type the
	// element does not list as a target (e.g. Observation.performer to an
	// Encounter, as the official example Observation-clinical-gender does).
	// By default that is a 400 value issue.
	AllowAnyReferenceType bool
}

// Parsed is one decoded and validated resource.
type Parsed struct {
	// Type is the resourceType, e.g. "Patient".
	Type string
	// ID is the resource id as sent ("" when absent).
	ID string
	// Msg is the concrete resource message, e.g. *patient_go_proto.Patient.
	Msg proto.Message
}

// New returns a Codec for FHIR R4 with extended validation (required
// elements, reference target types, primitive formats) and times without
// an offset read as UTC.
func New() (*Codec, error) { return NewWithOptions(Options{}) }

// NewWithOptions is New with explicit options.
func NewWithOptions(o Options) (*Codec, error) {
	u, err := jsonformat.NewUnmarshaller("UTC", fhirversion.R4)
	if err != nil {
		return nil, fmt.Errorf("codec: unmarshaller: %w", err)
	}
	m, err := jsonformat.NewMarshaller(false, "", "", fhirversion.R4)
	if err != nil {
		return nil, fmt.Errorf("codec: marshaller: %w", err)
	}
	return &Codec{u: u, m: m, opts: o}, nil
}

// collector is a jsonformat ErrorReporter that keeps every validation
// problem. Paths are proto field paths (see protoPathToFHIRPath).
type collector struct {
	errs []jfError
}

func (c *collector) ReportValidationError(path string, err error) error {
	if es, ok := jfErrors(err); ok {
		for _, e := range es {
			if e.path == "" {
				e.path = path
			}
			c.errs = append(c.errs, e)
		}
		return nil
	}
	c.errs = append(c.errs, jfError{path: path, details: "invalid content"})
	return nil
}

func (c *collector) ReportValidationWarning(string, error) error { return nil }

// Decode parses and validates one R4 resource in JSON. Every problem found
// becomes one issue of the returned *outcome.Error (HTTP 400): code
// structure for unparsable JSON, unknown elements and wrong JSON types;
// value for bad primitive values, codes and references; required for
// missing required elements; invariant for FHIR invariants. Each issue's
// Expression is the element's FHIRPath, using JSON property names for
// choice elements (Observation.valueQuantity.value). Detail is PHI-free;
// Diagnostics may quote the content.
//
// Decode never panics: a panic inside jsonformat becomes a 400 as well.
func (c *Codec) Decode(body []byte) (p *Parsed, err error) {
	defer func() {
		if r := recover(); r != nil {
			p = nil
			err = &outcome.Error{Op: "codec.Decode", Code: outcome.Structure, Status: http.StatusBadRequest,
				Detail: "resource could not be parsed", Diagnostics: "the resource could not be parsed",
				Err: fmt.Errorf("jsonformat panic: %v", r)}
		}
	}()
	// A UTF-8 byte order mark is not JSON, but some clients send one.
	body = bytes.TrimPrefix(body, []byte("\xef\xbb\xbf"))
	sr := scan(body)
	if sr.fatal {
		return nil, decodeError(sr.issues)
	}
	issues := sr.issues
	if len(sr.nulls) > 0 {
		body = bytes.Clone(body)
		for _, off := range sr.nulls {
			copy(body[off:off+4], "{}  ")
		}
	}
	col := &collector{}
	msg, uerr := c.u.UnmarshalWithErrorReporter(body, col)
	var cr *bcrpb.ContainedResource
	if uerr != nil {
		es, ok := jfErrors(uerr)
		if !ok {
			// Not a content error; still the client's body that failed.
			return nil, &outcome.Error{Op: "codec.Decode", Code: outcome.Structure, Status: http.StatusBadRequest,
				Detail: "resource could not be parsed", Err: uerr}
		}
		for _, e := range es {
			issues = append(issues, issueFromParse(e))
		}
	} else {
		var ok bool
		cr, ok = msg.(*bcrpb.ContainedResource)
		if !ok {
			return nil, &outcome.Error{Op: "codec.Decode", Code: outcome.Exception,
				Detail: "unexpected decoder result", Err: fmt.Errorf("got %T", msg)}
		}
		res := resourceOf(cr)
		if res == nil {
			return nil, decodeError([]outcome.Issue{{Severity: outcome.ErrorSev, Code: outcome.Structure,
				Detail: "missing resourceType", Diagnostics: "no resource found"}})
		}
		rootDesc := res.ProtoReflect().Descriptor()
		for _, e := range col.errs {
			if c.skip(e) {
				continue
			}
			issues = append(issues, validationIssue(rootDesc, e))
		}
		issues = append(issues, c.validateContained(res)...)
	}
	if len(issues) > 0 {
		return nil, decodeError(dedupe(issues, len(sr.issues)))
	}
	res := resourceOf(cr)
	p = &Parsed{Type: string(res.ProtoReflect().Descriptor().Name()), Msg: res}
	if id, ok := getID(res); ok {
		p.ID = id
	}
	return p, nil
}

// skip reports whether a validation problem is accepted by the options.
func (c *Codec) skip(e jfError) bool {
	return c.opts.AllowAnyReferenceType && strings.HasPrefix(e.details, "invalid reference to a")
}

// validationIssue converts a problem reported by jsonformat's validator.
func validationIssue(root protoreflect.MessageDescriptor, e jfError) outcome.Issue {
	code, detail := classify(e)
	expr := protoPathToFHIRPath(root, e.path)
	if f, ok := requiredField(e.details); ok {
		expr = joinPath(expr, f)
	}
	return makeIssue(code, detail, e, expr)
}

func requiredField(d string) (string, bool) {
	const pre = "missing required field "
	if len(d) <= len(pre) || d[:len(pre)] != pre {
		return "", false
	}
	f, err := strconv.Unquote(d[len(pre):])
	return f, err == nil
}

// validateContained runs jsonformat's validator on contained resources,
// which it skips (they are stored as Any), and checks the contained-resource
// invariants dom-2 (no nested contained) and dom-4 (no meta.versionId or
// meta.lastUpdated).
func (c *Codec) validateContained(res proto.Message) []outcome.Issue {
	m := res.ProtoReflect()
	fd := m.Descriptor().Fields().ByName("contained")
	if fd == nil || !fd.IsList() || !m.Has(fd) {
		return nil
	}
	var issues []outcome.Issue
	rootName := string(m.Descriptor().Name())
	list := m.Get(fd).List()
	for i := 0; i < list.Len(); i++ {
		prefix := rootName + ".contained[" + strconv.Itoa(i) + "]"
		cr := &bcrpb.ContainedResource{}
		anyMsg, ok := list.Get(i).Message().Interface().(interface {
			UnmarshalTo(proto.Message) error
		})
		if !ok || anyMsg.UnmarshalTo(cr) != nil {
			continue
		}
		inner := resourceOf(cr)
		if inner == nil {
			continue
		}
		col := &collector{}
		if err := fhirvalidate.ValidateWithErrorReporter(cr, col); err != nil {
			issues = append(issues, outcome.Issue{Severity: outcome.ErrorSev, Code: outcome.Invalid,
				Detail: "invalid contained resource", Expression: []string{prefix}})
			continue
		}
		desc := inner.ProtoReflect().Descriptor()
		for _, e := range col.errs {
			if c.skip(e) {
				continue
			}
			is := validationIssue(desc, e)
			for j, x := range is.Expression {
				is.Expression[j] = reroot(x, prefix)
			}
			issues = append(issues, is)
		}
		im := inner.ProtoReflect()
		if cfd := im.Descriptor().Fields().ByName("contained"); cfd != nil && im.Has(cfd) {
			issues = append(issues, outcome.Issue{Severity: outcome.ErrorSev, Code: outcome.Invariant,
				Detail:      "contained resource contains resources",
				Diagnostics: "dom-2: a contained resource SHALL NOT contain other resources",
				Expression:  []string{prefix + ".contained"}})
		}
		if mfd := im.Descriptor().Fields().ByName("meta"); mfd != nil && im.Has(mfd) {
			if meta, ok := im.Get(mfd).Message().Interface().(*d4pb.Meta); ok &&
				(meta.GetVersionId() != nil || meta.GetLastUpdated() != nil) {
				issues = append(issues, outcome.Issue{Severity: outcome.ErrorSev, Code: outcome.Invariant,
					Detail:      "contained resource has meta.versionId or meta.lastUpdated",
					Diagnostics: "dom-4: a contained resource SHALL NOT have a meta.versionId or a meta.lastUpdated",
					Expression:  []string{prefix + ".meta"}})
			}
		}
	}
	return issues
}

// reroot replaces the first segment of a path by prefix.
func reroot(p, prefix string) string {
	for i := 0; i < len(p); i++ {
		if p[i] == '.' {
			return prefix + p[i:]
		}
	}
	return prefix
}

// dedupe drops jsonformat issues whose expression is already covered by a
// pre-scan issue (the first nScan issues), e.g. an empty id reported both
// as an empty string and as a bad id.
func dedupe(issues []outcome.Issue, nScan int) []outcome.Issue {
	if nScan == 0 || nScan == len(issues) {
		return issues
	}
	seen := make(map[string]bool, nScan)
	for _, is := range issues[:nScan] {
		for _, x := range is.Expression {
			seen[x] = true
		}
	}
	out := issues[:nScan]
	for _, is := range issues[nScan:] {
		if len(is.Expression) == 1 && covered(seen, is.Expression[0]) {
			continue
		}
		out = append(out, is)
	}
	return out
}

// covered reports whether x or the array holding it (x without its last
// index) has a pre-scan issue.
func covered(seen map[string]bool, x string) bool {
	if seen[x] {
		return true
	}
	if strings.HasSuffix(x, "]") {
		if i := strings.LastIndexByte(x, '['); i > 0 {
			return seen[x[:i]]
		}
	}
	return false
}

// resourceOf returns the resource inside a ContainedResource.
func resourceOf(cr *bcrpb.ContainedResource) proto.Message {
	if cr == nil {
		return nil
	}
	m := cr.ProtoReflect()
	od := m.Descriptor().Oneofs().ByName("oneof_resource")
	if od == nil {
		return nil
	}
	fd := m.WhichOneof(od)
	if fd == nil {
		return nil
	}
	return m.Get(fd).Message().Interface()
}

func getID(res proto.Message) (string, bool) {
	m := res.ProtoReflect()
	fd := m.Descriptor().Fields().ByName("id")
	if fd == nil || !m.Has(fd) {
		return "", false
	}
	id, ok := m.Get(fd).Message().Interface().(*d4pb.Id)
	if !ok {
		return "", false
	}
	return id.GetValue(), true
}

// Finalize sets id, meta.versionId and meta.lastUpdated (UTC, millisecond
// precision) on p.Msg, keeping the rest of the client's meta (profile, tag,
// security, source, extensions), and returns the resource as compact JSON
// with keys in a fixed order: the canonical stored form, served verbatim on
// read. It modifies p.Msg and p.ID.
func (c *Codec) Finalize(p *Parsed, id string, version int64, lastUpdated time.Time) ([]byte, error) {
	if p == nil || p.Msg == nil {
		return nil, outcome.New(outcome.Exception, "nothing to finalize").WithOp("codec.Finalize")
	}
	m := p.Msg.ProtoReflect()
	fields := m.Descriptor().Fields()
	idFD, metaFD := fields.ByName("id"), fields.ByName("meta")
	if idFD == nil || metaFD == nil {
		return nil, outcome.New(outcome.Exception, "message is not a resource").WithOp("codec.Finalize")
	}
	m.Set(idFD, protoreflect.ValueOfMessage((&d4pb.Id{Value: id}).ProtoReflect()))
	meta, ok := m.Mutable(metaFD).Message().Interface().(*d4pb.Meta)
	if !ok {
		return nil, outcome.New(outcome.Exception, "unexpected meta type").WithOp("codec.Finalize")
	}
	meta.VersionId = &d4pb.Id{Value: strconv.FormatInt(version, 10)}
	meta.LastUpdated = &d4pb.Instant{
		ValueUs:   lastUpdated.UTC().Truncate(time.Millisecond).UnixMicro(),
		Timezone:  "Z",
		Precision: d4pb.Instant_MILLISECOND,
	}
	p.ID = id
	b, err := c.m.MarshalResource(p.Msg)
	if err != nil {
		return nil, outcome.Wrap(err, outcome.Exception, "codec.Finalize", "resource could not be encoded")
	}
	return leadingKeys(b), nil
}

// leadingKeys reorders the top level of a compact resource so that
// resourceType, id and meta come first, the other members following in
// their order (as people and most servers expect to read a resource). It
// runs once per write, in one pass over the bytes; on anything unexpected
// it returns b unchanged.
func leadingKeys(b []byte) []byte {
	if len(b) < 2 || b[0] != '{' || b[len(b)-1] != '}' {
		return b
	}
	// Find the top-level members: [start, end) of each "key":value.
	type span struct{ start, end int }
	var members []span
	depth, start := 0, 1
	inStr, esc := false, false
	for i := 1; i < len(b)-1; i++ {
		c := b[i]
		switch {
		case inStr:
			switch {
			case esc:
				esc = false
			case c == '\\':
				esc = true
			case c == '"':
				inStr = false
			}
		case c == '"':
			inStr = true
		case c == '{' || c == '[':
			depth++
		case c == '}' || c == ']':
			depth--
		case c == ',' && depth == 0:
			members = append(members, span{start, i})
			start = i + 1
		}
	}
	if depth != 0 || inStr {
		return b
	}
	members = append(members, span{start, len(b) - 1})
	rank := func(m span) int {
		switch {
		case bytes.HasPrefix(b[m.start:m.end], []byte(`"resourceType":`)):
			return 0
		case bytes.HasPrefix(b[m.start:m.end], []byte(`"id":`)):
			return 1
		case bytes.HasPrefix(b[m.start:m.end], []byte(`"meta":`)):
			return 2
		}
		return 3
	}
	out := make([]byte, 0, len(b))
	out = append(out, '{')
	for r := 0; r <= 3; r++ {
		for _, m := range members {
			if rank(m) != r {
				continue
			}
			if len(out) > 1 {
				out = append(out, ',')
			}
			out = append(out, b[m.start:m.end]...)
		}
	}
	return append(out, '}')
}

// Encode returns msg (a resource message or a ContainedResource) as compact
// JSON.
func (c *Codec) Encode(msg proto.Message) ([]byte, error) {
	if msg == nil {
		return nil, outcome.New(outcome.Exception, "nothing to encode").WithOp("codec.Encode")
	}
	var (
		b   []byte
		err error
	)
	if cr, ok := msg.(*bcrpb.ContainedResource); ok {
		b, err = c.m.Marshal(cr)
	} else {
		b, err = c.m.MarshalResource(msg)
	}
	if err != nil {
		return nil, outcome.Wrap(err, outcome.Exception, "codec.Encode", "resource could not be encoded")
	}
	return leadingKeys(b), nil
}
