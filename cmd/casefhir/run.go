package main

import (
	"context"
	"errors"
	"flag"
	"fmt"
	"io"
	"log/slog"
	"strconv"
	"strings"
	"time"

	"github.com/casefhir/casefhir/fhir"
	"github.com/casefhir/casefhir/server"
)

// version is set at build time with -ldflags "-X main.version=...".
var version = "dev"

const usage = `casefhir: FHIR R4 server for medical case management

Usage:
  casefhir serve [flags]      run the server
  casefhir load [flags] PATH  upload FHIR JSON resources, Bundles or NDJSON files/folders to a server
  casefhir demo [flags]       load the two demo cases into a server through the API, step by step
  casefhir version            print the version

Run "casefhir serve -h", "casefhir load -h" or "casefhir demo -h" for the flags.
`

// run is the whole program: it returns the exit code.
func run(ctx context.Context, args []string, getenv func(string) string, stdout, stderr io.Writer) int {
	if len(args) == 0 {
		fmt.Fprint(stderr, usage)
		return 2
	}
	switch args[0] {
	case "serve":
		return serve(ctx, args[1:], getenv, stdout, stderr)
	case "load":
		return load(ctx, args[1:], getenv, stdout, stderr)
	case "demo":
		return runDemo(ctx, args[1:], getenv, stdout, stderr)
	case "version", "--version", "-version":
		fmt.Fprintf(stdout, "casefhir %s (FHIR %s)\n", version, fhir.Version)
		return 0
	case "help", "-h", "--help":
		fmt.Fprint(stdout, usage)
		return 0
	}
	fmt.Fprintf(stderr, "casefhir: unknown command %q\n\n%s", args[0], usage)
	return 2
}

// envFlag declares a string flag whose default comes from an environment
// variable: the flag wins over the variable, which wins over the default.
func envFlag(fs *flag.FlagSet, getenv func(string) string, name, env, def, help string) *string {
	if v := getenv(env); v != "" {
		def = v
	}
	return fs.String(name, def, help+" (env "+env+")")
}

// parseFlags parses args; when it fails (or help was asked for) it returns
// the exit code and false.
func parseFlags(fs *flag.FlagSet, args []string) (int, bool) {
	if err := fs.Parse(args); err != nil {
		if errors.Is(err, flag.ErrHelp) {
			return 0, false
		}
		return 2, false
	}
	return 0, true
}

// clientFlags declares the flags of a command that talks to a running
// server through its API: --url and --token.
func clientFlags(name, usage string, getenv func(string) string, stderr io.Writer) (fs *flag.FlagSet, base, token *string) {
	fs = flag.NewFlagSet(name, flag.ContinueOnError)
	fs.SetOutput(stderr)
	fs.Usage = func() {
		fmt.Fprint(stderr, usage)
		fs.PrintDefaults()
	}
	base = envFlag(fs, getenv, "url", "CASEFHIR_URL", "http://127.0.0.1:8080/fhir", "FHIR base URL of the server")
	token = envFlag(fs, getenv, "token", "CASEFHIR_TOKEN", "", "bearer access token sent with every request")
	return fs, base, token
}

