package local

import (
	"errors"
	"fmt"
	"io"
	"net"
	"os/exec"
	"runtime"
	"strconv"
	"sync"
	"time"

	"golang.org/x/sys/unix"
)

// netNS is a private network namespace for upstream servers that bind
// 0.0.0.0 with no flag to change it (Argo CD's application-controller metrics
// port). As root it lives on one locked OS thread of the supervisor: processes
// are forked from that thread, so they start inside it, and their loopback is
// bridged to the host's loopback port by port. Nothing inside the namespace
// is reachable from any network, the host's included, except through the
// bridged ports, which only forward outwards, and the exposed ones.
//
// Without root (userns_linux.go), the namespace is a network namespace owned
// by a user namespace, both made at fork time by a helper process (`lockstep
// lab netns-helper`) with the caller's uid and gid mapped to themselves: the
// helper brings the loopback up and hands the supervisor, over a socket pair,
// the bridged listeners and, on request, sockets made inside; processes are
// started in it by nsenter(1) through the supervisor's open handles on the
// helper's /proc/<pid>/ns/{user,net}. A Go process cannot join a user
// namespace itself (it is multithreaded), and a non-root one cannot join a
// network namespace without one, so both halves run in single-threaded
// children: the helper, created inside, and nsenter, which enters.
type netNS struct {
	// reqs runs functions on the namespace's locked thread (root).
	reqs chan func()
	// user is the helper's namespace (without root); nil with reqs.
	user   *userNS
	mu     sync.Mutex
	lns    []net.Listener
	closed bool
}

// newNetNS creates the namespace, brings its loopback up and forwards each
// given 127.0.0.1 port from inside it to the same port on the host.
func newNetNS(ports []int) (*netNS, error) {
	n := &netNS{reqs: make(chan func())}
	errc := make(chan error, 1)
	go func() {
		// Never unlocked: when this goroutine returns, the runtime retires
		// the thread and with it the namespace.
		runtime.LockOSThread()
		if err := unix.Unshare(unix.CLONE_NEWNET); err != nil {
			errc <- fmt.Errorf("unshare network namespace: %w", err)
			return
		}
		if err := loopbackUp(); err != nil {
			errc <- err
			return
		}
		for _, p := range ports {
			ln, err := net.Listen("tcp", "127.0.0.1:"+strconv.Itoa(p))
			if err != nil {
				errc <- fmt.Errorf("bridge port %d: %w", p, err)
				return
			}
			n.lns = append(n.lns, ln)
		}
		errc <- nil
		for f := range n.reqs {
			f()
		}
	}()
	if err := <-errc; err != nil {
		return nil, err
	}
	n.forwardAll(ports)
	return n, nil
}

// forwardAll starts forwarding n.lns[i], inside, to ports[i] on the host.
func (n *netNS) forwardAll(ports []int) {
	for i, ln := range n.lns {
		go n.forward(ln, ports[i])
	}
}

func loopbackUp() error {
	fd, err := unix.Socket(unix.AF_INET, unix.SOCK_DGRAM|unix.SOCK_CLOEXEC, 0)
	if err != nil {
		return fmt.Errorf("loopback socket: %w", err)
	}
	defer unix.Close(fd)
	ifr, err := unix.NewIfreq("lo")
	if err != nil {
		return err
	}
	if err := unix.IoctlIfreq(fd, unix.SIOCGIFFLAGS, ifr); err != nil {
		return fmt.Errorf("read loopback flags: %w", err)
	}
	ifr.SetUint16(ifr.Uint16() | unix.IFF_UP | unix.IFF_RUNNING)
	if err := unix.IoctlIfreq(fd, unix.SIOCSIFFLAGS, ifr); err != nil {
		return fmt.Errorf("bring loopback up: %w", err)
	}
	return nil
}

// forward accepts inside the namespace and dials the host: this goroutine
// is not locked, so its dials happen on threads in the host namespace.
func (n *netNS) forward(ln net.Listener, port int) {
	for {
		c, err := ln.Accept()
		if err != nil {
			return
		}
		go func() {
			defer c.Close()
			up, err := net.Dial("tcp", "127.0.0.1:"+strconv.Itoa(port))
			if err != nil {
				return
			}
			defer up.Close()
			pipe(c, up)
		}()
	}
}

