package conformance

import (
	"encoding/json"
	"time"
)

// CapabilityInput is what the server actually implements, from which the
// CapabilityStatement is generated.
type CapabilityInput struct {
	Software, Version string
	BaseURL           string
	// Date is the publication date (the server's start time).
	Date time.Time
	// Types maps each supported resource type to its capabilities.
	Types map[string]TypeCapability
	// TypeOrder lists the types in output order.
	TypeOrder []string
	// SystemInteractions: transaction, batch, search-system, history-system.
	SystemInteractions []string
	// SystemOperations are whole-system operations.
	SystemOperations []OperationRef
	// SystemSearchParams are the parameters of whole-system search.
	SystemSearchParams []SearchParamRef
	// Security: SMART OAuth endpoints; nil when auth is off.
	Security *SecurityInfo
}

// TypeCapability describes one resource type.
type TypeCapability struct {
	Interactions      []string
	SearchParams      []SearchParamRef
	Operations        []OperationRef
	SearchInclude     []string
	SearchRevInclude  []string
	ConditionalCreate bool
	ConditionalUpdate bool
	ConditionalDelete string // not-supported | single | multiple
	ReadHistory       bool
	UpdateCreate      bool
	Profile           string
}

// SearchParamRef is a supported search parameter.
type SearchParamRef struct {
	Name, Definition, Type, Documentation string
}

// OperationRef is a supported operation.
type OperationRef struct {
	Name, Definition string
}

// SecurityInfo is the SMART part of rest.security.
type SecurityInfo struct {
	Authorize, Token, Revoke, Introspect, Register, Manage string
}

