package mongostore

import (
	"context"
	"errors"
	"fmt"
	"strings"
	"testing"

	"go.mongodb.org/mongo-driver/v2/mongo"
	"go.mongodb.org/mongo-driver/v2/x/mongo/driver/topology"

	"github.com/casefhir/casefhir/fhir/outcome"
)

func TestTranslate(t *testing.T) {
	const secret = "Patient-secret-value"
	dup := mongo.WriteException{WriteErrors: []mongo.WriteError{{Code: 11000,
		Message: `E11000 duplicate key error collection: db.Patient index: _id_ dup key: { _id: "` + secret + `" }`}}}
	cases := []struct {
		name string
		err  error
		code outcome.Code
	}{
		{"deadline", context.DeadlineExceeded, outcome.Timeout},
		{"wrapped deadline", fmt.Errorf("x: %w", context.DeadlineExceeded), outcome.Timeout},
		{"canceled", context.Canceled, outcome.Timeout},
		{"duplicate write", dup, outcome.Duplicate},
		{"duplicate command", mongo.CommandError{Code: 11000, Message: secret}, outcome.Duplicate},
		{"not primary", mongo.CommandError{Code: 10107, Message: secret}, outcome.Transient},
		{"stepped down", mongo.CommandError{Code: 189, Message: secret}, outcome.Transient},
		{"network label", mongo.CommandError{Code: 1, Labels: []string{"NetworkError"}, Message: secret}, outcome.Transient},
		{"retryable label", mongo.CommandError{Code: 1, Labels: []string{"RetryableWriteError"}, Message: secret}, outcome.Transient},
		{"server selection", topology.ServerSelectionError{Wrapped: errors.New(secret)}, outcome.Transient},
		{"disconnected", mongo.ErrClientDisconnected, outcome.Transient},
		{"write concern", mongo.WriteException{WriteConcernError: &mongo.WriteConcernError{Code: 100, Message: secret}}, outcome.Transient},
		{"max time", mongo.CommandError{Code: 50, Message: secret}, outcome.Timeout},
		{"other server error", mongo.CommandError{Code: 2, Message: "bad $regex " + secret}, outcome.Exception},
		{"other", errors.New(secret), outcome.Exception},
	}
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			err := translate("op", c.err)
			var oe *outcome.Error
			if !errors.As(err, &oe) {
				t.Fatalf("not an outcome.Error: %T", err)
			}
			if oe.Code != c.code {
				t.Errorf("code = %s, want %s", oe.Code, c.code)
			}
			for _, s := range []string{oe.Error(), oe.Detail, oe.Diagnostics, fmt.Sprint(oe.Err), fmt.Sprintf("%+v", oe)} {
				if strings.Contains(s, secret) {
					t.Errorf("driver message leaked: %q", s)
				}
			}
			if errors.Is(err, c.err) && c.err != context.DeadlineExceeded && c.err != context.Canceled {
				t.Errorf("raw driver error reachable through Unwrap")
			}
		})
	}
	if translate("op", nil) != nil {
		t.Error("translate(nil) != nil")
	}
	pre := outcome.New(outcome.Conflict, "x")
	if translate("op", pre) != error(pre) {
		t.Error("outcome errors must pass through")
	}
}
