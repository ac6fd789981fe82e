package monitoring

import (
	"context"
	"crypto/md5"
	"encoding/hex"
	"encoding/json"
	"errors"
	"lockstep.dev/lockstep/internal/analysis"
	"os"
	"os/exec"
	"path"
	"regexp"
	"slices"
	"strings"
	"testing"
	"time"

	appsv1 "k8s.io/api/apps/v1"
	corev1 "k8s.io/api/core/v1"
	apierrors "k8s.io/apimachinery/pkg/api/errors"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/apis/meta/v1/unstructured"
	klabels "k8s.io/apimachinery/pkg/labels"
	"k8s.io/apimachinery/pkg/runtime"
	"k8s.io/apimachinery/pkg/runtime/schema"
	"sigs.k8s.io/yaml"

	"lockstep.dev/lockstep/gitops"
	"lockstep.dev/lockstep/internal/kube"
	"lockstep.dev/lockstep/internal/lab/install"
	"lockstep.dev/lockstep/internal/lab/sources"
)

// offlineResolver reads the pinned sources from disk only: a unit test
// never downloads. A test that needs a source not on disk skips, and says
// how to get it.
func offlineResolver(t *testing.T) *sources.Resolver {
	t.Helper()
	r := sources.DefaultResolver()
	r.Offline, r.Out = true, nil
	return r
}

func readSource(t *testing.T, s sources.Source, rel string) []byte {
	t.Helper()
	b, err := offlineResolver(t).ReadFile(context.Background(), s, rel)
	if errors.Is(err, sources.ErrOffline) {
		t.Skipf("%s is not on disk: run `go mod download %s`", s, s)
	}
	if err != nil {
		t.Fatal(err)
	}
	return b
}

// clusterScoped are the cluster-scoped kinds of bundle.yaml; the live
// test uses the API server's REST mapping instead.
func clusterScoped(o *unstructured.Unstructured) bool {
	switch o.GetKind() {
	case "CustomResourceDefinition", "ClusterRole", "ClusterRoleBinding", "Namespace":
		return false
	}
	return true
}

func TestOperatorBundleMovedToMonitoring(t *testing.T) {
	t.Parallel()
	bundle, err := kube.DecodeYAML(readSource(t, sources.PrometheusOperator, BundleFile))
	if err != nil {
		t.Fatal(err)
	}
	var inDefault int
	for _, o := range bundle {
		if o.GetNamespace() == "default" {
			inDefault++
		}
	}
	if inDefault == 0 {
		t.Fatalf("bundle.yaml has no object in default: the upstream changed, recheck the move")
	}
	objs := operatorObjects(bundle, clusterScoped)
	if objs[0].GetKind() != "Namespace" || objs[0].GetName() != Namespace {
		t.Errorf("first object is %s %s, want Namespace %s", objs[0].GetKind(), objs[0].GetName(), Namespace)
	}
	var deployment, binding bool
	for _, o := range objs {
		if clusterScoped(o) && o.GetNamespace() != Namespace {
			t.Errorf("%s %s is in namespace %q, want %q", o.GetKind(), o.GetName(), o.GetNamespace(), Namespace)
		}
		if !clusterScoped(o) && o.GetNamespace() != "" {
			t.Errorf("cluster-scoped %s %s has namespace %q", o.GetKind(), o.GetName(), o.GetNamespace())
		}
		if o.GetKind() == "Deployment" && o.GetName() == OperatorDeployment {
			deployment = true
		}
		if o.GetKind() == "ClusterRoleBinding" {
			binding = true
			subs, _, _ := unstructured.NestedSlice(o.Object, "subjects")
			for _, s := range subs {
				if ns := s.(map[string]any)["namespace"]; ns != Namespace {
					t.Errorf("ClusterRoleBinding %s subject %v: namespace %v, want %s", o.GetName(), s, ns, Namespace)
				}
			}
		}
	}
	if !deployment || !binding {
		t.Errorf("bundle lacks the operator's Deployment (%v) or ClusterRoleBinding (%v)", deployment, binding)
	}
}

// operatorPodLabels are the labels prometheus-operator v0.85.0 puts on the
// pods of Prometheus "prometheus-operator" (makeSelectorLabels plus the
// shard label).
var operatorPodLabels = klabels.Set{
	"app.kubernetes.io/managed-by": "prometheus-operator",
	"app.kubernetes.io/name":       "prometheus",
	"app.kubernetes.io/instance":   "prometheus-operator",
	"operator.prometheus.io/name":  "prometheus-operator",
	"operator.prometheus.io/shard": "0",
	"prometheus":                   "prometheus-operator",
}

