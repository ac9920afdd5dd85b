package server_test

import (
	"context"
	"encoding/json"
	"fmt"
	"io"
	"net/http"
	"net/http/cookiejar"
	"net/http/httptest"
	"net/url"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"sync/atomic"
	"testing"
	"time"

	"github.com/chromedp/chromedp"

	"github.com/casefhir/casefhir/mapping"
	"github.com/casefhir/casefhir/mapping/demo"
	"github.com/casefhir/casefhir/server"
	"github.com/casefhir/casefhir/server/auth/authtest"
	"github.com/casefhir/casefhir/server/servertest"
)

// The app's client at the test OpenID provider.
const (
	appClientID     = "casefhir-app"
	appClientSecret = "app-test-secret"
	otherAudience   = "http://other.casefhir.test/fhir"
)

// appEnv is casefhir with the app, the OpenID provider with the app's
// client, a back-end client and an EHR's launch contexts, and the demo
// cases loaded through the API.
type appEnv struct {
	prov  *authtest.Provider
	s     *servertest.Server
	root  string // http://127.0.0.1:PORT
	sys   string // a system/*.cruds token for checks over the API
	cases map[string]string
}

// Launch values of the simulated EHR.
const (
	launchUser    = "ehr-launch-user"    // the case manager, no patient
	launchPatient = "ehr-launch-patient" // the case manager with the stroke patient in context
)

func startAppEnv(t *testing.T, extra ...authtest.Client) *appEnv {
	t.Helper()
	ln, base := listenLoopback(t)
	root := strings.TrimSuffix(base, "/fhir")
	clients := append([]authtest.Client{
		{ID: appClientID, Secret: appClientSecret, RedirectURIs: []string{root + "/app/callback"}},
		{ID: "app-test-backend"},
	}, extra...)
	prov := authtest.StartProvider(t, authtest.ProviderOptions{
		Audience: base, OtherAudiences: []string{otherAudience}, Clients: clients,
		Users: []authtest.User{{ID: "anna", FHIRUser: "Practitioner/tbi-case-manager"}},
		Launches: map[string]authtest.Launch{
			launchUser:    {User: "anna"},
			launchPatient: {User: "anna", Patient: "stroke-patient"},
		},
	})
	s := servertest.Start(t, servertest.Options{Listener: ln, Config: server.Config{
		Auth: server.AuthSMART, OIDCIssuer: prov.Issuer, OIDCAudience: base, BaseURL: base,
		AppClientSecret: appClientSecret, AuditOff: true,
	}})
	e := &appEnv{prov: prov, s: s, root: root, cases: map[string]string{}}
	e.sys = prov.Token(t, "app-test-backend", "system/*.cruds")
	loaded, err := demo.Load(context.Background(), demo.Options{Base: base, Token: e.sys, Client: s.Client})
	if err != nil {
		t.Fatal(err)
	}
	for _, l := range loaded {
		e.cases[l.Name] = l.CaseID()
	}
	return e
}

// chromiumPath finds Debian's chromium. Outside CI a machine without it
// skips the browser tests; in CI (CI=true) that is a failure.
func chromiumPath(t *testing.T) string {
	t.Helper()
	for _, name := range []string{"chromium", "chromium-browser"} {
		if p, err := exec.LookPath(name); err == nil {
			return p
		}
	}
	if os.Getenv("CI") != "" {
		t.Fatal("chromium not found on PATH: run make browser-deps (apt-get install chromium)")
	}
	t.Skip("chromium not found on PATH (make browser-deps installs it); the browser tests need it")
	return ""
}

// browser is a headless Chromium tab.
type browser struct {
	t   *testing.T
	ctx context.Context
}

