package codec

// summaryElements holds, per resource type, the top-level elements the R4
// base definitions mark isSummary (the Σ flag on the resource pages), apart
// from id, meta and implicitRules which Summary always keeps. Choice
// elements are named by their base ("deceased" for deceased[x]).
//
// The R4 protos do not carry isSummary, so this table is kept by hand from
// the R4 (4.0.1) resource definitions. It covers the resource types casefhir
// is exercised with; for any other type, _summary=true falls back to
// _summary=data (everything but text). Regenerate it from the R4
// profiles-resources.json (element.isSummary of top-level elements) when
// extending it.
var summaryElements = map[string]map[string]bool{
	"Patient": set("identifier", "active", "name", "telecom", "gender", "birthDate",
		"deceased", "address", "managingOrganization", "link"),
	"Practitioner": set("identifier", "active", "name", "telecom", "address", "gender", "birthDate"),
	"Organization": set("identifier", "active", "type", "name", "partOf"),
	"Observation": set("identifier", "basedOn", "partOf", "status", "code", "subject", "focus",
		"encounter", "effective", "issued", "performer", "value", "hasMember", "derivedFrom", "component"),
	"Encounter": set("identifier", "status", "class", "type", "serviceType", "subject",
		"episodeOfCare", "participant", "appointment", "reasonCode", "reasonReference", "diagnosis"),
	"EpisodeOfCare": set("identifier", "status", "type", "diagnosis", "patient",
		"managingOrganization", "period"),
	"CarePlan": set("identifier", "instantiatesCanonical", "instantiatesUri", "basedOn", "replaces",
		"partOf", "status", "intent", "category", "title", "description", "subject", "encounter",
		"period", "created", "author", "addresses"),
	"CareTeam": set("identifier", "status", "category", "name", "subject", "encounter", "period", "participant",
		"managingOrganization"),
	"Goal": set("lifecycleStatus", "achievementStatus", "category", "priority", "description",
		"subject", "start", "expressedBy"),
}

func set(names ...string) map[string]bool {
	m := make(map[string]bool, len(names))
	for _, n := range names {
		m[n] = true
	}
	return m
}
