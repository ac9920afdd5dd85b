package audit

import (
	"encoding/json"
	"net/http"
	"slices"
	"strconv"
	"strings"
	"time"

	"github.com/casefhir/casefhir/fhir"
	"github.com/casefhir/casefhir/fhir/outcome"
	"github.com/casefhir/casefhir/server/auth"
	"github.com/casefhir/casefhir/server/interaction"
)

// Event is one audited FHIR request. It holds identifiers and names only:
// never resource content, search values or tokens.
type Event struct {
	// Start and End bound the request.
	Start, End time.Time
	// Interaction is the FHIR restful interaction code (read, vread,
	// update, patch, delete, history-instance, history-type,
	// history-system, create, search-type, search-system, batch,
	// transaction, operation).
	Interaction string
	// Operation is the operation name without '$' (Interaction operation).
	Operation string
	// Type, ID and Version name the target ("" where not applicable).
	Type, ID, Version string
	// Compartment is the target type of a compartment search.
	Compartment string
	// QueryParams are the names of the search/query parameters used,
	// sorted and unique (values are never kept).
	QueryParams []string
	// Status is the HTTP status of the response.
	Status int
	// IssueCode is the OperationOutcome issue code of a failure.
	IssueCode string

	// Who: from the verified token (empty for anonymous requests).
	Subject, ClientID, FHIRUser, Patient, Issuer, TokenID string
	// Unrestricted is set when auth is off.
	Unrestricted bool
	// SourceAddress is the client's network address (IP).
	SourceAddress string
	// RequestID correlates with the access log.
	RequestID string
}

// FromRequest describes a finished request. p may be nil (no token); err
// is the error the request failed with, if any (only its issue code and
// status are kept).
func FromRequest(r *interaction.Request, p *auth.Principal, status int, err error, start, end time.Time) Event {
	e := Event{Start: start, End: end, Status: status}
	if r != nil {
		e.Interaction = interactionCode(r.Kind)
		e.Operation = r.Operation
		e.Type, e.ID, e.Version, e.Compartment = r.Type, r.ID, r.Version, r.Compartment
		e.QueryParams = paramNames(r)
	}
	if err != nil {
		oe := outcome.As(err)
		e.IssueCode = string(oe.Code)
		if e.Status == 0 {
			e.Status = oe.HTTPStatus()
		}
	}
	if p != nil {
		e.Subject, e.ClientID, e.FHIRUser, e.Patient = p.Subject, p.ClientID, p.FHIRUser, p.Patient
		e.Issuer, e.TokenID, e.Unrestricted = p.Issuer, p.TokenID, p.IsUnrestricted()
	}
	return e
}

func interactionCode(k interaction.Kind) string {
	switch k {
	case interaction.KindConditionalUpdate:
		return "update"
	case interaction.KindConditionalPatch:
		return "patch"
	case interaction.KindConditionalDelete:
		return "delete"
	case interaction.KindSearchCompartment:
		return "search-type"
	case interaction.KindBundle:
		// The Bundle as one request; its entries have events of their own.
		return "batch"
	}
	return string(k)
}

// paramNames returns the sorted, unique query parameter names of r,
// without modifiers' values; conditional criteria in If-None-Exist count
// as query parameters.
func paramNames(r *interaction.Request) []string {
	var names []string
	for k := range r.Query {
		names = append(names, k)
	}
	if c := r.Header.Get("If-None-Exist"); c != "" {
		c = strings.TrimPrefix(c, "?")
		if i := strings.IndexByte(c, '?'); i >= 0 {
			c = c[i+1:]
		}
		for part := range strings.SplitSeq(c, "&") {
			if k, _, _ := strings.Cut(part, "="); k != "" {
				names = append(names, k)
			}
		}
	}
	for i, n := range names {
		if len(n) > 100 {
			names[i] = n[:100]
		}
	}
	slices.Sort(names)
	return slices.Compact(names)
}

