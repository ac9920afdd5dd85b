package sqlitestore

import (
	"context"
	"testing"

	"github.com/casefhir/casefhir/fhir/store"
	"github.com/casefhir/casefhir/fhir/store/storetest"
)

// TestStoreOrderDriven runs the behaviour suite with every filtered page
// walking the page's order and probing the filter per row (the plan for
// filters matching many rows), so both plans give the same answers.
func TestStoreOrderDriven(t *testing.T) {
	old := selectiveRows
	selectiveRows = -1
	t.Cleanup(func() { selectiveRows = old })
	storetest.RunOnly(t, func(t *testing.T) store.Store {
		s, err := Open(context.Background(), Options{Dir: t.TempDir()})
		if err != nil {
			t.Fatal(err)
		}
		return s
	}, "FindOps", "FindSortSkipLimit", "Count", "SortOrder", "KeysetPaging", "PagingConcurrentWrites")
}
