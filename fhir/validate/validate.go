package validate

import (
	"net/http"
	"net/url"
	"strconv"
	"strings"

	"google.golang.org/protobuf/proto"
	"google.golang.org/protobuf/reflect/protoreflect"
	anypb "google.golang.org/protobuf/types/known/anypb"

	"github.com/casefhir/casefhir/fhir"
	"github.com/casefhir/casefhir/fhir/codec"
	"github.com/casefhir/casefhir/fhir/outcome"

	apb "github.com/google/fhir/go/proto/google/fhir/proto/annotations_go_proto"
	d4pb "github.com/google/fhir/go/proto/google/fhir/proto/r4/core/datatypes_go_proto"
	bcrpb "github.com/google/fhir/go/proto/google/fhir/proto/r4/core/resources/bundle_and_contained_resource_go_proto"
)

// maxIssues bounds the issues one resource can produce.
const maxIssues = 100

// Resource checks the rules of this package on a decoded resource:
// a known resource type, id syntax, reference syntax and absolute
// reference target types, and the narrative's shape. meta.versionId sent
// by the client is not checked: Finalize replaces it. All problems are
// returned together as one 400 *outcome.Error, nil when there are none.
func Resource(p *codec.Parsed) error {
	if p == nil || p.Msg == nil {
		return outcome.New(outcome.Structure, "no resource").WithOp("validate.Resource").WithStatus(http.StatusBadRequest)
	}
	if !fhir.IsResourceType(p.Type) {
		return outcome.New(outcome.NotSupported, "resource type not supported").WithOp("validate.Resource").
			WithStatus(http.StatusBadRequest).WithExpression(p.Type)
	}
	var issues []outcome.Issue
	if p.ID != "" && !fhir.IsValidID(p.ID) {
		issues = append(issues, outcome.Issue{Severity: outcome.ErrorSev, Code: outcome.Value,
			Detail: "invalid id", Diagnostics: "an id is 1-64 characters of A-Z, a-z, 0-9, '-' and '.'",
			Expression: []string{p.Type + ".id"}})
	}
	w := &walker{issues: issues}
	w.message(p.Msg.ProtoReflect(), p.Type)
	return build("validate.Resource", w.issues)
}

// Create checks a resource for create (https://hl7.org/fhir/R4/http.html#create):
// Resource, and the body's type must be the URL's type. An id in the body
// is allowed and ignored (the server assigns one).
func Create(p *codec.Parsed, urlType string) error {
	if err := sameType(p, urlType, "validate.Create"); err != nil {
		return err
	}
	return Resource(p)
}

// Update checks a resource for update (https://hl7.org/fhir/R4/http.html#update):
// Resource, the body's type must be the URL's type, and the body must carry
// an id equal to the URL's id.
func Update(p *codec.Parsed, urlType, urlID string) error {
	if err := sameType(p, urlType, "validate.Update"); err != nil {
		return err
	}
	if !fhir.IsValidID(urlID) {
		return outcome.New(outcome.Invalid, "invalid id in URL").WithOp("validate.Update").WithStatus(http.StatusBadRequest)
	}
	switch {
	case p.ID == "":
		return outcome.New(outcome.Required, "resource id missing").WithOp("validate.Update").
			WithStatus(http.StatusBadRequest).WithExpression(p.Type + ".id").
			WithDiagnostics("an update must carry the resource id in the body")
	case p.ID != urlID:
		return outcome.New(outcome.Invalid, "resource id does not match the URL").WithOp("validate.Update").
			WithStatus(http.StatusBadRequest).WithExpression(p.Type + ".id").
			WithDiagnostics("the id in the body (" + p.ID + ") differs from the id in the URL (" + urlID + ")")
	}
	return Resource(p)
}

func sameType(p *codec.Parsed, urlType, op string) error {
	if p == nil {
		return outcome.New(outcome.Structure, "no resource").WithOp(op).WithStatus(http.StatusBadRequest)
	}
	if p.Type != urlType {
		return outcome.New(outcome.Invalid, "resource type does not match the URL").WithOp(op).
			WithStatus(http.StatusBadRequest).WithExpression(p.Type).
			WithDiagnostics("the body is a " + p.Type + ", the URL names " + urlType)
	}
	return nil
}

func build(op string, issues []outcome.Issue) error {
	if len(issues) == 0 {
		return nil
	}
	f := issues[0]
	e := &outcome.Error{Op: op, Code: f.Code, Status: http.StatusBadRequest, Detail: f.Detail,
		Diagnostics: f.Diagnostics, Expression: f.Expression}
	if len(issues) > 1 {
		e.Issues = issues[1:]
	}
	return e
}