func TestPrometheusPerCluster(t *testing.T) {
	t.Parallel()
	mons, err := monitors()
	if err != nil {
		t.Fatal(err)
	}
	s := install.DefaultSettings()
	s.ThanosImage = "example.com/thanos:test"
	for _, i := range []int{1, 2} {
		objs, err := prometheusObjects(i, s, mons, nil)
		if err != nil {
			t.Fatal(err)
		}
		prom := find(t, objs, "Prometheus", PrometheusName)
		if prom.GetNamespace() != Namespace {
			t.Errorf("Prometheus in %q, want %q (the PrometheusDown rule matches monitoring/prometheus-operator)", prom.GetNamespace(), Namespace)
		}
		want := "data-producer-" + string(rune('0'+i))
		if got, _, _ := unstructured.NestedString(prom.Object, "spec", "externalLabels", "cluster"); got != want {
			t.Errorf("cluster %d: externalLabels.cluster = %q, want %q", i, got, want)
		}
		if got, _, _ := unstructured.NestedString(prom.Object, "spec", "thanos", "image"); got != s.ThanosImage {
			t.Errorf("cluster %d: thanos sidecar image %q, want %q", i, got, s.ThanosImage)
		}
		if got, _, _ := unstructured.NestedString(prom.Object, "spec", "serviceAccountName"); got != PrometheusServiceAccount {
			t.Errorf("serviceAccountName %q", got)
		}
		// Every lab monitor is selected, and from any namespace.
		for _, m := range mons {
			field := map[string]string{"PodMonitor": "podMonitor", "ServiceMonitor": "serviceMonitor"}[m.GetKind()]
			raw, ok, _ := unstructured.NestedMap(prom.Object, "spec", field+"Selector")
			if !ok {
				t.Fatalf("no %sSelector", field)
			}
			var ls metav1.LabelSelector
			if err := runtime.DefaultUnstructuredConverter.FromUnstructured(raw, &ls); err != nil {
				t.Fatal(err)
			}
			sel, err := metav1.LabelSelectorAsSelector(&ls)
			if err != nil {
				t.Fatal(err)
			}
			if !sel.Matches(klabels.Set(m.GetLabels())) {
				t.Errorf("%sSelector %s does not select %s %s (labels %v)", field, sel, m.GetKind(), m.GetName(), m.GetLabels())
			}
			if ns, ok, _ := unstructured.NestedMap(prom.Object, "spec", field+"NamespaceSelector"); !ok || len(ns) != 0 {
				t.Errorf("%sNamespaceSelector = %v, want {}", field, ns)
			}
			find(t, objs, m.GetKind(), m.GetName())
		}
		svc := &corev1.Service{}
		if err := runtime.DefaultUnstructuredConverter.FromUnstructured(find(t, objs, "Service", SidecarService).Object, svc); err != nil {
			t.Fatal(err)
		}
		if svc.Spec.Type != corev1.ServiceTypeLoadBalancer || len(svc.Spec.Ports) != 1 || svc.Spec.Ports[0].Port != 10901 || svc.Spec.Ports[0].Name != "grpc" {
			t.Errorf("sidecar Service spec %+v", svc.Spec)
		}
		if !klabels.SelectorFromSet(svc.Spec.Selector).Matches(operatorPodLabels) {
			t.Errorf("sidecar Service selector %v does not select the operator's Prometheus pods", svc.Spec.Selector)
		}
		crb := find(t, objs, "ClusterRoleBinding", prometheusRBAC)
		subs, _, _ := unstructured.NestedSlice(crb.Object, "subjects")
		if len(subs) != 1 || subs[0].(map[string]any)["namespace"] != Namespace || subs[0].(map[string]any)["name"] != PrometheusServiceAccount {
			t.Errorf("ClusterRoleBinding subjects %v", subs)
		}
	}
}

func TestMonitorSelectorNeedsLabel(t *testing.T) {
	t.Parallel()
	m := &unstructured.Unstructured{}
	m.SetKind("PodMonitor")
	m.SetName("unlabelled")
	if _, err := monitorSelector([]*unstructured.Unstructured{m}, "PodMonitor"); err == nil {
		t.Error("a monitor without the monitoring label was accepted")
	}
	if _, err := monitorSelector(nil, "ServiceMonitor"); err == nil {
		t.Error("no ServiceMonitor at all was accepted")
	}
}

