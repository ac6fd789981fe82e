package dashboard

import (
	"context"
	"crypto/rand"
	"crypto/sha256"
	"crypto/subtle"
	"embed"
	"encoding/base64"
	"encoding/hex"
	"encoding/json"
	"errors"
	"fmt"
	"html/template"
	"io"
	"io/fs"
	"log/slog"
	"net"
	"net/http"
	"path"
	"slices"
	"strconv"
	"sync"
	"time"

	"lockstep.dev/lockstep/internal/readout"
	"lockstep.dev/lockstep/internal/view"
)

//go:embed assets
var assets embed.FS

// Verbs are the actions the page offers, in the order of its buttons.
var Verbs = []string{"promote", "pause", "resume", "abort", "retry", "approve"}

// TokenCookie carries the per-run token after the first visit, so that
// the URL can drop it.
const TokenCookie = "lockstep_token"

// TokenHeader is how the page sends the token with an action.
const TokenHeader = "X-Lockstep-Token"

// Options configure a Server.
type Options struct {
	Source Source
	// Metrics feed the success-rate and latency plots; with none,
	// MetricsOff says why on the page.
	Metrics    *readout.Metrics
	MetricsOff string
	// Interval is how often a page's fleet is read besides on changes;
	// MetricsInterval how often Thanos is asked. Default 2s each.
	Interval        time.Duration
	MetricsInterval time.Duration
	// Token is the per-run secret that actions need; empty: read-only.
	Token string
	// ActionsOff, when set, turns the buttons off and says why (a
	// non-loopback address without --allow-actions, the coordinator).
	ActionsOff string
	// Loopback answers only requests addressed to a loopback name, so a
	// web page elsewhere cannot reach the dashboard by DNS rebinding.
	Loopback bool
	// Exposed is for a dashboard reachable beyond loopback: every read
	// needs Token too (a cookie after the first visit), the Host must be
	// an IP address or one of AllowedHosts, and each client may hold at
	// most MaxStreamsPerClient page streams, MaxStreams in all.
	Exposed                         bool
	AllowedHosts                    []string
	MaxStreams, MaxStreamsPerClient int
	// Threshold is the success-rate line without a FleetRollout that
	// says otherwise. Default 0.9.
	Threshold float64
	// IdleTimeout stops reading a fleet no page has watched for this
	// long (default 2m); MaxFleets bounds the fleets read at once.
	IdleTimeout time.Duration
	MaxFleets   int
	Log         *slog.Logger
	Now         func() time.Time
}

// Server is the dashboard's HTTP handler and the fleets it reads.
type Server struct {
	o       Options
	ctx     context.Context
	cancel  context.CancelFunc
	pages   *template.Template
	static  map[string]asset
	mu      sync.Mutex
	tracked map[Ref]*tracker
	wg      sync.WaitGroup
	// exposure holds the exposed policy's state (Options.Exposed).
	exposure *exposure
	// acting serialises the actions on each fleet, tracked or not.
	actingMu sync.Mutex
	acting   map[Ref]*sync.Mutex
}

type asset struct {
	body        []byte
	contentType string
	hash        string
}

