package local

import (
	"errors"
	"fmt"
	"net"
	"os"
	"os/exec"
	"strconv"
	"strings"
	"sync"
	"syscall"
	"time"

	"golang.org/x/sys/unix"
)

// NetNSHelperArgs are the arguments after the lockstep binary that run the
// helper of a private network namespace made without root (the hidden
// `lab netns-helper` command, which calls RunNetNSHelper).
var NetNSHelperArgs = []string{"lab", "netns-helper"}

// The helper and the supervisor talk over a SOCK_SEQPACKET pair, one
// message per request or answer. An answer is "ok" with file descriptors
// attached, or an error text.
const (
	helperOK      = "ok"
	helperSocket  = "socket"
	helperTimeout = 10 * time.Second
	// maxHelperFDs is the kernel's limit of descriptors in one message
	// (SCM_MAX_FD).
	maxHelperFDs = 253
)

// userNS is a user namespace and a network namespace it owns, made by a
// helper process at fork time so no privilege is needed. The supervisor
// keeps the helper (it makes sockets inside on request) and an open handle
// on each namespace: nsenter joins them through those handles, never
// through the helper's pid, which could be reused.
type userNS struct {
	helper  *exec.Cmd
	exited  chan struct{}
	nsenter string
	nsUser  *os.File
	nsNet   *os.File

	mu  sync.Mutex // one request on ctl at a time
	ctl *net.UnixConn
}

// newUserNetNS starts the helper (helper[0] with helper[1:] and the ports)
// in a new user and network namespace, and forwards each given 127.0.0.1
// port from inside it to the same port on the host, as newNetNS does.
func newUserNetNS(helper []string, ports []int) (*netNS, error) {
	if len(ports) > maxHelperFDs {
		return nil, fmt.Errorf("%d bridged ports: at most %d", len(ports), maxHelperFDs)
	}
	nsenter, err := lookPath("nsenter")
	if err != nil {
		return nil, errors.New("nsenter is not installed (Debian package util-linux)")
	}
	pair, err := unix.Socketpair(unix.AF_UNIX, unix.SOCK_SEQPACKET|unix.SOCK_CLOEXEC, 0)
	if err != nil {
		return nil, fmt.Errorf("helper socket pair: %w", err)
	}
	mine, theirs := os.NewFile(uintptr(pair[0]), "netns-control"), os.NewFile(uintptr(pair[1]), "netns-control")
	defer theirs.Close()
	fc, err := net.FileConn(mine)
	_ = mine.Close()
	if err != nil {
		return nil, fmt.Errorf("helper socket: %w", err)
	}
	ctl := fc.(*net.UnixConn)
	args := append([]string{}, helper[1:]...)
	for _, p := range ports {
		args = append(args, strconv.Itoa(p))
	}
	cmd := exec.Command(helper[0], args...)
	cmd.Stdout, cmd.Stderr = os.Stderr, os.Stderr
	cmd.ExtraFiles = []*os.File{theirs} // fd 3
	uid, gid := os.Geteuid(), os.Getegid()
	cmd.SysProcAttr = &syscall.SysProcAttr{
		Cloneflags: syscall.CLONE_NEWUSER | syscall.CLONE_NEWNET,
		// The same ids inside: files the fleet writes keep their owner,
		// and nothing inside runs as root.
		UidMappings: []syscall.SysProcIDMap{{ContainerID: uid, HostID: uid, Size: 1}},
		GidMappings: []syscall.SysProcIDMap{{ContainerID: gid, HostID: gid, Size: 1}},
		// Only to bring the loopback up; a non-zero uid loses every
		// capability at exec otherwise.
		AmbientCaps: []uintptr{unix.CAP_NET_ADMIN},
		Pdeathsig:   syscall.SIGKILL,
		Setpgid:     true,
	}
	if err := cmd.Start(); err != nil {
		_ = ctl.Close()
		return nil, fmt.Errorf("create user and network namespaces: %w", err)
	}
	u := &userNS{helper: cmd, exited: make(chan struct{}), nsenter: nsenter, ctl: ctl}
	go func() { _ = cmd.Wait(); close(u.exited) }()
	fds, err := u.request("", len(ports))
	if err != nil {
		u.close()
		return nil, fmt.Errorf("namespace helper: %w", err)
	}
	n := &netNS{user: u}
	for i, fd := range fds {
		f := os.NewFile(uintptr(fd), "bridge")
		ln, err := net.FileListener(f)
		_ = f.Close()
		if err != nil {
			for _, fd := range fds[i+1:] {
				_ = unix.Close(fd)
			}
			n.close()
			return nil, fmt.Errorf("bridge listener: %w", err)
		}
		n.lns = append(n.lns, ln)
	}
	// The helper has not been waited for while it answered, so its pid
	// still names it; from here on the handles do.
	pid := strconv.Itoa(cmd.Process.Pid)
	if u.nsUser, err = os.Open("/proc/" + pid + "/ns/user"); err == nil {
		u.nsNet, err = os.Open("/proc/" + pid + "/ns/net")
	}
	if err == nil {
		err = differentNetNS(u.nsNet)
	}
	if err != nil {
		n.close()
		return nil, fmt.Errorf("namespace handles: %w", err)
	}
	n.forwardAll(ports)
	return n, nil
}