// walker visits every Reference and Narrative in a resource.
type walker struct {
	issues []outcome.Issue
}

func (w *walker) add(code outcome.Code, detail, diag, path string) {
	if len(w.issues) < maxIssues {
		w.issues = append(w.issues, outcome.Issue{Severity: outcome.ErrorSev, Code: code,
			Detail: detail, Diagnostics: diag, Expression: []string{path}})
	}
}

func (w *walker) message(m protoreflect.Message, path string) {
	if n, ok := m.Interface().(*d4pb.Narrative); ok {
		w.narrative(n, path)
	}
	m.Range(func(fd protoreflect.FieldDescriptor, val protoreflect.Value) bool {
		md := fd.Message()
		if md == nil {
			return true
		}
		name := fd.JSONName()
		if fd.IsList() {
			l := val.List()
			for i := 0; i < l.Len(); i++ {
				w.field(fd, l.Get(i).Message(), path+"."+name+"["+strconv.Itoa(i)+"]")
			}
			return true
		}
		w.field(fd, val.Message(), path+"."+name)
		return true
	})
}

// field visits one field value; choice types are entered with their JSON
// name (valueReference) and References checked against the field's allowed
// target types.
func (w *walker) field(fd protoreflect.FieldDescriptor, m protoreflect.Message, path string) {
	md := m.Descriptor()
	if isChoice(md) {
		od := md.Oneofs().Get(0)
		if od == nil {
			return
		}
		opt := m.WhichOneof(od)
		if opt == nil || opt.Message() == nil {
			return
		}
		p := path + upperFirst(opt.JSONName())
		inner := m.Get(opt).Message()
		if ref, ok := inner.Interface().(*d4pb.Reference); ok {
			w.reference(ref, validTypes(opt), p)
			w.children(inner, p)
			return
		}
		w.message(inner, p)
		return
	}
	if ref, ok := m.Interface().(*d4pb.Reference); ok {
		w.reference(ref, validTypes(fd), path)
		w.children(m, path)
		return
	}
	switch md.Name() {
	case "Any": // a contained resource
		cr := &bcrpb.ContainedResource{}
		if a, ok := m.Interface().(*anypb.Any); ok && a.UnmarshalTo(cr) == nil {
			w.resource(cr.ProtoReflect(), path)
		}
		return
	case "ContainedResource": // Bundle.entry.resource, Parameters.parameter.resource
		w.resource(m, path)
		return
	}
	w.message(m, path)
}

// children visits the sub-messages of m without checking m itself.
func (w *walker) children(m protoreflect.Message, path string) {
	m.Range(func(fd protoreflect.FieldDescriptor, val protoreflect.Value) bool {
		if fd.Message() == nil || fd.ContainingOneof() != nil {
			return true
		}
		name := fd.JSONName()
		if fd.IsList() {
			l := val.List()
			for i := 0; i < l.Len(); i++ {
				w.field(fd, l.Get(i).Message(), path+"."+name+"["+strconv.Itoa(i)+"]")
			}
			return true
		}
		w.field(fd, val.Message(), path+"."+name)
		return true
	})
}

// resource walks the resource set in a ContainedResource, keeping path
// (Patient.contained[0], Bundle.entry[0].resource).
func (w *walker) resource(cr protoreflect.Message, path string) {
	od := cr.Descriptor().Oneofs().ByName("oneof_resource")
	if od == nil {
		return
	}
	if fd := cr.WhichOneof(od); fd != nil && fd.Message() != nil {
		w.message(cr.Get(fd).Message(), path)
	}
}

func validTypes(fd protoreflect.FieldDescriptor) []string {
	if fd == nil {
		return nil
	}
	t, _ := proto.GetExtension(fd.Options(), apb.E_ValidReferenceType).([]string)
	return t
}

func isChoice(md protoreflect.MessageDescriptor) bool {
	b, _ := proto.GetExtension(md.Options(), apb.E_IsChoiceType).(bool)
	return b
}

func upperFirst(s string) string {
	if s == "" || s[0] < 'a' || s[0] > 'z' {
		return s
	}
	return string(s[0]-'a'+'A') + s[1:]
}

