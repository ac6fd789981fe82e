package local

import (
	"flag"
	"fmt"
	"io"
	"net"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"strings"
	"syscall"
	"testing"
	"time"
)

// nobody is the unprivileged user the namespace test runs as.
const nobody = 65534

// roleTest is the entry point of the test binary's copies that
// TestUserNetNSAsNobody starts: the test as nobody ("child"), the namespace
// helper ("helper") and a server inside the namespace ("component"). The
// role and its arguments follow "--" on the command line.
const roleTest = "TestUserNetNSRole"

func roleCmd(bin, role string, args ...string) []string {
	return append([]string{bin, "-test.run=^" + roleTest + "$", "-test.v", "--", role}, args...)
}

// TestUserNetNSAsNobody proves the non-root private network namespace on
// its own, with no fleet: as uid 65534, a server inside it listening on
// 0.0.0.0 is not reachable from the host on its port, is reachable
// through an exposed host port, and reaches a host port bridged inwards.
func TestUserNetNSAsNobody(t *testing.T) {
	if os.Geteuid() != 0 {
		t.Skip("runs as nobody through setpriv, which needs root to switch users")
	}
	setpriv, err := exec.LookPath("setpriv")
	if err != nil {
		t.Skip("setpriv (util-linux) is not installed")
	}
	if _, err := exec.LookPath("nsenter"); err != nil {
		t.Skip("nsenter (util-linux) is not installed")
	}
	if out, err := exec.Command(setpriv, "--reuid=65534", "--regid=65534", "--clear-groups", "--",
		"unshare", "--user", "--map-root-user", "--net", "--", "unshare", "--net", "true").CombinedOutput(); err != nil {
		t.Skipf("nobody cannot use a user namespace of its own here (sysctls user.max_user_namespaces, kernel.unprivileged_userns_clone, kernel.apparmor_restrict_unprivileged_userns): %v: %s", err, out)
	}
	bin := worldExecutableCopy(t)
	cmd := exec.Command(setpriv, append([]string{"--reuid=" + strconv.Itoa(nobody), "--regid=" + strconv.Itoa(nobody), "--clear-groups", "--"},
		roleCmd(bin, "child")...)...)
	cmd.Dir = filepath.Dir(bin)
	out, err := cmd.CombinedOutput()
	if err != nil {
		t.Fatalf("the test as nobody failed: %v\n%s", err, out)
	}
	if strings.Contains(string(out), "--- SKIP") {
		t.Skipf("as nobody: %s", out)
	}
	if !strings.Contains(string(out), "--- PASS: "+roleTest) {
		t.Fatalf("the test as nobody did not pass:\n%s", out)
	}
	t.Logf("as nobody:\n%s", out)
}

// worldExecutableCopy puts the test binary where nobody can run it (go
// test builds it in a directory only its user can read).
func worldExecutableCopy(t *testing.T) string {
	t.Helper()
	self, err := os.Executable()
	if err != nil {
		t.Fatal(err)
	}
	dir, err := os.MkdirTemp("", "lockstep-userns-")
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { _ = os.RemoveAll(dir) })
	if err := os.Chmod(dir, 0o755); err != nil {
		t.Fatal(err)
	}
	bin := filepath.Join(dir, "local.test")
	if err := copyFile(self, bin); err != nil {
		t.Fatal(err)
	}
	if err := os.Chmod(bin, 0o755); err != nil {
		t.Fatal(err)
	}
	return bin
}

func TestUserNetNSRole(t *testing.T) {
	args := flag.Args()
	if len(args) == 0 {
		t.Skip("a role of TestUserNetNSAsNobody, run only by it")
	}
	switch args[0] {
	case "child":
		userNSChild(t)
	case "helper":
		if err := RunNetNSHelper(os.NewFile(3, "netns-control"), args[1:]); err != nil {
			fmt.Fprintln(os.Stderr, "helper:", err)
			os.Exit(1)
		}
		os.Exit(0)
	case "component":
		userNSComponent(args[1], args[2])
	default:
		t.Fatalf("unknown role %q", args[0])
	}
}

const hostGreeting = "hello from the host"