// env resolves a container's environment against Secrets, as the kubelet
// would, including $(VAR) references to earlier variables.
func env(t *testing.T, c corev1.Container, secrets map[string]map[string][]byte) map[string]string {
	t.Helper()
	out := map[string]string{}
	ref := regexp.MustCompile(`\$\(([A-Za-z_][A-Za-z0-9_]*)\)`)
	for _, e := range c.Env {
		switch {
		case e.ValueFrom != nil && e.ValueFrom.SecretKeyRef != nil:
			r := e.ValueFrom.SecretKeyRef
			v, ok := secrets[r.Name][r.Key]
			if !ok {
				t.Fatalf("%s: secret %s has no key %s", e.Name, r.Name, r.Key)
			}
			out[e.Name] = string(v)
		case e.ValueFrom != nil:
			t.Fatalf("%s: unexpected valueFrom", e.Name)
		default:
			out[e.Name] = ref.ReplaceAllStringFunc(e.Value, func(s string) string { return out[ref.FindStringSubmatch(s)[1]] })
		}
	}
	return out
}

func TestObjstoreCredentialsAreMinIOs(t *testing.T) {
	t.Parallel()
	creds, err := genObjstoreCredentials()
	if err != nil {
		t.Fatal(err)
	}
	if !regexp.MustCompile(`^[0-9a-f]{64}$`).Match(creds[ObjstoreSecretKey]) || string(creds[ObjstoreAccessKey]) != ObjstoreUser {
		t.Fatalf("generated credentials are not user %q with a 32-byte hex key", ObjstoreUser)
	}
	again, _ := genObjstoreCredentials()
	if string(again[ObjstoreSecretKey]) == string(creds[ObjstoreSecretKey]) {
		t.Fatal("two generations gave the same secret key")
	}
	objstore, err := objstoreYAML(creds)
	if err != nil {
		t.Fatal(err)
	}
	var cfg objstoreConfig
	if err := yaml.UnmarshalStrict(objstore, &cfg); err != nil {
		t.Fatal(err)
	}
	want := objstoreConfig{Type: "S3", Config: s3Config{Bucket: "thanos", Endpoint: "minio.monitoring.svc:9000", AccessKey: cfg.Config.AccessKey, SecretKey: cfg.Config.SecretKey, Insecure: true}}
	if cfg != want {
		t.Errorf("objstore.yml = %+v, want %+v", cfg, want)
	}

	s := install.DefaultSettings()
	secrets := map[string]map[string][]byte{ObjstoreCredentialsSecret: creds}
	objs := minioObjects(s, objstore)
	minio := objs[0].(*appsv1.Deployment)
	menv := env(t, minio.Spec.Template.Spec.Containers[0], secrets)
	if menv["MINIO_ROOT_USER"] != cfg.Config.AccessKey || menv["MINIO_ROOT_PASSWORD"] != cfg.Config.SecretKey {
		t.Errorf("MinIO's root user is not objstore.yml's access and secret key")
	}
	job := bucketJob(s)
	jenv := env(t, job.Spec.Template.Spec.Containers[0], secrets)
	if want := "http://" + cfg.Config.AccessKey + ":" + cfg.Config.SecretKey + "@" + cfg.Config.Endpoint; jenv["MC_HOST_lab"] != want {
		t.Errorf("bucket Job's mc alias does not use objstore.yml's credentials and endpoint")
	}
	if c := job.Spec.Template.Spec.Containers[0].Command; strings.Join(c, " ") != "mc mb --ignore-existing lab/thanos" {
		t.Errorf("bucket Job command %q", c)
	}
	if job.Spec.TTLSecondsAfterFinished != nil {
		t.Error("a TTL would delete the Job and every rerun would create it again")
	}
	if got := objstoreSecret(objstore).Data[ObjstoreFile]; string(got) != string(objstore) {
		t.Error("the thanos-objstore Secret does not hold objstore.yml")
	}

	// No manifest carries a credential except the objstore Secret: they
	// all reference the Secret.
	thanos, err := thanosObjects(s, objstore, nil)
	if err != nil {
		t.Fatal(err)
	}
	all := append(append(objs, job), thanos...)
	for _, o := range all {
		b, _ := json.Marshal(o)
		if strings.Contains(string(b), cfg.Config.SecretKey) {
			t.Errorf("%T %s holds the secret key in clear", o, o.(metav1.Object).GetName())
		}
	}
	// Every Thanos component that reads the bucket mounts the objstore
	// Secret where its flag points.
	for _, o := range thanos {
		d, ok := o.(*appsv1.Deployment)
		if !ok || d.Name == QueryService {
			continue
		}
		c := d.Spec.Template.Spec.Containers[0]
		if !slices.Contains(c.Args, "--objstore.config-file="+objstoreDir+"/"+ObjstoreFile) {
			t.Errorf("%s does not read %s", d.Name, ObjstoreFile)
		}
		var mounted bool
		for _, v := range d.Spec.Template.Spec.Volumes {
			if v.Secret != nil && v.Secret.SecretName == ObjstoreSecret {
				for _, m := range c.VolumeMounts {
					mounted = mounted || (m.Name == v.Name && m.MountPath == objstoreDir)
				}
			}
		}
		if !mounted {
			t.Errorf("%s does not mount secret %s at %s", d.Name, ObjstoreSecret, objstoreDir)
		}
	}
}