func newBrowser(t *testing.T) *browser {
	t.Helper()
	opts := []chromedp.ExecAllocatorOption{
		chromedp.ExecPath(chromiumPath(t)),
		chromedp.UserDataDir(t.TempDir()),
		chromedp.WindowSize(1024, 900), // the EHR's app frame
	}
	for _, f := range []string{"headless", "no-sandbox", "disable-gpu", "disable-background-networking", "disable-component-update",
		"no-first-run", "no-default-browser-check", "disable-dev-shm-usage", "hide-scrollbars"} {
		opts = append(opts, chromedp.Flag(f, true))
	}
	actx, cancelAlloc := chromedp.NewExecAllocator(context.Background(), opts...)
	ctx, cancel := chromedp.NewContext(actx)
	ctx, cancelTimeout := context.WithTimeout(ctx, 3*time.Minute)
	t.Cleanup(func() { cancelTimeout(); cancel(); cancelAlloc() })
	if err := chromedp.Do(ctx, chromedp.Navigate("about:blank")); err != nil {
		t.Fatalf("start chromium: %v", err)
	}
	return &browser{t: t, ctx: ctx}
}

func (b *browser) do(steps ...chromedp.Action[chromedp.Void]) {
	b.t.Helper()
	if err := chromedp.Do(b.ctx, steps...); err != nil {
		loc, _ := chromedp.Run(b.ctx, chromedp.Location())
		body, _ := chromedp.Run(b.ctx, chromedp.Evaluate[string](`document.body ? document.body.innerText : ""`))
		b.t.Fatalf("browser: %v\nat %s\n%s", err, loc, body)
	}
}

// clickAndWait clicks the element matching click, which navigates, and
// waits until the new document shows an element matching want.
func (b *browser) clickAndWait(click, want string) {
	b.t.Helper()
	if _, err := chromedp.Run(b.ctx, chromedp.Evaluate[bool](`window.__casefhirStale = true`)); err != nil {
		b.t.Fatal(err)
	}
	b.do(chromedp.Click(chromedp.CSS(click)))
	cond := fmt.Sprintf(`!window.__casefhirStale && document.readyState === "complete" && !!document.querySelector(%q)`, want)
	deadline := time.Now().Add(time.Minute)
	for {
		if ok, err := chromedp.Run(b.ctx, chromedp.Evaluate[bool](cond)); err == nil && ok {
			return
		}
		if time.Now().After(deadline) {
			b.t.Fatalf("browser: after clicking %s, %s never appeared\n%s", click, want, b.page())
		}
		time.Sleep(20 * time.Millisecond)
	}
}

// text returns the visible text of the first element matching css.
func (b *browser) text(css string) string {
	b.t.Helper()
	b.do(chromedp.WaitVisible(chromedp.CSS(css)))
	s, err := chromedp.Run(b.ctx, chromedp.Text(chromedp.CSS(css)))
	if err != nil {
		b.t.Fatalf("browser: text of %s: %v", css, err)
	}
	return s
}

// frameText waits until the document in the (same-site) iframe matching
// frame shows an element matching css, and returns its text. The frame
// navigates through the launch's redirects meanwhile, so its document is
// looked up again on each try.
func (b *browser) frameText(frame, css string) string {
	b.t.Helper()
	deadline := time.Now().Add(time.Minute)
	for {
		nodes, err := chromedp.Run(b.ctx, chromedp.Nodes(chromedp.CSS(frame)))
		if err == nil && len(nodes) > 0 {
			ctx, cancel := context.WithTimeout(b.ctx, 2*time.Second)
			s, err := chromedp.Run(ctx, func(ctx context.Context, tg *chromedp.Target) (string, error) {
				if _, err := chromedp.WaitVisible(chromedp.CSS(css), chromedp.FromNode(nodes[0]))(ctx, tg); err != nil {
					return "", err
				}
				return chromedp.Text(chromedp.CSS(css), chromedp.FromNode(nodes[0]))(ctx, tg)
			})
			cancel()
			if err == nil {
				return s
			}
		}
		if time.Now().After(deadline) {
			b.t.Fatalf("browser: %s never showed %s", frame, css)
		}
	}
}

// fits reports whether the page needs no horizontal scrolling.
func (b *browser) fits() bool {
	b.t.Helper()
	ok, err := chromedp.Run(b.ctx, chromedp.Evaluate[bool](`document.documentElement.scrollWidth <= window.innerWidth`))
	if err != nil {
		b.t.Fatal(err)
	}
	return ok
}

