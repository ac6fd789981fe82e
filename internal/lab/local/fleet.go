package local

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io/fs"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"time"
)

// Cluster names of the seed's lab.
const (
	HubName        = "argo-hub"
	RoleHub        = "hub"
	RoleWorkload   = "workload"
	ArgoCDNS       = "argocd"
	WorkloadLabel  = "lockstep.dev/role"
	FleetRepoName  = "fleet.git"
	replicaLabel   = "replica"
	defaultNodes   = 2
	startupTimeout = 90 * time.Second
)

// WorkloadName is the name of the i-th (1-based) workload cluster.
func WorkloadName(i int) string { return "argo-rollout" + strconv.Itoa(i) }

// PrometheusClusterLabel is the external label of the i-th workload's Prometheus.
func PrometheusClusterLabel(i int) string { return "data-producer-" + strconv.Itoa(i) }

// Options configure a local fleet.
type Options struct {
	Dir       string
	Cache     Cache
	Workloads int
	Nodes     int
	// GitOps seeds the fleet's git repository.
	GitOps fs.FS
	// NoNetNS keeps every process in the host's network namespace even
	// when a private one could be made.
	NoNetNS bool
	// ThanosPort fixes Thanos Query's HTTP port (0: any free port).
	ThanosPort int
	// Self is the lockstep binary, which also runs the fleet's meshsim
	// and coordinator processes (default: the running executable).
	Self string
	// NoCoordinator leaves the Lockstep coordinator out (for tests that
	// run their own).
	NoCoordinator bool
	// Bare starts empty clusters: etcd, the apiservers, controller-managers,
	// schedulers, kwok nodes (the hub's too) and a LoadBalancer address
	// allocator, and nothing else. It is the target the installers of
	// `lab up --provider existing` are tested against.
	Bare bool
	// Light starts workload clusters for scale runs: apiservers,
	// controller-managers, schedulers, kwok nodes and the Argo Rollouts
	// controllers, registered for the coordinator, which runs. It drops
	// what costs a process per member or watches every member: each
	// member's Prometheus, Thanos sidecar and meshsim gateway (so no
	// traffic, no metrics and no analysis), and on the hub Thanos and Argo
	// CD (no GitOps: apps are applied to the members directly).
	Light bool
}

// ports holds every port of the fleet, chosen before anything starts.
type ports struct {
	etcdClient, etcdPeer int
	api                  map[string]int
	rolloutsHealth       map[string]int
	rolloutsMetrics      map[string]int
	rolloutsMetricsHost  map[string]int
	rolloutsHealthHost   map[string]int
	kwok                 map[string]int
	prom                 map[string]int
	sidecarGRPC          map[string]int
	sidecarHTTP          map[string]int
	meshIngress          map[string]int
	meshEastWest         map[string]int
	meshMetrics          map[string]int
	redis, git, repo     int
	repoMetrics          int
	appsetMetrics        int
	appsetProbe          int
	appsetWebhook        int
	controllerMetrics    int
	queryHTTP, queryGRPC int
	storeHTTP, storeGRPC int
	compactHTTP          int
	coordinatorMetrics   int
	coordinatorDashboard int
	notifyReceiver       int
}

// portsFile keeps the ports of the last start-up, so that `lab up` after
// `lab down` serves everything at the same addresses: Argo CD's
// ApplicationSets, the files in git and the coordinator's Thanos URL name
// them, and must stay valid across a restart in the middle of a release.
const portsFile = "ports.json"

// PortTakenError says that a port of the previous run is in use by
// something else now.
type PortTakenError struct {
	Name string
	Port int
}

func (e *PortTakenError) Error() string {
	return fmt.Sprintf("port %d (%s) of this fleet's previous run is in use by another process; stop it, or start afresh with `lockstep lab down --wipe`", e.Port, e.Name)
}

// readPorts returns the ports of the previous run in dir, or nil.
func readPorts(dir string) (map[string]int, error) {
	b, err := os.ReadFile(filepath.Join(dir, portsFile))
	if errors.Is(err, os.ErrNotExist) {
		return nil, nil
	}
	if err != nil {
		return nil, err
	}
	var m map[string]int
	if err := json.Unmarshal(b, &m); err != nil {
		return nil, fmt.Errorf("%s: %w (delete it to pick new ports)", filepath.Join(dir, portsFile), err)
	}
	return m, nil
}

