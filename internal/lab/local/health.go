package local

import (
	"context"
	"crypto/tls"
	"crypto/x509"
	"fmt"
	"io"
	"math/rand/v2"
	"net"
	"net/http"
	"os"
	"strconv"
	"strings"
	"time"
)

// freePort picks an unused loopback port below the kernel's ephemeral
// range. Ports the kernel hands out for ":0" come from that range, which is
// also where every outgoing connection takes its local port: between our
// choice and the component's bind, any of the fleet's own connections could
// take it (seen: repo-server failing to listen). Below the range only
// another listener can, and then the start-up fails with a clear error and
// cleans up.
func freePort() (int, error) {
	lo := ephemeralLow() - 1
	const floor = 10000
	if lo <= floor {
		ln, err := net.Listen("tcp", "127.0.0.1:0")
		if err != nil {
			return 0, err
		}
		defer ln.Close()
		return ln.Addr().(*net.TCPAddr).Port, nil
	}
	for i := 0; i < 200; i++ {
		p := floor + rand.IntN(lo-floor)
		if PortFree(p) == nil {
			return p, nil
		}
	}
	return 0, fmt.Errorf("no free port in %d-%d on 127.0.0.1", floor, lo)
}

// ephemeralLow is the first port of the kernel's ephemeral range.
func ephemeralLow() int {
	b, err := os.ReadFile("/proc/sys/net/ipv4/ip_local_port_range")
	if err != nil {
		return 32768
	}
	f := strings.Fields(string(b))
	if len(f) == 0 {
		return 32768
	}
	n, err := strconv.Atoi(f[0])
	if err != nil {
		return 32768
	}
	return n
}

// PortFree reports whether 127.0.0.1:port can be bound right now.
func PortFree(port int) error {
	ln, err := net.Listen("tcp", "127.0.0.1:"+strconv.Itoa(port))
	if err != nil {
		return fmt.Errorf("port %d on 127.0.0.1 is in use", port)
	}
	return ln.Close()
}

func addr(port int) string { return "127.0.0.1:" + strconv.Itoa(port) }

var plainHTTP = &http.Client{Timeout: 2 * time.Second}

// httpOK checks that url answers 200.
func httpOK(url string) func(context.Context) error {
	return func(ctx context.Context) error { return get(ctx, plainHTTP, url, "") }
}

func get(ctx context.Context, c *http.Client, url, token string) error {
	req, err := http.NewRequestWithContext(ctx, http.MethodGet, url, nil)
	if err != nil {
		return err
	}
	if token != "" {
		req.Header.Set("Authorization", "Bearer "+token)
	}
	resp, err := c.Do(req)
	if err != nil {
		return err
	}
	defer resp.Body.Close()
	body, _ := io.ReadAll(io.LimitReader(resp.Body, 512))
	if resp.StatusCode != http.StatusOK {
		return fmt.Errorf("GET %s: %s %s", url, resp.Status, body)
	}
	return nil
}

// tlsClient trusts only the fleet CA.
func tlsClient(caFile string) (*http.Client, error) {
	pem, err := os.ReadFile(caFile)
	if err != nil {
		return nil, err
	}
	pool := x509.NewCertPool()
	if !pool.AppendCertsFromPEM(pem) {
		return nil, fmt.Errorf("no certificate in %s", caFile)
	}
	return &http.Client{Timeout: 2 * time.Second, Transport: &http.Transport{TLSClientConfig: &tls.Config{RootCAs: pool, MinVersion: tls.VersionTLS12}}}, nil
}

// tcpOK checks that something accepts connections on the address.
func tcpOK(address string) func(context.Context) error {
	return func(ctx context.Context) error {
		var d net.Dialer
		c, err := d.DialContext(ctx, "tcp", address)
		if err != nil {
			return err
		}
		return c.Close()
	}
}
