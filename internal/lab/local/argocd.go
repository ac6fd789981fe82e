package local

import (
	"context"
	"errors"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"strings"
	"time"

	corev1 "k8s.io/api/core/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/apis/meta/v1/unstructured"
	"k8s.io/client-go/tools/clientcmd"
	clientcmdapi "k8s.io/client-go/tools/clientcmd/api"

	"lockstep.dev/lockstep/internal/access"
	members "lockstep.dev/lockstep/internal/fleet"
	"lockstep.dev/lockstep/internal/kube"
	"lockstep.dev/lockstep/internal/render"
)

// RepoURL is how Argo CD reaches the fleet's git repository.
func RepoURL(gitPort int) string { return fmt.Sprintf("git://127.0.0.1:%d/%s", gitPort, FleetRepoName) }

// RepoDir is the bare repository served by the fleet's git daemon.
func RepoDir(fleetDir string) string { return filepath.Join(fleetDir, "data", "git", FleetRepoName) }

func obj(m map[string]any) *unstructured.Unstructured { return &unstructured.Unstructured{Object: m} }

func (f *fleet) argocdConfig(ctx context.Context) error {
	a, err := f.applier(HubName)
	if err != nil {
		return err
	}
	objs := []*unstructured.Unstructured{obj(map[string]any{
		"apiVersion": "v1", "kind": "Namespace", "metadata": map[string]any{"name": ArgoCDNS},
	})}
	cms, err := readManifests(f.opt.Cache.Asset("argocd", "config"))
	if err != nil {
		return err
	}
	for _, o := range cms {
		o.SetNamespace(ArgoCDNS)
		switch o.GetName() {
		case "argocd-cm":
			// Poll git every 30 s; the demo also asks for a refresh on
			// every commit so nobody waits for the poll.
			_ = unstructured.SetNestedField(o.Object, "30s", "data", "timeout.reconciliation")
		case "argocd-secret":
			key, err := f.secretKey()
			if err != nil {
				return err
			}
			_ = unstructured.SetNestedField(o.Object, key, "stringData", "server.secretkey")
		}
		objs = append(objs, o)
	}
	objs = append(objs, obj(map[string]any{
		"apiVersion": "argoproj.io/v1alpha1", "kind": "AppProject",
		"metadata": map[string]any{"name": "default", "namespace": ArgoCDNS},
		"spec": map[string]any{
			"sourceRepos":              []any{"*"},
			"destinations":             []any{map[string]any{"namespace": "*", "server": "*"}},
			"clusterResourceWhitelist": []any{map[string]any{"group": "*", "kind": "*"}},
		},
	}))
	return a.Apply(ctx, objs...)
}

// secretKey is Argo CD's server.secretkey, generated once per fleet and
// kept with the fleet's other secrets (never logged, never in git).
func (f *fleet) secretKey() (string, error) {
	p := filepath.Join(f.pki.Dir, "argocd-server.secretkey")
	if b, err := os.ReadFile(p); err == nil {
		return string(b), nil
	}
	k, err := randomHex(32)
	if err != nil {
		return "", err
	}
	return k, os.WriteFile(p, []byte(k), 0o600)
}

func (f *fleet) argocdEnv(binary string) []string {
	base := f.data(HubName, "argocd")
	for _, d := range []string{"tls", "ssh", "gpg", "gnupg", "home", "tmp"} {
		_ = os.MkdirAll(filepath.Join(base, d), 0o700)
	}
	wrapper := f.opt.Cache.Asset("argocd", "bin")
	return []string{
		"ARGOCD_BINARY_NAME=" + binary,
		"ARGOCD_FAKE_IN_CLUSTER=true",
		"KUBECONFIG=" + f.kubeconfigPath("argocd.kubeconfig"),
		"ARGOCD_GPG_ENABLED=false",
		"ARGOCD_TLS_DATA_PATH=" + filepath.Join(base, "tls"),
		"ARGOCD_SSH_DATA_PATH=" + filepath.Join(base, "ssh"),
		"ARGOCD_GPG_DATA_PATH=" + filepath.Join(base, "gpg"),
		"ARGOCD_GNUPGHOME=" + filepath.Join(base, "gnupg"),
		"HOME=" + filepath.Join(base, "home"),
		"TMPDIR=" + filepath.Join(base, "tmp"),
		// The repo-server's askpass socket defaults to a fixed path in /tmp
		// that outlives it: another fleet (or another user's) could not
		// take it over.
		"ARGOCD_ASK_PASS_SOCK=" + filepath.Join(base, "tmp", "askpass.sock"),
		// The repo-server calls git-verify-wrapper.sh by name.
		"PATH=" + wrapper + string(os.PathListSeparator) + os.Getenv("PATH"),
	}
}