func TestObjstoreYAMLRefusesIncompleteCredentials(t *testing.T) {
	t.Parallel()
	if _, err := objstoreYAML(map[string][]byte{ObjstoreAccessKey: []byte("thanos")}); err == nil {
		t.Error("credentials without a secret key were accepted")
	}
}

func TestSidecarAddresses(t *testing.T) {
	t.Parallel()
	lb := func(ing ...corev1.LoadBalancerIngress) *corev1.Service {
		s := sidecarService(nil)
		s.Status.LoadBalancer.Ingress = ing
		return s
	}
	for _, c := range []struct {
		name string
		svc  *corev1.Service
		want string
		ok   bool
	}{
		{"ip", lb(corev1.LoadBalancerIngress{IP: "172.18.255.1"}), "172.18.255.1:10901", true},
		{"hostname", lb(corev1.LoadBalancerIngress{Hostname: "a1b2.elb.eu-west-1.amazonaws.com"}), "a1b2.elb.eu-west-1.amazonaws.com:10901", true},
		{"ipv6", lb(corev1.LoadBalancerIngress{IP: "fd00::1"}), "[fd00::1]:10901", true},
		{"first of two", lb(corev1.LoadBalancerIngress{IP: "10.0.0.1"}, corev1.LoadBalancerIngress{IP: "10.0.0.2"}), "10.0.0.1:10901", true},
		{"none yet", lb(), "", false},
		{"empty ingress", lb(corev1.LoadBalancerIngress{}), "", false},
	} {
		got, ok := sidecarAddress(c.svc)
		if got != c.want || ok != c.ok {
			t.Errorf("%s: got %q, %v; want %q, %v", c.name, got, ok, c.want, c.ok)
		}
	}

	file := endpointsFile([]sidecar{{"argo-rollout1", "172.18.255.1:10901"}, {"argo-rollout2", "a1b2.elb.eu-west-1.amazonaws.com:10901"}})
	var cfg endpointConfig
	if err := yaml.UnmarshalStrict(file, &cfg); err != nil {
		t.Fatalf("%v\n%s", err, file)
	}
	var got []string
	for _, e := range cfg.Endpoints {
		got = append(got, e.Address)
		if !e.Strict {
			t.Errorf("endpoint %s is not strict: Query would drop it when it is down and answer without it", e.Address)
		}
	}
	want := []string{"thanos-storegateway.monitoring.svc:10901", "thanos-ruler.monitoring.svc:10901", "172.18.255.1:10901", "a1b2.elb.eu-west-1.amazonaws.com:10901"}
	if strings.Join(got, ",") != strings.Join(want, ",") {
		t.Errorf("endpoints %v, want %v", got, want)
	}
	// Query reads that file from the ConfigMap, without subPath, so a
	// ConfigMap update reaches it; and re-reads it.
	objs, err := thanosObjects(install.DefaultSettings(), []byte("x"), []sidecar{{"argo-rollout1", "172.18.255.1:10901"}})
	if err != nil {
		t.Fatal(err)
	}
	var query *appsv1.Deployment
	for _, o := range objs {
		switch o := o.(type) {
		case *corev1.ConfigMap:
			if o.Name == QueryEndpointsConfigMap && !strings.Contains(o.Data[QueryEndpointsFile], `"172.18.255.1:10901"`) {
				t.Errorf("endpoints ConfigMap lacks the sidecar: %s", o.Data[QueryEndpointsFile])
			}
		case *appsv1.Deployment:
			if o.Name == QueryService {
				query = o
			}
		}
	}
	c := query.Spec.Template.Spec.Containers[0]
	if !slices.Contains(c.Args, "--endpoint.sd-config-file="+endpointsDir+"/"+QueryEndpointsFile) || !slices.Contains(c.Args, "--endpoint.sd-config-reload-interval="+endpointsReload) {
		t.Errorf("Query args %v do not read and reload the endpoints file", c.Args)
	}
	for _, m := range c.VolumeMounts {
		if m.MountPath == endpointsDir && m.SubPath != "" {
			t.Error("a subPath mount never sees ConfigMap updates")
		}
	}
	if _, ok := query.Spec.Template.Annotations[templateHashAnnotation]; ok {
		t.Error("Query restarts on endpoint changes; it re-reads the file instead")
	}
}