func writePorts(dir string, m map[string]int) error {
	b, err := json.MarshalIndent(m, "", "  ")
	if err != nil {
		return err
	}
	return os.WriteFile(filepath.Join(dir, portsFile), append(b, '\n'), 0o644)
}

// allocPorts picks every port of the fleet: the previous run's where prev
// names one (it must be free again), a free one otherwise. It returns the
// ports and the name -> port map to keep.
func allocPorts(clusters []string, workloads []string, prev map[string]int) (*ports, map[string]int, error) {
	return allocPortsFrom(freePort, clusters, workloads, prev)
}

// allocPortsFrom is allocPorts with the source of free ports given.
func allocPortsFrom(freePort func() (int, error), clusters []string, workloads []string, prev map[string]int) (*ports, map[string]int, error) {
	var err error
	seen := map[int]bool{}
	used := map[string]int{}
	kept := map[int]bool{}
	for _, p := range prev {
		kept[p] = true
	}
	pick := func(name string) int {
		if err != nil {
			return 0
		}
		if p, ok := prev[name]; ok && p > 0 && p < 65536 && !seen[p] {
			if PortFree(p) != nil {
				err = &PortTakenError{Name: name, Port: p}
				return 0
			}
			seen[p], used[name] = true, p
			return p
		}
		for i := 0; i < 50; i++ {
			var p int
			if p, err = freePort(); err != nil {
				return 0
			}
			// A port kept for another name is not free for this one.
			if !seen[p] && !kept[p] {
				seen[p], used[name] = true, p
				return p
			}
		}
		err = fmt.Errorf("no free port for %s", name)
		return 0
	}
	p := &ports{api: map[string]int{}, rolloutsHealth: map[string]int{}, rolloutsMetrics: map[string]int{},
		rolloutsHealthHost: map[string]int{}, rolloutsMetricsHost: map[string]int{}, kwok: map[string]int{},
		prom: map[string]int{}, sidecarGRPC: map[string]int{}, sidecarHTTP: map[string]int{},
		meshIngress: map[string]int{}, meshEastWest: map[string]int{}, meshMetrics: map[string]int{}}
	p.etcdClient, p.etcdPeer = pick("etcd-client"), pick("etcd-peer")
	for _, c := range clusters {
		p.api[c] = pick(c + "/kube-apiserver")
	}
	for _, c := range clusters {
		p.kwok[c] = pick(c + "/kwok")
	}
	for _, w := range workloads {
		p.rolloutsHealth[w], p.rolloutsMetrics[w] = pick(w+"/rollouts-health"), pick(w+"/rollouts-metrics")
		p.rolloutsHealthHost[w], p.rolloutsMetricsHost[w] = pick(w+"/rollouts-health-host"), pick(w+"/rollouts-metrics-host")
		p.prom[w], p.sidecarGRPC[w], p.sidecarHTTP[w] = pick(w+"/prometheus"), pick(w+"/sidecar-grpc"), pick(w+"/sidecar-http")
		p.meshIngress[w], p.meshEastWest[w], p.meshMetrics[w] = pick(w+"/ingress"), pick(w+"/eastwest"), pick(w+"/meshsim-metrics")
	}
	p.redis, p.git, p.repo, p.repoMetrics = pick("redis"), pick("git"), pick("repo-server"), pick("repo-server-metrics")
	p.appsetMetrics, p.appsetProbe, p.appsetWebhook, p.controllerMetrics = pick("appset-metrics"), pick("appset-probe"), pick("appset-webhook"), pick("application-controller-metrics")
	p.queryHTTP, p.queryGRPC, p.storeHTTP, p.storeGRPC, p.compactHTTP = pick("thanos-query-http"), pick("thanos-query-grpc"), pick("thanos-store-http"), pick("thanos-store-grpc"), pick("thanos-compact-http")
	p.coordinatorMetrics, p.coordinatorDashboard = pick("coordinator-metrics"), pick("coordinator-dashboard")
	p.notifyReceiver = pick("notify-receiver")
	return p, used, err
}