// New returns a server; it reads nothing until a page asks.
func New(o Options) (*Server, error) {
	if o.Source == nil {
		return nil, errors.New("dashboard: no source")
	}
	if o.Interval <= 0 {
		o.Interval = 2 * time.Second
	}
	if o.MetricsInterval <= 0 {
		o.MetricsInterval = 2 * time.Second
	}
	if o.Threshold == 0 {
		o.Threshold = 0.9
	}
	if o.IdleTimeout <= 0 {
		o.IdleTimeout = 2 * time.Minute
	}
	if o.MaxFleets <= 0 {
		o.MaxFleets = 16
	}
	if o.Log == nil {
		o.Log = slog.New(slog.NewTextHandler(io.Discard, nil))
	}
	if o.Now == nil {
		o.Now = time.Now
	}
	if o.Exposed && o.Token == "" {
		return nil, errors.New("a dashboard served beyond loopback needs a token: every read asks for it")
	}
	s := &Server{o: o, tracked: map[Ref]*tracker{}, static: map[string]asset{}, exposure: newExposure(o), acting: map[Ref]*sync.Mutex{}}
	s.ctx, s.cancel = context.WithCancel(context.Background())
	err := fs.WalkDir(assets, "assets", func(p string, d fs.DirEntry, err error) error {
		if err != nil || d.IsDir() || path.Ext(p) == ".tmpl" {
			return err
		}
		b, err := assets.ReadFile(p)
		if err != nil {
			return err
		}
		sum := sha256.Sum256(b)
		ct := map[string]string{".js": "text/javascript; charset=utf-8", ".css": "text/css; charset=utf-8", ".png": "image/png"}[path.Ext(p)]
		if ct == "" {
			ct = "text/plain; charset=utf-8"
		}
		s.static[path.Base(p)] = asset{body: b, contentType: ct, hash: hex.EncodeToString(sum[:8])}
		return nil
	})
	if err != nil {
		return nil, err
	}
	s.pages, err = template.New("").Funcs(template.FuncMap{"asset": s.assetURL}).ParseFS(assets, "assets/*.tmpl")
	if err != nil {
		return nil, err
	}
	go s.reap()
	return s, nil
}

func (s *Server) now() time.Time { return s.o.Now() }

// NewToken returns a fresh per-run token.
func NewToken() (string, error) {
	b := make([]byte, 24)
	if _, err := rand.Read(b); err != nil {
		return "", err
	}
	return base64.RawURLEncoding.EncodeToString(b), nil
}

// IsLoopback reports whether a listen address's host is loopback only.
func IsLoopback(host string) bool {
	if host == "localhost" {
		return true
	}
	ip := net.ParseIP(host)
	return ip != nil && ip.IsLoopback()
}

// Watch starts reading ref now and keeps reading it while the server
// runs, so that its plots begin before any page is opened (the demo).
func (s *Server) Watch(ref Ref) error {
	t, err := s.track(ref)
	if err != nil {
		return err
	}
	t.mu.Lock()
	t.pinned = true
	t.mu.Unlock()
	return nil
}

// Close stops every fleet's reads and ends the pages' streams.
func (s *Server) Close() {
	s.cancel()
	s.wg.Wait()
}

// Serve answers on ln until ctx ends.
func (s *Server) Serve(ctx context.Context, ln net.Listener) error {
	hs := &http.Server{
		Handler:           s.Handler(),
		ReadHeaderTimeout: 10 * time.Second,
		// Requests are small; answers are written at once, but for the
		// streams, which push their write deadline on at every event
		// (streamWriteTimeout).
		ReadTimeout:  30 * time.Second,
		WriteTimeout: 30 * time.Second,
		IdleTimeout:  2 * time.Minute,
		BaseContext:  func(net.Listener) context.Context { return s.ctx },
	}
	go func() {
		<-ctx.Done()
		s.cancel()
		sctx, cancel := context.WithTimeout(context.Background(), 2*time.Second)
		defer cancel()
		_ = hs.Shutdown(sctx)
	}()
	err := hs.Serve(ln)
	if errors.Is(err, http.ErrServerClosed) {
		return nil
	}
	return err
}

// Handler routes the pages, streams, actions and assets.
func (s *Server) Handler() http.Handler {
	mux := http.NewServeMux()
	mux.HandleFunc("GET /{$}", s.index)
	mux.HandleFunc("GET /healthz", func(w http.ResponseWriter, _ *http.Request) { _, _ = io.WriteString(w, "ok\n") })
	mux.HandleFunc("GET /assets/{file}", s.asset)
	mux.HandleFunc("GET /{kind}/{ns}/{name}", s.page)
	mux.HandleFunc("GET /api/{kind}/{ns}/{name}", s.snapshot)
	mux.HandleFunc("GET /api/{kind}/{ns}/{name}/stream", s.stream)
	mux.HandleFunc("POST /api/{kind}/{ns}/{name}/actions/{verb}", s.act)
	return s.guard(mux)
}

