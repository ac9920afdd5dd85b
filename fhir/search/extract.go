package search

import (
	"bytes"
	"encoding/json"
	"math"
	"strings"

	"github.com/casefhir/casefhir/fhir"
	"github.com/casefhir/casefhir/fhir/fhirpath"
	"github.com/casefhir/casefhir/fhir/outcome"
)

// Keys of the index tree besides the parameter codes.
const (
	// KeyCompartment holds the patient compartments the resource is in, as
	// "Patient/<id>" strings.
	KeyCompartment = "_compartment"
)

// Sub-keys of index values (see the package documentation for the layout).
const (
	kCode      = "c"  // token: codes / values
	kSysCode   = "sc" // token: "system|code", "|code" when there is no system
	kSys       = "s"  // token: systems; quantity: system
	kText      = "t"  // token: normalised display/text
	kOfType    = "ot" // token: "type-system|type-code|value" of identifiers
	kNorm      = "n"  // string: normalised values
	kExact     = "e"  // string: exact values
	kLo        = "lo" // date, number, quantity: lower bound
	kHi        = "hi" // date, number, quantity: upper bound
	kUnit      = "u"  // quantity: unit; reference: absolute URLs, canonicals
	kRef       = "r"  // reference: local "Type/id"
	kRefID     = "d"  // reference: the id alone
	kRefIdent  = "i"  // reference: identifier tokens (a token value)
	kQCode     = "c"  // quantity: code
	kRefURL    = "u"
	maxFloat64 = math.MaxFloat64
)

// Extract evaluates every search parameter of typ on the resource and
// returns the index tree to store with it (store.Resource.Index). It is
// called once per write; searches never re-read the resource body.
func (r *Registry) Extract(typ string, resourceJSON []byte) (map[string]any, error) {
	d := json.NewDecoder(bytes.NewReader(resourceJSON))
	d.UseNumber()
	var res map[string]any
	if err := d.Decode(&res); err != nil {
		return nil, outcome.Wrap(err, outcome.Structure, "search.Extract", "the resource is not a JSON object")
	}
	if rt, _ := res["resourceType"].(string); rt != typ {
		return nil, outcome.Errorf(outcome.Invalid, "resourceType %q does not match %q", rt, typ).WithOp("search.Extract")
	}
	return r.ExtractValue(typ, res), nil
}

// ExtractValue is Extract over an already decoded resource (decoded with
// json.Decoder.UseNumber, or with float64 numbers).
func (r *Registry) ExtractValue(typ string, res map[string]any) map[string]any {
	idx := make(map[string]any, 16)
	for _, p := range r.types[typ] {
		if p.expr == nil || !p.Supported() {
			continue
		}
		items := p.expr.Eval(res)
		if len(items) == 0 {
			continue
		}
		if v := indexValue(p.Type, p, items); v != nil {
			idx[p.key] = v
		}
	}
	if c := compartments(typ, res, idx); len(c) > 0 {
		idx[KeyCompartment] = c
	}
	if sv := sortValues(r.types[typ], idx); sv != nil {
		idx[KeySort] = sv
	}
	return idx
}

// indexValue builds the index value of one parameter from its items; nil
// when nothing indexable was found.
func indexValue(t ParamType, p *Param, items []fhirpath.Item) any {
	switch t {
	case TypeString:
		return stringValue(items)
	case TypeToken:
		return tokenValue(items)
	case TypeReference:
		return referenceValue(items)
	case TypeDate:
		return dateValue(items)
	case TypeNumber:
		return quantityValue(items, false)
	case TypeQuantity:
		return quantityValue(items, true)
	case TypeURI:
		return uriValue(items)
	case TypeComposite:
		if p == nil {
			return nil
		}
		return compositeValue(p, items)
	}
	return nil
}

// set is an insertion-ordered string set for building index arrays.
type set struct {
	list []any
	seen map[string]struct{}
}