// differentNetNS guards against joining the host's namespace by mistake.
func differentNetNS(ns *os.File) error {
	var in, host unix.Stat_t
	if err := unix.Fstat(int(ns.Fd()), &in); err != nil {
		return err
	}
	if err := unix.Stat("/proc/self/ns/net", &host); err != nil {
		return err
	}
	if in.Ino == host.Ino && in.Dev == host.Dev {
		return errors.New("the helper runs in the host's network namespace")
	}
	return nil
}

// request sends msg (nothing: just read the first answer) and returns the
// descriptors of the answer, which must hold want of them.
func (u *userNS) request(msg string, want int) ([]int, error) {
	u.mu.Lock()
	defer u.mu.Unlock()
	_ = u.ctl.SetDeadline(time.Now().Add(helperTimeout))
	if msg != "" {
		if _, err := u.ctl.Write([]byte(msg)); err != nil {
			return nil, err
		}
	}
	buf := make([]byte, 4096)
	oob := make([]byte, unix.CmsgSpace(4*maxHelperFDs))
	n, oobn, _, _, err := u.ctl.ReadMsgUnix(buf, oob)
	if err != nil {
		select {
		case <-u.exited:
			return nil, fmt.Errorf("helper exited (%v)", u.helper.ProcessState)
		default:
		}
		return nil, err
	}
	var fds []int
	if oobn > 0 {
		msgs, err := unix.ParseSocketControlMessage(oob[:oobn])
		if err != nil {
			return nil, err
		}
		for _, m := range msgs {
			got, err := unix.ParseUnixRights(&m)
			if err != nil {
				return nil, err
			}
			fds = append(fds, got...)
		}
	}
	if string(buf[:n]) != helperOK || len(fds) != want {
		for _, fd := range fds {
			_ = unix.Close(fd)
		}
		if string(buf[:n]) == helperOK {
			return nil, fmt.Errorf("helper sent %d descriptors, want %d", len(fds), want)
		}
		return nil, errors.New(string(buf[:n]))
	}
	return fds, nil
}

// dial connects to 127.0.0.1:port inside the namespace with a socket the
// helper made there.
func (u *userNS) dial(port int) (net.Conn, error) {
	fds, err := u.request(helperSocket, 1)
	if err != nil {
		return nil, fmt.Errorf("socket in namespace: %w", err)
	}
	f := os.NewFile(uintptr(fds[0]), "inside")
	defer f.Close()
	// A loopback connect is answered at once: accepted or refused.
	if err := unix.Connect(fds[0], &unix.SockaddrInet4{Port: port, Addr: [4]byte{127, 0, 0, 1}}); err != nil {
		return nil, fmt.Errorf("dial 127.0.0.1:%d in namespace: %w", port, err)
	}
	return net.FileConn(f)
}

