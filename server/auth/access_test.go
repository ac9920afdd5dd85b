package auth

import (
	"net/http"
	"reflect"
	"strings"
	"testing"

	"github.com/casefhir/casefhir/fhir/outcome"
)

func principal(scope, patient string) *Principal {
	return &Principal{Subject: "s", Scopes: ParseScopes(scope), RawScope: scope, Patient: patient, authenticated: true}
}

func TestAllow(t *testing.T) {
	lab := []Param{{"category", "laboratory"}}
	vital := []Param{{"category", "vital-signs"}}
	tests := []struct {
		name    string
		scope   string
		patient string
		action  Action
		typ     string
		want    Grant // compared when wantErr == ""
		wantErr string
	}{
		{name: "v2 read", scope: "user/Observation.rs", action: Read, typ: "Observation",
			want: Grant{Context: UserContext}},
		{name: "v2 search", scope: "user/Observation.rs", action: Search, typ: "Observation",
			want: Grant{Context: UserContext}},
		{name: "v2 read only, search denied", scope: "user/Observation.r", action: Search, typ: "Observation",
			wantErr: "user/Observation.s"},
		{name: "v2 no create", scope: "user/Observation.rs", action: Create, typ: "Observation",
			wantErr: "user/Observation.c"},
		{name: "other type", scope: "user/Observation.rs", action: Read, typ: "Condition",
			wantErr: "user/Condition.r"},
		{name: "wildcard type", scope: "system/*.cruds", action: Delete, typ: "Coverage",
			want: Grant{Context: SystemContext}},
		{name: "v1 read is rs", scope: "user/CarePlan.read", action: Search, typ: "CarePlan",
			want: Grant{Context: UserContext}},
		{name: "v1 read is not write", scope: "user/CarePlan.read", action: Update, typ: "CarePlan",
			wantErr: "user/CarePlan.u"},
		{name: "v1 write is cud", scope: "user/CarePlan.write", action: Delete, typ: "CarePlan",
			want: Grant{Context: UserContext}},
		{name: "v1 write is not read", scope: "user/CarePlan.write", action: Read, typ: "CarePlan",
			wantErr: "user/CarePlan.r"},
		{name: "v1 star", scope: "system/*.*", action: Create, typ: "Task",
			want: Grant{Context: SystemContext}},
		{name: "patient scope gives compartment", scope: "patient/*.rs", patient: "p1", action: Read, typ: "Observation",
			want: Grant{Context: PatientContext, Patient: "p1"}},
		{name: "patient scope without claim grants nothing", scope: "patient/*.rs", action: Read, typ: "Observation",
			wantErr: "no patient context"},
		{name: "granular", scope: "patient/Observation.rs?category=laboratory", patient: "p1", action: Search, typ: "Observation",
			want: Grant{Context: PatientContext, Patient: "p1", Restrictions: [][]Param{lab}}},
		{name: "granular OR between scopes",
			scope: "patient/Observation.rs?category=laboratory patient/Observation.rs?category=vital-signs", patient: "p1",
			action: Search, typ: "Observation",
			want: Grant{Context: PatientContext, Patient: "p1", Restrictions: [][]Param{lab, vital}}},
		{name: "granular AND within a scope", scope: "user/Condition.rs?category=problem-list-item&clinical-status=active",
			action: Read, typ: "Condition",
			want: Grant{Context: UserContext, Restrictions: [][]Param{{{"category", "problem-list-item"}, {"clinical-status", "active"}}}}},
		{name: "granular duplicates collapse",
			scope: "user/Observation.rs?category=laboratory user/Observation.rs?category=laboratory", action: Read, typ: "Observation",
			want: Grant{Context: UserContext, Restrictions: [][]Param{lab}}},
		{name: "unrestricted scope beats granular one",
			scope: "patient/Observation.rs?category=laboratory patient/Observation.rs", patient: "p1", action: Read, typ: "Observation",
			want: Grant{Context: PatientContext, Patient: "p1"}},
		{name: "wildcard unrestricted beats granular",
			scope: "user/Observation.rs?category=laboratory user/*.rs", action: Read, typ: "Observation",
			want: Grant{Context: UserContext}},
		{name: "granular scope does not grant other actions", scope: "user/Observation.rs?category=laboratory", action: Update, typ: "Observation",
			wantErr: "user/Observation.u"},
		{name: "user wins over patient", scope: "patient/*.rs user/Observation.rs", patient: "p1", action: Read, typ: "Observation",
			want: Grant{Context: UserContext}},
		{name: "system wins over patient", scope: "patient/*.cruds system/*.rs", patient: "p1", action: Search, typ: "Condition",
			want: Grant{Context: SystemContext}},
		{name: "patient used where the wide scope does not grant", scope: "patient/*.cruds user/*.rs", patient: "p1", action: Create, typ: "Condition",
			want: Grant{Context: PatientContext, Patient: "p1"}},
		{name: "system named when both system and user grant", scope: "user/*.rs system/*.rs", action: Read, typ: "Condition",
			want: Grant{Context: SystemContext}},
		{name: "unknown scopes grant nothing", scope: "patient/Observation.sr user/Observation.read?category=lab openid fhirUser launch/patient",
			patient: "p1", action: Read, typ: "Observation", wantErr: "forbidden"},
		{name: "no scopes", scope: "", action: Read, typ: "Patient", wantErr: "system/Patient.r"},
		{name: "audit: explicit system scope", scope: "system/AuditEvent.rs", action: Search, typ: "AuditEvent",
			want: Grant{Context: SystemContext}},
		{name: "audit: explicit user scope", scope: "user/AuditEvent.r", action: Read, typ: "AuditEvent",
			want: Grant{Context: UserContext}},
		{name: "audit: wildcard does not reach it", scope: "system/*.cruds", action: Search, typ: "AuditEvent",
			wantErr: "system/AuditEvent.s"},
		{name: "audit: patient scope does not reach it", scope: "patient/AuditEvent.rs patient/*.rs", patient: "p1", action: Read, typ: "AuditEvent",
			wantErr: "user/AuditEvent.r"},
		{name: "audit: create with an explicit scope", scope: "system/AuditEvent.c", action: Create, typ: "AuditEvent",
			want: Grant{Context: SystemContext}},
		{name: "audit: never updated", scope: "system/AuditEvent.cruds", action: Update, typ: "AuditEvent",
			wantErr: "append-only"},
		{name: "audit: never deleted", scope: "system/AuditEvent.cruds", action: Delete, typ: "AuditEvent",
			wantErr: "append-only"},
		{name: "missing scope named in patient context", scope: "patient/Observation.rs", patient: "p1", action: Read, typ: "Condition",
			wantErr: "patient/Condition.r"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			p := principal(tt.scope, tt.patient)
			g, err := p.Allow(tt.action, tt.typ)
			if tt.wantErr != "" {
				if err == nil {
					t.Fatalf("Allow = %+v, want an error mentioning %q", g, tt.wantErr)
				}
				e := outcome.As(err)
				if e.Code != outcome.Forbidden || e.HTTPStatus() != http.StatusForbidden {
					t.Errorf("error code %s (%d), want forbidden 403", e.Code, e.HTTPStatus())
				}
				if !strings.Contains(e.Error(), tt.wantErr) {
					t.Errorf("error %q does not mention %q", e.Error(), tt.wantErr)
				}
				if h := e.Header.Get("WWW-Authenticate"); !strings.Contains(h, `error="insufficient_scope"`) && tt.wantErr != "append-only" {
					t.Errorf("WWW-Authenticate = %q", h)
				}
				if p.Can(tt.action, tt.typ) {
					t.Error("Can is true where Allow fails")
				}
				return
			}
			if err != nil {
				t.Fatalf("Allow: %v", err)
			}
			tt.want.Action, tt.want.Type = tt.action, tt.typ
			if !reflect.DeepEqual(g, tt.want) {
				t.Errorf("Allow =\n %+v\nwant\n %+v", g, tt.want)
			}
			if g.Unrestricted() != (tt.want.Patient == "" && len(tt.want.Restrictions) == 0) {
				t.Error("Unrestricted disagrees with the grant")
			}
		})
	}
}