func (f *fleet) startArgoCD(ctx context.Context) error {
	if err := f.argocdConfig(ctx); err != nil {
		return fmt.Errorf("argocd config: %w", err)
	}
	params := render.Guide()
	params.ScrapeInterval = ScrapeInterval
	params.RepoURL = RepoURL(f.p.git)
	params.ThanosURL = "http://" + addr(f.p.queryHTTP)
	files, err := render.Tree(f.opt.GitOps, params)
	if err != nil {
		return err
	}
	if err := SeedRepo(RepoDir(f.opt.Dir), files); err != nil {
		return fmt.Errorf("seed git repository: %w", err)
	}
	gitBase := filepath.Dir(RepoDir(f.opt.Dir))
	redis := addr(f.p.redis)
	repo := addr(f.p.repo)
	argocd := f.bin("argocd", "argocd")
	// `git daemon` forks git-daemon and would leave it behind if the
	// supervisor died: run the daemon itself so Pdeathsig reaches it.
	execPath, err := exec.Command("git", "--exec-path").Output()
	if err != nil {
		return fmt.Errorf("git --exec-path: %w", err)
	}
	gitDaemon := filepath.Join(strings.TrimSpace(string(execPath)), "git-daemon")
	if err := f.startAll(ctx,
		ProcSpec{
			Name: HubName + "/redis", Cluster: HubName, Path: "redis-server", Addr: redis,
			Ports: map[string]int{"redis": f.p.redis},
			Args: []string{"--bind", "127.0.0.1", "--port", strconv.Itoa(f.p.redis), "--save", "", "--appendonly", "no",
				"--dir", f.data(HubName, "redis"), "--loglevel", "warning"},
			Health: tcpOK(redis),
		},
		ProcSpec{
			Name: HubName + "/git-daemon", Cluster: HubName, Path: gitDaemon, Addr: RepoURL(f.p.git),
			Ports: map[string]int{"git": f.p.git},
			Args: []string{"--reuseaddr", "--listen=127.0.0.1", "--port=" + strconv.Itoa(f.p.git),
				"--base-path=" + gitBase, "--export-all", "--informative-errors", gitBase},
			Health: tcpOK(addr(f.p.git)),
		},
		ProcSpec{
			Name: HubName + "/argocd-repo-server", Cluster: HubName, Path: argocd, Addr: repo,
			Ports: map[string]int{"grpc": f.p.repo, "metrics": f.p.repoMetrics},
			Env:   f.argocdEnv("argocd-repo-server"),
			Args: []string{"--disable-tls", "--client-ca-path=", "--address=127.0.0.1", "--port=" + strconv.Itoa(f.p.repo),
				"--metrics-address=127.0.0.1", "--metrics-port=" + strconv.Itoa(f.p.repoMetrics),
				"--redis=" + redis, "--loglevel=warn", "--logformat=text"},
			Health: tcpOK(repo),
		},
	); err != nil {
		return err
	}
	if err := f.startAll(ctx,
		ProcSpec{
			Name: HubName + "/argocd-application-controller", Cluster: HubName, Path: argocd,
			Ports: map[string]int{"metrics": f.p.controllerMetrics},
			Env:   f.argocdEnv("argocd-application-controller"),
			Args: []string{"--repo-server=" + repo, "--repo-server-plaintext", "--redis=" + redis,
				"--metrics-port=" + strconv.Itoa(f.p.controllerMetrics), "--app-resync=30", "--self-heal-timeout-seconds=2",
				"--status-processors=4", "--operation-processors=4", "--loglevel=warn", "--logformat=text"},
			NetNS: true,
		},
		ProcSpec{
			Name: HubName + "/argocd-applicationset-controller", Cluster: HubName, Path: argocd,
			Addr:  "http://" + addr(f.p.appsetProbe),
			Ports: map[string]int{"metrics": f.p.appsetMetrics, "probe": f.p.appsetProbe, "webhook": f.p.appsetWebhook},
			Env:   f.argocdEnv("argocd-applicationset-controller"),
			Args: []string{"--argocd-repo-server=" + repo, "--repo-server-plaintext",
				"--metrics-addr=" + addr(f.p.appsetMetrics), "--probe-addr=" + addr(f.p.appsetProbe),
				"--webhook-addr=" + addr(f.p.appsetWebhook), "--loglevel=warn", "--logformat=text"},
			// Its probe server registers no check: serving it means the
			// manager started.
			Health: tcpOK(addr(f.p.appsetProbe)),
		},
	); err != nil {
		return err
	}
	return f.s.Update(func(st *State) {
		st.URLs["git"] = RepoURL(f.p.git)
		st.URLs["argocd-repo-server"] = repo
		st.URLs["argocd-applicationset-controller"] = "http://" + addr(f.p.appsetProbe)
	})
}

