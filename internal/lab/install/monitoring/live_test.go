package monitoring_test

import (
	"bytes"
	"context"
	"fmt"
	"os"
	"strings"
	"testing"
	"time"

	corev1 "k8s.io/api/core/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"sigs.k8s.io/yaml"

	"lockstep.dev/lockstep/internal/lab/install"
	"lockstep.dev/lockstep/internal/lab/install/monitoring"
	"lockstep.dev/lockstep/internal/lab/provider"
)

// TestLive runs the monitoring actions twice against real API servers
// (`lockstep lab up --bare` gives empty clusters whose kwok nodes make
// pods Ready and whose LoadBalancers get addresses): the first run
// installs, the second must create and change nothing.
func TestLive(t *testing.T) {
	kc := os.Getenv("LOCKSTEP_TEST_KUBECONFIG")
	if kc == "" {
		t.Skip("no LOCKSTEP_TEST_KUBECONFIG: start a fleet with `lockstep lab up --bare` and point it at its kubeconfig")
	}
	f := &provider.Fleet{Provider: "test", Kubeconfig: kc,
		Hub: provider.Cluster{Name: provider.HubName, Role: provider.RoleHub, Context: provider.HubName},
		Workloads: []provider.Cluster{
			{Name: provider.WorkloadName(1), Role: provider.RoleWork, Context: provider.WorkloadName(1)},
			{Name: provider.WorkloadName(2), Role: provider.RoleWork, Context: provider.WorkloadName(2)},
		}}
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Minute)
	defer cancel()
	s := install.DefaultSettings()
	s.Timeout = 2 * time.Minute
	var c *install.Context
	for run := 1; run <= 2; run++ {
		var out bytes.Buffer
		var err error
		c, err = install.Connect(ctx, install.Options{Fleet: f, Out: &out, Settings: s})
		if err != nil {
			t.Fatal(err)
		}
		res, err := install.Run(c, monitoring.Actions(), install.RunOptions{})
		t.Logf("run %d:\n%s", run, out.String())
		if err != nil {
			t.Fatalf("run %d: %v", run, err)
		}
		for _, r := range res {
			t.Logf("run %d: %s: touched %v", run, r.Action, r.Counts.Touched)
			if run == 2 && (r.Counts.Created != 0 || r.Counts.Changed != 0) {
				t.Errorf("run 2: %s: %s: %v", r.Action, r.Counts, r.Counts.Touched)
			}
		}
	}

	// Query's endpoint file names every sidecar's LoadBalancer address.
	cm, err := c.Hub.Kube.CoreV1().ConfigMaps(monitoring.Namespace).Get(ctx, monitoring.QueryEndpointsConfigMap, metav1.GetOptions{})
	if err != nil {
		t.Fatal(err)
	}
	file := cm.Data[monitoring.QueryEndpointsFile]
	for _, w := range c.Workloads {
		svc, err := w.Kube.CoreV1().Services(monitoring.Namespace).Get(ctx, monitoring.SidecarService, metav1.GetOptions{})
		if err != nil {
			t.Fatal(err)
		}
		ip := svc.Status.LoadBalancer.Ingress[0].IP
		if !strings.Contains(file, fmt.Sprintf("%q", fmt.Sprintf("%s:%d", ip, monitoring.SidecarGRPCPort))) {
			t.Errorf("%s's sidecar %s is not in the endpoints file:\n%s", w.Name, ip, file)
		}
	}
	// An address change reaches the endpoints file on a rerun, and only
	// the file: Query re-reads it, so its Deployment is left as it was.
	w1 := c.Workloads[0].Kube.CoreV1().Services(monitoring.Namespace)
	setIngress := func(in corev1.LoadBalancerIngress) {
		t.Helper()
		svc, err := w1.Get(ctx, monitoring.SidecarService, metav1.GetOptions{})
		if err != nil {
			t.Fatal(err)
		}
		svc.Status.LoadBalancer.Ingress = []corev1.LoadBalancerIngress{in}
		if _, err := w1.UpdateStatus(ctx, svc, metav1.UpdateOptions{}); err != nil {
			t.Fatal(err)
		}
	}
	svc, err := w1.Get(ctx, monitoring.SidecarService, metav1.GetOptions{})
	if err != nil {
		t.Fatal(err)
	}
	was := svc.Status.LoadBalancer.Ingress[0]
	setIngress(corev1.LoadBalancerIngress{Hostname: "sidecar-moved.example.com"})
	defer func() {
		setIngress(was)
		if _, err := install.Run(c, monitoring.Actions(), install.RunOptions{From: "thanos"}); err != nil {
			t.Errorf("restore: %v", err)
		}
	}()
	res, err := install.Run(c, monitoring.Actions(), install.RunOptions{From: "thanos"})
	if err != nil {
		t.Fatal(err)
	}
	if th := res[2].Counts; th.Changed != 1 || th.Created != 0 || th.Touched[0] != "ConfigMap/monitoring/"+monitoring.QueryEndpointsConfigMap {
		t.Errorf("after an address change, thanos did %s %v; want only the endpoints ConfigMap changed", th, th.Touched)
	}
	cm, err = c.Hub.Kube.CoreV1().ConfigMaps(monitoring.Namespace).Get(ctx, monitoring.QueryEndpointsConfigMap, metav1.GetOptions{})
	if err != nil {
		t.Fatal(err)
	}
	if !strings.Contains(cm.Data[monitoring.QueryEndpointsFile], `"sidecar-moved.example.com:10901"`) {
		t.Errorf("the endpoints file did not follow the address change:\n%s", cm.Data[monitoring.QueryEndpointsFile])
	}

	// objstore.yml holds the generated credentials, the ones MinIO uses.
	creds, err := c.Hub.Kube.CoreV1().Secrets(monitoring.Namespace).Get(ctx, monitoring.ObjstoreCredentialsSecret, metav1.GetOptions{})
	if err != nil {
		t.Fatal(err)
	}
	obj, err := c.Hub.Kube.CoreV1().Secrets(monitoring.Namespace).Get(ctx, monitoring.ObjstoreSecret, metav1.GetOptions{})
	if err != nil {
		t.Fatal(err)
	}
	var cfg struct {
		Config struct {
			AccessKey string `json:"access_key"`
			SecretKey string `json:"secret_key"`
		} `json:"config"`
	}
	if err := yaml.Unmarshal(obj.Data[monitoring.ObjstoreFile], &cfg); err != nil {
		t.Fatal(err)
	}
	if cfg.Config.AccessKey != string(creds.Data[monitoring.ObjstoreAccessKey]) || cfg.Config.SecretKey != string(creds.Data[monitoring.ObjstoreSecretKey]) {
		t.Error("objstore.yml's credentials are not the generated ones")
	}
}