type fakeServices struct {
	calls int
	ready int // the call from which the Service has an address
}

func (f *fakeServices) Get(_ context.Context, name string, _ metav1.GetOptions) (*corev1.Service, error) {
	f.calls++
	if f.calls == 1 {
		return nil, apierrors.NewNotFound(schema.GroupResource{Resource: "services"}, name)
	}
	s := sidecarService(nil)
	if f.ready > 0 && f.calls >= f.ready {
		s.Status.LoadBalancer.Ingress = []corev1.LoadBalancerIngress{{Hostname: "lb.example.com"}}
	}
	return s, nil
}

func TestWaitSidecar(t *testing.T) {
	t.Parallel()
	f := &fakeServices{ready: 3}
	addr, err := waitSidecar(context.Background(), f, 10*time.Millisecond, 30*time.Second, false)
	if err != nil || addr != "lb.example.com:10901" {
		t.Errorf("got %q, %v after %d calls", addr, err, f.calls)
	}
	_, err = waitSidecar(context.Background(), &fakeServices{}, 10*time.Millisecond, 200*time.Millisecond, false)
	if err == nil || !strings.Contains(err.Error(), "no LoadBalancer ingress") {
		t.Errorf("a Service that never gets an address: err %v", err)
	}
	if addr, err := waitSidecar(context.Background(), &fakeServices{}, time.Hour, time.Hour, true); addr != "" || err != nil {
		t.Errorf("once: %q, %v", addr, err)
	}
}

func TestPrometheusDownRule(t *testing.T) {
	t.Parallel()
	b, err := rulesYAML()
	if err != nil {
		t.Fatal(err)
	}
	var g ruleGroups
	if err := yaml.UnmarshalStrict(b, &g); err != nil {
		t.Fatal(err)
	}
	if len(g.Groups) != 1 || g.Groups[0].Name != "metamonitoring" || len(g.Groups[0].Rules) != 1 {
		t.Fatalf("rule groups %+v", g)
	}
	r := g.Groups[0].Rules[0]
	if r.Alert != "PrometheusDown" || r.Expr != `absent(up{prometheus="monitoring/prometheus-operator"})` {
		t.Errorf("rule %+v", r)
	}
	// The Ruler loads the file: its --rule-file glob matches where the
	// ConfigMap puts it, and it queries thanos-query.
	objs, err := thanosObjects(install.DefaultSettings(), []byte("x"), nil)
	if err != nil {
		t.Fatal(err)
	}
	for _, o := range objs {
		d, ok := o.(*appsv1.Deployment)
		if !ok || d.Name != RulerService {
			continue
		}
		args := d.Spec.Template.Spec.Containers[0].Args
		var loaded bool
		for _, a := range args {
			if glob, ok := strings.CutPrefix(a, "--rule-file="); ok {
				loaded, _ = path.Match(glob, rulesDir+"/"+rulesFile)
			}
		}
		if !loaded {
			t.Errorf("ruler args %v do not load %s/%s", args, rulesDir, rulesFile)
		}
		if !slices.Contains(args, "--query=thanos-query.monitoring.svc:9090") {
			t.Errorf("ruler args %v do not query thanos-query", args)
		}
	}
}

// TestThanosArgs checks the pinned arguments against a Thanos binary
// (kingpin rejects an unknown flag before it prints --help). It needs
// `thanos` on PATH or LOCKSTEP_TEST_THANOS.
func TestThanosArgs(t *testing.T) {
	t.Parallel()
	bin := os.Getenv("LOCKSTEP_TEST_THANOS")
	if bin == "" {
		var err error
		if bin, err = exec.LookPath("thanos"); err != nil {
			t.Skip("no thanos binary: set LOCKSTEP_TEST_THANOS to check the arguments")
		}
	}
	for _, args := range [][]string{queryArgs, storeArgs, compactorArgs, rulerArgs} {
		out, err := exec.Command(bin, append(append([]string{}, args...), "--help")...).CombinedOutput()
		if err != nil {
			t.Errorf("thanos %s: %v\n%s", strings.Join(args, " "), err, lastLine(out))
		}
	}
}

func lastLine(b []byte) string {
	lines := strings.Split(strings.TrimSpace(string(b)), "\n")
	return lines[len(lines)-1]
}

