package local

import (
	"net"
	"os"
	"testing"
)

func TestListeners(t *testing.T) {
	t.Parallel()
	lo, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	defer lo.Close()
	port := lo.Addr().(*net.TCPAddr).Port
	found := false
	for _, l := range Listeners([]int{os.Getpid()}) {
		if l.Port == port {
			found = true
			if !l.Loopback || l.PID != os.Getpid() || l.Table != "tcp" {
				t.Errorf("listener %+v", l)
			}
		}
	}
	if !found {
		t.Fatalf("own listener on port %d not found", port)
	}
	wild, err := net.Listen("tcp4", "0.0.0.0:0")
	if err != nil {
		t.Fatal(err)
	}
	defer wild.Close()
	wport := wild.Addr().(*net.TCPAddr).Port
	for _, l := range Listeners([]int{os.Getpid()}) {
		if l.Port == wport && l.Loopback {
			t.Errorf("0.0.0.0 listener read as loopback: %+v", l)
		}
	}
}