// guard sets the headers every answer carries and refuses requests
// addressed to a name that is not loopback while serving on loopback.
func (s *Server) guard(next http.Handler) http.Handler {
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		h := w.Header()
		h.Set("Content-Security-Policy", "default-src 'self'; style-src 'self' 'unsafe-inline'; img-src 'self' data:; frame-ancestors 'none'; base-uri 'none'; form-action 'none'")
		h.Set("X-Frame-Options", "DENY")
		h.Set("X-Content-Type-Options", "nosniff")
		// The first URL carries the token: it must not leak to anything
		// the page links to.
		h.Set("Referrer-Policy", "no-referrer")
		if s.o.Loopback {
			host, _, err := net.SplitHostPort(r.Host)
			if err != nil {
				host = r.Host
			}
			if !IsLoopback(host) {
				http.Error(w, fmt.Sprintf("host %q refused: this dashboard serves loopback only (127.0.0.1, localhost)", r.Host), http.StatusForbidden)
				return
			}
		}
		if !s.exposedGuard(w, r) {
			return
		}
		next.ServeHTTP(w, r)
	})
}

func (s *Server) assetURL(name string) string {
	a, ok := s.static[name]
	if !ok {
		return "/assets/" + name
	}
	return "/assets/" + name + "?v=" + a.hash
}

func (s *Server) asset(w http.ResponseWriter, r *http.Request) {
	a, ok := s.static[r.PathValue("file")]
	if !ok {
		http.NotFound(w, r)
		return
	}
	w.Header().Set("Content-Type", a.contentType)
	// Asset URLs carry their content hash, so they never change.
	w.Header().Set("Cache-Control", "public, max-age=31536000, immutable")
	_, _ = w.Write(a.body)
}

// tokenState says what the request's token is: "ok", "none" or "stale".
func (s *Server) tokenState(given string) string {
	switch {
	case s.o.Token == "" || given == "":
		return "none"
	case subtle.ConstantTimeCompare([]byte(given), []byte(s.o.Token)) == 1:
		return "ok"
	}
	return "stale"
}

func (s *Server) actions() Actions {
	switch {
	case s.o.ActionsOff != "":
		return Actions{Reason: s.o.ActionsOff}
	case s.o.Token == "":
		return Actions{Reason: "this dashboard was started read-only"}
	}
	return Actions{Enabled: true}
}

type pageData struct {
	Title, Heading string
	Ref            Ref
	Kind           string
	Token          string
	TokenState     string
	Error          string
	Entries        []IndexEntry
	Verbs          []string
	Actions        Actions
	Status         int
}

// withToken handles the token of a page request: a valid one in the URL
// becomes a cookie and the URL drops it (a redirect); otherwise the
// cookie's decides. It returns false when it answered.
func (s *Server) withToken(w http.ResponseWriter, r *http.Request, d *pageData) bool {
	q := r.URL.Query()
	if given := q.Get("token"); given != "" {
		d.TokenState = s.tokenState(given)
		if d.TokenState == "ok" {
			http.SetCookie(w, &http.Cookie{Name: TokenCookie, Value: given, Path: "/", HttpOnly: true, SameSite: http.SameSiteStrictMode})
			q.Del("token")
			u := *r.URL
			u.RawQuery = q.Encode()
			http.Redirect(w, r, u.RequestURI(), http.StatusSeeOther)
			return false
		}
		return true
	}
	d.TokenState = "none"
	if c, err := r.Cookie(TokenCookie); err == nil {
		d.TokenState = s.tokenState(c.Value)
	}
	if d.TokenState == "ok" {
		d.Token = s.o.Token
	}
	return true
}

func (s *Server) index(w http.ResponseWriter, r *http.Request) {
	d := pageData{Title: "Lockstep fleets", Heading: "Fleets", Kind: "index", Verbs: Verbs, Actions: s.actions(), Status: http.StatusOK}
	if !s.withToken(w, r, &d) {
		return
	}
	ctx, cancel := context.WithTimeout(r.Context(), 10*time.Second)
	defer cancel()
	entries, err := s.o.Source.Index(ctx)
	if err != nil {
		d.Error, d.Status = oneLine(err.Error()), http.StatusBadGateway
	}
	d.Entries = entries
	s.render(w, "index.html.tmpl", d)
}

