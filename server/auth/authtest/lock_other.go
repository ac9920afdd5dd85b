//go:build !(linux || darwin || freebsd || netbsd || openbsd || dragonfly)

package authtest

import (
	"context"
	"errors"
	"os"
	"time"
)

// lockFile takes an exclusive lock by creating path exclusively, waiting
// until it can or ctx ends. A lock file older than 15 minutes is taken to
// belong to a crashed process and removed.
func lockFile(ctx context.Context, path string) (unlock func(), err error) {
	for {
		f, err := os.OpenFile(path, os.O_RDWR|os.O_CREATE|os.O_EXCL, 0o666)
		if err == nil {
			f.Close()
			return func() { _ = os.Remove(path) }, nil
		}
		if !errors.Is(err, os.ErrExist) {
			return nil, err
		}
		if st, serr := os.Stat(path); serr == nil && time.Since(st.ModTime()) > 15*time.Minute {
			_ = os.Remove(path)
			continue
		}
		select {
		case <-ctx.Done():
			return nil, ctx.Err()
		case <-time.After(200 * time.Millisecond):
		}
	}
}
