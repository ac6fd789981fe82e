package local

import (
	"encoding/json"
	"maps"
	"os"
	"reflect"
	"strings"
	"testing"
	"time"
	"unicode/utf8"
)

// sampleState is a fleet's state as the supervisor writes it.
func sampleState(dir string) *State {
	ready := time.Date(2026, 1, 2, 3, 4, 5, 600, time.UTC)
	exited := ready.Add(time.Minute)
	return &State{
		Dir: dir, Phase: PhaseReady, SupervisorPID: 4242, SupervisorAt: 123456,
		StartedAt: ready.Add(-time.Minute), ReadyAt: &ready, Kubeconfig: dir + "/kubeconfig", NetNS: true,
		URLs: map[string]string{"thanos": "http://127.0.0.1:10902", "grafana": "http://127.0.0.1:3000"},
		Clusters: []ClusterInfo{
			{Name: "hub", Role: "hub", Server: "https://127.0.0.1:6443"},
			{Name: "argo-rollout1", Role: "workload", Server: "https://127.0.0.2:6443", PrometheusCluster: "data-producer-1"},
		},
		Components: []ProcState{
			{Name: "hub/kube-apiserver", Cluster: "hub", Addr: "127.0.0.1", Ports: map[string]int{"https": 6443}, PID: 100, StartTicks: 99, Status: StatusRunning, Log: dir + "/logs/hub-kube-apiserver.log", Args: []string{"--etcd-servers=http://127.0.0.1:2379"}},
			{Name: "argo-rollout1/prometheus", Status: StatusExited, ExitCode: 2, ExitedAt: &exited, Log: "p.log"},
		},
	}
}

// FuzzReadState feeds state.json files: the supervisor's own, truncated
// and doubled ones, other versions.
func FuzzReadState(f *testing.F) {
	st := sampleState("/tmp/fleet")
	st.Version = stateVersion
	good, err := json.MarshalIndent(st, "", "  ")
	if err != nil {
		f.Fatal(err)
	}
	f.Add(good)
	f.Add(good[:len(good)/2])
	f.Add(append(append([]byte{}, good...), good...))
	f.Add([]byte(`{"version":1}}`))
	f.Add([]byte(`{"version":2}`))
	f.Add([]byte(`{"version":1,"startedAt":"not a time","components":[{"ports":{"a":1.5}}]}`))
	f.Add([]byte(`null`))
	// One directory for every input: a worker calls the function with one
	// input after the other, and each writes the whole file.
	dir := f.TempDir()
	f.Fuzz(func(t *testing.T, data []byte) {
		path := StatePath(dir)
		if err := os.WriteFile(path, data, 0o600); err != nil {
			t.Fatal(err)
		}
		s, err := ReadState(dir)
		if err != nil {
			if !strings.Contains(err.Error(), path) {
				t.Fatalf("error %q does not name %s", err, path)
			}
			if strings.ContainsAny(err.Error(), "\n\r") {
				t.Fatalf("error spans lines: %q", err)
			}
			return
		}
		if !json.Valid(data) {
			t.Fatalf("ReadState accepted invalid JSON %q", data)
		}
		if s.Version != stateVersion {
			t.Fatalf("ReadState accepted version %d", s.Version)
		}
		// What was read is written back and read again unchanged. Dir
		// says where WriteState writes: the fuzzed one could be anywhere.
		s.Dir = dir
		first, err := json.Marshal(s)
		if err != nil {
			t.Fatal(err)
		}
		if err := WriteState(s); err != nil {
			t.Fatal(err)
		}
		again, err := ReadState(dir)
		if err != nil {
			t.Fatalf("a state WriteState wrote does not read back: %v", err)
		}
		second, err := json.Marshal(again)
		if err != nil {
			t.Fatal(err)
		}
		if string(first) != string(second) {
			t.Fatalf("state changed through WriteState:\n%s\n%s", first, second)
		}
	})
}

// FuzzWriteState writes states with fuzzed fields and reads them back.
func FuzzWriteState(f *testing.F) {
	f.Add(PhaseReady, "", "hub/kube-apiserver", "--a=b", "thanos", "http://127.0.0.1:10902", 4242, uint64(123456), int64(1767322800000000600), true)
	f.Add(PhaseFailed, "etcd exited: \"bind: address in use\"\n", "", "", "", "", -1, uint64(0), int64(-1), false)
	f.Add("\u2028", "\x00", "a/b", "\t", "k", "", 0, ^uint64(0), int64(0), false)
	dir := f.TempDir()
	f.Fuzz(func(t *testing.T, phase, message, component, arg, urlKey, url string, pid int, ticks uint64, nanos int64, netns bool) {
		// JSON carries only UTF-8: the supervisor's strings are.
		for _, s := range []string{phase, message, component, arg, urlKey, url} {
			if !utf8.ValidString(s) {
				return
			}
		}
		at := time.Unix(0, nanos).UTC()
		want := sampleState(dir)
		want.Phase, want.Message, want.SupervisorPID, want.SupervisorAt, want.StartedAt, want.NetNS = phase, message, pid, ticks, at, netns
		want.URLs[urlKey] = url
		want.Components[0].Name, want.Components[0].Args = component, []string{arg}
		want.Components[1].ExitedAt = &at
		if err := WriteState(want); err != nil {
			t.Fatal(err)
		}
		got, err := ReadState(dir)
		if err != nil {
			t.Fatalf("ReadState after WriteState: %v", err)
		}
		if !statesEqual(got, want) {
			t.Fatalf("read back\n%+v\nwant\n%+v", got, want)
		}
	})
}

// statesEqual compares states as JSON can carry them: times by instant,
// an empty map or list like a missing one.
func statesEqual(a, b *State) bool {
	a, b = normalized(a), normalized(b)
	return reflect.DeepEqual(a, b)
}

func normalized(s *State) *State {
	c := *s
	c.StartedAt = c.StartedAt.UTC()
	c.ReadyAt = utcPtr(c.ReadyAt)
	if len(c.URLs) == 0 {
		c.URLs = nil
	}
	c.URLs = maps.Clone(c.URLs)
	c.Clusters = append([]ClusterInfo(nil), c.Clusters...)
	c.Components = append([]ProcState(nil), c.Components...)
	for i := range c.Components {
		p := &c.Components[i]
		p.ExitedAt = utcPtr(p.ExitedAt)
		if len(p.Ports) == 0 {
			p.Ports = nil
		}
		if len(p.Args) == 0 {
			p.Args = nil
		}
	}
	return &c
}

func utcPtr(t *time.Time) *time.Time {
	if t == nil {
		return nil
	}
	u := t.UTC()
	return &u
}