func (s *Server) render(w http.ResponseWriter, name string, d pageData) {
	w.Header().Set("Content-Type", "text/html; charset=utf-8")
	w.Header().Set("Cache-Control", "no-store")
	w.WriteHeader(d.Status)
	if err := s.pages.ExecuteTemplate(w, name, d); err != nil {
		s.o.Log.Error("Rendering page failed", "page", name, "err", err)
	}
}

func refOf(r *http.Request) Ref {
	return Ref{Kind: r.PathValue("kind"), Namespace: r.PathValue("ns"), Name: r.PathValue("name")}
}

func (s *Server) page(w http.ResponseWriter, r *http.Request) {
	ref := refOf(r)
	d := pageData{Title: ref.String() + " · lockstep", Heading: ref.String(), Ref: ref, Kind: "fleet", Verbs: Verbs, Actions: s.actions(), Status: http.StatusOK}
	if !s.withToken(w, r, &d) {
		return
	}
	if err := ref.Validate(); err != nil {
		d.Kind, d.Error, d.Status = "error", err.Error(), http.StatusBadRequest
		s.render(w, "index.html.tmpl", d)
		return
	}
	t, err := s.track(ref)
	if err != nil {
		d.Kind, d.Error, d.Status = "error", err.Error(), http.StatusServiceUnavailable
		s.render(w, "index.html.tmpl", d)
		return
	}
	// The status code says whether the fleet exists; the page itself
	// keeps reading and fills in if it appears later (a demo's
	// FleetRollout comes with Argo CD's first sync).
	select {
	case <-t.first:
		t.mu.Lock()
		if t.last.NotFound {
			d.Status, d.Error = http.StatusNotFound, t.last.Error
		}
		t.mu.Unlock()
	case <-time.After(3 * time.Second):
	case <-r.Context().Done():
		return
	}
	s.render(w, "fleet.html.tmpl", d)
}

// track returns ref's tracker, starting it when no page read ref yet.
func (s *Server) track(ref Ref) (*tracker, error) {
	if err := ref.Validate(); err != nil {
		return nil, err
	}
	s.mu.Lock()
	defer s.mu.Unlock()
	if t := s.tracked[ref]; t != nil {
		return t, nil
	}
	if s.ctx.Err() != nil {
		return nil, errors.New("the dashboard is shutting down")
	}
	if len(s.tracked) >= s.o.MaxFleets {
		return nil, fmt.Errorf("%d fleets are being read already; close a page or wait %s", len(s.tracked), s.o.IdleTimeout)
	}
	f, err := s.o.Source.Open(ref)
	if err != nil {
		return nil, err
	}
	ctx, cancel := context.WithCancel(s.ctx)
	t := &tracker{srv: s, ref: ref, fleet: f, cancel: cancel, first: make(chan struct{}), subs: map[chan []byte]struct{}{}, idleAt: s.now()}
	s.tracked[ref] = t
	s.wg.Add(1)
	go func() {
		defer s.wg.Done()
		t.run(ctx)
	}()
	return t, nil
}

// reap stops reading fleets that no page has watched for IdleTimeout.
func (s *Server) reap() {
	tick := time.NewTicker(s.o.IdleTimeout / 4)
	defer tick.Stop()
	for {
		select {
		case <-s.ctx.Done():
			return
		case <-tick.C:
		}
		s.mu.Lock()
		for ref, t := range s.tracked {
			t.mu.Lock()
			idle := !t.pinned && len(t.subs) == 0 && s.now().Sub(t.idleAt) > s.o.IdleTimeout
			t.mu.Unlock()
			if idle {
				t.cancel()
				delete(s.tracked, ref)
			}
		}
		s.mu.Unlock()
	}
}

func writeJSON(w http.ResponseWriter, code int, v any) {
	w.Header().Set("Content-Type", "application/json")
	w.Header().Set("Cache-Control", "no-store")
	w.WriteHeader(code)
	_ = json.NewEncoder(w).Encode(v)
}

type apiError struct {
	Error string `json:"error"`
}

func (s *Server) snapshot(w http.ResponseWriter, r *http.Request) {
	t, err := s.track(refOf(r))
	if err != nil {
		writeJSON(w, http.StatusBadRequest, apiError{err.Error()})
		return
	}
	select {
	case <-t.first:
	case <-r.Context().Done():
		return
	}
	snap := t.full()
	code := http.StatusOK
	if snap.NotFound {
		code = http.StatusNotFound
	}
	writeJSON(w, code, snap)
}