// CapabilityStatement renders the statement as JSON.
func CapabilityStatement(in CapabilityInput) []byte {
	type ext struct {
		URL      string `json:"url"`
		ValueURI string `json:"valueUri,omitempty"`
		Ext      []ext  `json:"extension,omitempty"`
	}
	type coding struct {
		System  string `json:"system"`
		Code    string `json:"code"`
		Display string `json:"display,omitempty"`
	}
	type cc struct {
		Coding []coding `json:"coding"`
		Text   string   `json:"text,omitempty"`
	}
	type sec struct {
		Extension   []ext  `json:"extension,omitempty"`
		Cors        bool   `json:"cors"`
		Service     []cc   `json:"service"`
		Description string `json:"description,omitempty"`
	}
	type interaction struct {
		Code string `json:"code"`
	}
	type sp struct {
		Name          string `json:"name"`
		Definition    string `json:"definition,omitempty"`
		Type          string `json:"type"`
		Documentation string `json:"documentation,omitempty"`
	}
	type op struct {
		Name       string `json:"name"`
		Definition string `json:"definition"`
	}
	type resource struct {
		Type              string        `json:"type"`
		Profile           string        `json:"profile,omitempty"`
		Interaction       []interaction `json:"interaction"`
		Versioning        string        `json:"versioning"`
		ReadHistory       bool          `json:"readHistory"`
		UpdateCreate      bool          `json:"updateCreate"`
		ConditionalCreate bool          `json:"conditionalCreate"`
		ConditionalRead   string        `json:"conditionalRead"`
		ConditionalUpdate bool          `json:"conditionalUpdate"`
		ConditionalDelete string        `json:"conditionalDelete"`
		SearchInclude     []string      `json:"searchInclude,omitempty"`
		SearchRevInclude  []string      `json:"searchRevInclude,omitempty"`
		SearchParam       []sp          `json:"searchParam,omitempty"`
		Operation         []op          `json:"operation,omitempty"`
	}
	type rest struct {
		Mode        string        `json:"mode"`
		Security    *sec          `json:"security,omitempty"`
		Resource    []resource    `json:"resource"`
		Interaction []interaction `json:"interaction,omitempty"`
		SearchParam []sp          `json:"searchParam,omitempty"`
		Operation   []op          `json:"operation,omitempty"`
	}
	type software struct {
		Name        string `json:"name"`
		Version     string `json:"version,omitempty"`
		ReleaseDate string `json:"releaseDate,omitempty"`
	}
	type impl struct {
		Description string `json:"description"`
		URL         string `json:"url,omitempty"`
	}
	type cs struct {
		ResourceType   string   `json:"resourceType"`
		ID             string   `json:"id"`
		URL            string   `json:"url"`
		Name           string   `json:"name"`
		Title          string   `json:"title"`
		Status         string   `json:"status"`
		Date           string   `json:"date"`
		Publisher      string   `json:"publisher"`
		Kind           string   `json:"kind"`
		Software       software `json:"software"`
		Implementation impl     `json:"implementation"`
		FhirVersion    string   `json:"fhirVersion"`
		Format         []string `json:"format"`
		PatchFormat    []string `json:"patchFormat"`
		Rest           []rest   `json:"rest"`
	}
	spOut := func(in []SearchParamRef) []sp {
		out := make([]sp, 0, len(in))
		for _, p := range in {
			out = append(out, sp(p))
		}
		return out
	}
	opOut := func(in []OperationRef) []op {
		out := make([]op, 0, len(in))
		for _, o := range in {
			out = append(out, op(o))
		}
		return out
	}
	r := rest{Mode: "server"}
	for _, t := range in.TypeOrder {
		tc := in.Types[t]
		res := resource{Type: t, Profile: tc.Profile, Versioning: "versioned-update", ReadHistory: tc.ReadHistory,
			UpdateCreate: tc.UpdateCreate, ConditionalCreate: tc.ConditionalCreate, ConditionalRead: "full-support",
			ConditionalUpdate: tc.ConditionalUpdate, ConditionalDelete: tc.ConditionalDelete,
			SearchInclude: tc.SearchInclude, SearchRevInclude: tc.SearchRevInclude,
			SearchParam: spOut(tc.SearchParams), Operation: opOut(tc.Operations)}
		if res.ConditionalDelete == "" {
			res.ConditionalDelete = "not-supported"
		}
		for _, i := range tc.Interactions {
			res.Interaction = append(res.Interaction, interaction{Code: i})
		}
		r.Resource = append(r.Resource, res)
	}
	for _, i := range in.SystemInteractions {
		r.Interaction = append(r.Interaction, interaction{Code: i})
	}
	r.SearchParam = spOut(in.SystemSearchParams)
	r.Operation = opOut(in.SystemOperations)
	if s := in.Security; s != nil {
		oauth := ext{URL: "http://fhir-registry.smarthealthit.org/StructureDefinition/oauth-uris"}
		for _, kv := range [][2]string{{"authorize", s.Authorize}, {"token", s.Token}, {"revoke", s.Revoke},
			{"introspect", s.Introspect}, {"register", s.Register}, {"manage", s.Manage}} {
			if kv[1] != "" {
				oauth.Ext = append(oauth.Ext, ext{URL: kv[0], ValueURI: kv[1]})
			}
		}
		r.Security = &sec{
			Extension: []ext{oauth},
			Cors:      true,
			Service: []cc{{Coding: []coding{{System: "http://terminology.hl7.org/CodeSystem/restful-security-service",
				Code: "SMART-on-FHIR", Display: "SMART-on-FHIR"}}, Text: "OAuth2 using SMART-on-FHIR profile (see http://docs.smarthealthit.org)"}},
			Description: "SMART App Launch 2.x resource server: JWT access tokens from the configured OpenID Connect issuer; scopes v1 and v2.",
		}
	}
	doc := cs{
		ResourceType: "CapabilityStatement", ID: "casefhir", URL: in.BaseURL + "/metadata", Name: "CasefhirCapabilityStatement",
		Title: "casefhir FHIR R4 server", Status: "active", Date: in.Date.UTC().Format(time.RFC3339), Publisher: "casefhir",
		Kind: "instance", Software: software{Name: in.Software, Version: in.Version},
		Implementation: impl{Description: "casefhir: FHIR R4 server for medical case management", URL: in.BaseURL},
		FhirVersion:    "4.0.1", Format: []string{"application/fhir+json", "json"},
		PatchFormat: []string{"application/json-patch+json"},
		Rest:        []rest{r},
	}
	b, _ := json.Marshal(doc)
	return b
}