func (s *set) add(v string) {
	if v == "" {
		return
	}
	if s.seen == nil {
		s.seen = map[string]struct{}{}
	}
	if _, ok := s.seen[v]; ok {
		return
	}
	s.seen[v] = struct{}{}
	s.list = append(s.list, v)
}

func putSet(m map[string]any, k string, s *set) {
	if len(s.list) > 0 {
		m[k] = s.list
	}
}

func getString(m map[string]any, k string) string {
	s, _ := m[k].(string)
	return s
}

// ---- string ----

var nameParts = []string{"text", "family", "given", "prefix", "suffix", "line", "city", "district", "state", "postalCode", "country"}

func stringValue(items []fhirpath.Item) any {
	var n, e set
	add := func(s string) {
		if s = strings.TrimSpace(s); s != "" {
			e.add(s)
			n.add(normalize(s))
		}
	}
	for _, it := range items {
		switch v := it.Value.(type) {
		case string:
			add(v)
		case map[string]any:
			found := false
			for _, k := range nameParts {
				switch x := v[k].(type) {
				case string:
					add(x)
					found = true
				case []any:
					for _, y := range x {
						if s, ok := y.(string); ok {
							add(s)
							found = true
						}
					}
				}
			}
			if given, ok := v["given"].([]any); ok {
				if fam, ok := v["family"].(string); ok && len(given) > 0 {
					parts := make([]string, 0, len(given)+1)
					for _, g := range given {
						if s, ok := g.(string); ok {
							parts = append(parts, s)
						}
					}
					add(strings.Join(append(parts, fam), " "))
				}
			}
			if !found {
				leafStrings(v, add, 0)
			}
		}
	}
	if len(n.list) == 0 {
		return nil
	}
	m := map[string]any{}
	putSet(m, kNorm, &n)
	putSet(m, kExact, &e)
	return m
}

func leafStrings(v any, add func(string), depth int) {
	if depth > 4 {
		return
	}
	switch x := v.(type) {
	case string:
		add(x)
	case map[string]any:
		for k, y := range x {
			if k == "extension" || k == "id" || k == "url" || k == "system" || k == "use" {
				continue
			}
			leafStrings(y, add, depth+1)
		}
	case []any:
		for _, y := range x {
			leafStrings(y, add, depth+1)
		}
	}
}

// ---- token ----

type tokenBuilder struct {
	c, sc, s, t, ot set
}

func (b *tokenBuilder) code(system, code string) {
	if code == "" {
		if system != "" {
			b.s.add(system)
		}
		return
	}
	b.c.add(code)
	b.sc.add(system + "|" + code)
	if system != "" {
		b.s.add(system)
	}
}

func (b *tokenBuilder) text(s string) {
	if s = strings.TrimSpace(s); s != "" {
		b.t.add(normalize(s))
	}
}

func (b *tokenBuilder) coding(m map[string]any) {
	b.code(getString(m, "system"), getString(m, "code"))
	b.text(getString(m, "display"))
}

func (b *tokenBuilder) value() map[string]any {
	if len(b.c.list) == 0 && len(b.s.list) == 0 && len(b.t.list) == 0 {
		return nil
	}
	m := map[string]any{}
	putSet(m, kCode, &b.c)
	putSet(m, kSysCode, &b.sc)
	putSet(m, kSys, &b.s)
	putSet(m, kText, &b.t)
	putSet(m, kOfType, &b.ot)
	return m
}