// stream sends the page's state as server-sent events: the whole state
// first, then every change.
func (s *Server) stream(w http.ResponseWriter, r *http.Request) {
	t, err := s.track(refOf(r))
	if err != nil {
		writeJSON(w, http.StatusBadRequest, apiError{err.Error()})
		return
	}
	fl, ok := w.(http.Flusher)
	if !ok {
		http.Error(w, "streaming unsupported", http.StatusInternalServerError)
		return
	}
	select {
	case <-t.first:
	case <-r.Context().Done():
		return
	}
	if s.o.Exposed {
		done, why := s.exposure.openStream(clientOf(r))
		if done == nil {
			writeJSON(w, http.StatusTooManyRequests, apiError{why})
			return
		}
		defer done()
	}
	rc := http.NewResponseController(w)
	_ = rc.SetWriteDeadline(time.Now().Add(streamWriteTimeout))
	ch, full := t.subscribe()
	defer t.unsubscribe(ch)
	h := w.Header()
	h.Set("Content-Type", "text/event-stream")
	h.Set("Cache-Control", "no-store")
	h.Set("X-Accel-Buffering", "no")
	first, err := json.Marshal(full)
	if err != nil {
		return
	}
	_, _ = fmt.Fprintf(w, "retry: 1000\ndata: %s\n\n", first)
	fl.Flush()
	keepalive := time.NewTicker(15 * time.Second)
	defer keepalive.Stop()
	for {
		select {
		case <-r.Context().Done():
			return
		case msg, ok := <-ch:
			if !ok {
				return
			}
			if _, err := fmt.Fprintf(w, "data: %s\n\n", msg); err != nil {
				return
			}
		case <-keepalive.C:
			if _, err := io.WriteString(w, ": keepalive\n\n"); err != nil {
				return
			}
		}
		fl.Flush()
		_ = rc.SetWriteDeadline(time.Now().Add(streamWriteTimeout))
	}
}

// act runs a verb. It refuses, changing nothing, unless actions are on,
// the request comes from the dashboard's own page (same origin) and it
// carries this run's token in TokenHeader: a cross-site form or script can
// send neither the header nor the token.
func (s *Server) act(w http.ResponseWriter, r *http.Request) {
	ref, verb := refOf(r), r.PathValue("verb")
	refuse := func(code int, msg string) {
		s.o.Log.Info("Action refused", "ref", ref.String(), "verb", verb, "remote", r.RemoteAddr, "why", msg)
		writeJSON(w, code, apiError{msg})
	}
	if a := s.actions(); !a.Enabled {
		refuse(http.StatusForbidden, "actions are off: "+a.Reason)
		return
	}
	if site := r.Header.Get("Sec-Fetch-Site"); site != "" && site != "same-origin" && site != "none" {
		refuse(http.StatusForbidden, "cross-site request refused ("+site+")")
		return
	}
	if origin := r.Header.Get("Origin"); origin != "" && origin != "http://"+r.Host && origin != "https://"+r.Host {
		refuse(http.StatusForbidden, fmt.Sprintf("request from origin %s refused: only this dashboard's own page may act", origin))
		return
	}
	switch s.tokenState(r.Header.Get(TokenHeader)) {
	case "none":
		refuse(http.StatusForbidden, "no token: open the URL that lockstep dashboard printed (it carries this run's token)")
		return
	case "stale":
		refuse(http.StatusForbidden, "stale token: it is not this dashboard's (an earlier run?); open the URL that lockstep dashboard printed")
		return
	}
	if !slices.Contains(Verbs, verb) {
		refuse(http.StatusBadRequest, fmt.Sprintf("unknown action %q (want one of %v)", verb, Verbs))
		return
	}
	ctx, cancel := context.WithTimeout(r.Context(), 45*time.Second)
	defer cancel()
	f, release, err := s.actingFleet(ctx, ref)
	var nf *notFoundError
	switch {
	case errors.As(err, &nf):
		refuse(http.StatusNotFound, nf.msg)
		return
	case err != nil:
		refuse(http.StatusBadRequest, err.Error())
		return
	}
	defer release()
	if verb == "promote" {
		if msg := promoteAt(ctx, f, r.URL.Query().Get("step")); msg != "" {
			refuse(http.StatusConflict, msg)
			return
		}
	}
	res, err := f.Act(ctx, verb)
	if err != nil {
		s.o.Log.Info("Action failed", "ref", ref.String(), "verb", verb, "err", err)
		writeJSON(w, http.StatusConflict, apiError{oneLine(err.Error())})
		return
	}
	s.o.Log.Info("Action done", "ref", ref.String(), "verb", verb, "message", res.Message)
	code := http.StatusOK
	for _, c := range res.Results {
		if !c.OK {
			code = http.StatusBadGateway
		}
	}
	writeJSON(w, code, res)
}

