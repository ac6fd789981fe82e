package eks

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"os"
	"os/exec"
	"path/filepath"
	"slices"
	"sort"
	"strings"
	"sync"

	"k8s.io/client-go/tools/clientcmd"

	"lockstep.dev/lockstep/internal/lab/provider"
)

// installHint ends the error of a missing eksctl.
const installHint = "install it (https://eksctl.io/installation/, e.g. brew install eksctl) or give its path"

// Provider creates the lab on EKS by running eksctl.
type Provider struct {
	cfg    Config
	getenv func(string) string
}

var _ provider.Provider = (*Provider)(nil)

// New returns the EKS provider. It does no I/O; the environment (AWS_REGION)
// is read when Up or Down runs.
func New(c Config) *Provider { return &Provider{cfg: c, getenv: os.Getenv} }

// Name is the --provider value.
func (p *Provider) Name() string { return "eks" }

// Up writes every cluster's eksctl config under o.Dir/eks, creates the
// clusters eksctl does not find (in parallel: each takes about 15 minutes),
// makes sure o.Dir/kubeconfig holds a context for each and returns the fleet.
func (p *Provider) Up(ctx context.Context, o provider.Options) (*provider.Fleet, error) {
	if o.Dir == "" {
		return nil, errors.New("eks: no directory to write the configs and the kubeconfig to")
	}
	out := output(o.Out)
	c := p.cfg.WithDefaults(p.getenv)
	ccs, err := ClusterConfigs(o, c)
	if err != nil {
		return nil, err
	}
	dir := filepath.Join(o.Dir, "eks")
	if err := os.MkdirAll(dir, 0o755); err != nil {
		return nil, fmt.Errorf("eks: %w", err)
	}
	files := map[string]string{}
	for _, cc := range ccs {
		b, err := Render(cc)
		if err != nil {
			return nil, err
		}
		path := filepath.Join(dir, cc.Metadata.Name+".yaml")
		if err := os.WriteFile(path, b, 0o644); err != nil {
			return nil, fmt.Errorf("eks: write config of %s: %w", cc.Metadata.Name, err)
		}
		files[cc.Metadata.Name] = path
		fmt.Fprintf(out, "eks: wrote %s\n", path)
	}
	kubeconfig := filepath.Join(o.Dir, "kubeconfig")
	fleet := newFleet(ccs, c.Region, kubeconfig)
	if o.DryRun {
		fleet.Notes = append(fleet.Notes, "Dry run: the contexts shown are eksctl's cluster entries; the real contexts are <IAM identity>@<entry>.")
		fmt.Fprintln(out, "eks: dry run, no cluster created")
		return fleet, nil
	}

	e, err := p.eksctl(out)
	if err != nil {
		return nil, err
	}
	var missing []string
	for _, cc := range ccs {
		name := cc.Metadata.Name
		found, status, err := e.exists(ctx, name, c.Region)
		if err != nil {
			return nil, err
		}
		if found {
			fmt.Fprintf(out, "eks: cluster %s exists in %s (%s), kept\n", name, c.Region, status)
			continue
		}
		missing = append(missing, name)
	}
	if len(missing) > 0 {
		fmt.Fprintf(out, "eks: creating %s in %s (about 15 minutes, in parallel)\n", strings.Join(missing, ", "), c.Region)
		err := e.parallel(ctx, missing, func(name string) []string {
			return []string{"create", "cluster", "-f", files[name], "--kubeconfig", kubeconfig}
		})
		if err != nil {
			return nil, fmt.Errorf("eks: create %w", err)
		}
	}

	for i, cl := range fleet.All() {
		entry := ClusterEntry(cl.Name, c.Region)
		context, err := findContext(kubeconfig, entry)
		if err != nil {
			return nil, err
		}
		if context == "" {
			fmt.Fprintf(out, "eks: writing the kubeconfig of %s\n", cl.Name)
			if err := e.run(ctx, cl.Name, "utils", "write-kubeconfig", "--cluster", cl.Name, "--region", c.Region, "--kubeconfig", kubeconfig); err != nil {
				return nil, fmt.Errorf("eks: write kubeconfig of %w", err)
			}
			if context, err = findContext(kubeconfig, entry); err != nil {
				return nil, err
			}
			if context == "" {
				return nil, fmt.Errorf("eks: %s has no context for cluster %s after eksctl wrote it", kubeconfig, entry)
			}
		}
		fleet.At(i).Context = context
	}
	fmt.Fprintf(out, "eks: %d clusters ready, kubeconfig %s\n", len(ccs), kubeconfig)
	return fleet, nil
}

