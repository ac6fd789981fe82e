package local

import (
	"fmt"
	"os"
	"strconv"
	"strings"
)

// Listener is a socket that accepts from others, as this network
// namespace's kernel tables show it: a listening TCP socket, or an
// unconnected UDP one.
type Listener struct {
	// Table is the /proc/net table it was read from (tcp, tcp6, udp, udp6).
	Table string
	// Addr is the local address as the table writes it (hex ip:port).
	Addr string
	Port int
	// Loopback is true for 127.0.0.1, ::1 and ::ffff:127.0.0.1.
	Loopback bool
	// PID owns the socket when it is one of the pids asked about, else 0.
	PID int
}

// Listeners returns the listeners of this network namespace; with pids,
// only those sockets the processes hold (matched by socket inode through
// /proc/PID/fd). Sockets in another namespace are not in these tables.
func Listeners(pids []int) []Listener {
	inodes := map[string]int{}
	for _, pid := range pids {
		fds, _ := os.ReadDir(fmt.Sprintf("/proc/%d/fd", pid))
		for _, fd := range fds {
			l, err := os.Readlink(fmt.Sprintf("/proc/%d/fd/%s", pid, fd.Name()))
			if err == nil && strings.HasPrefix(l, "socket:[") {
				inodes[strings.TrimSuffix(strings.TrimPrefix(l, "socket:["), "]")] = pid
			}
		}
	}
	var out []Listener
	for _, table := range []string{"tcp", "tcp6", "udp", "udp6"} {
		b, err := os.ReadFile("/proc/net/" + table)
		if err != nil {
			continue
		}
		tcp := strings.HasPrefix(table, "tcp")
		for _, line := range strings.Split(string(b), "\n")[1:] {
			f := strings.Fields(line)
			// 0A = LISTEN; an unconnected UDP socket (07) receives from anyone.
			if len(f) < 10 || (tcp && f[3] != "0A") || (!tcp && f[3] != "07") {
				continue
			}
			pid, ours := inodes[f[9]]
			if len(pids) > 0 && !ours {
				continue
			}
			host, port, _ := strings.Cut(f[1], ":")
			p, _ := strconv.ParseInt(port, 16, 32)
			out = append(out, Listener{Table: table, Addr: f[1], Port: int(p), PID: pid,
				Loopback: host == "0100007F" || host == "00000000000000000000000001000000" || host == "0000000000000000FFFF00000100007F"})
		}
	}
	return out
}

// Comm is a process's command line, for messages.
func Comm(pid int) string {
	b, _ := os.ReadFile(fmt.Sprintf("/proc/%d/cmdline", pid))
	return strings.ReplaceAll(strings.TrimRight(string(b), "\x00"), "\x00", " ")
}