func (b *tokenBuilder) item(it fhirpath.Item) {
	switch v := it.Value.(type) {
	case string:
		b.code("", v)
	case bool:
		if v {
			b.code("", "true")
		} else {
			b.code("", "false")
		}
	case json.Number:
		b.code("", string(v))
	case map[string]any:
		switch {
		case v["coding"] != nil || (it.Type == "CodeableConcept"):
			if cs, ok := v["coding"].([]any); ok {
				for _, c := range cs {
					if cm, ok := c.(map[string]any); ok {
						b.coding(cm)
					}
				}
			}
			b.text(getString(v, "text"))
		case v["value"] != nil && (it.Type == "" || it.Type == "Identifier" || it.Type == "ContactPoint"):
			// Identifier or ContactPoint
			val, _ := v["value"].(string)
			b.code(getString(v, "system"), val)
			if tm, ok := v["type"].(map[string]any); ok {
				b.text(getString(tm, "text"))
				if cs, ok := tm["coding"].([]any); ok {
					for _, c := range cs {
						if cm, ok := c.(map[string]any); ok && val != "" {
							b.ot.add(getString(cm, "system") + "|" + getString(cm, "code") + "|" + val)
							b.text(getString(cm, "display"))
						}
					}
				}
			}
		case v["code"] != nil || v["system"] != nil:
			b.coding(v)
		case v["text"] != nil:
			b.text(getString(v, "text"))
		}
	}
}

func tokenValue(items []fhirpath.Item) any {
	var b tokenBuilder
	for _, it := range items {
		b.item(it)
	}
	if v := b.value(); v != nil {
		return v
	}
	return nil
}

// ---- reference ----

func referenceValue(items []fhirpath.Item) any {
	var r, d, u set
	var ident tokenBuilder
	addRef := func(s string) {
		if s == "" || strings.HasPrefix(s, "#") {
			return
		}
		if strings.HasPrefix(s, "urn:") {
			u.add(s)
			return
		}
		if strings.Contains(s, "://") {
			u.add(s)
			if i := strings.IndexByte(s, '|'); i >= 0 { // canonical with version
				u.add(s[:i])
			}
			return
		}
		if ref, ok := fhir.ParseReference(s); ok && ref.Type != "" {
			r.add(ref.Local())
			d.add(ref.ID)
			return
		}
		u.add(s)
		if i := strings.IndexByte(s, '|'); i >= 0 {
			u.add(s[:i])
		}
	}
	for _, it := range items {
		switch v := it.Value.(type) {
		case string:
			addRef(v)
		case map[string]any:
			addRef(getString(v, "reference"))
			if id, ok := v["identifier"].(map[string]any); ok {
				ident.item(fhirpath.Item{Value: id, Type: "Identifier"})
			}
		}
	}
	m := map[string]any{}
	putSet(m, kRef, &r)
	putSet(m, kRefID, &d)
	putSet(m, kRefURL, &u)
	if iv := ident.value(); iv != nil {
		m[kRefIdent] = iv
	}
	if len(m) == 0 {
		return nil
	}
	return m
}

// ---- uri ----

func uriValue(items []fhirpath.Item) any {
	var s set
	for _, it := range items {
		if v, ok := it.Value.(string); ok {
			s.add(v)
			if i := strings.IndexByte(v, '|'); i > 0 {
				s.add(v[:i])
			}
		}
	}
	if len(s.list) == 0 {
		return nil
	}
	return s.list
}

// ---- date ----

func dateValue(items []fhirpath.Item) any {
	var out []any
	add := func(dr dateRange) {
		out = append(out, map[string]any{kLo: dr.lo, kHi: dr.hi})
	}
	period := func(m map[string]any) {
		s, okS := parseDate(getString(m, "start"))
		e, okE := parseDate(getString(m, "end"))
		if !okS && !okE {
			return
		}
		dr := dateRange{minTime, maxTime}
		if okS {
			dr.lo = s.lo
		}
		if okE {
			dr.hi = e.hi
		}
		add(dr)
	}
	for _, it := range items {
		switch v := it.Value.(type) {
		case string:
			if dr, ok := parseDate(v); ok {
				add(dr)
			}
		case map[string]any:
			switch {
			case v["start"] != nil || v["end"] != nil:
				period(v)
			case v["event"] != nil || v["repeat"] != nil: // Timing
				if ev, ok := v["event"].([]any); ok {
					for _, e := range ev {
						if s, ok := e.(string); ok {
							if dr, ok := parseDate(s); ok {
								add(dr)
							}
						}
					}
				}
				if rep, ok := v["repeat"].(map[string]any); ok {
					if bp, ok := rep["boundsPeriod"].(map[string]any); ok {
						period(bp)
					}
				}
			}
		}
	}
	if len(out) == 0 {
		return nil
	}
	return out
}