func userNSChild(t *testing.T) {
	if os.Getuid() != nobody || os.Geteuid() != nobody {
		t.Fatalf("running as uid %d/%d, want %d", os.Getuid(), os.Geteuid(), nobody)
	}
	// A server on the host, bridged inwards.
	host, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	defer host.Close()
	go func() {
		for {
			c, err := host.Accept()
			if err != nil {
				return
			}
			_, _ = io.WriteString(c, hostGreeting)
			_ = c.Close()
		}
	}()
	hostPort := host.Addr().(*net.TCPAddr).Port
	inside, exposed := mustFreePort(t), mustFreePort(t)
	for exposed == inside {
		exposed = mustFreePort(t)
	}

	n, err := newUserNetNS(roleCmd(os.Args[0], "helper"), []int{hostPort})
	if err != nil {
		t.Fatalf("newUserNetNS: %v", err)
	}
	helper := n.user
	defer func() {
		n.close()
		select {
		case <-helper.exited:
		default:
			t.Error("the helper still runs after close")
		}
	}()
	if err := n.expose(inside, exposed); err != nil {
		t.Fatal(err)
	}
	comp := exec.Command(os.Args[0], roleCmd(os.Args[0], "component", strconv.Itoa(inside), strconv.Itoa(hostPort))[1:]...)
	comp.Stdout, comp.Stderr = os.Stderr, os.Stderr
	comp.SysProcAttr = &syscall.SysProcAttr{Setpgid: true, Pdeathsig: syscall.SIGKILL}
	if err := n.start(comp); err != nil {
		t.Fatalf("start in namespace: %v", err)
	}
	defer func() { _ = comp.Process.Kill(); _ = comp.Wait() }()

	// Reachable through the exposed port, and the server inside reached
	// the host through the bridge.
	var got string
	deadline := time.Now().Add(15 * time.Second)
	for {
		got, err = readAll("127.0.0.1:" + strconv.Itoa(exposed))
		if err == nil && got != "" || time.Now().After(deadline) {
			break
		}
		time.Sleep(100 * time.Millisecond)
	}
	want := "inside uid " + strconv.Itoa(nobody) + " got: " + hostGreeting
	if got != want {
		t.Fatalf("through the exposed port %d: %q (%v), want %q", exposed, got, err, want)
	}
	t.Logf("through exposed port %d: %q", exposed, got)

	// The same server is nowhere on the host: not on loopback, not on any
	// address of the host's interfaces.
	targets := []string{"127.0.0.1", "::1"}
	addrs, _ := net.InterfaceAddrs()
	for _, a := range addrs {
		if ipn, ok := a.(*net.IPNet); ok && !ipn.IP.IsLoopback() && !ipn.IP.IsLinkLocalUnicast() {
			targets = append(targets, ipn.IP.String())
		}
	}
	for _, ip := range targets {
		c, err := net.DialTimeout("tcp", net.JoinHostPort(ip, strconv.Itoa(inside)), time.Second)
		if err == nil {
			_ = c.Close()
			t.Errorf("the host reached the namespace's 0.0.0.0:%d server on %s", inside, ip)
		}
	}
	t.Logf("port %d refused on the host at %v", inside, targets)
	if hostListens(t, inside) {
		t.Errorf("the host's socket table lists a listener on port %d", inside)
	}
	ns, _ := os.Readlink(fmt.Sprintf("/proc/%d/ns/net", comp.Process.Pid))
	self, _ := os.Readlink("/proc/self/ns/net")
	if ns == "" || ns == self {
		t.Errorf("the component's network namespace is %q, the host's %q", ns, self)
	}
}

// userNSComponent serves on 0.0.0.0:port; each connection gets what the
// server at 127.0.0.1:hostPort says (reached through the bridge).
func userNSComponent(port, hostPort string) {
	ln, err := net.Listen("tcp", "0.0.0.0:"+port)
	if err != nil {
		fmt.Fprintln(os.Stderr, "component:", err)
		os.Exit(1)
	}
	for {
		c, err := ln.Accept()
		if err != nil {
			os.Exit(1)
		}
		got, err := readAll("127.0.0.1:" + hostPort)
		if err != nil {
			got = "dial host: " + err.Error()
		}
		_, _ = fmt.Fprintf(c, "inside uid %d got: %s", os.Getuid(), got)
		_ = c.Close()
	}
}

func readAll(addr string) (string, error) {
	c, err := net.DialTimeout("tcp", addr, 2*time.Second)
	if err != nil {
		return "", err
	}
	defer c.Close()
	_ = c.SetDeadline(time.Now().Add(5 * time.Second))
	b, err := io.ReadAll(c)
	return string(b), err
}

func mustFreePort(t *testing.T) int {
	t.Helper()
	p, err := freePort()
	if err != nil {
		t.Fatal(err)
	}
	return p
}

// hostListens reads this network namespace's socket tables for a listener
// on port.
func hostListens(t *testing.T, port int) bool {
	t.Helper()
	for _, l := range Listeners(nil) {
		if l.Port == port && strings.HasPrefix(l.Table, "tcp") {
			return true
		}
	}
	return false
}

// TestNoPrivateNetworkRefusals checks the one-line refusals that replace
// starting Argo CD's application-controller and Argo Rollouts on 0.0.0.0.
func TestNoPrivateNetworkRefusals(t *testing.T) {
	t.Parallel()
	flagErr := (&fleet{opt: Options{NoNetNS: true}}).startNetNS(t.Context())
	cases := []struct {
		name string
		err  error
		want []string
	}{
		{"--no-netns", flagErr, []string{"--no-netns", "application-controller", "Argo Rollouts", "0.0.0.0", "--bare"}},
		{"no namespace", &NoPrivateNetworkError{Err: fmt.Errorf("create user and network namespaces: %w\nmore", syscall.EPERM)},
			[]string{"operation not permitted", "application-controller", "Argo Rollouts", "as root", "user.max_user_namespaces",
				"kernel.unprivileged_userns_clone", "kernel.apparmor_restrict_unprivileged_userns", "--bare"}},
	}
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			t.Parallel()
			if c.err == nil {
				t.Fatal("no error")
			}
			msg := c.err.Error()
			if strings.Contains(msg, "\n") {
				t.Errorf("not one line: %q", msg)
			}
			for _, w := range c.want {
				if !strings.Contains(msg, w) {
					t.Errorf("%q does not say %q", msg, w)
				}
			}
		})
	}
}