func TestGrafanaDatasource(t *testing.T) {
	t.Parallel()
	b, err := datasourcesYAML()
	if err != nil {
		t.Fatal(err)
	}
	var ds grafanaDatasources
	if err := yaml.UnmarshalStrict(b, &ds); err != nil {
		t.Fatal(err)
	}
	if ds.APIVersion != 1 || len(ds.Datasources) != 1 {
		t.Fatalf("datasources %+v", ds)
	}
	d := ds.Datasources[0]
	if d.Type != "prometheus" || d.UID != "thanos" || d.URL != "http://thanos-query.monitoring.svc:9090" || !d.IsDefault || d.Access != "proxy" {
		t.Errorf("datasource %+v", d)
	}
	// The URL is the Query Service's.
	objs, err := thanosObjects(install.DefaultSettings(), []byte("x"), nil)
	if err != nil {
		t.Fatal(err)
	}
	var served bool
	for _, o := range objs {
		if s, ok := o.(*corev1.Service); ok && s.Name == QueryService {
			for _, p := range s.Spec.Ports {
				served = served || (p.Name == "http" && p.Port == 9090)
			}
		}
	}
	if !served {
		t.Error("thanos-query Service does not serve HTTP on 9090")
	}
}

func TestGrafanaAdminFromSecret(t *testing.T) {
	t.Parallel()
	creds, err := genGrafanaAdmin()
	if err != nil {
		t.Fatal(err)
	}
	objs, err := grafanaObjects(install.DefaultSettings(), nil, creds)
	if err != nil {
		t.Fatal(err)
	}
	for _, o := range objs {
		b, _ := json.Marshal(o)
		if strings.Contains(string(b), string(creds[GrafanaPasswordKey])) {
			t.Errorf("%T holds the admin password in clear", o)
		}
		if d, ok := o.(*appsv1.Deployment); ok {
			e := env(t, d.Spec.Template.Spec.Containers[0], map[string]map[string][]byte{GrafanaAdminSecret: creds})
			if e["GF_SECURITY_ADMIN_USER"] != "admin" || e["GF_SECURITY_ADMIN_PASSWORD"] != string(creds[GrafanaPasswordKey]) {
				t.Error("Grafana's admin is not the Secret's")
			}
		}
	}
}

func TestDashboards(t *testing.T) {
	t.Parallel()
	dir := readSourceDir(t)
	istio, err := istioDashboards(context.Background(), dir)
	if err != nil {
		t.Fatal(err)
	}
	var files []string
	for _, d := range istio {
		files = append(files, d.File)
	}
	for _, want := range []string{"istio-mesh-dashboard.gen.json", "istio-service-dashboard.json", "istio-workload-dashboard.json", "pilot-dashboard.gen.json"} {
		if !slices.Contains(files, want) {
			t.Errorf("dashboards %v lack %s", files, want)
		}
	}
	for _, f := range files {
		if strings.HasPrefix(f, "jsonnetfile") {
			t.Errorf("%s is not a dashboard", f)
		}
	}
	all, err := allDashboards(istio)
	if err != nil {
		t.Fatal(err)
	}
	uids := map[string]bool{}
	for _, d := range all {
		var m map[string]any
		if err := json.Unmarshal(d.JSON, &m); err != nil {
			t.Errorf("%s is not valid JSON: %v", d.File, err)
			continue
		}
		if m["uid"] != d.UID || d.UID == "" || len(d.UID) > 40 {
			t.Errorf("%s: uid %v, recorded %q", d.File, m["uid"], d.UID)
		}
		if uids[d.UID] {
			t.Errorf("uid %s used twice", d.UID)
		}
		uids[d.UID] = true
		if _, ok := m["panels"].([]any); !ok {
			t.Errorf("%s has no panels", d.File)
		}
	}
	// Istio links to its service dashboard by the MD5 of its file name.
	if !uids["3ce50c812b834468cea4e52a35e02f35"] {
		t.Error("istio-service-dashboard.json does not have the uid Istio's links use")
	}

	objs, err := grafanaObjects(install.DefaultSettings(), all, map[string][]byte{})
	if err != nil {
		t.Fatal(err)
	}
	paths := map[string]bool{}
	var cms int
	for _, o := range objs {
		switch o := o.(type) {
		case *corev1.ConfigMap:
			var size int
			for k, v := range o.Data {
				size += len(k) + len(v)
			}
			if size >= 1<<20 {
				t.Errorf("ConfigMap %s is %d bytes", o.Name, size)
			}
			if o.Labels["grafana_dashboard"] == "1" {
				cms++
			}
		case *appsv1.Deployment:
			for _, v := range o.Spec.Template.Spec.Volumes {
				if v.Projected == nil {
					continue
				}
				for _, p := range v.Projected.Sources {
					for _, it := range p.ConfigMap.Items {
						if paths[it.Path] {
							t.Errorf("two dashboards at %s", it.Path)
						}
						paths[it.Path] = true
					}
				}
			}
		}
	}
	if cms != len(all) || len(paths) != len(all) {
		t.Errorf("%d dashboards, %d ConfigMaps, %d mounted files", len(all), cms, len(paths))
	}
}