// page returns the page's visible text.
func (b *browser) page() string {
	b.t.Helper()
	s, err := chromedp.Run(b.ctx, chromedp.Evaluate[string](`document.body.innerText`))
	if err != nil {
		b.t.Fatalf("browser: %v", err)
	}
	return s
}

// shot writes a full-page screenshot to dir/name when dir is set.
func (b *browser) shot(dir, name string) {
	b.t.Helper()
	if dir == "" {
		return
	}
	png, err := chromedp.Run(b.ctx, chromedp.FullScreenshot(100))
	if err != nil {
		b.t.Fatal(err)
	}
	if err := os.WriteFile(filepath.Join(dir, name), png, 0o644); err != nil {
		b.t.Fatal(err)
	}
}

// ehrPage serves a small simulated EHR: a patient chart with a link that
// launches the app (SMART EHR launch) with a launch value, or (/frame) the
// app launched inside a 1,024-pixel-wide frame of the EHR.
func ehrPage(t *testing.T, launchURL func(launch string) string) *httptest.Server {
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		launch := r.URL.Query().Get("launch")
		w.Header().Set("Content-Type", "text/html; charset=utf-8")
		if r.URL.Path == "/frame" {
			fmt.Fprintf(w, `<!doctype html><html lang="en"><head><title>EHR</title></head><body style="margin:0">
<iframe id="app-frame" title="Case management" src="%s" width="1024" height="860" style="border:0"></iframe></body></html>`, launchURL(launch))
			return
		}
		fmt.Fprintf(w, `<!doctype html><html lang="en"><head><title>EHR</title></head><body>
<h1>Simulated EHR</h1><p>Chart of the patient in context.</p>
<a id="launch-app" href="%s">Case management</a></body></html>`, launchURL(launch))
	}))
	t.Cleanup(srv.Close)
	return srv
}