// fleet is one supervised start-up of the local fleet.
type fleet struct {
	opt       Options
	s         *Supervisor
	pki       PKI
	p         *ports
	clusters  []string
	workloads []string
}

// Supervise starts the whole fleet, marks it Ready, and keeps it running
// until ctx ends; then it stops everything. Any start-up failure stops what
// was started and is returned.
func Supervise(ctx context.Context, opt Options) error {
	if opt.Workloads <= 0 {
		opt.Workloads = 2
	}
	if opt.Nodes <= 0 {
		opt.Nodes = defaultNodes
	}
	f := &fleet{opt: opt, pki: PKI{Dir: filepath.Join(opt.Dir, "pki")}}
	f.clusters = []string{HubName}
	for i := 1; i <= opt.Workloads; i++ {
		f.workloads = append(f.workloads, WorkloadName(i))
	}
	f.clusters = append(f.clusters, f.workloads...)
	prog, err := os.OpenFile(filepath.Join(opt.Dir, "progress.log"), os.O_CREATE|os.O_WRONLY|os.O_APPEND, 0o644)
	if err != nil {
		return err
	}
	defer prog.Close()
	ticks, _, _ := procStat(os.Getpid())
	f.s = &Supervisor{Dir: opt.Dir, Progress: prog, state: &State{
		Dir: opt.Dir, Phase: PhaseStarting, SupervisorPID: os.Getpid(), SupervisorAt: ticks,
		StartedAt: time.Now(), Kubeconfig: filepath.Join(opt.Dir, "kubeconfig"), URLs: map[string]string{},
	}}
	if err := WriteState(f.s.state); err != nil {
		return err
	}
	start := time.Now()
	err = f.up(ctx)
	if err != nil {
		f.s.Progressf("start-up failed: %v", err)
		_ = f.s.Update(func(st *State) { st.Phase, st.Message = PhaseFailed, firstLine(err.Error()) })
		f.s.StopAll(5 * time.Second)
		_ = f.s.Update(func(st *State) {})
		return err
	}
	now := time.Now()
	_ = f.s.Update(func(st *State) { st.Phase, st.ReadyAt, st.Message = PhaseReady, &now, "" })
	f.s.Progressf("fleet ready in %s", now.Sub(start).Round(100*time.Millisecond))
	<-ctx.Done()
	_ = f.s.Update(func(st *State) { st.Phase = PhaseStopping })
	f.s.StopAll(10 * time.Second)
	_ = f.s.Update(func(st *State) { st.Phase = PhaseStopped })
	return nil
}

func firstLine(s string) string {
	l, _, _ := strings.Cut(s, "\n")
	return l
}

type step struct {
	name string
	run  func(context.Context) error
}

func (f *fleet) up(ctx context.Context) error {
	if err := f.opt.Cache.Check(); err != nil {
		return err
	}
	if err := CheckHostTools(); err != nil {
		return err
	}
	var err error
	if f.opt.ThanosPort != 0 {
		if err := PortFree(f.opt.ThanosPort); err != nil {
			return fmt.Errorf("%w (--thanos-port)", err)
		}
	}
	prev, err := readPorts(f.opt.Dir)
	if err != nil {
		return err
	}
	reused := len(prev) > 0
	if f.opt.ThanosPort != 0 {
		// An explicit --thanos-port wins over the previous run's, and is
		// kept from every other component like a previous run's port.
		if prev == nil {
			prev = map[string]int{}
		}
		prev["thanos-query-http"] = f.opt.ThanosPort
	}
	var used map[string]int
	if f.p, used, err = allocPorts(f.clusters, f.workloads, prev); err != nil {
		return fmt.Errorf("allocate ports: %w", err)
	}
	if reused {
		f.s.Progressf("      reusing the ports of the previous run (%s)", portsFile)
	}
	if err := writePorts(f.opt.Dir, used); err != nil {
		return err
	}
	steps := f.steps()
	for i, st := range steps {
		t := time.Now()
		f.s.Progressf("[%d/%d] %s", i+1, len(steps), st.name)
		if err := st.run(ctx); err != nil {
			return fmt.Errorf("%s: %w", st.name, err)
		}
		if ctx.Err() != nil {
			return errors.New("interrupted")
		}
		f.s.Progressf("      done in %s", time.Since(t).Round(10*time.Millisecond))
	}
	return nil
}