// actingFleet is the fleet an action works on, with this fleet's action
// lock held: one action at a time per fleet, so a second page's promote
// waits for the first and is then checked against where the fleet is.
// It is the tracked fleet when there is one, or one opened for this
// action alone: an abort is never refused for want of a tracker slot.
// A fleet that does not exist is an error saying so.
func (s *Server) actingFleet(ctx context.Context, ref Ref) (Fleet, func(), error) {
	if err := ref.Validate(); err != nil {
		return nil, nil, err
	}
	s.actingMu.Lock()
	lock := s.acting[ref]
	if lock == nil {
		lock = &sync.Mutex{}
		s.acting[ref] = lock
	}
	s.actingMu.Unlock()
	lock.Lock()
	if t, err := s.track(ref); err == nil {
		select {
		case <-t.first:
		case <-ctx.Done():
			lock.Unlock()
			return nil, nil, ctx.Err()
		}
		t.mu.Lock()
		missing, why := t.last.NotFound, t.last.Error
		t.mu.Unlock()
		if missing {
			lock.Unlock()
			return nil, nil, &notFoundError{why}
		}
		return t.fleet, lock.Unlock, nil
	}
	f, err := s.o.Source.Open(ref)
	if err != nil {
		lock.Unlock()
		return nil, nil, err
	}
	if p := f.Refresh(ctx); p.NotFound {
		f.Close()
		lock.Unlock()
		return nil, nil, &notFoundError{oneLine(p.Err.Error())}
	}
	return f, func() { f.Close(); lock.Unlock() }, nil
}

// notFoundError is a fleet an action names that does not exist.
type notFoundError struct{ msg string }

func (e *notFoundError) Error() string { return e.msg }

// promoteAt refuses a promote clicked at a step the fleet has left (or
// one that says no step): two pages promoting at once must not move the
// fleet two steps. The fleet is read afresh.
func promoteAt(ctx context.Context, f Fleet, clicked string) string {
	at, err := strconv.ParseInt(clicked, 10, 32)
	if err != nil {
		return "promote refused: the request names no step (?step=N, the step it was clicked at); reload the page"
	}
	p := f.Refresh(ctx)
	if p.Err != nil && p.FleetRollout == nil && len(p.Fleet.Clusters) == 0 {
		return "promote refused: the fleet cannot be read now: " + oneLine(p.Err.Error())
	}
	now, ok := CurrentStep(p.Fleet)
	if !ok {
		return "promote refused: no cluster reports a step yet"
	}
	if now != int32(at) {
		return fmt.Sprintf("promote refused: it was clicked at step %d, and the fleet is at step %d now (another promote?); look again and promote from there", at, now)
	}
	return ""
}

// CurrentStep is the step a fleet is at: the coordinator's, or the
// lowest of its clusters'.
func CurrentStep(f view.Fleet) (int32, bool) {
	if c := f.Coordinator; c != nil && c.CurrentStep != nil {
		return *c.CurrentStep, true
	}
	lo, ok := int32(0), false
	for _, c := range f.Clusters {
		if c.Step != nil && (!ok || *c.Step < lo) {
			lo, ok = *c.Step, true
		}
	}
	return lo, ok
}

// streamWriteTimeout bounds one event's write to a page stream; the
// stream itself lasts while the page is open (keepalives every 15 s).
const streamWriteTimeout = 30 * time.Second

// Source is the server's source.
func (s *Server) Source() Source { return s.o.Source }