// action maps an interaction to AuditEvent.action (C, R, U, D, E).
func (e Event) action() string {
	switch e.Interaction {
	case "create":
		return "C"
	case "read", "vread", "history-instance", "history-type", "history-system":
		return "R"
	case "update", "patch":
		return "U"
	case "delete":
		return "D"
	}
	return "E" // search, batch, transaction, operation
}

// outcomeCode maps the HTTP status to AuditEvent.outcome: 0 success,
// 4 minor failure (client error), 8 serious failure (server error).
func (e Event) outcomeCode() string {
	switch {
	case e.Status >= 500:
		return "8"
	case e.Status >= 400:
		return "4"
	}
	return "0"
}

// Coding systems used in AuditEvents.
const (
	systemEventType   = "http://terminology.hl7.org/CodeSystem/audit-event-type"
	systemInteraction = "http://hl7.org/fhir/restful-interaction"
	systemEntityType  = "http://terminology.hl7.org/CodeSystem/audit-entity-type"
	systemObjectRole  = "http://terminology.hl7.org/CodeSystem/object-role"
	systemSourceType  = "http://terminology.hl7.org/CodeSystem/security-source-type"
	systemDICOM       = "http://dicom.nema.org/resources/ontology/DCM"
	systemPartType    = "http://terminology.hl7.org/CodeSystem/v3-ParticipationType"
)

type coding struct {
	System  string `json:"system,omitempty"`
	Code    string `json:"code,omitempty"`
	Display string `json:"display,omitempty"`
}

type codeableConcept struct {
	Coding []coding `json:"coding,omitempty"`
	Text   string   `json:"text,omitempty"`
}

type identifier struct {
	System string `json:"system,omitempty"`
	Value  string `json:"value,omitempty"`
}

type reference struct {
	Reference  string      `json:"reference,omitempty"`
	Type       string      `json:"type,omitempty"`
	Identifier *identifier `json:"identifier,omitempty"`
	Display    string      `json:"display,omitempty"`
}

type network struct {
	Address string `json:"address,omitempty"`
	Type    string `json:"type,omitempty"`
}

type agent struct {
	Type      *codeableConcept `json:"type,omitempty"`
	Who       *reference       `json:"who,omitempty"`
	AltID     string           `json:"altId,omitempty"`
	Requestor bool             `json:"requestor"`
	Policy    []string         `json:"policy,omitempty"`
	Network   *network         `json:"network,omitempty"`
}

type source struct {
	Site     string     `json:"site,omitempty"`
	Observer *reference `json:"observer"`
	Type     []coding   `json:"type,omitempty"`
}

type detail struct {
	Type        string `json:"type"`
	ValueString string `json:"valueString"`
}

type entity struct {
	What   *reference `json:"what,omitempty"`
	Type   *coding    `json:"type,omitempty"`
	Role   *coding    `json:"role,omitempty"`
	Detail []detail   `json:"detail,omitempty"`
}

type period struct {
	Start string `json:"start,omitempty"`
	End   string `json:"end,omitempty"`
}

type auditEvent struct {
	ResourceType string   `json:"resourceType"`
	Type         coding   `json:"type"`
	Subtype      []coding `json:"subtype,omitempty"`
	Action       string   `json:"action,omitempty"`
	Period       *period  `json:"period,omitempty"`
	Recorded     string   `json:"recorded"`
	Outcome      string   `json:"outcome,omitempty"`
	OutcomeDesc  string   `json:"outcomeDesc,omitempty"`
	Agent        []agent  `json:"agent"`
	Source       source   `json:"source"`
	Entity       []entity `json:"entity,omitempty"`
}

