package meshsim

import (
	"cmp"
	"context"
	"errors"
	"fmt"
	"log/slog"
	"net"
	"net/http"
	"sync"
	"time"
)

// shutdownGrace bounds how long Run waits for in-flight requests once its
// context is done. Requests see their context cancelled at once, so only a
// handler that ignores it can use the grace.
const shutdownGrace = 5 * time.Second

// LoopbackAddr checks that addr is a host:port on the loopback interface
// and returns it with an empty host replaced by 127.0.0.1. meshsim only
// ever serves the lab on this machine, so anything else is a mistake that
// could expose it. Port 0 asks the kernel for a free port.
func LoopbackAddr(addr string) (string, error) {
	if addr == "" {
		addr = ":0"
	}
	host, port, err := net.SplitHostPort(addr)
	if err != nil {
		return "", fmt.Errorf("address %q: %w", addr, err)
	}
	switch host {
	case "", "localhost":
		host = "127.0.0.1"
	default:
		ip := net.ParseIP(host)
		if ip == nil || !ip.IsLoopback() {
			return "", fmt.Errorf("address %q: meshsim binds only to loopback addresses such as 127.0.0.1", addr)
		}
	}
	return net.JoinHostPort(host, port), nil
}

// Server serves one handler on a loopback address.
type Server struct {
	name    string
	addr    string
	handler http.Handler
	log     *slog.Logger

	mu    sync.Mutex
	bound string
	ready chan struct{}
}

// NewServer validates addr (see LoopbackAddr); it does no I/O. name is
// used in logs and errors.
func NewServer(name, addr string, handler http.Handler, logger *slog.Logger) (*Server, error) {
	a, err := LoopbackAddr(addr)
	if err != nil {
		return nil, fmt.Errorf("%s server: %w", name, err)
	}
	if handler == nil {
		return nil, fmt.Errorf("%s server: no handler", name)
	}
	return &Server{name: name, addr: a, handler: handler, log: cmp.Or(logger, slog.Default()), ready: make(chan struct{})}, nil
}

// Addr returns the bound address once Ready is closed, "" before.
func (s *Server) Addr() string {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.bound
}

// Ready is closed once the server listens.
func (s *Server) Ready() <-chan struct{} { return s.ready }

// Run listens and serves until ctx is done, then shuts down.
func (s *Server) Run(ctx context.Context) error {
	ln, err := s.listen(ctx)
	if err != nil {
		return err
	}
	return s.serve(ctx, ln)
}

func (s *Server) listen(ctx context.Context) (net.Listener, error) {
	var lc net.ListenConfig
	ln, err := lc.Listen(ctx, "tcp", s.addr)
	if err != nil {
		return nil, fmt.Errorf("%s server: %w", s.name, err)
	}
	s.mu.Lock()
	defer s.mu.Unlock()
	if s.bound != "" {
		_ = ln.Close()
		return nil, fmt.Errorf("%s server: already running", s.name)
	}
	s.bound = ln.Addr().String()
	close(s.ready)
	return ln, nil
}

func (s *Server) serve(ctx context.Context, ln net.Listener) error {
	// Requests inherit a context that ends with ctx, so a handler waiting
	// out an injected latency stops as soon as the simulation does.
	base, cancel := context.WithCancel(context.WithoutCancel(ctx))
	defer cancel()
	srv := &http.Server{
		Handler:           s.handler,
		ReadHeaderTimeout: 10 * time.Second,
		BaseContext:       func(net.Listener) context.Context { return base },
		ErrorLog:          slog.NewLogLogger(s.log.Handler(), slog.LevelDebug),
	}
	served := make(chan error, 1)
	go func() { served <- srv.Serve(ln) }()
	select {
	case err := <-served:
		return fmt.Errorf("%s server: %w", s.name, err)
	case <-ctx.Done():
	}
	cancel()
	shutdownCtx, stop := context.WithTimeout(context.WithoutCancel(ctx), shutdownGrace)
	defer stop()
	if err := srv.Shutdown(shutdownCtx); err != nil {
		_ = srv.Close()
		s.log.Warn("server did not shut down in time", "server", s.name, "err", err)
	}
	if err := <-served; err != nil && !errors.Is(err, http.ErrServerClosed) {
		return fmt.Errorf("%s server: %w", s.name, err)
	}
	return nil
}