// TestAppBrowser drives the app in headless Chromium through the real EHR
// launch: the simulated EHR launches it, the browser follows the redirects
// through the OpenID provider (auto-login, auto-consent), lands on the
// worklist, opens a demo case, sees its timeline, moves it to the next
// phase, and the change is checked over the FHIR API. It also checks that
// a broken case rule reads as a message, that a form without its CSRF token
// and a forged state are refused, and that a patient-context launch never
// shows another patient's case.
//
// With CASEFHIR_SCREENSHOTS=DIR it writes app-worklist.png and app-case.png
// there (make screenshots).
func TestAppBrowser(t *testing.T) {
	b := newBrowser(t)
	e := startAppEnv(t)
	shots := os.Getenv("CASEFHIR_SCREENSHOTS")
	ehr := ehrPage(t, func(launch string) string {
		return e.root + "/app/launch?" + url.Values{"iss": {e.s.URL}, "launch": {launch}}.Encode()
	})
	tbi, stroke := e.cases["bicycle-tbi"], e.cases["stroke-brokerage"]

	// The EHR launches the app; the browser follows the real redirects.
	b.do(chromedp.Navigate(ehr.URL + "/?launch=" + launchUser))
	b.clickAndWait("#launch-app", "table.cases")
	if loc, _ := chromedp.Run(b.ctx, chromedp.Location()); loc != e.root+"/app/" {
		t.Errorf("after the launch the browser is at %s", loc)
	}
	list := b.text("table.cases")
	for _, want := range []string{"Jonas Berg", "Margaret Holm", "Monitoring", "Closed"} {
		if !strings.Contains(list, want) {
			t.Errorf("worklist lacks %q:\n%s", want, list)
		}
	}
	if who := b.text("header .user"); who != "Anna Lind" {
		t.Errorf("signed in as %q, want the launching user's name", who)
	}
	if chart := b.text("ul.chart"); !strings.Contains(chart, "Monitoring\n1") && !strings.Contains(chart, "Monitoring 1") {
		t.Errorf("phase chart:\n%s", chart)
	}
	// Filters: the chart's monitoring bar, then my cases with high risk.
	b.clickAndWait(`ul.chart a[href*="phase=monitoring"]`, "table.cases")
	if list := b.text("table.cases"); !strings.Contains(list, "Jonas Berg") || strings.Contains(list, "Margaret Holm") {
		t.Errorf("monitoring worklist:\n%s", list)
	}
	b.do(chromedp.SetValue(chromedp.CSS(`select[name="phase"]`), ""), chromedp.SetValue(chromedp.CSS(`select[name="risk"]`), "high"),
		chromedp.Click(chromedp.CSS(`input[name="mine"]`)))
	b.clickAndWait(`form.filters button[type="submit"]`, "table.cases")
	if list := b.text("table.cases"); !strings.Contains(list, "Jonas Berg") || strings.Contains(list, "Margaret Holm") {
		t.Errorf("mine+high risk worklist:\n%s", list)
	}
	if loc, _ := chromedp.Run(b.ctx, chromedp.Location()); !strings.Contains(loc, "mine=1") || !strings.Contains(loc, "risk=high") {
		t.Errorf("filtered at %s", loc)
	}
	b.do(chromedp.Navigate(e.root+"/app/?risk=certain"), chromedp.WaitVisible(chromedp.CSS("p.empty")))
	b.do(chromedp.Navigate(e.root+"/app/?risk=moderate&category=long-term&status=finished"), chromedp.WaitVisible(chromedp.CSS("table.cases")))
	if list := b.text("table.cases"); !strings.Contains(list, "Margaret Holm") || strings.Contains(list, "Jonas Berg") {
		t.Errorf("long-term finished worklist:\n%s", list)
	}
	b.do(chromedp.Navigate(e.root+"/app/"), chromedp.WaitVisible(chromedp.CSS("table.cases")))
	if !b.fits() {
		t.Error("the worklist does not fit 1,024 pixels")
	}
	b.shot(shots, "app-worklist.png")

	// Open the bicycle case: its timeline shows the phases it went through.
	b.clickAndWait(`a[href="case/`+tbi+`"]`, "#timeline-title")
	if cur := b.text(`.track li[aria-current="step"] .name`); cur != "Monitoring" {
		t.Errorf("current phase on the track %q", cur)
	}
	// The phase history, oldest first, with the re-planning loop.
	items, err := chromedp.Run(b.ctx, chromedp.Evaluate[[]string](
		`[...document.querySelectorAll("#timeline-title ~ .two ol.history")[0].querySelectorAll("li .phase")].map(e => e.textContent)`))
	if err != nil {
		t.Fatal(err)
	}
	if got := strings.Join(items, ","); got != "Screening,Assessment,Risk assessment,Planning,Implementation,Monitoring,Planning,Monitoring" {
		t.Errorf("phase history %s", got)
	}
	if tag := b.text(".history .replan"); !strings.Contains(tag, "re-plan") {
		t.Errorf("re-planning loop tag %q", tag)
	}
	page := b.page()
	for _, want := range []string{"Jonas Berg", "Anna Lind", "Physiotherapist", "Rehabilitation after traumatic brain injury",
		"Walk 5 km", "Loss of income", "Financial-planning help", "Physiotherapy session", "Not evaluated yet"} {
		if !strings.Contains(page, want) {
			t.Errorf("case page lacks %q", want)
		}
	}
	if !b.fits() {
		t.Error("the case page does not fit 1,024 pixels")
	}
	b.shot(shots, "app-case.png")

	// Move it to the next phase (evaluation is preselected).
	b.clickAndWait(`#transition button[type="submit"]`, ".flash")
	if f := b.text(".flash"); !strings.Contains(f, "moved to Evaluation") {
		t.Errorf("flash %q", f)
	}
	r := e.do(t, "GET", "EpisodeOfCare/"+tbi)
	wantStatus(t, r, 200)
	eoc := r.JSON()
	ph := mapping.PhaseHistoryOf(eoc)
	if mapping.Phase(eoc) != mapping.PhaseEvaluation || len(ph) != 9 || ph[8].Phase != mapping.PhaseEvaluation || ph[7].End == "" {
		t.Errorf("over the API the case is in %s with history %+v", mapping.Phase(eoc), ph)
	}

	// A broken case rule reads as a message saying what to do.
	b.do(chromedp.SetValue(chromedp.CSS(`#transition select[name="phase"]`), ""),
		chromedp.SetValue(chromedp.CSS(`#transition select[name="status"]`), "finished"),
		chromedp.SetValue(chromedp.CSS(`#transition select[name="reason"]`), "goals-met"))
	b.clickAndWait(`#transition button[type="submit"]`, ".problems")
	problems := b.text(".problems")
	if !strings.Contains(problems, "Guard to finished") || !strings.Contains(problems, "outcome-evaluation") ||
		strings.Contains(b.page(), `"resourceType"`) || strings.Contains(b.page(), "{") {
		t.Errorf("a broken rule shows:\n%s", problems)
	}
	if got := e.do(t, "GET", "EpisodeOfCare/"+tbi).JSON()["status"]; got != "active" {
		t.Errorf("the refused move changed the status to %v", got)
	}

	// A form without its CSRF token is refused.
	status, err := chromedp.Run(b.ctx, chromedp.Evaluate[int](`fetch("/app/case/`+tbi+`/transition", {method: "POST",
		headers: {"Content-Type": "application/x-www-form-urlencoded"}, body: "phase=monitoring"}).then(r => r.status)`, chromedp.EvalAwaitPromise))
	if err != nil || status != http.StatusForbidden {
		t.Errorf("POST without CSRF token: %d %v", status, err)
	}
	if got := mapping.Phase(e.do(t, "GET", "EpisodeOfCare/"+tbi).JSON()); got != mapping.PhaseEvaluation {
		t.Errorf("the form without CSRF token moved the case to %s", got)
	}

	// Open a case from a referral, then complete its intake task.
	b.do(chromedp.Navigate(e.root+"/app/"), chromedp.WaitVisible(chromedp.CSS(`input[name="referral"]`)),
		chromedp.SetValue(chromedp.CSS(`input[name="referral"]`), "ServiceRequest/no-such-referral"))
	b.clickAndWait(`form[action="open-case"] button[type="submit"]`, ".problems")
	if p := b.text(".problems"); !strings.Contains(p, "The case was not opened") || strings.Contains(p, "{") {
		t.Errorf("open-case with an unknown referral shows:\n%s", p)
	}
	b.do(chromedp.SetValue(chromedp.CSS(`input[name="referral"]`), "ServiceRequest/tbi-referral"),
		chromedp.SetValue(chromedp.CSS(`form[action="open-case"] select[name="category"]`), "acute"))
	b.clickAndWait(`form[action="open-case"] button[type="submit"]`, ".flash")
	if f := b.text(".flash"); !strings.Contains(f, "opened in screening") {
		t.Errorf("open-case flash %q", f)
	}
	loc, _ := chromedp.Run(b.ctx, chromedp.Location())
	opened := strings.TrimPrefix(loc, e.root+"/app/case/")
	if cur := b.text(`.track li[aria-current="step"] .name`); cur != "Screening" || opened == loc {
		t.Errorf("opened case at %s in %q", loc, cur)
	}
	b.clickAndWait(`ul.tasks form button`, ".flash")
	if f := b.text(".flash"); !strings.Contains(f, "task was marked completed") || !strings.Contains(b.page(), "No open tasks.") {
		t.Errorf("complete task: flash %q", f)
	}
	tasks := e.do(t, "GET", "Task?episode-of-care=EpisodeOfCare/"+opened)
	if ids := bundleIDs(tasks); len(ids) != 1 || !strings.Contains(string(tasks.Body), `"status":"completed"`) {
		t.Errorf("the opened case's tasks over the API: %s", tasks.Body)
	}

	// A forged state is refused.
	b.do(chromedp.Navigate(e.root+"/app/callback?code=forged-code&state=forged-state"), chromedp.WaitVisible(chromedp.CSS("h1")))
	if h := b.text("h1"); h != "This sign-in is not valid" {
		t.Errorf("forged state: %q", h)
	}

	// A patient-context launch, inside the EHR's frame, shows only that
	// patient's cases.
	b.do(chromedp.Navigate(ehr.URL + "/frame?launch=" + launchPatient))
	list = b.frameText("#app-frame", "table.cases")
	if !strings.Contains(list, "Margaret Holm") || strings.Contains(list, "Jonas Berg") {
		t.Errorf("patient-context worklist:\n%s", list)
	}
	if ctx := b.frameText("#app-frame", "header .ctx"); !strings.Contains(ctx, "Margaret Holm") {
		t.Errorf("patient context banner %q", ctx)
	}
	b.do(chromedp.Navigate(e.root+"/app/case/"+tbi), chromedp.WaitVisible(chromedp.CSS("h1")))
	if h, page := b.text("h1"), b.page(); h != "Not found" || strings.Contains(page, "Jonas") {
		t.Errorf("patient-context launch opened another patient's case: %q\n%s", h, page)
	}
	b.do(chromedp.Navigate(e.root+"/app/case/"+stroke), chromedp.WaitVisible(chromedp.CSS("#timeline-title")))
	if h := b.text("main h1"); h != "Margaret Holm" {
		t.Errorf("patient-context case page %q", h)
	}
}

