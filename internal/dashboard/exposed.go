package dashboard

import (
	"fmt"
	"net"
	"net/http"
	"slices"
	"strings"
	"sync"
)

// Limits on the page streams (Server-Sent Events) an exposed dashboard
// holds open: per client address and in all.
const (
	DefaultMaxStreams          = 64
	DefaultMaxStreamsPerClient = 8
)

// exposure is what an exposed dashboard (Options.Exposed: served beyond
// loopback) checks before it answers: the Host, the token for reads, and
// the streams a client may hold.
type exposure struct {
	hosts     []string
	max, each int

	mu      sync.Mutex
	streams map[string]int
	total   int
}

func newExposure(o Options) *exposure {
	e := &exposure{max: o.MaxStreams, each: o.MaxStreamsPerClient, streams: map[string]int{}}
	if e.max <= 0 {
		e.max = DefaultMaxStreams
	}
	if e.each <= 0 {
		e.each = DefaultMaxStreamsPerClient
	}
	for _, h := range o.AllowedHosts {
		e.hosts = append(e.hosts, strings.ToLower(h))
	}
	return e
}

// hostAllowed says whether a request's Host is one this dashboard answers
// to when exposed: an IP literal (which no DNS rebinding can stand for)
// or a name of the allow-list (--allowed-host).
func (e *exposure) hostAllowed(hostport string) bool {
	host, _, err := net.SplitHostPort(hostport)
	if err != nil {
		host = hostport
	}
	host = strings.Trim(strings.ToLower(host), "[]")
	return net.ParseIP(host) != nil || slices.Contains(e.hosts, host)
}

// openStream counts a stream of client, or says why it is refused.
func (e *exposure) openStream(client string) (func(), string) {
	e.mu.Lock()
	defer e.mu.Unlock()
	switch {
	case e.total >= e.max:
		return nil, fmt.Sprintf("%d page streams are open already (the limit); close a page", e.total)
	case e.streams[client] >= e.each:
		return nil, fmt.Sprintf("this client holds %d page streams already (the limit); close a page", e.streams[client])
	}
	e.streams[client]++
	e.total++
	return func() {
		e.mu.Lock()
		defer e.mu.Unlock()
		e.total--
		if e.streams[client]--; e.streams[client] <= 0 {
			delete(e.streams, client)
		}
	}, ""
}

// readAllowed says whether an exposed dashboard may show r: only with
// this run's token, from the cookie the first visit set, the header the
// page sends, or the URL's token on a first visit.
func (s *Server) readAllowed(r *http.Request) bool {
	if !s.o.Exposed {
		return true
	}
	if s.tokenState(r.Header.Get(TokenHeader)) == "ok" || s.tokenState(r.URL.Query().Get("token")) == "ok" {
		return true
	}
	c, err := r.Cookie(TokenCookie)
	return err == nil && s.tokenState(c.Value) == "ok"
}

// exposedGuard applies the exposed policy to everything but the static
// assets and /healthz: an allowed Host, and the token for any read.
func (s *Server) exposedGuard(w http.ResponseWriter, r *http.Request) bool {
	if !s.o.Exposed {
		return true
	}
	if !s.exposure.hostAllowed(r.Host) {
		http.Error(w, fmt.Sprintf("host %q refused: this dashboard answers to its IP address and the names of --allowed-host only", r.Host), http.StatusForbidden)
		return false
	}
	if strings.HasPrefix(r.URL.Path, "/assets/") || r.URL.Path == "/healthz" {
		return true
	}
	if !s.readAllowed(r) {
		http.Error(w, "this dashboard is served beyond loopback: open the URL it printed (it carries the token)", http.StatusUnauthorized)
		return false
	}
	return true
}

// clientOf is the client's address without its port.
func clientOf(r *http.Request) string {
	host, _, err := net.SplitHostPort(r.RemoteAddr)
	if err != nil {
		return r.RemoteAddr
	}
	return host
}
