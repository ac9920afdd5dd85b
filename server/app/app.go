package app

import (
	"crypto/rand"
	"crypto/subtle"
	"embed"
	"encoding/base64"
	"errors"
	"fmt"
	"html/template"
	"io/fs"
	"log/slog"
	"net/http"
	"net/url"
	"slices"
	"strings"
	"sync"
	"time"
)

//go:embed templates/*.html
var templateFS embed.FS

//go:embed static
var staticFS embed.FS

// Config configures the app.
type Config struct {
	// FHIRBase is the FHIR base URL of this server (e.g.
	// http://127.0.0.1:8080/fhir): the iss a launch must name, unless it is
	// in AllowedIssuers, and the server the app talks to.
	FHIRBase string
	// AppBase is the public URL of the app without a trailing slash (e.g.
	// http://127.0.0.1:8080/app); the redirect URI is AppBase + "/callback".
	AppBase string
	// AllowedIssuers are further FHIR bases a launch may name.
	AllowedIssuers []string
	// ClientID and ClientSecret are the app's credentials at the OpenID
	// provider (client_secret_basic).
	ClientID, ClientSecret string
	// AuthOff opens the app without a login; the FHIR API is called
	// without a token (the server runs with auth off).
	AuthOff bool
	// Scopes are the clinical scopes requested besides launch, openid and
	// fhirUser (default DefaultScopes).
	Scopes string
	// HTTPClient sends the app's requests (default: a client with a 30 s
	// timeout).
	HTTPClient *http.Client
	// Logger receives logs without PHI (default slog.Default()).
	Logger *slog.Logger
	// Now is the clock (default time.Now).
	Now func() time.Time
}

// DefaultScopes are the clinical scopes the app asks for.
const DefaultScopes = "user/EpisodeOfCare.crus user/CareTeam.crus user/Task.crus user/CarePlan.rs user/Goal.rs " +
	"user/RiskAssessment.rs user/Coverage.rs user/Encounter.rs user/Appointment.rs user/ClinicalImpression.rs " +
	"user/Condition.rs user/ServiceRequest.rs user/Patient.rs user/Practitioner.rs user/Organization.rs"

// Cookie names.
const (
	sessionCookie = "casefhir_app"
	loginCookie   = "casefhir_app_login"
)

// Limits of the in-memory session and login stores.
const (
	sessionTTL  = 8 * time.Hour
	loginTTL    = 10 * time.Minute
	maxSessions = 10000
	maxLogins   = 10000
)

// App is the case manager's app (an http.Handler).
type App struct {
	cfg   Config
	log   *slog.Logger
	http  *http.Client
	tmpl  map[string]*template.Template
	mux   *http.ServeMux
	now   func() time.Time
	mu    sync.Mutex
	sess  map[string]*session // by session id
	login map[string]*pending // by state
}

// session is a signed-in user: the tokens stay here, on the server.
type session struct {
	id          string
	csrf        string
	base        string // the FHIR base this session talks to
	token       string // access token ("" with auth off)
	patient     string // patient in context ("" for none)
	fhirUser    string // e.g. Practitioner/9
	userName    string // the user's name, for the header
	patientName string
	scope       string
	expires     time.Time // of the access token (zero: none)
	created     time.Time
	launched    bool // EHR launch (a re-login needs the EHR)
	flash       string
}

// pending is an authorization in progress, bound to the browser that
// started it by the login cookie.
type pending struct {
	state, browser string
	verifier       string
	iss, launch    string
	tokenEndpoint  string
	created        time.Time
}

