package server

import (
	"net/url"

	"github.com/casefhir/casefhir/fhir/outcome"
)

func parseForm(body []byte) (url.Values, error) {
	q, err := url.ParseQuery(string(body))
	if err != nil {
		return nil, outcome.New(outcome.Invalid, "malformed form-encoded search parameters")
	}
	return q, nil
}