func TestAllowSpecialPrincipals(t *testing.T) {
	for _, p := range []*Principal{nil, Anonymous()} {
		_, err := p.Allow(Read, "Patient")
		e := outcome.As(err)
		if err == nil || e.Code != outcome.Login || e.HTTPStatus() != http.StatusUnauthorized {
			t.Fatalf("anonymous Allow = %v, want 401 login", err)
		}
		if h := e.Header.Get("WWW-Authenticate"); h != `Bearer realm="casefhir"` {
			t.Errorf("WWW-Authenticate = %q", h)
		}
		if p.Authenticated() || p.IsUnrestricted() {
			t.Error("anonymous principal claims authentication")
		}
	}
	u := Unrestricted()
	for _, a := range []Action{Create, Read, Update, Delete, Search} {
		g, err := u.Allow(a, "AuditEvent")
		if err != nil || !g.Unrestricted() {
			t.Fatalf("Unrestricted().Allow(%s) = %+v, %v", a, g, err)
		}
	}
	if !u.Authenticated() || !u.IsUnrestricted() {
		t.Error("Unrestricted principal flags wrong")
	}
	if _, err := principal("system/*.*", "").Allow(Action(0), "Patient"); err == nil {
		t.Error("Allow accepted the zero action")
	}
	if _, err := principal("system/*.*", "").Allow(Read, ""); err == nil {
		t.Error("Allow accepted an empty type")
	}
}

func TestAllowDoesNotAliasScopes(t *testing.T) {
	p := principal("user/Observation.rs?category=laboratory", "")
	g, err := p.Allow(Read, "Observation")
	if err != nil {
		t.Fatal(err)
	}
	g.Restrictions[0][0].Value = "changed"
	if p.Scopes[0].Restrictions[0].Value != "laboratory" {
		t.Error("a Grant aliases the principal's scopes")
	}
}