func readSourceDir(t *testing.T) *sources.Resolver {
	t.Helper()
	r := offlineResolver(t)
	if _, err := r.Dir(context.Background(), sources.Istio); errors.Is(err, sources.ErrOffline) {
		t.Skipf("%s is not on disk: run `go mod download %s`", sources.Istio, sources.Istio)
	}
	return r
}

func TestParseDashboard(t *testing.T) {
	t.Parallel()
	d, ok, err := parseDashboard("x-dashboard.json", []byte(`{"title":"x","panels":[],"big":12345678901234567890}`))
	if err != nil || !ok {
		t.Fatal(ok, err)
	}
	if sum := md5.Sum([]byte("x-dashboard.json")); d.UID != hex.EncodeToString(sum[:]) {
		t.Errorf("uid %q is not the MD5 of the file name", d.UID)
	}
	if !strings.Contains(string(d.JSON), "12345678901234567890") {
		t.Errorf("numbers were rounded: %s", d.JSON)
	}
	if _, ok, _ := parseDashboard("jsonnetfile.json", []byte(`{"version":1,"dependencies":[]}`)); ok {
		t.Error("jsonnetfile.json taken for a dashboard")
	}
	if _, _, err := parseDashboard("bad.json", []byte(`{`)); err == nil {
		t.Error("invalid JSON accepted")
	}
}

// TestLockstepDashboardQueries checks the Lockstep dashboard's queries
// read the series and labels of the lab's analyses. (The PromQL parser,
// github.com/prometheus/prometheus/promql/parser, is not a dependency of
// this module, so the syntax check here is only bracket and quote
// balance; adding the module just for a test is not worth its weight.)
func TestLockstepDashboardQueries(t *testing.T) {
	t.Parallel()
	b, err := lockstepDashboardJSON()
	if err != nil {
		t.Fatal(err)
	}
	var d grafanaDashboard
	if err := json.Unmarshal(b, &d); err != nil {
		t.Fatal(err)
	}
	want := map[string]string{
		"Success rate per cluster": `sum by (cluster) (rate(istio_requests_total{reporter="source",destination_service=~"helloworld(-canary)?.helloworld.svc.cluster.local",response_code!~"5.*"}[1m])) / sum by (cluster) (rate(istio_requests_total{reporter="source",destination_service=~"helloworld(-canary)?.helloworld.svc.cluster.local"}[1m]))`,
		"Global success rate":      `sum (rate(istio_requests_total{reporter="source",destination_service=~"helloworld(-canary)?.helloworld.svc.cluster.local",response_code!~"5.*"}[1m])) / sum (rate(istio_requests_total{reporter="source",destination_service=~"helloworld(-canary)?.helloworld.svc.cluster.local"}[1m]))`,
		// The FleetRollout's good/total selectors, verbatim.
		"Canary success rate per cluster": `sum by (cluster) (rate(istio_requests_total{reporter="source",destination_service="helloworld-canary.helloworld.svc.cluster.local",response_code!~"5.*"}[1m])) / sum by (cluster) (rate(istio_requests_total{reporter="source",destination_service="helloworld-canary.helloworld.svc.cluster.local"}[1m]))`,
		"Request rate per version":        `sum by (destination_version) (rate(istio_requests_total{reporter="source",destination_service=~"helloworld(-canary)?.helloworld.svc.cluster.local"}[1m]))`,
		"Request rate per cluster":        `sum by (cluster) (rate(istio_requests_total{reporter="source",destination_service=~"helloworld(-canary)?.helloworld.svc.cluster.local"}[1m]))`,
	}
	seen := map[string]bool{}
	ids := map[int]bool{}
	for _, p := range d.Panels {
		if ids[p.ID] {
			t.Errorf("panel id %d twice", p.ID)
		}
		ids[p.ID] = true
		if p.Datasource.UID != DatasourceUID || len(p.Targets) != 1 || p.Targets[0].Datasource.UID != DatasourceUID {
			t.Errorf("%s does not query the Thanos datasource", p.Title)
		}
		expr := p.Targets[0].Expr
		if err := balanced(expr); err != nil {
			t.Errorf("%s: %v: %s", p.Title, err, expr)
		}
		if w, ok := want[p.Title]; ok {
			seen[p.Title] = true
			if expr != w {
				t.Errorf("%s:\n got %s\nwant %s", p.Title, expr, w)
			}
		}
	}
	for title := range want {
		if !seen[title] {
			t.Errorf("no panel %q", title)
		}
	}
	// The panel reads the series the FleetRollout's judge counts: its
	// default counter, the Rollout's canary Service, 5xx as failure.
	fr, err := gitops.Tree.ReadFile("lockstep/fleetrollout/fleetrollout.yaml")
	if err != nil {
		t.Fatal(err)
	}
	good := `istio_requests_total{reporter="source",destination_service="helloworld-canary.helloworld.svc.cluster.local",response_code!~"5.*"}`
	if !strings.Contains(string(fr), "judge:") || analysis.DefaultJudgeRequests != `istio_requests_total{reporter="source"}` ||
		analysis.DefaultFailureCodes != "5.." || !strings.Contains(successRate(canaryService, ClusterLabel), good) {
		t.Error("the canary panel no longer reads the series the FleetRollout's judge counts")
	}
}

