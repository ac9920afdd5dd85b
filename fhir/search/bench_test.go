package search

import (
	"net/url"
	"os"
	"testing"
)

func benchResource(b *testing.B, path string) []byte {
	data, err := os.ReadFile(path)
	if err != nil {
		b.Skip(err)
	}
	return data
}

func BenchmarkExtractPatient(b *testing.B) {
	r := testRegistry(b)
	data := benchResource(b, "../../../shared/fhir-r4/examples/Patient/Patient-example.json")
	b.SetBytes(int64(len(data)))
	b.ReportAllocs()
	for b.Loop() {
		if _, err := r.Extract("Patient", data); err != nil {
			b.Fatal(err)
		}
	}
}

func BenchmarkExtractCarePlan(b *testing.B) {
	r := testRegistry(b)
	data := benchResource(b, "../../../shared/fhir-r4/examples/CarePlan/CarePlan-example.json")
	b.SetBytes(int64(len(data)))
	b.ReportAllocs()
	for b.Loop() {
		if _, err := r.Extract("CarePlan", data); err != nil {
			b.Fatal(err)
		}
	}
}

func BenchmarkExtractObservation(b *testing.B) {
	r := testRegistry(b)
	data := benchResource(b, "../../../shared/fhir-r4/examples/Observation/Observation-blood-pressure.json")
	b.SetBytes(int64(len(data)))
	b.ReportAllocs()
	for b.Loop() {
		if _, err := r.Extract("Observation", data); err != nil {
			b.Fatal(err)
		}
	}
}

func BenchmarkParse(b *testing.B) {
	r := testRegistry(b)
	q, _ := url.ParseQuery("subject=Patient/123&code=http://loinc.org|29463-7,http://loinc.org|8867-4&date=ge2024-01-01&_sort=-date&_count=50&_include=Observation:subject")
	b.ReportAllocs()
	for b.Loop() {
		if _, err := r.Parse("Observation", q, true); err != nil {
			b.Fatal(err)
		}
	}
}

func BenchmarkParseFilterMatch(b *testing.B) {
	r := testRegistry(b)
	all := loadFixtures(b, r)
	q, _ := url.ParseQuery("subject=Patient/p1&code=http://loinc.org|29463-7&date=ge2024-01-01")
	b.ReportAllocs()
	for b.Loop() {
		pq, err := r.Parse("Observation", q, true)
		if err != nil {
			b.Fatal(err)
		}
		_ = pq.Filter()
		for _, res := range all {
			if res.typ == "Observation" {
				_ = pq.Matches(res.index)
			}
		}
	}
}

func BenchmarkNewRegistry(b *testing.B) {
	data, err := os.ReadFile("../../conformance/artefacts/search-parameters.json")
	if err != nil {
		b.Skip(err)
	}
	b.ReportAllocs()
	for b.Loop() {
		if _, err := NewRegistry(data, []byte(projectParams)); err != nil {
			b.Fatal(err)
		}
	}
}
