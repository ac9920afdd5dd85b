package auth

import (
	"reflect"
	"strings"
	"testing"
	"unicode/utf8"
)

func TestParseScope(t *testing.T) {
	res := func(ctx Context, typ string, perms Perm, version int, restr ...Param) Scope {
		return Scope{Kind: Resource, Context: ctx, Type: typ, Perms: perms, Version: version, Restrictions: restr}
	}
	unknown := Scope{Kind: Unknown}
	tests := []struct {
		in   string
		want Scope
	}{
		// SMART v1
		{"patient/Observation.read", res(PatientContext, "Observation", PermRead|PermSearch, 1)},
		{"user/CarePlan.write", res(UserContext, "CarePlan", PermCreate|PermUpdate|PermDelete, 1)},
		{"system/*.*", res(SystemContext, "*", PermAll, 1)},
		{"user/*.read", res(UserContext, "*", PermRead|PermSearch, 1)},
		// SMART v2
		{"patient/Observation.rs", res(PatientContext, "Observation", PermRead|PermSearch, 2)},
		{"system/*.cruds", res(SystemContext, "*", PermAll, 2)},
		{"user/EpisodeOfCare.cru", res(UserContext, "EpisodeOfCare", PermCreate|PermRead|PermUpdate, 2)},
		{"user/Task.d", res(UserContext, "Task", PermDelete, 2)},
		{"patient/Patient.s", res(PatientContext, "Patient", PermSearch, 2)},
		{"system/Coverage.cud", res(SystemContext, "Coverage", PermCreate|PermUpdate|PermDelete, 2)},
		// granular
		{"patient/Observation.rs?category=laboratory",
			res(PatientContext, "Observation", PermRead|PermSearch, 2, Param{"category", "laboratory"})},
		{"patient/Observation.rs?category=http://terminology.hl7.org/CodeSystem/observation-category|vital-signs",
			res(PatientContext, "Observation", PermRead|PermSearch, 2,
				Param{"category", "http://terminology.hl7.org/CodeSystem/observation-category|vital-signs"})},
		{"user/Condition.rs?category=problem-list-item&clinical-status=active",
			res(UserContext, "Condition", PermRead|PermSearch, 2, Param{"category", "problem-list-item"}, Param{"clinical-status", "active"})},
		{"patient/Observation.rs?code%3Ain=http%3A%2F%2Fexample.org%2Fvs",
			res(PatientContext, "Observation", PermRead|PermSearch, 2, Param{"code:in", "http://example.org/vs"})},
		// non-resource scopes
		{"openid", Scope{Kind: OpenID}},
		{"fhirUser", Scope{Kind: FHIRUser}},
		{"profile", Scope{Kind: Profile}},
		{"launch", Scope{Kind: Launch}},
		{"launch/patient", Scope{Kind: LaunchContext, Launch: "patient"}},
		{"launch/encounter", Scope{Kind: LaunchContext, Launch: "encounter"}},
		{"offline_access", Scope{Kind: OfflineAccess}},
		{"online_access", Scope{Kind: OnlineAccess}},
		// ignored: never widened
		{"", unknown},
		{"patient/Observation.sr", unknown},   // wrong order
		{"patient/Observation.rr", unknown},   // repeated
		{"patient/Observation.", unknown},     // empty permissions
		{"patient/Observation.x", unknown},    // unknown permission
		{"patient/Observation.rsx", unknown},  // trailing junk
		{"patient/Observation.Read", unknown}, // case
		{"patient/Observation.readwrite", unknown},
		{"patient/observation.rs", unknown}, // not a resource type
		{"patient/Foo.rs", unknown},         // not a resource type
		{"patient/.rs", unknown},            // empty type
		{"patient/**.rs", unknown},          // bad wildcard
		{"Patient/Observation.rs", unknown}, // context case
		{"practitioner/Observation.rs", unknown},
		{"admin/*.*", unknown},
		{"patient/Observation", unknown},                    // no permissions
		{"patient/Observation.read?category=lab", unknown},  // restrictions need v2
		{"patient/Observation.rs?", unknown},                // empty query
		{"patient/Observation.rs?category", unknown},        // no value
		{"patient/Observation.rs?category=", unknown},       // empty value
		{"patient/Observation.rs?=lab", unknown},            // empty name
		{"patient/Observation.rs?category=lab&", unknown},   // empty pair
		{"patient/Observation.rs?cat%ZZ=lab", unknown},      // bad escape
		{"patient/Observation.rs?category=%0Alab", unknown}, // control character
		{"patient/Observation.rs?ca tegory=lab", unknown},
		{"patient/Observation.rs.rs", unknown},
		{"launch/", unknown},
		{"launch/pa tient", unknown},
		{"OPENID", unknown},
		{"patient/*.rs/x", unknown},
		{strings.Repeat("a", 2000), unknown},
	}
	for _, tt := range tests {
		t.Run(tt.in, func(t *testing.T) {
			got := ParseScope(tt.in)
			tt.want.Raw = tt.in
			if !reflect.DeepEqual(got, tt.want) {
				t.Errorf("ParseScope(%q)\n got %+v\nwant %+v", tt.in, got, tt.want)
			}
		})
	}
}