// Down deletes the lab's clusters that eksctl finds (in parallel, waiting
// for their CloudFormation stacks to go) and removes their contexts from
// o.Dir/kubeconfig.
func (p *Provider) Down(ctx context.Context, o provider.Options) error {
	out := output(o.Out)
	c := p.cfg.WithDefaults(p.getenv)
	if err := c.Validate(); err != nil {
		return err
	}
	e, err := p.eksctl(out)
	if err != nil {
		return err
	}
	hub, workloads := o.Names()
	var present []string
	for _, name := range append([]string{hub}, workloads...) {
		found, _, err := e.exists(ctx, name, c.Region)
		if err != nil {
			return err
		}
		if !found {
			fmt.Fprintf(out, "eks: cluster %s does not exist in %s\n", name, c.Region)
			continue
		}
		present = append(present, name)
	}
	if len(present) > 0 {
		fmt.Fprintf(out, "eks: deleting %s in %s\n", strings.Join(present, ", "), c.Region)
		err := e.parallel(ctx, present, func(name string) []string {
			return []string{"delete", "cluster", "--name", name, "--region", c.Region, "--wait"}
		})
		if err != nil {
			return fmt.Errorf("eks: delete %w", err)
		}
	}
	if o.Dir == "" {
		return nil
	}
	entries := make([]string, len(present))
	for i, name := range present {
		entries[i] = ClusterEntry(name, c.Region)
	}
	return pruneKubeconfig(filepath.Join(o.Dir, "kubeconfig"), entries)
}

func newFleet(ccs []*ClusterConfig, region, kubeconfig string) *provider.Fleet {
	var names []string
	for _, cc := range ccs {
		names = append(names, cc.Metadata.Name)
	}
	f := provider.NewFleet("eks", kubeconfig, names, func(_ int, name string) string { return ClusterEntry(name, region) })
	f.LoadBalancerAnnotations = LoadBalancerAnnotations()
	f.Notes = []string{
		"The Istio east-west gateways and the Thanos sidecars are LoadBalancer Services that need internet-facing NLBs: " +
			"install the AWS Load Balancer Controller on each cluster (helm repo add eks https://aws.github.io/eks-charts && " +
			"helm install aws-load-balancer-controller eks/aws-load-balancer-controller -n kube-system --set clusterName=<name> " +
			"--set serviceAccount.create=false --set serviceAccount.name=" + LoadBalancerControllerSA + "; eksctl made the service account and its IAM role); " +
			"the installers annotate those Services for it (" + strings.Join(annotationList(), ", ") + ").",
		"Each cluster has its own VPC, NAT gateway and Elastic IP: AWS's default quotas (5 VPCs and 5 Elastic IPs per region) leave room for the seed's three clusters only.",
		"EKS bills every hour of the control planes, nodes, NAT gateways and load balancers: run the lab's down command when done.",
	}
	return f
}

// findContext returns the context of kubeconfig whose cluster is entry (the
// current context when several are), or "" when none is.
func findContext(kubeconfig, entry string) (string, error) {
	kc, err := clientcmd.LoadFromFile(kubeconfig)
	if errors.Is(err, os.ErrNotExist) {
		return "", nil
	}
	if err != nil {
		return "", fmt.Errorf("eks: read kubeconfig: %w", err)
	}
	var found []string
	for name, c := range kc.Contexts {
		if c.Cluster == entry {
			found = append(found, name)
		}
	}
	if len(found) == 0 {
		return "", nil
	}
	if slices.Contains(found, kc.CurrentContext) {
		return kc.CurrentContext, nil
	}
	slices.Sort(found)
	return found[0], nil
}

// pruneKubeconfig removes the clusters, their contexts and those contexts'
// users from the kubeconfig file, if it exists.
func pruneKubeconfig(path string, entries []string) error {
	kc, err := clientcmd.LoadFromFile(path)
	if errors.Is(err, os.ErrNotExist) || len(entries) == 0 {
		return nil
	}
	if err != nil {
		return fmt.Errorf("eks: read kubeconfig: %w", err)
	}
	for name, c := range kc.Contexts {
		if slices.Contains(entries, c.Cluster) {
			delete(kc.Contexts, name)
			delete(kc.AuthInfos, c.AuthInfo)
			if kc.CurrentContext == name {
				kc.CurrentContext = ""
			}
		}
	}
	for _, e := range entries {
		delete(kc.Clusters, e)
	}
	if err := clientcmd.WriteToFile(*kc, path); err != nil {
		return fmt.Errorf("eks: write kubeconfig: %w", err)
	}
	return nil
}

// eksctl runs the eksctl binary, its output prefixed with the cluster name.
type eksctl struct {
	bin string
	out io.Writer
	mu  sync.Mutex // serializes writes to out
}