// dial opens a connection to 127.0.0.1:port inside the namespace: the
// socket is created on the namespace's thread, then used from anywhere.
func (n *netNS) dial(port int) (net.Conn, error) {
	n.mu.Lock()
	if n.closed {
		n.mu.Unlock()
		return nil, errors.New("network namespace closed")
	}
	if n.user != nil {
		n.mu.Unlock()
		return n.user.dial(port)
	}
	type res struct {
		c   net.Conn
		err error
	}
	rc := make(chan res, 1)
	// Sent under the lock so close cannot close the channel in between.
	n.reqs <- func() {
		c, err := net.DialTimeout("tcp", "127.0.0.1:"+strconv.Itoa(port), 2*time.Second)
		rc <- res{c, err}
	}
	n.mu.Unlock()
	r := <-rc
	return r.c, r.err
}

// expose makes 127.0.0.1:insidePort of the namespace reachable on the
// host's 127.0.0.1:hostPort (health checks, Prometheus scrapes).
func (n *netNS) expose(insidePort, hostPort int) error {
	ln, err := net.Listen("tcp", "127.0.0.1:"+strconv.Itoa(hostPort))
	if err != nil {
		return fmt.Errorf("expose port %d: %w", hostPort, err)
	}
	n.mu.Lock()
	n.lns = append(n.lns, ln)
	n.mu.Unlock()
	go func() {
		for {
			c, err := ln.Accept()
			if err != nil {
				return
			}
			go func() {
				defer c.Close()
				in, err := n.dial(insidePort)
				if err != nil {
					return
				}
				defer in.Close()
				pipe(c, in)
			}()
		}
	}()
	return nil
}

func pipe(a, b net.Conn) {
	done := make(chan struct{}, 2)
	go func() { _, _ = io.Copy(a, b); done <- struct{}{} }()
	go func() { _, _ = io.Copy(b, a); done <- struct{}{} }()
	<-done
}

// start starts cmd inside the namespace: forked from its thread (root), or
// through nsenter.
func (n *netNS) start(cmd *exec.Cmd) error {
	n.mu.Lock()
	if n.closed {
		n.mu.Unlock()
		return errors.New("network namespace closed")
	}
	if n.user != nil {
		n.mu.Unlock()
		return n.user.start(cmd)
	}
	errc := make(chan error, 1)
	n.reqs <- func() { errc <- cmd.Start() }
	n.mu.Unlock()
	return <-errc
}

func (n *netNS) close() {
	n.mu.Lock()
	defer n.mu.Unlock()
	if n.closed {
		return
	}
	for _, ln := range n.lns {
		_ = ln.Close()
	}
	n.closed = true
	if n.user != nil {
		n.user.close()
		return
	}
	close(n.reqs)
}

// The servers that bind 0.0.0.0 whatever their flags say, and so run only
// inside a private network namespace.
const wildcardServers = "Argo CD's application-controller and the Argo Rollouts controllers bind 0.0.0.0 and are never started outside a private network namespace"

// errNoNetNSFlag refuses --no-netns on a full fleet.
var errNoNetNSFlag = errors.New("--no-netns: " + wildcardServers + "; drop --no-netns, or add --bare, which starts neither")

// NoPrivateNetworkError says that no private network namespace could be
// made, and how to get one.
type NoPrivateNetworkError struct{ Err error }

func (e *NoPrivateNetworkError) Error() string {
	return fmt.Sprintf("no private network namespace (%v): %s; run `lockstep lab up` as root, "+
		"allow unprivileged user namespaces (sysctl user.max_user_namespaces > 0, and where the kernel has them "+
		"kernel.unprivileged_userns_clone=1 and kernel.apparmor_restrict_unprivileged_userns=0), "+
		"or add --bare, which starts neither", firstLine(e.Err.Error()), wildcardServers)
}

func (e *NoPrivateNetworkError) Unwrap() error { return e.Err }