// start runs cmd under nsenter, which joins both namespaces through the
// handles, passed as two more descriptors, then executes cmd's program with
// its arguments. The process is nsenter's: its pid, Pdeathsig and process
// group are cmd's. The two descriptors stay open in the program; they name
// the namespaces it is in already, so they grant nothing.
func (u *userNS) start(cmd *exec.Cmd) error {
	if cmd.Err != nil {
		return cmd.Err
	}
	fd := 3 + len(cmd.ExtraFiles)
	cmd.ExtraFiles = append(cmd.ExtraFiles, u.nsUser, u.nsNet)
	args := []string{"nsenter", "--user=/proc/self/fd/" + strconv.Itoa(fd), "--net=/proc/self/fd/" + strconv.Itoa(fd+1),
		// Stay the same user inside rather than nsenter's default of
		// becoming uid 0 of the namespace.
		"--preserve-credentials", "--", cmd.Path}
	cmd.Args = append(args, cmd.Args[1:]...)
	cmd.Path = u.nsenter
	return cmd.Start()
}

// close stops the helper and drops the handles; the namespaces go away with
// the last process in them.
func (u *userNS) close() {
	_ = u.ctl.Close() // the helper exits when its end reads EOF
	select {
	case <-u.exited:
	case <-time.After(2 * time.Second):
		_ = u.helper.Process.Kill()
		<-u.exited
	}
	for _, f := range []*os.File{u.nsUser, u.nsNet} {
		if f != nil {
			_ = f.Close()
		}
	}
}

// RunNetNSHelper is the helper of a private network namespace made without
// root: it runs inside the new namespaces, brings their loopback up, sends
// the supervisor (on ctl, its end of the socket pair) a listener on
// 127.0.0.1 for each port argument, then a new TCP socket for each request,
// until ctl closes.
func RunNetNSHelper(ctl *os.File, args []string) error {
	fc, err := net.FileConn(ctl)
	_ = ctl.Close()
	if err != nil {
		return fmt.Errorf("control socket: %w", err)
	}
	c, ok := fc.(*net.UnixConn)
	if !ok {
		return errors.New("control socket is not a unix socket")
	}
	defer c.Close()
	ports, err := parsePorts(args)
	var fds []int
	if err == nil {
		fds, err = helperListen(ports)
	}
	if err != nil {
		_, _ = c.Write([]byte(err.Error()))
		return err
	}
	err = helperSend(c, fds)
	for _, fd := range fds {
		_ = unix.Close(fd)
	}
	if err != nil {
		return err
	}
	buf := make([]byte, 64)
	for {
		n, err := c.Read(buf)
		if err != nil || n == 0 {
			// The supervisor closed its end or died.
			return nil
		}
		if string(buf[:n]) != helperSocket {
			_, _ = c.Write([]byte(fmt.Sprintf("unknown request %q", buf[:n])))
			continue
		}
		fd, err := unix.Socket(unix.AF_INET, unix.SOCK_STREAM|unix.SOCK_CLOEXEC, 0)
		if err != nil {
			_, _ = c.Write([]byte("socket: " + err.Error()))
			continue
		}
		err = helperSend(c, []int{fd})
		_ = unix.Close(fd)
		if err != nil {
			return err
		}
	}
}

func helperListen(ports []int) (fds []int, err error) {
	defer func() {
		if err != nil {
			for _, fd := range fds {
				_ = unix.Close(fd)
			}
		}
	}()
	if err := loopbackUp(); err != nil {
		return nil, err
	}
	for _, p := range ports {
		ln, err := net.Listen("tcp", "127.0.0.1:"+strconv.Itoa(p))
		if err != nil {
			return fds, fmt.Errorf("bridge port %d: %w", p, err)
		}
		f, err := ln.(*net.TCPListener).File()
		_ = ln.Close()
		if err != nil {
			return fds, fmt.Errorf("bridge port %d: %w", p, err)
		}
		fd, err := unix.Dup(int(f.Fd()))
		_ = f.Close()
		if err != nil {
			return fds, fmt.Errorf("bridge port %d: %w", p, err)
		}
		fds = append(fds, fd)
	}
	return fds, nil
}

func helperSend(c *net.UnixConn, fds []int) error {
	var oob []byte
	if len(fds) > 0 {
		oob = unix.UnixRights(fds...)
	}
	_, _, err := c.WriteMsgUnix([]byte(helperOK), oob, nil)
	return err
}

func parsePorts(args []string) ([]int, error) {
	var ports []int
	for _, a := range args {
		p, err := strconv.Atoi(strings.TrimSpace(a))
		if err != nil || p <= 0 || p > 65535 {
			return nil, fmt.Errorf("bad port %q", a)
		}
		ports = append(ports, p)
	}
	return ports, nil
}