func (p *Provider) eksctl(out io.Writer) (*eksctl, error) {
	bin := p.cfg.Eksctl
	if bin == "" {
		var err error
		if bin, err = exec.LookPath("eksctl"); err != nil {
			return nil, errors.New("eks: eksctl not found on PATH: " + installHint)
		}
	} else if _, err := os.Stat(bin); err != nil {
		return nil, fmt.Errorf("eks: eksctl %s not found: %s", bin, installHint)
	}
	return &eksctl{bin: bin, out: out}, nil
}

// exists asks eksctl for the cluster. A cluster EKS does not know is not an
// error; anything else eksctl complains about (credentials, network) is.
func (e *eksctl) exists(ctx context.Context, name, region string) (found bool, status string, err error) {
	var stdout, stderr bytes.Buffer
	cmd := exec.CommandContext(ctx, e.bin, "get", "cluster", "--name", name, "--region", region, "-o", "json")
	cmd.Stdout, cmd.Stderr = &stdout, &stderr
	if err := cmd.Run(); err != nil {
		msg := stderr.String() + stdout.String()
		if strings.Contains(msg, "ResourceNotFoundException") || strings.Contains(msg, "No cluster found") {
			return false, "", nil
		}
		return false, "", fmt.Errorf("eks: eksctl get cluster %s: %s", name, lastLine(msg, err))
	}
	var clusters []struct {
		Name   string `json:"Name"`
		Status string `json:"Status"`
	}
	if err := json.Unmarshal(stdout.Bytes(), &clusters); err != nil {
		return false, "", fmt.Errorf("eks: eksctl get cluster %s: unreadable answer: %w", name, err)
	}
	for _, c := range clusters {
		if c.Name == name {
			return true, c.Status, nil
		}
	}
	return false, "", nil
}

// run runs eksctl for one cluster, streaming its output.
func (e *eksctl) run(ctx context.Context, cluster string, args ...string) error {
	w := &prefixWriter{e: e, prefix: "[" + cluster + "] "}
	cmd := exec.CommandContext(ctx, e.bin, args...)
	cmd.Stdout, cmd.Stderr = w, w
	err := cmd.Run()
	w.flush()
	if err != nil {
		return fmt.Errorf("%s: %s", cluster, lastLine(w.last, err))
	}
	return nil
}

// parallel runs eksctl once per cluster at the same time and reports every
// failure on one line.
func (e *eksctl) parallel(ctx context.Context, clusters []string, args func(string) []string) error {
	errs := make([]error, len(clusters))
	var wg sync.WaitGroup
	for i, name := range clusters {
		wg.Go(func() { errs[i] = e.run(ctx, name, args(name)...) })
	}
	wg.Wait()
	var msgs []string
	for _, err := range errs {
		if err != nil {
			msgs = append(msgs, err.Error())
		}
	}
	if len(msgs) > 0 {
		return errors.New(strings.Join(msgs, "; "))
	}
	return nil
}

// lastLine is the last non-empty line of an eksctl output, or err.
func lastLine(s string, err error) string {
	lines := strings.Split(strings.TrimSpace(s), "\n")
	if l := strings.TrimSpace(lines[len(lines)-1]); l != "" {
		return l
	}
	return err.Error()
}

// prefixWriter writes whole lines to the eksctl's output with a prefix and
// remembers the last one.
type prefixWriter struct {
	e      *eksctl
	prefix string
	buf    []byte
	last   string
}

func (w *prefixWriter) Write(b []byte) (int, error) {
	w.buf = append(w.buf, b...)
	for {
		i := bytes.IndexByte(w.buf, '\n')
		if i < 0 {
			return len(b), nil
		}
		w.line(string(w.buf[:i]))
		w.buf = w.buf[i+1:]
	}
}

func (w *prefixWriter) flush() {
	if len(w.buf) > 0 {
		w.line(string(w.buf))
		w.buf = nil
	}
}

func (w *prefixWriter) line(l string) {
	l = strings.TrimRight(l, "\r")
	if strings.TrimSpace(l) != "" {
		w.last = l
	}
	w.e.mu.Lock()
	defer w.e.mu.Unlock()
	fmt.Fprintln(w.e.out, w.prefix+l)
}

func output(w io.Writer) io.Writer {
	if w == nil {
		return io.Discard
	}
	return w
}

// LoadBalancerAnnotations ask the AWS Load Balancer Controller for an
// internet-facing NLB with IP targets: what the east-west gateways and the
// Thanos sidecars need to be reached from the other clusters and the hub.
func LoadBalancerAnnotations() map[string]string {
	return map[string]string{
		"service.beta.kubernetes.io/aws-load-balancer-type":            "external",
		"service.beta.kubernetes.io/aws-load-balancer-nlb-target-type": "ip",
		"service.beta.kubernetes.io/aws-load-balancer-scheme":          "internet-facing",
	}
}

func annotationList() []string {
	var out []string
	for k, v := range LoadBalancerAnnotations() {
		out = append(out, k+": "+v)
	}
	sort.Strings(out)
	return out
}
