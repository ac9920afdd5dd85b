package store

import (
	"testing"
	"time"
)

func TestMatch(t *testing.T) {
	t0 := time.Date(2024, 3, 1, 10, 0, 0, 0, time.UTC)
	r := &Resource{
		Type: "Patient", ID: "p1", VersionID: 2, LastUpdated: t0,
		Index: map[string]any{
			"name":   []any{"alice", "Smith"},
			"gender": "female",
			"active": true,
			"age":    float64(42),
			"identifier": []any{
				map[string]any{"system": "urn:a", "value": "123"},
				map[string]any{"system": "urn:b", "value": "456", "use": "official"},
			},
			"birthdate": map[string]any{"lo": t0.AddDate(-40, 0, 0), "hi": t0.AddDate(-40, 0, 1)},
			"empty":     []any{},
			"nested":    map[string]any{"deep": map[string]any{"leaf": "x.y*z"}},
			"matrix":    []any{[]any{map[string]any{"k": "v"}}},
		},
	}
	tests := []struct {
		name string
		f    *Filter
		want bool
	}{
		{"nil", nil, true},
		{"all", All(), true},
		{"eq string", Eq("gender", "female"), true},
		{"eq string miss", Eq("gender", "male"), false},
		{"eq array element", Eq("name", "Smith"), true},
		{"eq whole array", Eq("name", []any{"alice", "Smith"}), true},
		{"eq case sensitive", Eq("name", "smith"), false},
		{"eq through array of docs", Eq("identifier.value", "456"), true},
		{"eq through array miss", Eq("identifier.value", "789"), false},
		{"eq numeric segment", Eq("identifier.1.value", "456"), true},
		{"eq numeric segment other", Eq("identifier.0.value", "456"), false},
		{"eq bool", Eq("active", true), true},
		{"eq bool miss", Eq("active", false), false},
		{"eq int vs float", Eq("age", 42), true},
		{"eq number vs string", Eq("age", "42"), false},
		{"eq nil missing", Eq("nope", nil), true},
		{"eq nil present", Eq("gender", nil), false},
		{"eq time", Eq(PathLastUpdated, t0.In(time.FixedZone("X", 3600))), true},
		{"eq deep", Eq("nested.deep.leaf", "x.y*z"), true},
		{"eq nested arrays not traversed", Eq("matrix.k", "v"), false},
		{"id", Eq(PathID, "p1"), true},
		{"id miss", Eq(PathID, "p2"), false},
		{"in", In("gender", "male", "female"), true},
		{"in miss", In("gender", "male", "other"), false},
		{"in array", In("identifier.system", "urn:x", "urn:b"), true},
		{"in nil", In("nope", "a", nil), true},
		{"in empty", In("gender"), false},
		{"lt number", Lt("age", 50.0), true},
		{"lt number eq", Lt("age", 42.0), false},
		{"lte number eq", Lte("age", 42), true},
		{"gt number", Gt("age", 41.5), true},
		{"gte number", Gte("age", 43), false},
		{"lt string", Lt("gender", "g"), true},
		{"gt string array any", Gt("name", "Z"), true}, // "alice" > "Z" in byte order
		{"gt string none", Gt("name", "z"), false},
		{"cmp type bracket", Gt("gender", 1.0), false},
		{"lt time", Lt("birthdate.lo", t0), true},
		{"gt time", Gt("birthdate.hi", t0), false},
		{"gte lastUpdated", Gte(PathLastUpdated, t0), true},
		{"gt lastUpdated", Gt(PathLastUpdated, t0), false},
		{"lt time vs string", Lt("birthdate.lo", "2100"), false},
		{"lt missing", Lt("nope", 5.0), false},
		{"prefix", Prefix("name", "ali"), true},
		{"prefix miss", Prefix("name", "lic"), false},
		{"prefix meta chars literal", Prefix("nested.deep.leaf", "x.y*"), true},
		{"prefix meta chars no regex", Prefix("nested.deep.leaf", "x.y."), false},
		{"prefix through array", Prefix("identifier.value", "45"), true},
		{"prefix non-string", Prefix("age", "4"), false},
		{"prefix non-string value", &Filter{Op: OpPrefix, Path: "name", Value: 1}, false},
		{"contains", Contains("name", "mit"), true},
		{"contains miss", Contains("name", "MIT"), false},
		{"contains empty", Contains("gender", ""), true},
		{"exists", Exists("gender", true), true},
		{"exists missing", Exists("nope", true), false},
		{"not exists missing", Exists("nope", false), true},
		{"not exists present", Exists("gender", false), false},
		{"exists through array", Exists("identifier.use", true), true},
		{"not exists through array", Exists("identifier.use", false), false},
		{"exists empty array", Exists("empty", true), true},
		{"exists id", Exists(PathID, true), true},
		{"and", And(Eq("gender", "female"), Eq("active", true)), true},
		{"and miss", And(Eq("gender", "female"), Eq("active", false)), false},
		{"or", Or(Eq("gender", "male"), Eq("active", true)), true},
		{"or miss", Or(Eq("gender", "male"), Eq("active", false)), false},
		{"or empty", &Filter{Op: OpOr}, false},
		{"and empty", &Filter{Op: OpAnd}, true},
		{"not", Not(Eq("gender", "male")), true},
		{"not miss", Not(Eq("gender", "female")), false},
		{"nor many", &Filter{Op: OpNot, Children: []*Filter{Eq("gender", "male"), Eq("active", true)}}, false},
		{"unknown op", &Filter{Op: Op(99), Path: "gender"}, false},
		// Same-element semantics are not implied: like MongoDB without
		// $elemMatch, conditions on different elements combine.
		{"and across elements", And(Eq("identifier.system", "urn:a"), Eq("identifier.value", "456")), true},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			if got := tt.f.Match(r); got != tt.want {
				t.Errorf("Match = %v, want %v", got, tt.want)
			}
		})
	}
}

func TestMatchNoIndex(t *testing.T) {
	r := &Resource{ID: "a"}
	if !Eq(PathID, "a").Match(r) || Eq("x", "a").Match(r) || !Exists("x", false).Match(r) {
		t.Error("nil Index handled wrongly")
	}
}

func TestCombine(t *testing.T) {
	if f := And(); f.Op != OpAll {
		t.Errorf("And() = %v", f.Op)
	}
	e := Eq("a", "b")
	if f := Or(nil, e); f != e {
		t.Errorf("Or(nil, e) = %+v", f)
	}
	if OpContains.String() != "contains" || Op(42).String() != "op(42)" {
		t.Error("Op.String")
	}
}