// balanced checks brackets and double quotes of a PromQL expression.
func balanced(expr string) error {
	var stack []rune
	pairs := map[rune]rune{')': '(', '}': '{', ']': '['}
	inString := false
	for _, r := range expr {
		if r == '"' {
			inString = !inString
			continue
		}
		if inString {
			continue
		}
		switch r {
		case '(', '{', '[':
			stack = append(stack, r)
		case ')', '}', ']':
			if len(stack) == 0 || stack[len(stack)-1] != pairs[r] {
				return errors.New("unbalanced " + string(r))
			}
			stack = stack[:len(stack)-1]
		}
	}
	if inString || len(stack) > 0 {
		return errors.New("unclosed bracket or string")
	}
	return nil
}

func TestBuildersAreDeterministic(t *testing.T) {
	t.Parallel()
	build := func() []byte {
		s := install.DefaultSettings()
		creds := map[string][]byte{ObjstoreAccessKey: []byte("thanos"), ObjstoreSecretKey: []byte("k")}
		objstore, err := objstoreYAML(creds)
		if err != nil {
			t.Fatal(err)
		}
		th, err := thanosObjects(s, objstore, []sidecar{{"a", "1.2.3.4:10901"}})
		if err != nil {
			t.Fatal(err)
		}
		gr, err := grafanaObjects(s, nil, map[string][]byte{GrafanaPasswordKey: []byte("p")})
		if err != nil {
			t.Fatal(err)
		}
		all := append(append(append(minioObjects(s, objstore), bucketJob(s), objstoreSecret(objstore)), th...), gr...)
		us, err := toUnstructured(all...)
		if err != nil {
			t.Fatal(err)
		}
		for _, u := range us {
			if _, ok := u.Object["status"]; ok {
				t.Errorf("%s %s carries a status", u.GetKind(), u.GetName())
			}
			if _, ok, _ := unstructured.NestedFieldNoCopy(u.Object, "metadata", "creationTimestamp"); ok {
				t.Errorf("%s %s carries a creationTimestamp", u.GetKind(), u.GetName())
			}
			if u.GetAPIVersion() == "" || u.GetKind() == "" {
				t.Errorf("%s has no apiVersion or kind", u.GetName())
			}
		}
		b, _ := json.Marshal(us)
		return b
	}
	if string(build()) != string(build()) {
		t.Error("two builds differ: a rerun would change objects")
	}
}

func TestActions(t *testing.T) {
	t.Parallel()
	var names []string
	for _, a := range Actions() {
		names = append(names, a.Name())
		if a.Description() == "" {
			t.Errorf("%s has no description", a.Name())
		}
	}
	if got := strings.Join(names, ","); got != "prometheus-operator,prometheus,thanos,grafana" {
		t.Errorf("actions %s", got)
	}
}

func find(t *testing.T, objs []*unstructured.Unstructured, kind, name string) *unstructured.Unstructured {
	t.Helper()
	for _, o := range objs {
		if o.GetKind() == kind && o.GetName() == name {
			return o
		}
	}
	t.Fatalf("no %s %s", kind, name)
	return nil
}

// The provider's LoadBalancer annotations (EKS: an internet-facing NLB)
// reach the sidecar's Service.
func TestSidecarServiceCarriesProviderAnnotations(t *testing.T) {
	t.Parallel()
	ann := map[string]string{"service.beta.kubernetes.io/aws-load-balancer-type": "external"}
	if got := sidecarService(ann).Annotations["service.beta.kubernetes.io/aws-load-balancer-type"]; got != "external" {
		t.Fatalf("sidecar Service annotations %v lack the provider's", sidecarService(ann).Annotations)
	}
	if len(sidecarService(nil).Annotations) != 0 {
		t.Fatal("annotations without a provider asking for them")
	}
}