// steps is the start-up plan of the fleet's kind: a bare fleet's clusters
// only; a light one's clusters with Argo Rollouts and the coordinator; a
// full one everything.
func (f *fleet) steps() []step {
	pki := step{"certificates and tokens", func(context.Context) error { return f.pki.Ensure(f.clusters) }}
	if f.opt.Bare {
		return []step{
			pki,
			{"etcd", f.startEtcd},
			{"kube-apiservers", f.startAPIServers},
			{"kubeconfig", f.writeKubeconfigs},
			{"controller-managers, schedulers, kwok nodes", f.startControllers},
			{"LoadBalancer address allocator", f.startLoadBalancers},
			{"nodes ready", f.waitNodes},
		}
	}
	// Every fleet but a bare one: clusters with Argo Rollouts.
	base := []step{
		pki,
		{"private network namespace", f.startNetNS},
		{"etcd", f.startEtcd},
		{"kube-apiservers", f.startAPIServers},
		{"kubeconfig", f.writeKubeconfigs},
		{"CRDs (Argo CD, Lockstep, Argo Rollouts, Istio, prometheus-operator)", f.installCRDs},
		{"controller-managers, schedulers, kwok nodes", f.startControllers},
		{"Argo Rollouts controllers", f.startRollouts},
	}
	if f.opt.Light {
		return append(base,
			step{"workload clusters registered for the coordinator", f.registerForCoordinator},
			step{"notification receiver and notifications ConfigMap", f.startNotifyReceiver},
			step{"Lockstep coordinator", f.startCoordinator},
			step{"nodes ready", f.waitNodes},
		)
	}
	return append(base,
		step{"meshsim data planes (ingress gateways)", f.startMeshsim},
		step{"Prometheus, Thanos sidecars, Store, Compactor, Query", f.startMonitoring},
		step{"git server and Argo CD", f.startArgoCD},
		step{"workload clusters registered in Argo CD", f.registerClusters},
		step{"workload clusters registered for the coordinator", f.registerForCoordinator},
		step{"notification receiver and notifications ConfigMap", f.startNotifyReceiver},
		step{"Lockstep coordinator", f.startCoordinator},
		step{"fleet health", f.waitFleet},
	)
}

// startAll starts processes then waits for all of them to be healthy.
func (f *fleet) startAll(ctx context.Context, specs ...ProcSpec) error {
	for _, sp := range specs {
		if err := f.s.Start(sp); err != nil {
			return err
		}
	}
	for _, sp := range specs {
		if err := f.s.WaitHealthy(ctx, sp.Name, startupTimeout); err != nil {
			return err
		}
	}
	return nil
}

func (f *fleet) bin(comp, name string) string { return f.opt.Cache.Bin(comp, name) }

func (f *fleet) data(parts ...string) string {
	p := filepath.Join(append([]string{f.opt.Dir, "data"}, parts...)...)
	_ = os.MkdirAll(p, 0o755)
	return p
}

func (f *fleet) startNetNS(context.Context) error {
	if f.opt.NoNetNS {
		return errNoNetNSFlag
	}
	// Rollouts' AnalysisRuns query Thanos on the hub from inside.
	bridged := []int{f.p.redis, f.p.repo, f.p.queryHTTP}
	for _, c := range f.clusters {
		bridged = append(bridged, f.p.api[c])
	}
	var n *netNS
	var err error
	if os.Geteuid() == 0 {
		if n, err = newNetNS(bridged); err != nil {
			f.s.Progressf("      no network namespace as root (%v): trying a user namespace", err)
		}
	}
	if n == nil {
		self, serr := f.self()
		if serr != nil {
			return &NoPrivateNetworkError{Err: serr}
		}
		if n, err = newUserNetNS(append([]string{self}, NetNSHelperArgs...), bridged); err != nil {
			return &NoPrivateNetworkError{Err: err}
		}
		f.s.Progressf("      user and network namespaces of pid %d (no root needed)", n.user.helper.Process.Pid)
	}
	f.s.netns = n
	for _, w := range f.workloads {
		if err := n.expose(f.p.rolloutsHealth[w], f.p.rolloutsHealthHost[w]); err != nil {
			return err
		}
		if err := n.expose(f.p.rolloutsMetrics[w], f.p.rolloutsMetricsHost[w]); err != nil {
			return err
		}
	}
	return f.s.Update(func(st *State) { st.NetNS = true })
}

