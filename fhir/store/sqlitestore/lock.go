package sqlitestore

import (
	"context"
	crand "crypto/rand"
	"encoding/hex"
	"math/rand/v2"
	"time"

	"github.com/casefhir/casefhir/fhir/outcome"
)

// Lock implements store.Store: a row of the locks table, taken in a write
// transaction when absent or expired, polled with backoff until ctx ends.
// The row lives in the database, so leases hold across processes.
func (s *Store) Lock(ctx context.Context, key string, ttl time.Duration) (func(context.Context) error, error) {
	const op = "sqlitestore.Lock"
	if key == "" || ttl <= 0 {
		return nil, outcome.New(outcome.Exception, "lock needs a key and a positive ttl").WithOp(op)
	}
	owner := token()
	wait := 2 * time.Millisecond
	for {
		now := time.Now()
		res, err := s.w.ExecContext(ctx,
			`INSERT INTO locks(key, owner, expires) VALUES(?,?,?)
			 ON CONFLICT(key) DO UPDATE SET owner=excluded.owner, expires=excluded.expires WHERE locks.expires<=?`,
			key, owner, now.Add(ttl).UnixMilli(), now.UnixMilli())
		if err != nil {
			return nil, translate(op, err)
		}
		if n, _ := res.RowsAffected(); n == 1 {
			return func(ctx context.Context) error {
				_, err := s.w.ExecContext(context.WithoutCancel(ctx), "DELETE FROM locks WHERE key=? AND owner=?", key, owner)
				return translate("sqlitestore.Unlock", err)
			}, nil
		}
		t := time.NewTimer(wait/2 + rand.N(wait/2+1))
		select {
		case <-ctx.Done():
			t.Stop()
			return nil, translate(op, ctx.Err())
		case <-t.C:
		}
		wait = min(wait*2, 50*time.Millisecond)
	}
}

func token() string {
	var b [16]byte
	_, _ = crand.Read(b[:])
	return hex.EncodeToString(b[:])
}