// Resource renders e as an R4 AuditEvent (JSON, without id and meta).
// site is the server's FHIR base URL (source.site); recorded is when the
// event was written.
func Resource(e Event, site string, recorded time.Time) []byte {
	ae := auditEvent{
		ResourceType: "AuditEvent",
		Type:         coding{System: systemEventType, Code: "rest", Display: "RESTful Operation"},
		Action:       e.action(),
		Recorded:     fhir.FormatInstant(recorded),
		Outcome:      e.outcomeCode(),
		Source: source{
			Site:     site,
			Observer: &reference{Display: "casefhir"},
			Type:     []coding{{System: systemSourceType, Code: "4", Display: "Application Server"}},
		},
	}
	if e.Interaction != "" {
		ae.Subtype = []coding{{System: systemInteraction, Code: e.Interaction}}
	}
	if !e.Start.IsZero() {
		ae.Period = &period{Start: fhir.FormatInstant(e.Start)}
		if !e.End.IsZero() {
			ae.Period.End = fhir.FormatInstant(e.End)
		}
	}
	if e.Status != 0 {
		desc := "HTTP " + strconv.Itoa(e.Status)
		if t := http.StatusText(e.Status); t != "" {
			desc += " " + t
		}
		if e.IssueCode != "" {
			desc += " (" + e.IssueCode + ")"
		}
		ae.OutcomeDesc = desc
	}

	// The requesting user (or service).
	user := agent{Requestor: true, Type: &codeableConcept{Coding: []coding{{System: systemPartType, Code: "IRCP", Display: "information recipient"}}}}
	switch {
	case e.Unrestricted:
		user.Who = &reference{Display: "anonymous (authentication off)"}
	case e.Subject == "" && e.ClientID == "":
		user.Who = &reference{Display: "unauthenticated"}
	default:
		who := &reference{}
		if e.Subject != "" {
			who.Identifier = &identifier{System: e.Issuer, Value: e.Subject}
		}
		if ref, ok := fhir.ParseReference(e.FHIRUser); ok && ref.Type != "" && ref.ID != "" {
			who.Reference = e.FHIRUser
		}
		user.Who = who
		user.AltID = e.Subject
		if e.TokenID != "" {
			user.Policy = []string{e.TokenID}
		}
	}
	if e.SourceAddress != "" {
		user.Network = &network{Address: e.SourceAddress, Type: "2"} // 2 = IP address
	}
	ae.Agent = append(ae.Agent, user)
	// The client application.
	if e.ClientID != "" {
		ae.Agent = append(ae.Agent, agent{
			Type:      &codeableConcept{Coding: []coding{{System: systemDICOM, Code: "110150", Display: "Application"}}},
			Who:       &reference{Identifier: &identifier{System: e.Issuer, Value: e.ClientID}},
			Requestor: false,
		})
	}

	// What was touched.
	target := entity{Type: &coding{System: systemEntityType, Code: "2", Display: "System Object"}}
	switch {
	case e.Type != "" && e.ID != "" && fhir.IsValidID(e.ID):
		ref := e.Type + "/" + e.ID
		if e.Version != "" && fhir.IsValidID(e.Version) {
			ref += "/_history/" + e.Version
		}
		target.What = &reference{Reference: ref}
	case e.Type != "":
		target.What = &reference{Type: e.Type}
	}
	if len(e.QueryParams) > 0 {
		target.Detail = append(target.Detail, detail{Type: "query-parameters", ValueString: strings.Join(e.QueryParams, ",")})
	}
	if e.Operation != "" {
		target.Detail = append(target.Detail, detail{Type: "operation", ValueString: "$" + e.Operation})
	}
	if e.Compartment != "" {
		target.Detail = append(target.Detail, detail{Type: "compartment-type", ValueString: e.Compartment})
	}
	if e.RequestID != "" {
		target.Detail = append(target.Detail, detail{Type: "request-id", ValueString: e.RequestID})
	}
	if target.What != nil || len(target.Detail) > 0 {
		ae.Entity = append(ae.Entity, target)
	}
	// The patient in context, so the event is found by patient.
	if e.Patient != "" && fhir.IsValidID(e.Patient) && !(e.Type == "Patient" && e.ID == e.Patient) {
		ae.Entity = append(ae.Entity, entity{
			What: &reference{Reference: "Patient/" + e.Patient},
			Type: &coding{System: systemEntityType, Code: "1", Display: "Person"},
			Role: &coding{System: systemObjectRole, Code: "1", Display: "Patient"},
		})
	}
	b, err := json.Marshal(ae)
	if err != nil { // cannot happen: strings, bools and slices only
		return nil
	}
	return b
}