func TestScopeString(t *testing.T) {
	tests := map[string]string{
		"patient/Observation.read": "patient/Observation.rs",
		"user/*.write":             "user/*.cud",
		"system/*.*":               "system/*.cruds",
		"patient/Observation.rs?category=laboratory": "patient/Observation.rs?category=laboratory",
		"launch/patient": "launch/patient",
		"bogus":          "bogus",
	}
	for in, want := range tests {
		if got := ParseScope(in).String(); got != want {
			t.Errorf("ParseScope(%q).String() = %q, want %q", in, got, want)
		}
	}
}

func TestParseScopes(t *testing.T) {
	got := ParseScopes("  openid fhirUser\tpatient/*.rs   bogus launch/patient ")
	var kinds []Kind
	for _, s := range got {
		kinds = append(kinds, s.Kind)
	}
	want := []Kind{OpenID, FHIRUser, Resource, Unknown, LaunchContext}
	if !reflect.DeepEqual(kinds, want) {
		t.Errorf("kinds = %v, want %v", kinds, want)
	}
	if n := len(ParseScopes(strings.Repeat("x ", 2000))); n != maxScopes {
		t.Errorf("ParseScopes kept %d scopes, want the cap %d", n, maxScopes)
	}
	if ParseScopes("") != nil {
		t.Errorf("ParseScopes(\"\") is not empty")
	}
}

func TestPermString(t *testing.T) {
	if got := PermAll.String(); got != "cruds" {
		t.Errorf("PermAll = %q", got)
	}
	if got := (PermSearch | PermRead).String(); got != "rs" {
		t.Errorf("rs = %q", got)
	}
	if !PermAll.Has(PermRead|PermSearch) || PermRead.Has(PermSearch) || PermRead.Has(0) {
		t.Error("Perm.Has is wrong")
	}
}

// FuzzParseScope checks that parsing never panics, that only well-formed
// scopes grant anything, and that a Resource scope's canonical form parses
// back to the same grant.
func FuzzParseScope(f *testing.F) {
	for _, s := range []string{
		"patient/Observation.rs", "user/*.cruds", "system/*.read", "patient/*.*", "user/CarePlan.write",
		"patient/Observation.rs?category=laboratory&code=http://loinc.org|1234-5",
		"launch/patient", "openid", "fhirUser", "offline_access", "patient/Observation.sr",
		"patient/Observation.rs?", "system/Coverage.c?status=active", "patient/Observation.rs?a=%ZZ",
	} {
		f.Add(s)
	}
	f.Fuzz(func(t *testing.T, in string) {
		s := ParseScope(in)
		if s.Raw != in {
			t.Fatalf("Raw = %q, want the input", s.Raw)
		}
		if s.Kind != Resource {
			if s.Perms != 0 || s.Type != "" || s.Context != "" || s.Restrictions != nil {
				t.Fatalf("non-resource scope %q carries a grant: %+v", in, s)
			}
			return
		}
		if s.Perms == 0 || s.Perms&^PermAll != 0 {
			t.Fatalf("%q: bad perms %b", in, s.Perms)
		}
		switch s.Context {
		case PatientContext, UserContext, SystemContext:
		default:
			t.Fatalf("%q: bad context %q", in, s.Context)
		}
		if strings.ContainsAny(in, " \t\r\n") {
			t.Fatalf("%q: a scope with whitespace parsed as a resource scope", in)
		}
		if s.Version == 1 && len(s.Restrictions) > 0 {
			t.Fatalf("%q: v1 scope with restrictions", in)
		}
		for _, p := range s.Restrictions {
			if p.Name == "" || p.Value == "" {
				t.Fatalf("%q: empty restriction %+v", in, p)
			}
		}
		back := ParseScope(s.String())
		if back.Kind != Resource || back.Context != s.Context || back.Type != s.Type || back.Perms != s.Perms ||
			!reflect.DeepEqual(back.Restrictions, s.Restrictions) {
			t.Fatalf("%q: canonical form %q parses to %+v, want %+v", in, s.String(), back, s)
		}
		if !utf8.ValidString(s.String()) && utf8.ValidString(in) {
			t.Fatalf("%q: canonical form is not valid UTF-8", in)
		}
	})
}

// FuzzParseAuthorization checks the Authorization header parser never
// panics and only returns token68 strings.
func FuzzParseAuthorization(f *testing.F) {
	for _, s := range []string{"", "Bearer abc.def.ghi", "bearer   x", "Basic dXNlcjpwYXNz", "Bearer", "Bearer a b", "Bearer ==", "Bearer a=="} {
		f.Add(s)
	}
	f.Fuzz(func(t *testing.T, h string) {
		tok, err := ParseAuthorization(h)
		if err != nil {
			if tok != "" {
				t.Fatalf("token %q returned with an error", tok)
			}
			e, ok := err.(interface{ HTTPStatus() int })
			if !ok || e.HTTPStatus() != 401 {
				t.Fatalf("error %v is not a 401", err)
			}
			return
		}
		if !isToken68(tok) || strings.Contains(h, tok) == false {
			t.Fatalf("bad token %q from %q", tok, h)
		}
	})
}