// New returns the app.
func New(cfg Config) (*App, error) {
	if cfg.FHIRBase == "" || cfg.AppBase == "" {
		return nil, errors.New("app: FHIRBase and AppBase are required")
	}
	if !cfg.AuthOff && (cfg.ClientID == "" || cfg.ClientSecret == "") {
		return nil, errors.New("app: a client id and secret are required when auth is on")
	}
	cfg.FHIRBase = strings.TrimSuffix(cfg.FHIRBase, "/")
	cfg.AppBase = strings.TrimSuffix(cfg.AppBase, "/")
	if cfg.Scopes == "" {
		cfg.Scopes = DefaultScopes
	}
	if cfg.HTTPClient == nil {
		cfg.HTTPClient = &http.Client{Timeout: 30 * time.Second}
	}
	if cfg.Logger == nil {
		cfg.Logger = slog.Default()
	}
	if cfg.Now == nil {
		cfg.Now = time.Now
	}
	a := &App{cfg: cfg, log: cfg.Logger, http: cfg.HTTPClient, now: cfg.Now,
		sess: map[string]*session{}, login: map[string]*pending{}}
	if err := a.parseTemplates(); err != nil {
		return nil, err
	}
	static, err := fs.Sub(staticFS, "static")
	if err != nil {
		return nil, err
	}
	m := http.NewServeMux()
	m.Handle("GET /static/", http.StripPrefix("/static/", http.FileServer(http.FS(static))))
	m.HandleFunc("GET /launch", a.handleLaunch)
	m.HandleFunc("GET /callback", a.handleCallback)
	m.HandleFunc("POST /logout", a.withSession(a.handleLogout))
	m.HandleFunc("GET /{$}", a.withSession(a.handleWorklist))
	m.HandleFunc("GET /case/{id}", a.withSession(a.handleCase))
	m.HandleFunc("POST /case/{id}/transition", a.withSession(a.handleTransition))
	m.HandleFunc("POST /case/{id}/task/{task}/complete", a.withSession(a.handleCompleteTask))
	m.HandleFunc("POST /open-case", a.withSession(a.handleOpenCase))
	m.HandleFunc("/", func(w http.ResponseWriter, r *http.Request) {
		a.errorPage(w, r, http.StatusNotFound, "Page not found", "There is no such page in the case manager's app.")
	})
	a.mux = m
	return a, nil
}

// RedirectURI is the app's redirect URI.
func (a *App) RedirectURI() string { return a.cfg.AppBase + "/callback" }

// ServeHTTP serves the app; paths are relative to the app's root (the
// server strips /app).
func (a *App) ServeHTTP(w http.ResponseWriter, r *http.Request) {
	h := w.Header()
	h.Set("X-Content-Type-Options", "nosniff")
	h.Set("Referrer-Policy", "no-referrer")
	h.Set("Cache-Control", "no-store")
	h.Set("Content-Security-Policy", "default-src 'self'; img-src 'self' data:; style-src 'self'; script-src 'self'; form-action 'self'; base-uri 'none'")
	defer func() {
		if v := recover(); v != nil {
			if v == http.ErrAbortHandler {
				panic(v)
			}
			a.log.Error("app: panic", "error", fmt.Sprint(v), "path", r.URL.Path)
			a.errorPage(w, r, http.StatusInternalServerError, "Something went wrong", "The app hit an internal error. Please try again.")
		}
	}()
	a.mux.ServeHTTP(w, r)
}

// withSession runs h with the browser's session. Without one, auth off
// makes one; otherwise a standalone launch starts (GET) or the request is
// refused (POST).
func (a *App) withSession(h func(http.ResponseWriter, *http.Request, *session)) http.HandlerFunc {
	return func(w http.ResponseWriter, r *http.Request) {
		s := a.sessionOf(r)
		if s != nil && !s.expires.IsZero() && !a.now().Before(s.expires) {
			a.dropSession(s.id)
			if s.launched {
				a.errorPage(w, r, http.StatusUnauthorized, "Your session has ended", "Launch the app again from your EHR.")
				return
			}
			s = nil
		}
		if s == nil {
			switch {
			case a.cfg.AuthOff:
				s = a.newSession(w, &session{base: a.cfg.FHIRBase})
			case r.Method == http.MethodGet:
				a.startAuthorization(w, r, a.cfg.FHIRBase, "")
				return
			default:
				a.errorPage(w, r, http.StatusUnauthorized, "You are not signed in", "Open the app again (from your EHR or at its address) to sign in.")
				return
			}
		}
		if r.Method == http.MethodPost {
			if err := r.ParseForm(); err != nil || !equal(r.PostForm.Get("csrf"), s.csrf) {
				a.errorPage(w, r, http.StatusForbidden, "This form has expired", "The form was not sent from this app's page (its security token is missing or wrong). Reload the page and try again.")
				return
			}
		}
		h(w, r, s)
	}
}