// do sends a FHIR request with the env's system token.
func (e *appEnv) do(t *testing.T, method, path string) *servertest.Response {
	t.Helper()
	return doAs(t, e.s, e.sys, method, path, nil)
}

// TestAppLaunchProtocol checks the EHR launch at the HTTP level: the shape
// of the authorization request, an iss of another server refused, the code
// refused without its PKCE verifier, and a token of another audience
// refused by the FHIR API.
func TestAppLaunchProtocol(t *testing.T) {
	e := startAppEnv(t)
	jar, _ := cookiejar.New(nil)
	var authorize *url.URL
	client := &http.Client{Jar: jar, Timeout: time.Minute, CheckRedirect: func(req *http.Request, via []*http.Request) error {
		if authorize == nil && strings.HasPrefix(req.URL.String(), e.prov.Issuer) {
			authorize = req.URL
		}
		if strings.HasPrefix(req.URL.String(), e.root+"/app/callback") {
			return http.ErrUseLastResponse
		}
		return nil
	}}
	launch := e.root + "/app/launch?" + url.Values{"iss": {e.s.URL}, "launch": {launchUser}}.Encode()
	resp, err := client.Get(launch)
	if err != nil {
		t.Fatal(err)
	}
	resp.Body.Close()
	if authorize == nil {
		t.Fatalf("the launch did not redirect to the provider")
	}
	q := authorize.Query()
	for k, want := range map[string]string{"response_type": "code", "client_id": appClientID, "redirect_uri": e.root + "/app/callback",
		"aud": e.s.URL, "launch": launchUser, "code_challenge_method": "S256"} {
		if q.Get(k) != want {
			t.Errorf("authorization request %s=%q, want %q", k, q.Get(k), want)
		}
	}
	scopes := " " + q.Get("scope") + " "
	for _, s := range []string{"launch", "openid", "fhirUser", "user/EpisodeOfCare.crus"} {
		if !strings.Contains(scopes, " "+s+" ") {
			t.Errorf("scope %q lacks %s", q.Get("scope"), s)
		}
	}
	if len(q.Get("state")) < 20 || len(q.Get("code_challenge")) != 43 {
		t.Errorf("state %q, code_challenge %q", q.Get("state"), q.Get("code_challenge"))
	}
	cb, err := url.Parse(resp.Header.Get("Location"))
	if resp.StatusCode/100 != 3 || err != nil || cb.Query().Get("code") == "" || cb.Query().Get("state") != q.Get("state") {
		t.Fatalf("the provider answered %s, location %q", resp.Status, resp.Header.Get("Location"))
	}

	// The code without its PKCE verifier is refused by the provider.
	form := url.Values{"grant_type": {"authorization_code"}, "code": {cb.Query().Get("code")}, "redirect_uri": {e.root + "/app/callback"}}
	req, _ := http.NewRequest("POST", e.prov.TokenEndpoint, strings.NewReader(form.Encode()))
	req.Header.Set("Content-Type", "application/x-www-form-urlencoded")
	req.SetBasicAuth(appClientID, appClientSecret)
	tr, err := http.DefaultClient.Do(req)
	if err != nil {
		t.Fatal(err)
	}
	body, _ := io.ReadAll(tr.Body)
	tr.Body.Close()
	if tr.StatusCode != http.StatusBadRequest || strings.Contains(string(body), "access_token") {
		t.Errorf("code exchange without PKCE verifier: %s %s", tr.Status, body)
	}

	// A full launch: the callback exchanges the code and the token
	// response carries fhirUser (and patient for a patient launch).
	authorize = nil
	resp, err = client.Get(e.root + "/app/launch?" + url.Values{"iss": {e.s.URL}, "launch": {launchPatient}}.Encode())
	if err != nil {
		t.Fatal(err)
	}
	resp.Body.Close()
	client.CheckRedirect = nil
	resp, err = client.Get(resp.Header.Get("Location"))
	if err != nil {
		t.Fatal(err)
	}
	page, _ := io.ReadAll(resp.Body)
	resp.Body.Close()
	if resp.StatusCode != 200 || !strings.Contains(string(page), "Margaret Holm") || strings.Contains(string(page), "Jonas Berg") {
		t.Errorf("patient launch: %s\n%s", resp.Status, page)
	}
	for _, c := range jar.Cookies(mustURL(t, e.root+"/app/")) {
		if strings.Contains(c.Value, ".") && len(c.Value) > 100 {
			t.Errorf("cookie %s looks like a token", c.Name)
		}
	}

	// A standalone launch (no launch parameter): the default test user,
	// no patient context, the worklist of what the scopes allow.
	jar2, _ := cookiejar.New(nil)
	resp, err = (&http.Client{Jar: jar2, Timeout: time.Minute}).Get(e.root + "/app/")
	if err != nil {
		t.Fatal(err)
	}
	page, _ = io.ReadAll(resp.Body)
	resp.Body.Close()
	if resp.StatusCode != 200 || !strings.Contains(string(page), "Margaret Holm") || !strings.Contains(string(page), "Jonas Berg") ||
		resp.Request.URL.String() != e.root+"/app/" {
		t.Errorf("standalone launch: %s at %s", resp.Status, resp.Request.URL)
	}

	// A launch value the EHR does not know: the provider denies it and the
	// app says so.
	resp, err = (&http.Client{Jar: jar2, Timeout: time.Minute}).Get(e.root + "/app/launch?" + url.Values{"iss": {e.s.URL}, "launch": {"forged-launch"}}.Encode())
	if err != nil {
		t.Fatal(err)
	}
	page, _ = io.ReadAll(resp.Body)
	resp.Body.Close()
	if resp.StatusCode != http.StatusForbidden || !strings.Contains(string(page), "Sign-in was refused") {
		t.Errorf("unknown launch: %s\n%s", resp.Status, page)
	}

	// A launch naming another server is refused without a redirect.
	resp, err = client.Get(e.root + "/app/launch?" + url.Values{"iss": {"http://evil.example/fhir"}, "launch": {launchUser}}.Encode())
	if err != nil {
		t.Fatal(err)
	}
	page, _ = io.ReadAll(resp.Body)
	resp.Body.Close()
	if resp.StatusCode != http.StatusBadRequest || !strings.Contains(string(page), "another server") {
		t.Errorf("foreign iss: %s", resp.Status)
	}

	// A token of another audience is refused by the FHIR API.
	other, err := e.prov.RequestToken(context.Background(), "app-test-backend", "system/*.rs", otherAudience)
	if err != nil {
		t.Fatal(err)
	}
	r := doAs(t, e.s, other.AccessToken, "GET", "EpisodeOfCare", nil)
	wantStatus(t, r, 401)
}