// ---- number and quantity ----

func toFloat(v any) (float64, bool) {
	switch x := v.(type) {
	case json.Number:
		f, err := x.Float64()
		return f, err == nil
	case float64:
		return x, true
	}
	return 0, false
}

func quantityValue(items []fhirpath.Item, withUnits bool) any {
	var out []any
	point := func(f float64, m map[string]any) {
		e := map[string]any{kLo: f, kHi: f}
		if withUnits && m != nil {
			unitsOf(e, m)
		}
		out = append(out, e)
	}
	for _, it := range items {
		switch v := it.Value.(type) {
		case json.Number, float64:
			if f, ok := toFloat(v); ok {
				point(f, nil)
			}
		case map[string]any:
			if f, ok := toFloat(v["value"]); ok {
				point(f, v)
				continue
			}
			low, _ := v["low"].(map[string]any)
			high, _ := v["high"].(map[string]any)
			if low == nil && high == nil {
				continue
			}
			e := map[string]any{kLo: -maxFloat64, kHi: maxFloat64}
			if f, ok := toFloat(low["value"]); ok {
				e[kLo] = f
			}
			if f, ok := toFloat(high["value"]); ok {
				e[kHi] = f
			}
			if withUnits {
				if low != nil {
					unitsOf(e, low)
				} else {
					unitsOf(e, high)
				}
			}
			out = append(out, e)
		}
	}
	if len(out) == 0 {
		return nil
	}
	return out
}

func unitsOf(e, m map[string]any) {
	if cur := getString(m, "currency"); cur != "" { // Money
		e[kSys] = "urn:iso:std:iso:4217"
		e[kQCode] = cur
		return
	}
	if s := getString(m, "system"); s != "" {
		e[kSys] = s
	}
	if c := getString(m, "code"); c != "" {
		e[kQCode] = c
	}
	if u := getString(m, "unit"); u != "" {
		e[kUnit] = u
	}
}

// ---- composite ----

func compositeValue(p *Param, items []fhirpath.Item) any {
	var out []any
	for _, root := range items {
		tuple := make(map[string]any, len(p.Components))
		for i, c := range p.Components {
			if c.expr == nil {
				return nil
			}
			vals := c.expr.EvalItem(root)
			v := indexValue(c.Type, nil, vals)
			if v == nil {
				tuple = nil
				break
			}
			tuple[compKey(i)] = v
		}
		if tuple != nil {
			out = append(out, tuple)
		}
	}
	if len(out) == 0 {
		return nil
	}
	return out
}

func compKey(i int) string { return string(rune('0' + i)) }

// ---- compartments ----

