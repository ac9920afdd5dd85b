package authtest

import (
	"bytes"
	"context"
	"crypto/sha256"
	"encoding/hex"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"runtime"
	"time"
)

// harnessDir returns server/auth/testdata/oidc of the module this file
// belongs to.
func harnessDir() (string, error) {
	_, file, _, ok := runtime.Caller(0)
	if !ok {
		return "", fmt.Errorf("authtest: cannot locate the harness directory")
	}
	dir := filepath.Join(filepath.Dir(file), "..", "testdata", "oidc")
	if _, err := os.Stat(filepath.Join(dir, "provider.mjs")); err != nil {
		return "", fmt.Errorf("authtest: harness not found: %w", err)
	}
	return dir, nil
}

// stampName is written into node_modules after a successful npm ci; it
// holds the SHA-256 of the package-lock.json that was installed.
const stampName = ".casefhir-installed"

// EnsureNodeModules runs "npm ci" in dir unless node_modules already
// matches package-lock.json. An exclusive file lock (outside the source
// tree) serialises concurrent test processes. Other test harnesses with
// Node packages (the real FHIR client tests) use it too.
func EnsureNodeModules(ctx context.Context, dir string) error {
	lock, err := os.ReadFile(filepath.Join(dir, "package-lock.json"))
	if err != nil {
		return fmt.Errorf("authtest: %w", err)
	}
	sum := sha256.Sum256(lock)
	want := hex.EncodeToString(sum[:])
	stamp := filepath.Join(dir, "node_modules", stampName)
	installed := func() bool {
		b, err := os.ReadFile(stamp)
		return err == nil && string(bytes.TrimSpace(b)) == want
	}
	if installed() {
		return nil
	}
	abs, err := filepath.Abs(dir)
	if err != nil {
		return err
	}
	dsum := sha256.Sum256([]byte(abs))
	lockPath := filepath.Join(os.TempDir(), "casefhir-npm-"+hex.EncodeToString(dsum[:8])+".lock")
	unlock, err := lockFile(ctx, lockPath)
	if err != nil {
		return fmt.Errorf("authtest: lock %s: %w", lockPath, err)
	}
	defer unlock()
	if installed() { // another process installed while we waited
		return nil
	}
	npm, err := exec.LookPath("npm")
	if err != nil {
		return fmt.Errorf("authtest: npm not found on PATH (Node.js 20+ is needed for the OpenID provider tests): %w", err)
	}
	ctx, cancel := context.WithTimeout(ctx, 10*time.Minute)
	defer cancel()
	cmd := exec.CommandContext(ctx, npm, "ci", "--no-audit", "--no-fund", "--ignore-scripts", "--loglevel=error")
	cmd.Dir = dir
	var out bytes.Buffer
	cmd.Stdout = &out
	cmd.Stderr = &out
	if err := cmd.Run(); err != nil {
		return fmt.Errorf("authtest: npm ci in %s: %w\n%s", dir, err, out.Bytes())
	}
	return os.WriteFile(stamp, []byte(want+"\n"), 0o644)
}
