package server

import (
	"errors"
	"fmt"
	"log/slog"
	"net"
	"net/url"
	"strings"
	"time"

	"github.com/casefhir/casefhir/fhir/store"
	"github.com/casefhir/casefhir/server/auth/audit"
)

// Auth modes.
const (
	AuthSMART = "smart"
	AuthOff   = "off"
)

// App modes.
const (
	AppOn  = "on"
	AppOff = "off"
)

// Config is the server's configuration (see the product contract's flags).
type Config struct {
	Addr         string
	BaseURL      string
	MongoURI     string
	Database     string
	DataDir      string
	Auth         string
	OIDCIssuer   string
	OIDCAudience string
	// MongoTestStandIn is for tests and benchmarks on a MongoDB-wire test
	// stand-in (FerretDB): it opens the store with
	// mongostore.Options.AllowStandalone. No flag sets it.
	MongoTestStandIn bool

	// MaxBodyBytes caps request bodies (default 16 MiB).
	MaxBodyBytes int64
	// MaxBundleEntries caps batch/transaction entries (default 10000).
	MaxBundleEntries int
	// Timeouts of the http.Server; zero values get defaults.
	ReadHeaderTimeout, ReadTimeout, WriteTimeout, IdleTimeout, ShutdownTimeout time.Duration

	// ExportDir is where bulk export output is written (default
	// <DataDir>/exports); ExportConcurrency the export jobs run at once per
	// process (default 1); ExportRetention how long output is kept (default
	// 24h); ExportBatchPause an extra pause between export batches.
	ExportDir         string
	ExportConcurrency int
	ExportRetention   time.Duration
	ExportBatchPause  time.Duration

	// AuditOff disables the AuditEvent trail (on by default).
	AuditOff bool
	// AuditQueue bounds the requests between admission to the audit trail
	// and the storing of their AuditEvents (default 4096); AuditWait is how
	// long a request waits for room before it is refused with 503 and
	// Retry-After, before doing any work (default 10 s).
	AuditQueue int
	AuditWait  time.Duration
	// AuditWriter, when set, wraps the writer that stores AuditEvents
	// (tests use it for a slow or failing store).
	AuditWriter func(audit.Writer) audit.Writer

	// Store, when set, is the store to serve (a test hook: e.g. the
	// in-memory reference store); the server closes it. MongoURI, DataDir
	// and EmbeddedSearch are then not used to open one.
	Store store.Store
	// App serves the case manager's SMART app at /app/: "on" (default) or
	// "off". AppClientID (default casefhir-app) and AppClientSecret are its
	// credentials at the OpenID provider; the secret is required with
	// --auth=smart.
	App             string
	AppClientID     string
	AppClientSecret string

	// Version is the software version reported in the CapabilityStatement.
	Version string
	// Logger receives structured logs (never PHI); default slog.Default().
	Logger *slog.Logger
}

// Defaults fills zero values with defaults. BaseURL defaults to
// http://<Addr>/fhir and the audience to the base URL.
func (c *Config) Defaults() {
	if c.Addr == "" {
		c.Addr = "127.0.0.1:8080"
	}
	if c.BaseURL == "" {
		c.BaseURL = "http://" + c.Addr + "/fhir"
	}
	c.BaseURL = strings.TrimSuffix(c.BaseURL, "/")
	if c.AuditWait <= 0 {
		c.AuditWait = 10 * time.Second
	}
	if c.Database == "" {
		c.Database = "casefhir"
	}
	if c.DataDir == "" {
		c.DataDir = "./casefhir-data"
	}
	if c.Auth == "" {
		c.Auth = AuthSMART
	}
	if c.OIDCAudience == "" {
		c.OIDCAudience = c.BaseURL
	}
	if c.App == "" {
		c.App = AppOn
	}
	if c.AppClientID == "" {
		c.AppClientID = "casefhir-app"
	}
	if c.MaxBodyBytes == 0 {
		c.MaxBodyBytes = 16 << 20
	}
	if c.MaxBundleEntries == 0 {
		c.MaxBundleEntries = 10000
	}
	if c.ReadHeaderTimeout == 0 {
		c.ReadHeaderTimeout = 10 * time.Second
	}
	if c.ReadTimeout == 0 {
		c.ReadTimeout = 2 * time.Minute
	}
	if c.WriteTimeout == 0 {
		c.WriteTimeout = 5 * time.Minute
	}
	if c.IdleTimeout == 0 {
		c.IdleTimeout = 2 * time.Minute
	}
	if c.ShutdownTimeout == 0 {
		c.ShutdownTimeout = 30 * time.Second
	}
	if c.Logger == nil {
		c.Logger = slog.Default()
	}
}

// Validate checks the configuration before anything connects. Errors are
// one line, naming the flag.
func (c *Config) Validate() error {
	host, port, err := net.SplitHostPort(c.Addr)
	if err != nil || port == "" {
		return fmt.Errorf("--addr %q: want host:port", c.Addr)
	}
	u, err := url.Parse(c.BaseURL)
	if err != nil || (u.Scheme != "http" && u.Scheme != "https") || u.Host == "" || u.RawQuery != "" || u.Fragment != "" {
		return fmt.Errorf("--base-url %q: want an absolute http(s) URL without query", c.BaseURL)
	}
	if c.MongoURI != "" && !strings.HasPrefix(c.MongoURI, "mongodb://") && !strings.HasPrefix(c.MongoURI, "mongodb+srv://") {
		return errors.New("--mongodb-uri: want a mongodb:// or mongodb+srv:// connection string")
	}
	if c.Database == "" || strings.ContainsAny(c.Database, `/\. "$`) || len(c.Database) > 63 {
		return fmt.Errorf("--database %q: not a valid database name", c.Database)
	}
	if c.Store == nil && c.MongoURI == "" && c.DataDir == "" {
		return errors.New("--data-dir: required for the embedded store")
	}
	switch c.Auth {
	case AuthSMART:
		if c.OIDCIssuer == "" {
			return errors.New("--oidc-issuer: required with --auth=smart (or use --auth=off on a loopback address)")
		}
		iu, err := url.Parse(c.OIDCIssuer)
		if err != nil || (iu.Scheme != "https" && iu.Scheme != "http") || iu.Host == "" {
			return fmt.Errorf("--oidc-issuer %q: want an absolute http(s) URL", c.OIDCIssuer)
		}
	case AuthOff:
		if !isLoopback(host) {
			return fmt.Errorf("--auth=off is allowed only on a loopback address, not %q", host)
		}
	default:
		return fmt.Errorf("--auth %q: want smart or off", c.Auth)
	}
	switch c.App {
	case AppOn:
		if c.Auth == AuthSMART && c.AppClientSecret == "" {
			return errors.New("--app-client-secret: required with --auth=smart and --app=on (or use --app=off)")
		}
	case AppOff:
	default:
		return fmt.Errorf("--app %q: want on or off", c.App)
	}
	if c.MaxBodyBytes < 1024 {
		return errors.New("--max-body: must be at least 1024 bytes")
	}
	return nil
}

// AppBase is the public URL of the app: the public base of the server
// (the base URL without its /fhir path) + /app.
func (c *Config) AppBase() string {
	u, err := url.Parse(c.BaseURL)
	if err != nil {
		return "/app"
	}
	u.Path = strings.TrimSuffix(strings.TrimSuffix(u.Path, "/"), "/fhir")
	u.RawPath = ""
	return strings.TrimSuffix(u.String(), "/") + "/app"
}

func isLoopback(host string) bool {
	if host == "localhost" {
		return true
	}
	ip := net.ParseIP(host)
	return ip != nil && ip.IsLoopback()
}
