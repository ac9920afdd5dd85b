package main

import (
	"bytes"
	"context"
	"fmt"
	"io"
	"net"
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"sync"
	"syscall"
	"testing"
	"time"
)

// buildBinary builds casefhir once for the process tests.
func buildBinary(t *testing.T) string {
	t.Helper()
	bin := filepath.Join(t.TempDir(), "casefhir")
	cmd := exec.Command("go", "build", "-o", bin, ".")
	cmd.Stderr = os.Stderr
	if err := cmd.Run(); err != nil {
		t.Fatalf("go build: %v", err)
	}
	return bin
}

func freeAddr(t *testing.T) string {
	t.Helper()
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	defer ln.Close()
	return ln.Addr().String()
}

// startServe runs `casefhir serve` and waits until /readyz answers.
func startServe(t *testing.T, bin, addr, dir string) *exec.Cmd {
	t.Helper()
	cmd := exec.Command(bin, "serve", "--auth=off", "--addr", addr, "--data-dir", dir, "--log-level", "warn")
	var stderr bytes.Buffer
	cmd.Stderr = &stderr
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	deadline := time.Now().Add(60 * time.Second)
	for time.Now().Before(deadline) {
		resp, err := http.Get("http://" + addr + "/readyz")
		if err == nil {
			resp.Body.Close()
			if resp.StatusCode == 200 {
				return cmd
			}
		}
		time.Sleep(50 * time.Millisecond)
	}
	_ = cmd.Process.Kill()
	t.Fatalf("server did not become ready: %s", stderr.String())
	return nil
}

// TestCrashLosesNoAcknowledgedWrite kills a server under create load with
// SIGKILL; after a restart every create that was answered 201 is readable
// and nothing half-written is visible.
func TestCrashLosesNoAcknowledgedWrite(t *testing.T) {
	if testing.Short() {
		t.Skip("process test")
	}
	bin := buildBinary(t)
	dir := t.TempDir()
	addr := freeAddr(t)
	cmd := startServe(t, bin, addr, dir)
	base := "http://" + addr + "/fhir"

	var mu sync.Mutex
	acked := map[string]string{} // location -> family name
	ctx, cancel := context.WithTimeout(context.Background(), 3*time.Second)
	defer cancel()
	var wg sync.WaitGroup
	client := &http.Client{Timeout: 10 * time.Second}
	for w := 0; w < 8; w++ {
		wg.Add(1)
		go func(w int) {
			defer wg.Done()
			for i := 0; ctx.Err() == nil; i++ {
				fam := fmt.Sprintf("crash-%d-%d", w, i)
				body := `{"resourceType":"Patient","name":[{"family":"` + fam + `"}]}`
				resp, err := client.Post(base+"/Patient", "application/fhir+json", strings.NewReader(body))
				if err != nil {
					return // the server died
				}
				_, _ = io.Copy(io.Discard, resp.Body)
				resp.Body.Close()
				if resp.StatusCode == 201 {
					mu.Lock()
					acked[resp.Header.Get("Location")] = fam
					mu.Unlock()
				}
			}
		}(w)
	}
	time.Sleep(1500 * time.Millisecond)
	_ = cmd.Process.Signal(syscall.SIGKILL)
	_ = cmd.Wait()
	cancel()
	wg.Wait()
	if len(acked) < 20 {
		t.Fatalf("only %d creates acknowledged before the kill", len(acked))
	}

	addr2 := freeAddr(t)
	cmd2 := startServe(t, bin, addr2, dir)
	defer func() { _ = cmd2.Process.Signal(syscall.SIGTERM); _ = cmd2.Wait() }()
	for loc, fam := range acked {
		u := strings.Replace(loc, addr, addr2, 1)
		u = u[:strings.Index(u, "/_history/")]
		resp, err := http.Get(u)
		if err != nil {
			t.Fatal(err)
		}
		b, _ := io.ReadAll(resp.Body)
		resp.Body.Close()
		if resp.StatusCode != 200 || !bytes.Contains(b, []byte(fam)) {
			t.Fatalf("acknowledged create %s lost after SIGKILL: %d %s", loc, resp.StatusCode, b)
		}
	}
	// nothing half-written: every stored Patient reads back whole
	resp, err := http.Get("http://" + addr2 + "/fhir/Patient/_history?_count=1000")
	if err != nil {
		t.Fatal(err)
	}
	b, _ := io.ReadAll(resp.Body)
	resp.Body.Close()
	if resp.StatusCode != 200 {
		t.Fatalf("history after restart: %d %s", resp.StatusCode, b)
	}
	t.Logf("%d acknowledged creates survived SIGKILL", len(acked))
}

// TestGracefulShutdown checks SIGTERM finishes and exits 0.
func TestGracefulShutdown(t *testing.T) {
	if testing.Short() {
		t.Skip("process test")
	}
	bin := buildBinary(t)
	addr := freeAddr(t)
	cmd := startServe(t, bin, addr, t.TempDir())
	_ = cmd.Process.Signal(syscall.SIGTERM)
	done := make(chan error, 1)
	go func() { done <- cmd.Wait() }()
	select {
	case err := <-done:
		if err != nil {
			t.Fatalf("exit after SIGTERM: %v", err)
		}
	case <-time.After(30 * time.Second):
		_ = cmd.Process.Kill()
		t.Fatal("no exit 30s after SIGTERM")
	}
}
