package main

import (
	"bytes"
	"context"
	"strings"
	"testing"
)

func TestRunVersionAndUsage(t *testing.T) {
	var out, errb bytes.Buffer
	env := func(string) string { return "" }
	if code := run(context.Background(), []string{"version"}, env, &out, &errb); code != 0 || !strings.Contains(out.String(), "FHIR 4.0.1") {
		t.Fatalf("version: %d %q", code, out.String())
	}
	if code := run(context.Background(), nil, env, &out, &errb); code != 2 {
		t.Fatalf("no args: %d", code)
	}
	if code := run(context.Background(), []string{"bogus"}, env, &out, &errb); code != 2 {
		t.Fatalf("bogus: %d", code)
	}
}

// TestServeFailsFast checks bad configuration exits non-zero with a
// one-line reason before connecting to anything.
func TestServeFailsFast(t *testing.T) {
	cases := []struct {
		args []string
		env  map[string]string
		want string
	}{
		{[]string{"serve"}, nil, "--oidc-issuer: required"},
		{[]string{"serve", "--auth=off", "--addr", "0.0.0.0:0"}, nil, "loopback"},
		{[]string{"serve", "--auth=maybe"}, nil, "--auth"},
		{[]string{"serve", "--addr", "nonsense"}, nil, "--addr"},
		{[]string{"serve", "--auth=off", "--base-url", "ftp://x"}, nil, "--base-url"},
		{[]string{"serve", "--auth=off", "--mongodb-uri", "postgres://x"}, nil, "--mongodb-uri"},
		{[]string{"serve"}, map[string]string{"CASEFHIR_AUTH": "off", "CASEFHIR_ADDR": "10.1.2.3:80"}, "loopback"},
		{[]string{"serve", "--auth=off", "--addr", "127.0.0.1:0", "--mongodb-uri", "mongodb://127.0.0.1:1/?serverSelectionTimeoutMS=500"}, nil, "database unreachable"},
		{[]string{"serve", "--oidc-issuer", "http://127.0.0.1:1/nowhere", "--addr", "127.0.0.1:0", "--app-client-secret", "s"}, nil, "oidc issuer"},
		{[]string{"serve", "--oidc-issuer", "http://127.0.0.1:1/nowhere", "--addr", "127.0.0.1:0"}, nil, "--app-client-secret: required"},
		{[]string{"serve", "--auth=off", "--app=maybe"}, nil, "--app"},
	}
	for _, c := range cases {
		t.Run(strings.Join(c.args, " "), func(t *testing.T) {
			var out, errb bytes.Buffer
			env := func(k string) string { return c.env[k] }
			args := append(append([]string(nil), c.args...), "--data-dir", t.TempDir())
			code := run(context.Background(), args, env, &out, &errb)
			if code == 0 {
				t.Fatal("exit 0")
			}
			msg := strings.TrimSpace(errb.String())
			if strings.Count(msg, "\n") > 0 {
				t.Errorf("reason is not one line: %q", msg)
			}
			if !strings.Contains(msg, c.want) {
				t.Errorf("stderr %q lacks %q", msg, c.want)
			}
		})
	}
}