// patientCompartment lists, per resource type, the search parameters that
// put a resource into a Patient's compartment (R4 CompartmentDefinition
// "patient", http://hl7.org/fhir/R4/compartmentdefinition-patient.html).
// A Patient is also in its own compartment.
var patientCompartment = map[string][]string{
	"Account":                     {"subject"},
	"AdverseEvent":                {"subject"},
	"AllergyIntolerance":          {"patient", "recorder", "asserter"},
	"Appointment":                 {"actor"},
	"AppointmentResponse":         {"actor"},
	"AuditEvent":                  {"patient"},
	"Basic":                       {"patient", "author"},
	"BodyStructure":               {"patient"},
	"CarePlan":                    {"patient", "performer"},
	"CareTeam":                    {"patient", "participant"},
	"ChargeItem":                  {"subject"},
	"Claim":                       {"patient", "payee"},
	"ClaimResponse":               {"patient"},
	"ClinicalImpression":          {"subject"},
	"Communication":               {"subject", "sender", "recipient"},
	"CommunicationRequest":        {"subject", "sender", "recipient", "requester"},
	"Composition":                 {"subject", "author", "attester"},
	"Condition":                   {"patient", "asserter"},
	"Consent":                     {"patient"},
	"Coverage":                    {"policy-holder", "subscriber", "beneficiary", "payor"},
	"CoverageEligibilityRequest":  {"patient"},
	"CoverageEligibilityResponse": {"patient"},
	"DetectedIssue":               {"patient"},
	"DeviceRequest":               {"subject", "performer"},
	"DeviceUseStatement":          {"subject"},
	"DiagnosticReport":            {"subject"},
	"DocumentManifest":            {"subject", "author", "recipient"},
	"DocumentReference":           {"subject", "author"},
	"Encounter":                   {"patient"},
	"EnrollmentRequest":           {"subject"},
	"EpisodeOfCare":               {"patient"},
	"ExplanationOfBenefit":        {"patient", "payee"},
	"FamilyMemberHistory":         {"patient"},
	"Flag":                        {"patient"},
	"Goal":                        {"patient"},
	"Group":                       {"member"},
	"ImagingStudy":                {"patient"},
	"Immunization":                {"patient"},
	"ImmunizationEvaluation":      {"patient"},
	"ImmunizationRecommendation":  {"patient"},
	"Invoice":                     {"subject", "patient", "recipient"},
	"List":                        {"subject", "source"},
	"MeasureReport":               {"patient"},
	"Media":                       {"subject"},
	"MedicationAdministration":    {"patient", "performer", "subject"},
	"MedicationDispense":          {"subject", "patient", "receiver"},
	"MedicationRequest":           {"subject"},
	"MedicationStatement":         {"subject"},
	"MolecularSequence":           {"patient"},
	"NutritionOrder":              {"patient"},
	"Observation":                 {"subject", "performer"},
	"Patient":                     {"link"},
	"Person":                      {"patient"},
	"Procedure":                   {"patient", "performer"},
	"Provenance":                  {"patient"},
	"QuestionnaireResponse":       {"subject", "author"},
	"RelatedPerson":               {"patient"},
	"RequestGroup":                {"subject", "participant"},
	"ResearchSubject":             {"individual"},
	"RiskAssessment":              {"subject"},
	"Schedule":                    {"actor"},
	"ServiceRequest":              {"subject", "performer"},
	"Specimen":                    {"subject"},
	"SupplyDelivery":              {"patient"},
	"SupplyRequest":               {"subject"},
	"VisionPrescription":          {"patient"},
}

// PatientCompartmentParams returns the parameters that put a resource of
// typ into a Patient's compartment (nil: typ is never in one).
func PatientCompartmentParams(typ string) []string { return patientCompartment[typ] }

// compartments returns the "Patient/<id>" compartments of an indexed resource.
func compartments(typ string, res map[string]any, idx map[string]any) []any {
	var s set
	if typ == "Patient" {
		if id, ok := res["id"].(string); ok && id != "" {
			s.add("Patient/" + id)
		}
	}
	for _, code := range patientCompartment[typ] {
		rv, ok := idx[indexKey(code)].(map[string]any)
		if !ok {
			continue
		}
		refs, _ := rv[kRef].([]any)
		for _, x := range refs {
			if ref, ok := x.(string); ok && strings.HasPrefix(ref, "Patient/") {
				s.add(ref)
			}
		}
	}
	return s.list
}

// LocalRefs returns the local "Type/id" references an index holds for the
// parameter code (for _include, _has and chaining).
func LocalRefs(index map[string]any, code string) []string {
	rv, ok := index[indexKey(code)].(map[string]any)
	if !ok {
		return nil
	}
	refs, _ := rv[kRef].([]any)
	out := make([]string, 0, len(refs))
	for _, x := range refs {
		if s, ok := x.(string); ok {
			out = append(out, s)
		}
	}
	return out
}
