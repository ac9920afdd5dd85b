package conformance

import (
	"testing"

	"github.com/google/fhir/go/fhirversion"
	"github.com/google/fhir/go/jsonformat"
)

func TestCaseArtefactsR4Valid(t *testing.T) {
	u, err := jsonformat.NewUnmarshaller("UTC", fhirversion.R4)
	if err != nil {
		t.Fatal(err)
	}
	for _, a := range CaseArtefactList() {
		if _, err := u.UnmarshalR4(a.JSON); err != nil {
			t.Errorf("%s: %v", a.URL, err)
		}
	}
}