// hostPort is where the host reaches a port of a process that may run in
// the private namespace.
func (f *fleet) hostPort(inside, exposed int) int {
	if f.s.netns != nil {
		return exposed
	}
	return inside
}

func (f *fleet) startEtcd(ctx context.Context) error {
	client := "http://" + addr(f.p.etcdClient)
	return f.startAll(ctx, ProcSpec{
		Name: "etcd", Path: f.bin("etcd", "etcd"), Addr: client,
		Ports: map[string]int{"client": f.p.etcdClient, "peer": f.p.etcdPeer},
		Args: []string{"--name=lockstep", "--data-dir=" + f.data("etcd"),
			"--listen-client-urls=" + client, "--advertise-client-urls=" + client,
			"--listen-peer-urls=http://" + addr(f.p.etcdPeer), "--initial-advertise-peer-urls=http://" + addr(f.p.etcdPeer),
			"--initial-cluster=lockstep=http://" + addr(f.p.etcdPeer),
			// A lab fleet trades durability of the last writes for speed.
			"--unsafe-no-fsync", "--quota-backend-bytes=4294967296", "--log-level=warn"},
		Health: httpOK(client + "/health"),
	})
}

func (f *fleet) server(c string) string { return "https://" + addr(f.p.api[c]) }

func (f *fleet) startAPIServers(ctx context.Context) error {
	var specs []ProcSpec
	for _, c := range f.clusters {
		hc, err := tlsClient(f.pki.CACert())
		if err != nil {
			return err
		}
		tok, err := f.pki.Token(c)
		if err != nil {
			return err
		}
		url := f.server(c) + "/readyz"
		specs = append(specs, ProcSpec{
			Name: c + "/kube-apiserver", Cluster: c, Path: f.bin("kube", "kube-apiserver"), Addr: f.server(c),
			Ports: map[string]int{"https": f.p.api[c]},
			Args: []string{
				"--etcd-servers=http://" + addr(f.p.etcdClient), "--etcd-prefix=/registry-" + c,
				"--bind-address=127.0.0.1", "--advertise-address=127.0.0.1", "--secure-port=" + strconv.Itoa(f.p.api[c]),
				"--endpoint-reconciler-type=none", "--service-cluster-ip-range=10.96.0.0/12",
				"--authorization-mode=RBAC", "--token-auth-file=" + f.pki.TokenFile(c),
				"--client-ca-file=" + f.pki.CACert(),
				"--tls-cert-file=" + f.pki.ServingCert(), "--tls-private-key-file=" + f.pki.ServingKey(),
				"--service-account-key-file=" + f.pki.SAPub(c), "--service-account-signing-key-file=" + f.pki.SAKey(c),
				"--service-account-issuer=https://kubernetes.default.svc",
				"--allow-privileged=true", "--profiling=false", "--enable-priority-and-fairness=false",
				"--cert-dir=" + f.data(c, "apiserver"),
			},
			Health: func(ctx context.Context) error { return get(ctx, hc, url, tok) },
		})
	}
	return f.startAll(ctx, specs...)
}

// CheckHostTools reports the first Debian package the fleet needs and the
// machine lacks, as one line that says how to install it.
func CheckHostTools() error {
	tools := map[string]string{"prometheus": "prometheus", "redis-server": "redis-server", "git": "git"}
	if os.Geteuid() != 0 {
		// Without root, processes join the private network namespace
		// through nsenter.
		tools["nsenter"] = "util-linux"
	}
	for bin, pkg := range tools {
		if _, err := lookPath(bin); err != nil {
			return fmt.Errorf("%s is not installed: run `sudo hack/install-deps.sh` (Debian package %s)", bin, pkg)
		}
	}
	return nil
}
