package main

import (
	"bufio"
	"bytes"
	"context"
	"fmt"
	"io"
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

// startServe runs `casefhir serve` on a port the kernel picks (never one
// chosen in advance), reads the address from its "listening" log line and
// waits until /readyz answers. It returns the command and the address.
func startServe(t *testing.T, bin, dir string) (*exec.Cmd, string) {
	t.Helper()
	cmd := exec.Command(bin, "serve", "--auth=off", "--addr", "127.0.0.1:0", "--data-dir", dir,
		"--log-level", "info", "--log-format", "text")
	stderr, err := cmd.StderrPipe()
	if err != nil {
		t.Fatal(err)
	}
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	addrc := make(chan string, 1)
	var mu sync.Mutex
	var tail []string
	go func() {
		sc := bufio.NewScanner(stderr)
		for sc.Scan() {
			line := sc.Text()
			if strings.Contains(line, `msg="casefhir listening"`) {
				for _, f := range strings.Fields(line) {
					if a, ok := strings.CutPrefix(f, "addr="); ok {
						addrc <- a
					}
				}
			}
			mu.Lock()
			if tail = append(tail, line); len(tail) > 20 {
				tail = tail[1:]
			}
			mu.Unlock()
		}
	}()
	fail := func(msg string) {
		_ = cmd.Process.Kill()
		mu.Lock()
		defer mu.Unlock()
		t.Fatalf("%s: %s", msg, strings.Join(tail, "\n"))
	}
	var addr string
	select {
	case addr = <-addrc:
	case <-time.After(60 * time.Second):
		fail("server did not log its address")
	}
	deadline := time.Now().Add(60 * time.Second)
	for time.Now().Before(deadline) {
		resp, err := http.Get("http://" + addr + "/readyz")
		if err == nil {
			resp.Body.Close()
			if resp.StatusCode == 200 {
				return cmd, addr
			}
		}
		time.Sleep(50 * time.Millisecond)
	}
	fail("server did not become ready")
	return nil, ""
}

// killAndRestart kills cmd with SIGKILL after wait, stops the load
// (cancel, then waits for its workers), and starts a new server on dir,
// stopped when the test ends. It returns the new server's address.
func killAndRestart(t *testing.T, cmd *exec.Cmd, wait time.Duration, cancel context.CancelFunc, wg *sync.WaitGroup, bin, dir string) string {
	t.Helper()
	time.Sleep(wait)
	_ = cmd.Process.Signal(syscall.SIGKILL)
	_ = cmd.Wait()
	cancel()
	wg.Wait()
	cmd2, addr2 := startServe(t, bin, dir)
	t.Cleanup(func() { _ = cmd2.Process.Signal(syscall.SIGTERM); _ = cmd2.Wait() })
	return addr2
}

// unbound is the host:port of the default base URL of a server started on
// port 0 (its Location headers name it).
const unbound = "127.0.0.1:0"

// TestCrashLosesNoAcknowledgedWrite kills a server under create load with
// SIGKILL; after a restart every create that was answered 201 is readable
// and nothing half-written is visible.
func TestCrashLosesNoAcknowledgedWrite(t *testing.T) {
	if testing.Short() {
		t.Skip("process test")
	}
	bin := buildBinary(t)
	dir := t.TempDir()
	cmd, addr := startServe(t, bin, dir)
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
	addr2 := killAndRestart(t, cmd, 1500*time.Millisecond, cancel, &wg, bin, dir)
	if len(acked) < 20 {
		t.Fatalf("only %d creates acknowledged before the kill", len(acked))
	}
	for loc, fam := range acked {
		u := strings.Replace(loc, unbound, addr2, 1)
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
	cmd, _ := startServe(t, bin, t.TempDir())
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