func equal(a, b string) bool {
	return a != "" && subtle.ConstantTimeCompare([]byte(a), []byte(b)) == 1
}

// sessionOf returns the request's session, or nil.
func (a *App) sessionOf(r *http.Request) *session {
	c, err := r.Cookie(sessionCookie)
	if err != nil || c.Value == "" {
		return nil
	}
	a.mu.Lock()
	defer a.mu.Unlock()
	return a.sess[c.Value]
}

// newSession stores s with fresh ids and sets its cookie.
func (a *App) newSession(w http.ResponseWriter, s *session) *session {
	s.id, s.csrf, s.created = randomString(32), randomString(32), a.now()
	a.mu.Lock()
	a.gcLocked()
	if len(a.sess) >= maxSessions {
		// Drop the oldest session rather than grow without bound.
		var oldest *session
		for _, o := range a.sess {
			if oldest == nil || o.created.Before(oldest.created) {
				oldest = o
			}
		}
		delete(a.sess, oldest.id)
	}
	a.sess[s.id] = s
	a.mu.Unlock()
	a.setCookie(w, sessionCookie, s.id, sessionTTL)
	return s
}

func (a *App) dropSession(id string) {
	a.mu.Lock()
	delete(a.sess, id)
	a.mu.Unlock()
}

// gcLocked drops expired sessions and logins.
func (a *App) gcLocked() {
	now := a.now()
	for id, s := range a.sess {
		if now.Sub(s.created) > sessionTTL {
			delete(a.sess, id)
		}
	}
	for st, p := range a.login {
		if now.Sub(p.created) > loginTTL {
			delete(a.login, st)
		}
	}
}

// setCookie sets an HttpOnly, SameSite=Lax cookie scoped to the app (Secure
// when the app is served over https).
func (a *App) setCookie(w http.ResponseWriter, name, value string, ttl time.Duration) {
	c := &http.Cookie{Name: name, Value: value, Path: a.cookiePath(), HttpOnly: true,
		SameSite: http.SameSiteLaxMode, Secure: strings.HasPrefix(a.cfg.AppBase, "https://")}
	if ttl > 0 {
		c.MaxAge = int(ttl / time.Second)
	} else {
		c.MaxAge = -1
	}
	http.SetCookie(w, c)
}

func (a *App) cookiePath() string {
	u, err := url.Parse(a.cfg.AppBase)
	if err != nil || u.Path == "" {
		return "/"
	}
	return u.Path + "/"
}

// handleLogout ends the session.
func (a *App) handleLogout(w http.ResponseWriter, r *http.Request, s *session) {
	a.dropSession(s.id)
	a.setCookie(w, sessionCookie, "", 0)
	a.render(w, r, http.StatusOK, "message", pageData{Title: "Signed out",
		Message: &message{Title: "You are signed out", Text: "Launch the app again from your EHR, or open it at its address, to sign in."}})
}

// randomString returns n random bytes, base64url-encoded.
func randomString(n int) string {
	b := make([]byte, n)
	if _, err := rand.Read(b); err != nil {
		panic(err) // crypto/rand never fails on supported platforms
	}
	return base64.RawURLEncoding.EncodeToString(b)
}

// issuerAllowed reports whether iss names this server (or an allowed one):
// the app never sends a user's token anywhere else.
func (a *App) issuerAllowed(iss string) bool {
	iss = strings.TrimSuffix(iss, "/")
	return iss == a.cfg.FHIRBase || slices.Contains(a.cfg.AllowedIssuers, iss)
}