func serve(ctx context.Context, args []string, getenv func(string) string, stdout, stderr io.Writer) int {
	fs := flag.NewFlagSet("serve", flag.ContinueOnError)
	fs.SetOutput(stderr)
	addr := envFlag(fs, getenv, "addr", "CASEFHIR_ADDR", "127.0.0.1:8080", "listen address")
	baseURL := envFlag(fs, getenv, "base-url", "CASEFHIR_BASE_URL", "", "public FHIR base URL used in Location headers and links (default http://<addr>/fhir)")
	mongoURI := envFlag(fs, getenv, "mongodb-uri", "CASEFHIR_MONGODB_URI", "", "MongoDB connection string; empty: the embedded store")
	database := envFlag(fs, getenv, "database", "CASEFHIR_DATABASE", "casefhir", "database name")
	dataDir := envFlag(fs, getenv, "data-dir", "CASEFHIR_DATA_DIR", "./casefhir-data", "directory of the embedded store's files")
	authMode := envFlag(fs, getenv, "auth", "CASEFHIR_AUTH", "smart", "smart: every FHIR request needs a valid access token; off: no auth (loopback only)")
	issuer := envFlag(fs, getenv, "oidc-issuer", "CASEFHIR_OIDC_ISSUER", "", "OpenID Connect issuer whose access tokens are accepted (required with --auth=smart)")
	audience := envFlag(fs, getenv, "oidc-audience", "CASEFHIR_OIDC_AUDIENCE", "", "expected aud of access tokens (default the base URL)")
	maxBody := envFlag(fs, getenv, "max-body", "CASEFHIR_MAX_BODY", "16777216", "maximum request body size in bytes")
	maxEntries := envFlag(fs, getenv, "max-bundle-entries", "CASEFHIR_MAX_BUNDLE_ENTRIES", "10000", "maximum entries in a batch or transaction Bundle")
	exportDir := envFlag(fs, getenv, "export-dir", "CASEFHIR_EXPORT_DIR", "", "directory of bulk export output (default <data-dir>/exports)")
	exportConc := envFlag(fs, getenv, "export-concurrency", "CASEFHIR_EXPORT_CONCURRENCY", "1", "bulk export jobs run at once")
	exportRet := envFlag(fs, getenv, "export-retention", "CASEFHIR_EXPORT_RETENTION", "24h", "how long bulk export output is kept")
	auditMode := envFlag(fs, getenv, "audit", "CASEFHIR_AUDIT", "on", "on: every request that reads or changes data leaves an AuditEvent; off: no audit trail")
	appMode := envFlag(fs, getenv, "app", "CASEFHIR_APP", "on", "on: serve the case manager's SMART app at /app/; off: no app")
	appClientID := envFlag(fs, getenv, "app-client-id", "CASEFHIR_APP_CLIENT_ID", "casefhir-app", "the app's client id at the OpenID provider")
	appClientSecret := envFlag(fs, getenv, "app-client-secret", "CASEFHIR_APP_CLIENT_SECRET", "", "the app's client secret (client_secret_basic); required with --auth=smart and --app=on")
	logLevel := envFlag(fs, getenv, "log-level", "CASEFHIR_LOG_LEVEL", "info", "log level: debug, info, warn, error")
	logFormat := envFlag(fs, getenv, "log-format", "CASEFHIR_LOG_FORMAT", "text", "log format: text or json")
	if code, ok := parseFlags(fs, args); !ok {
		return code
	}
	if fs.NArg() > 0 {
		fmt.Fprintf(stderr, "casefhir serve: unexpected argument %q\n", fs.Arg(0))
		return 2
	}
	log, err := newLogger(stderr, *logLevel, *logFormat)
	if err != nil {
		fmt.Fprintf(stderr, "casefhir serve: %v\n", err)
		return 2
	}
	stopProfile, err := cpuProfile(getenv("CASEFHIR_CPUPROFILE"))
	if err != nil {
		fmt.Fprintf(stderr, "casefhir serve: %v\n", err)
		return 2
	}
	defer stopProfile()
	if *auditMode != "on" && *auditMode != "off" {
		fmt.Fprintf(stderr, "casefhir serve: --audit %q: want on or off\n", *auditMode)
		return 2
	}
	mb, err1 := strconv.ParseInt(*maxBody, 10, 64)
	me, err2 := strconv.Atoi(*maxEntries)
	if err1 != nil || err2 != nil || me < 1 {
		fmt.Fprintln(stderr, "casefhir serve: --max-body and --max-bundle-entries must be positive integers")
		return 2
	}
	ec, err1 := strconv.Atoi(*exportConc)
	er, err2 := time.ParseDuration(*exportRet)
	if err1 != nil || err2 != nil || ec < 1 || er <= 0 {
		fmt.Fprintln(stderr, "casefhir serve: --export-concurrency must be a positive integer and --export-retention a positive duration (e.g. 24h)")
		return 2
	}
	cfg := server.Config{
		Addr: *addr, BaseURL: *baseURL, MongoURI: *mongoURI, Database: *database, DataDir: *dataDir,
		Auth: *authMode, OIDCIssuer: *issuer, OIDCAudience: *audience,
		MaxBodyBytes: mb, MaxBundleEntries: me, Version: version, Logger: log, AuditOff: *auditMode == "off",
		ExportDir: *exportDir, ExportConcurrency: ec, ExportRetention: er,
		App: *appMode, AppClientID: *appClientID, AppClientSecret: *appClientSecret,
	}
	cfg.Defaults()
	if err := cfg.Validate(); err != nil {
		fmt.Fprintf(stderr, "casefhir serve: %v\n", err)
		return 2
	}
	srv, err := server.Open(ctx, cfg)
	if err != nil {
		fmt.Fprintf(stderr, "casefhir serve: %v\n", oneLine(err))
		return 1
	}
	defer func() { _ = srv.Close(context.WithoutCancel(ctx)) }()
	if err := srv.Serve(ctx); err != nil {
		fmt.Fprintf(stderr, "casefhir serve: %v\n", oneLine(err))
		return 1
	}
	return 0
}

func newLogger(w io.Writer, level, format string) (*slog.Logger, error) {
	var lv slog.Level
	if err := lv.UnmarshalText([]byte(level)); err != nil {
		return nil, fmt.Errorf("--log-level %q: want debug, info, warn or error", level)
	}
	o := &slog.HandlerOptions{Level: lv}
	switch format {
	case "text":
		return slog.New(slog.NewTextHandler(w, o)), nil
	case "json":
		return slog.New(slog.NewJSONHandler(w, o)), nil
	}
	return nil, fmt.Errorf("--log-format %q: want text or json", format)
}

func oneLine(err error) string {
	return strings.Join(strings.Fields(err.Error()), " ")
}