// reference checks one Reference. jsonformat has already turned relative
// Type/id references of known types into typed ids (and checked those
// types); what is left in uri is anything else the client sent.
func (w *walker) reference(ref *d4pb.Reference, allowed []string, path string) {
	rp := path + ".reference"
	if f := ref.GetFragment(); f != nil {
		if v := f.GetValue(); v != "" && !fhir.IsValidID(v) {
			w.add(outcome.Value, "invalid reference", "a local reference is '#' followed by the id of a contained resource", rp)
		}
		return
	}
	if u := ref.GetUri(); u != nil {
		w.uriReference(u.GetValue(), allowed, rp)
		return
	}
	// A typed id: Patient/123 or Patient/123/_history/2.
	m := ref.ProtoReflect()
	od := m.Descriptor().Oneofs().ByName("reference")
	if od == nil {
		return
	}
	fd := m.WhichOneof(od)
	if fd == nil {
		return
	}
	rid, ok := m.Get(fd).Message().Interface().(*d4pb.ReferenceId)
	if !ok {
		return
	}
	if !fhir.IsValidID(rid.GetValue()) {
		w.add(outcome.Value, "invalid reference", "the id of a reference is 1-64 characters of A-Z, a-z, 0-9, '-' and '.'", rp)
	}
	if h := rid.GetHistory(); h != nil && !fhir.IsValidID(h.GetValue()) {
		w.add(outcome.Value, "invalid reference", "the version of a reference is 1-64 characters of A-Z, a-z, 0-9, '-' and '.'", rp)
	}
}

func (w *walker) uriReference(s string, allowed []string, path string) {
	switch {
	case s == "":
		w.add(outcome.Value, "invalid reference", "empty reference", path)
	case strings.HasPrefix(s, "urn:uuid:"):
		if !isUUID(s[len("urn:uuid:"):]) {
			w.add(outcome.Value, "invalid reference", "urn:uuid: must be followed by a UUID", path)
		}
	case strings.HasPrefix(s, "urn:oid:"):
		if !isOID(s[len("urn:oid:"):]) {
			w.add(outcome.Value, "invalid reference", "urn:oid: must be followed by an OID", path)
		}
	case strings.Contains(s, "://"):
		u, err := url.Parse(s)
		if err != nil || u.Scheme == "" || u.Host == "" {
			w.add(outcome.Value, "invalid reference", "not an absolute URL", path)
			return
		}
		// An absolute RESTful reference ([base]/Type/id) must name a type
		// the element allows.
		if r, ok := fhir.ParseReference(s); ok && r.Type != "" && !typeAllowed(r.Type, allowed) {
			w.add(outcome.Value, "reference to a resource type not allowed here",
				"references to "+r.Type+" are not allowed here; allowed: "+strings.Join(allowed, ", "), path)
		}
	default:
		// Relative: jsonformat would have typed Type/id of a known type,
		// so this is an unknown type or not Type/id at all.
		w.add(outcome.Value, "invalid reference",
			"a relative reference is Type/id or Type/id/_history/version with an R4 resource type", path)
	}
}

func typeAllowed(t string, allowed []string) bool {
	if len(allowed) == 0 {
		return true
	}
	for _, a := range allowed {
		if a == t || a == "Resource" {
			return true
		}
	}
	return false
}

func isUUID(s string) bool {
	if len(s) != 36 {
		return false
	}
	for i := 0; i < len(s); i++ {
		c := s[i]
		switch i {
		case 8, 13, 18, 23:
			if c != '-' {
				return false
			}
		default:
			if !(c >= '0' && c <= '9' || c >= 'a' && c <= 'f' || c >= 'A' && c <= 'F') {
				return false
			}
		}
	}
	return true
}

// isOID checks the FHIR oid pattern [0-2](\.(0|[1-9][0-9]*))+.
func isOID(s string) bool {
	parts := strings.Split(s, ".")
	if len(parts) < 2 || len(parts[0]) != 1 || parts[0][0] < '0' || parts[0][0] > '2' {
		return false
	}
	for _, p := range parts[1:] {
		if p == "" || (len(p) > 1 && p[0] == '0') {
			return false
		}
		for i := 0; i < len(p); i++ {
			if p[i] < '0' || p[i] > '9' {
				return false
			}
		}
	}
	return true
}

// narrative checks that div is an XHTML div element (txt-1 asks for more:
// only basic XHTML, no scripts; that needs an XML parse and is not done).
func (w *walker) narrative(n *d4pb.Narrative, path string) {
	div := strings.TrimSpace(n.GetDiv().GetValue())
	if div == "" {
		return // a missing div is reported by codec as a required element
	}
	if !strings.HasPrefix(div, "<div") || !(strings.HasSuffix(div, "</div>") || strings.HasSuffix(div, "/>")) {
		w.add(outcome.Value, "narrative is not an XHTML div", "text.div must be an XHTML <div> element", path+".div")
	}
}
