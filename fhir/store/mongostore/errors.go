package mongostore

import (
	"context"
	"errors"
	"fmt"

	"go.mongodb.org/mongo-driver/v2/mongo"
	"go.mongodb.org/mongo-driver/v2/x/mongo/driver/topology"

	"github.com/casefhir/casefhir/fhir/outcome"
	"github.com/casefhir/casefhir/fhir/store"
)

// Server error codes meaning "try again": the node is stepping down, shutting
// down, not primary, unreachable, or a time limit / write concern timed out.
var transientCodes = map[int]bool{
	6: true, 7: true, 89: true, 91: true, 189: true, 262: true, 9001: true,
	10107: true, 11600: true, 11602: true, 13435: true, 13436: true, 64: true,
	50: true, // MaxTimeMSExpired
}

// driverError is the PHI-free summary a store error wraps.
func driverError(kind string, code int) store.DriverError {
	return store.DriverError{Backend: "mongodb", Kind: kind, Code: code}
}

// translate turns any error from the driver (or ctx) into an *outcome.Error.
// It is the one place driver errors are interpreted.
func translate(op string, err error) error {
	if err == nil {
		return nil
	}
	var oe *outcome.Error
	if errors.As(err, &oe) {
		return err
	}
	code := serverCode(err)
	switch {
	case errors.Is(err, context.DeadlineExceeded) || mongo.IsTimeout(err) || code == 50:
		return outcome.Wrap(driverError("timeout", code), outcome.Timeout, op, "database operation timed out")
	case errors.Is(err, context.Canceled):
		return outcome.Wrap(driverError("canceled", 0), outcome.Timeout, op, "database operation canceled")
	case mongo.IsDuplicateKeyError(err):
		return outcome.Wrap(driverError("duplicate key", code), outcome.Duplicate, op, "resource already exists")
	case isTransient(err, code):
		return outcome.Wrap(driverError("unavailable", code), outcome.Transient, op, "database unavailable")
	}
	return outcome.Wrap(driverError(fmt.Sprintf("error %T", err), code), outcome.Exception, op, "database error")
}

func isTransient(err error, code int) bool {
	if mongo.IsNetworkError(err) || errors.Is(err, mongo.ErrClientDisconnected) || transientCodes[code] {
		return true
	}
	var sse topology.ServerSelectionError
	if errors.As(err, &sse) {
		return true
	}
	var ce topology.ConnectionError
	if errors.As(err, &ce) {
		return true
	}
	var we mongo.WriteException
	if errors.As(err, &we) && we.WriteConcernError != nil {
		return true // the write may not be durable: the client must retry
	}
	var le mongo.LabeledError
	return errors.As(err, &le) && (le.HasErrorLabel("RetryableWriteError") || le.HasErrorLabel("TransientTransactionError"))
}

// serverCode returns the first server error code in err, or 0.
func serverCode(err error) int {
	var se mongo.ServerError
	if errors.As(err, &se) {
		if codes := se.ErrorCodes(); len(codes) > 0 {
			return codes[0]
		}
	}
	return 0
}

// hasCode reports whether err carries server error code c.
func hasCode(err error, c int) bool {
	var se mongo.ServerError
	return errors.As(err, &se) && se.HasErrorCode(c)
}

func notFound(op, typ, id string) error {
	return (&outcome.Error{Op: op, Code: outcome.NotFound, Detail: "resource not found"}).
		WithDiagnostics(typ + "/" + id + " not found")
}
