package sqlitestore_test

import (
	"context"
	"testing"

	"github.com/casefhir/casefhir/fhir/store"
	"github.com/casefhir/casefhir/fhir/store/sqlitestore"
	"github.com/casefhir/casefhir/fhir/store/storetest"
)

func open(t *testing.T) store.Store {
	t.Helper()
	s, err := sqlitestore.Open(context.Background(), sqlitestore.Options{Dir: t.TempDir()})
	if err != nil {
		t.Fatal(err)
	}
	return s
}

func TestStore(t *testing.T) { storetest.Run(t, open) }