// SeedRepo creates the fleet's bare repository with one commit holding the
// rendered GitOps tree, unless it already exists (a restarted fleet keeps
// its history).
func SeedRepo(bare string, files map[string][]byte) error {
	if _, err := os.Stat(filepath.Join(bare, "HEAD")); err == nil {
		return nil
	}
	if err := os.MkdirAll(filepath.Dir(bare), 0o755); err != nil {
		return err
	}
	if err := git("", "init", "--quiet", "--bare", "--initial-branch=main", bare); err != nil {
		return err
	}
	work, err := os.MkdirTemp(filepath.Dir(bare), "seed-")
	if err != nil {
		return err
	}
	defer os.RemoveAll(work)
	if err := WriteFiles(work, files); err != nil {
		return err
	}
	if err := os.WriteFile(filepath.Join(work, ".lockstep-fleet"), []byte("GitOps tree of a Lockstep local fleet.\n"), 0o644); err != nil {
		return err
	}
	for _, args := range [][]string{
		{"init", "--quiet", "--initial-branch=main"},
		{"add", "-A"},
		{"commit", "--quiet", "-m", "GitOps tree of the lab"},
		{"push", "--quiet", bare, "main"},
	} {
		if err := git(work, args...); err != nil {
			return err
		}
	}
	return nil
}

// git runs a git command with a fixed identity, so commits never depend on
// the user's configuration.
func git(dir string, args ...string) error {
	cmd := exec.Command("git", args...)
	cmd.Dir = dir
	cmd.Env = append(os.Environ(), "GIT_AUTHOR_NAME=lockstep", "GIT_AUTHOR_EMAIL=lockstep@localhost",
		"GIT_COMMITTER_NAME=lockstep", "GIT_COMMITTER_EMAIL=lockstep@localhost", "GIT_CONFIG_NOSYSTEM=1")
	out, err := cmd.CombinedOutput()
	if err != nil {
		return fmt.Errorf("git %s: %v: %s", strings.Join(args, " "), err, strings.TrimSpace(string(out)))
	}
	return nil
}

// WriteFiles writes a rendered tree (slash-separated paths) under dir.
func WriteFiles(dir string, files map[string][]byte) error {
	for p, b := range files {
		target := filepath.Join(dir, filepath.FromSlash(p))
		if err := os.MkdirAll(filepath.Dir(target), 0o755); err != nil {
			return err
		}
		if err := os.WriteFile(target, b, 0o644); err != nil {
			return err
		}
	}
	return nil
}

// ReportingClusterAnnotation on a cluster Secret names the cluster's
// Prometheus external label "cluster" (see api/v1alpha1 Analysis.Clusters).
const ReportingClusterAnnotation = "lockstep.dev/reporting-cluster"

// ClusterSecretName is the Argo CD cluster Secret of a workload cluster.
func ClusterSecretName(cluster string) string { return "cluster-" + cluster }

// registerClusters does what `argocd cluster add` does: a ServiceAccount
// argocd-manager with cluster-admin rights in each workload cluster, its
// token, and a cluster Secret on the hub labelled for ApplicationSets.
func (f *fleet) registerClusters(ctx context.Context) error {
	ca, err := os.ReadFile(f.pki.CACert())
	if err != nil {
		return err
	}
	hubCfg, err := f.restConfig(HubName)
	if err != nil {
		return err
	}
	hub, err := kube.NewApplier(hubCfg)
	if err != nil {
		return err
	}
	for i, w := range f.workloads {
		tok, err := f.managerToken(ctx, w)
		if err != nil {
			return fmt.Errorf("%s: %w", w, err)
		}
		data, err := members.SecretData(w, f.server(w), []byte(tok), ca)
		if err != nil {
			return err
		}
		sec := obj(map[string]any{
			"apiVersion": "v1", "kind": "Secret",
			"metadata": map[string]any{
				"name": ClusterSecretName(w), "namespace": ArgoCDNS,
				// How this cluster's Prometheus names it in Thanos (its
				// external label), for the coordinator's per-cluster analysis.
				"annotations": map[string]any{"managed-by": "argocd.argoproj.io", ReportingClusterAnnotation: PrometheusClusterLabel(i + 1)},
				"labels": map[string]any{
					"argocd.argoproj.io/secret-type": "cluster",
					WorkloadLabel:                    RoleWorkload,
					"lockstep.dev/cluster":           w,
				},
			},
			"type": "Opaque",
			"data": data,
		})
		if err := hub.Apply(ctx, sec); err != nil {
			return err
		}
	}
	return nil
}