func mustURL(t *testing.T, s string) *url.URL {
	t.Helper()
	u, err := url.Parse(s)
	if err != nil {
		t.Fatal(err)
	}
	return u
}

// TestAppFHIRClientLaunch runs SMART's own JavaScript client (fhirclient)
// in a plain page in Chromium: the EHR launch against casefhir's discovery
// and the provider, then a read of the patient's EpisodeOfCare.
func TestAppFHIRClientLaunch(t *testing.T) {
	b := newBrowser(t)
	ensureClients(t, clientsDir)
	lib, err := os.ReadFile(filepath.Join(clientsDir, "node_modules", "fhirclient", "build", "fhir-client.js"))
	if err != nil {
		t.Fatal(err)
	}
	pages := http.NewServeMux()
	pages.HandleFunc("/fhir-client.js", func(w http.ResponseWriter, r *http.Request) {
		w.Header().Set("Content-Type", "text/javascript")
		_, _ = w.Write(lib)
	})
	pages.HandleFunc("/launch.html", func(w http.ResponseWriter, r *http.Request) {
		w.Header().Set("Content-Type", "text/html")
		fmt.Fprint(w, `<!doctype html><script src="fhir-client.js"></script><script>
FHIR.oauth2.authorize({clientId: "fhirclient-app", scope: "launch openid fhirUser patient/EpisodeOfCare.rs patient/Patient.rs", redirectUri: "index.html"});
</script>`)
	})
	var otherCase atomic.Pointer[string] // another patient's case, set once the demo is loaded
	pages.HandleFunc("/index.html", func(w http.ResponseWriter, r *http.Request) {
		w.Header().Set("Content-Type", "text/html")
		other, _ := json.Marshal(*otherCase.Load())
		fmt.Fprintf(w, `<!doctype html><pre id="out"></pre><script src="fhir-client.js"></script><script>
const out = document.getElementById("out");
FHIR.oauth2.ready()
  .then(c => c.request("EpisodeOfCare?patient=" + c.patient.id).then(b => ({patient: c.patient.id,
     ids: (b.entry || []).map(e => e.resource.resourceType + "/" + e.resource.id)}))
    .then(r => c.request("EpisodeOfCare/" + %s).then(() => ({...r, otherStatus: 200}), e => ({...r, otherStatus: e.status || 0}))))
  .then(r => { out.textContent = JSON.stringify(r); out.className = "done"; })
  .catch(e => { out.textContent = JSON.stringify({error: String(e)}); out.className = "done"; });
</script>`, other)
	})
	ps := httptest.NewServer(pages)
	t.Cleanup(ps.Close)
	e := startAppEnv(t, authtest.Client{ID: "fhirclient-app", RedirectURIs: []string{ps.URL + "/index.html"}})
	other := e.cases["bicycle-tbi"]
	otherCase.Store(&other)

	b.do(chromedp.Navigate(ps.URL+"/launch.html?"+url.Values{"iss": {e.s.URL}, "launch": {launchPatient}}.Encode()),
		chromedp.WaitVisible(chromedp.CSS("#out.done")))
	var got struct {
		Patient     string   `json:"patient"`
		IDs         []string `json:"ids"`
		OtherStatus int      `json:"otherStatus"`
		Error       string   `json:"error"`
	}
	raw := b.text("#out")
	if err := json.Unmarshal([]byte(raw), &got); err != nil {
		t.Fatalf("fhirclient page: %s", raw)
	}
	// The access token carries the patient: the other patient's case is
	// outside its compartment (404).
	if got.Error != "" || got.Patient != "stroke-patient" || len(got.IDs) != 1 || got.IDs[0] != "EpisodeOfCare/"+e.cases["stroke-brokerage"] ||
		got.OtherStatus != http.StatusNotFound {
		t.Errorf("fhirclient read %+v", got)
	}
}