// registerForCoordinator gives the coordinator its own, least-privilege
// identity in every member and its Secret on the hub (it never uses Argo
// CD's token), and its identity on the hub.
func (f *fleet) registerForCoordinator(ctx context.Context) error {
	ca, err := os.ReadFile(f.pki.CACert())
	if err != nil {
		return err
	}
	hubCfg, err := f.restConfig(HubName)
	if err != nil {
		return err
	}
	reg, err := access.NewRegistrar(hubCfg)
	if err != nil {
		return err
	}
	for i, w := range f.workloads {
		member, err := f.restConfig(w)
		if err != nil {
			return err
		}
		if err := reg.Register(ctx, member, access.Member{
			Name: w, Server: f.server(w), CA: ca, Reporting: PrometheusClusterLabel(i + 1),
			Labels: map[string]string{WorkloadLabel: RoleWorkload, "lockstep.dev/cluster": w},
		}); err != nil {
			return err
		}
	}
	return f.coordinatorIdentity(ctx, reg.Hub(), ca)
}

// CoordinatorKubeconfig is the kubeconfig of the coordinator's own
// ServiceAccount on the hub: what the fleet's coordinator runs with, and
// what tests use to act as it.
func CoordinatorKubeconfig(dir string) string {
	return filepath.Join(dir, "kubeconfigs", "lockstep-coordinator")
}

// coordinatorIdentity creates the coordinator's ServiceAccount and roles
// on the hub and writes a kubeconfig with its token: the local fleet runs
// the coordinator with exactly the rights an installed one has, never as
// admin.
func (f *fleet) coordinatorIdentity(ctx context.Context, a *kube.Applier, ca []byte) error {
	objs, err := access.HubObjects()
	if err != nil {
		return err
	}
	if err := a.Apply(ctx, objs...); err != nil {
		return fmt.Errorf("coordinator identity on the hub: %w", err)
	}
	cs, err := f.clientset(HubName)
	if err != nil {
		return err
	}
	tok, _, err := access.Token(ctx, cs, time.Minute)
	if err != nil {
		return fmt.Errorf("hub: %w", err)
	}
	cfg := clientcmdapi.NewConfig()
	cfg.Clusters[HubName] = &clientcmdapi.Cluster{Server: f.server(HubName), CertificateAuthorityData: ca}
	cfg.AuthInfos[access.ServiceAccount] = &clientcmdapi.AuthInfo{Token: string(tok)}
	cfg.Contexts[HubName] = &clientcmdapi.Context{Cluster: HubName, AuthInfo: access.ServiceAccount, Namespace: access.Namespace}
	cfg.CurrentContext = HubName
	return clientcmd.WriteToFile(*cfg, CoordinatorKubeconfig(f.opt.Dir))
}

func (f *fleet) managerToken(ctx context.Context, cluster string) (string, error) {
	cfg, err := f.restConfig(cluster)
	if err != nil {
		return "", err
	}
	a, err := kube.NewApplier(cfg)
	if err != nil {
		return "", err
	}
	objs := []*unstructured.Unstructured{
		obj(map[string]any{"apiVersion": "v1", "kind": "ServiceAccount",
			"metadata": map[string]any{"name": "argocd-manager", "namespace": "kube-system"}}),
		obj(map[string]any{"apiVersion": "rbac.authorization.k8s.io/v1", "kind": "ClusterRole",
			"metadata": map[string]any{"name": "argocd-manager-role"},
			"rules": []any{
				map[string]any{"apiGroups": []any{"*"}, "resources": []any{"*"}, "verbs": []any{"*"}},
				map[string]any{"nonResourceURLs": []any{"*"}, "verbs": []any{"*"}},
			}}),
		obj(map[string]any{"apiVersion": "rbac.authorization.k8s.io/v1", "kind": "ClusterRoleBinding",
			"metadata": map[string]any{"name": "argocd-manager-role-binding"},
			"roleRef":  map[string]any{"apiGroup": "rbac.authorization.k8s.io", "kind": "ClusterRole", "name": "argocd-manager-role"},
			"subjects": []any{map[string]any{"kind": "ServiceAccount", "name": "argocd-manager", "namespace": "kube-system"}}}),
		obj(map[string]any{"apiVersion": "v1", "kind": "Secret", "type": string(corev1.SecretTypeServiceAccountToken),
			"metadata": map[string]any{"name": "argocd-manager-long-lived-token", "namespace": "kube-system",
				"annotations": map[string]any{corev1.ServiceAccountNameKey: "argocd-manager"}}}),
	}
	if err := a.Apply(ctx, objs...); err != nil {
		return "", err
	}
	cs, err := f.clientset(cluster)
	if err != nil {
		return "", err
	}
	tok, _, err := kube.ServiceAccountToken(ctx, cs, "kube-system", "argocd-manager-long-lived-token", 30*time.Second)
	return string(tok), err
}

func (f *fleet) waitFleet(ctx context.Context) error {
	for _, w := range f.workloads {
		if err := f.waitNodesReady(ctx, w); err != nil {
			return err
		}
	}
	return f.waitThanos(ctx)
}

func (f *fleet) waitNodesReady(ctx context.Context, cluster string) error {
	cs, err := f.clientset(cluster)
	if err != nil {
		return err
	}
	deadline := time.Now().Add(startupTimeout)
	for time.Now().Before(deadline) {
		nodes, err := cs.CoreV1().Nodes().List(ctx, metav1.ListOptions{})
		if err == nil {
			ready := 0
			for _, n := range nodes.Items {
				for _, c := range n.Status.Conditions {
					if c.Type == corev1.NodeReady && c.Status == corev1.ConditionTrue {
						ready++
					}
				}
			}
			if ready >= f.opt.Nodes {
				return nil
			}
		}
		time.Sleep(200 * time.Millisecond)
	}
	return fmt.Errorf("%s: kwok nodes not Ready after %s", cluster, startupTimeout)
}

// Commit clones the fleet's repository, lets edit change the work tree,
// commits everything as one commit and pushes it. It returns the new
// revision; an edit that changes nothing is an error, so a demo never
// "upgrades" to the revision it already runs.
func Commit(bare, message string, edit func(workTree string) error) (string, error) {
	work, err := os.MkdirTemp(filepath.Dir(bare), "commit-")
	if err != nil {
		return "", err
	}
	defer os.RemoveAll(work)
	if err := git("", "clone", "--quiet", bare, work); err != nil {
		return "", err
	}
	if err := edit(work); err != nil {
		return "", err
	}
	if err := git(work, "add", "-A"); err != nil {
		return "", err
	}
	if err := git(work, "diff", "--cached", "--quiet"); err == nil {
		return "", fmt.Errorf("commit %q: %w", message, ErrNothingToCommit)
	}
	if err := git(work, "commit", "--quiet", "-m", message); err != nil {
		return "", err
	}
	if err := git(work, "push", "--quiet", "origin", "HEAD:main"); err != nil {
		return "", err
	}
	out, err := exec.Command("git", "-C", work, "rev-parse", "HEAD").Output()
	if err != nil {
		return "", err
	}
	return strings.TrimSpace(string(out)), nil
}

// ErrNothingToCommit is returned by Commit when the edit changed nothing.
var ErrNothingToCommit = errors.New("nothing to commit")

// ReadRepoFile reads one file of the main branch of a bare repository.
func ReadRepoFile(bare, path string) ([]byte, error) {
	out, err := exec.Command("git", "--git-dir="+bare, "show", "main:"+path).Output()
	if err != nil {
		return nil, fmt.Errorf("read %s from %s: %w", path, bare, err)
	}
	return out, nil
}

// RepoHead is the revision of the main branch of a bare repository.
func RepoHead(bare string) (string, error) {
	out, err := exec.Command("git", "--git-dir="+bare, "rev-parse", "main").Output()
	if err != nil {
		return "", fmt.Errorf("read the head of %s: %w", bare, err)
	}
	return strings.TrimSpace(string(out)), nil
}
