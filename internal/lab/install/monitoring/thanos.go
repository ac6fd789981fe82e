package monitoring

import (
	"context"
	"crypto/rand"
	"encoding/hex"
	"errors"
	"fmt"
	"net"
	"strconv"
	"strings"
	"time"

	appsv1 "k8s.io/api/apps/v1"
	batchv1 "k8s.io/api/batch/v1"
	corev1 "k8s.io/api/core/v1"
	apierrors "k8s.io/apimachinery/pkg/api/errors"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/apis/meta/v1/unstructured"
	"k8s.io/apimachinery/pkg/runtime"
	"k8s.io/apimachinery/pkg/util/intstr"
	"k8s.io/apimachinery/pkg/util/wait"
	"k8s.io/utils/ptr"
	"sigs.k8s.io/yaml"

	"lockstep.dev/lockstep/internal/lab/install"
)

// Where the Thanos pods mount what they read.
const (
	objstoreDir  = "/etc/thanos/objstore"
	endpointsDir = "/etc/thanos/endpoints"
	rulesDir     = "/etc/thanos/rules"
	rulesFile    = "metamonitoring.yaml"
	// endpointsReload is how often Query re-reads its endpoint file. A
	// ConfigMap change reaches the mounted file within the kubelet's sync
	// period (about a minute), so an address change is picked up in about
	// a minute and a half, with no restart.
	endpointsReload = "30s"
	// ruleReplicaLabel tells the Ruler's series and blocks from the
	// sidecars'; Query deduplicates on it as on ReplicaLabel.
	ruleReplicaLabel = "rule_replica"
	// templateHashAnnotation carries a digest of the files a pod reads
	// only at start, so it restarts when they change.
	templateHashAnnotation = "lockstep.dev/config-hash"
)

// genObjstoreCredentials makes the object-storage credentials: user
// ObjstoreUser and a random 32-byte hex secret key. It runs once; every
// later run reads them back from the Secret.
func genObjstoreCredentials() (map[string][]byte, error) {
	b := make([]byte, 32)
	if _, err := rand.Read(b); err != nil {
		return nil, err
	}
	return map[string][]byte{
		ObjstoreAccessKey: []byte(ObjstoreUser),
		ObjstoreSecretKey: []byte(hex.EncodeToString(b)),
	}, nil
}

// s3Config is the part of Thanos' S3 objstore configuration the lab sets
// (github.com/thanos-io/objstore/providers/s3.Config).
type s3Config struct {
	Bucket    string `json:"bucket"`
	Endpoint  string `json:"endpoint"`
	AccessKey string `json:"access_key"`
	SecretKey string `json:"secret_key"`
	Insecure  bool   `json:"insecure"`
}

type objstoreConfig struct {
	Type   string   `json:"type"`
	Config s3Config `json:"config"`
}

// objstoreYAML derives Thanos' objstore.yml from the credentials Secret's
// data, the same data MinIO's root user comes from.
func objstoreYAML(creds map[string][]byte) ([]byte, error) {
	ak, sk := string(creds[ObjstoreAccessKey]), string(creds[ObjstoreSecretKey])
	if ak == "" || sk == "" {
		return nil, fmt.Errorf("secret %s/%s lacks %s or %s: delete it to generate new credentials", Namespace, ObjstoreCredentialsSecret, ObjstoreAccessKey, ObjstoreSecretKey)
	}
	return yaml.Marshal(objstoreConfig{Type: "S3", Config: s3Config{
		Bucket:    Bucket,
		Endpoint:  net.JoinHostPort(MinIOService+"."+Namespace+".svc", strconv.Itoa(MinIOPort)),
		AccessKey: ak,
		SecretKey: sk,
		Insecure:  true,
	}})
}

func secretEnv(name, secret, key string) corev1.EnvVar {
	return corev1.EnvVar{Name: name, ValueFrom: &corev1.EnvVarSource{SecretKeyRef: &corev1.SecretKeySelector{
		LocalObjectReference: corev1.LocalObjectReference{Name: secret}, Key: key,
	}}}
}

func emptyDir(name string) corev1.Volume {
	return corev1.Volume{Name: name, VolumeSource: corev1.VolumeSource{EmptyDir: &corev1.EmptyDirVolumeSource{}}}
}

func deployment(name string, strategy appsv1.DeploymentStrategyType, annotations map[string]string, spec corev1.PodSpec) *appsv1.Deployment {
	return &appsv1.Deployment{
		ObjectMeta: metav1.ObjectMeta{Name: name, Namespace: Namespace, Labels: labels(name)},
		Spec: appsv1.DeploymentSpec{
			Replicas: ptr.To[int32](1),
			Selector: &metav1.LabelSelector{MatchLabels: selector(name)},
			Strategy: appsv1.DeploymentStrategy{Type: strategy},
			Template: corev1.PodTemplateSpec{
				ObjectMeta: metav1.ObjectMeta{Labels: labels(name), Annotations: annotations},
				Spec:       spec,
			},
		},
	}
}

func service(name string, ports ...corev1.ServicePort) *corev1.Service {
	return &corev1.Service{
		ObjectMeta: metav1.ObjectMeta{Name: name, Namespace: Namespace, Labels: labels(name)},
		Spec:       corev1.ServiceSpec{Type: corev1.ServiceTypeClusterIP, Selector: selector(name), Ports: ports},
	}
}

func servicePort(name string, port int32, target string) corev1.ServicePort {
	return corev1.ServicePort{Name: name, Protocol: corev1.ProtocolTCP, Port: port, TargetPort: intstr.FromString(target)}
}

func containerPort(name string, port int32) corev1.ContainerPort {
	return corev1.ContainerPort{Name: name, ContainerPort: port, Protocol: corev1.ProtocolTCP}
}

func httpProbe(path, port string) *corev1.Probe {
	return &corev1.Probe{ProbeHandler: corev1.ProbeHandler{HTTPGet: &corev1.HTTPGetAction{Path: path, Port: intstr.FromString(port)}},
		PeriodSeconds: 10, TimeoutSeconds: 5, FailureThreshold: 6}
}

// minioObjects are MinIO (one replica, emptyDir: deleting the pod loses
// the bucket and its blocks; rerun after `kubectl -n monitoring delete job
// minio-create-bucket` to recreate the bucket) and its Service. The root
// user is the credentials Secret's, read by reference: nothing here holds
// a credential, and the pod restarts when the credentials change.
func minioObjects(s install.Settings, objstore []byte) []runtime.Object {
	d := deployment(MinIOService, appsv1.RecreateDeploymentStrategyType, map[string]string{templateHashAnnotation: hash(objstore)}, corev1.PodSpec{
		Containers: []corev1.Container{{
			Name:  "minio",
			Image: s.MinIOImage,
			Args:  []string{"server", "/data", "--address=:" + strconv.Itoa(MinIOPort), "--console-address=:" + strconv.Itoa(MinIOConsolePort)},
			Env: []corev1.EnvVar{
				secretEnv("MINIO_ROOT_USER", ObjstoreCredentialsSecret, ObjstoreAccessKey),
				secretEnv("MINIO_ROOT_PASSWORD", ObjstoreCredentialsSecret, ObjstoreSecretKey),
			},
			Ports:          []corev1.ContainerPort{containerPort("s3", MinIOPort), containerPort("console", MinIOConsolePort)},
			ReadinessProbe: httpProbe("/minio/health/ready", "s3"),
			LivenessProbe:  httpProbe("/minio/health/live", "s3"),
			VolumeMounts:   []corev1.VolumeMount{{Name: "data", MountPath: "/data"}},
		}},
		Volumes: []corev1.Volume{emptyDir("data")},
	})
	return []runtime.Object{d, service(MinIOService, servicePort("s3", MinIOPort, "s3"), servicePort("console", MinIOConsolePort, "console"))}
}

// bucketJob creates the bucket with the MinIO image's mc. A Job's pod
// template is immutable, so it is a constant of the settings: the
// credentials come by reference (mc reads its alias from MC_HOST_<alias>,
// which Kubernetes expands from the two variables before it), no hash, no
// TTL (a Job deleted after it finished would be created again by every
// rerun). It retries with backoff until MinIO answers.
func bucketJob(s install.Settings) *batchv1.Job {
	return &batchv1.Job{
		ObjectMeta: metav1.ObjectMeta{Name: BucketJob, Namespace: Namespace, Labels: labels(BucketJob)},
		Spec: batchv1.JobSpec{
			BackoffLimit: ptr.To[int32](10),
			Template: corev1.PodTemplateSpec{
				ObjectMeta: metav1.ObjectMeta{Labels: labels(BucketJob)},
				Spec: corev1.PodSpec{
					RestartPolicy: corev1.RestartPolicyNever,
					Containers: []corev1.Container{{
						Name:    "mc",
						Image:   s.MinIOImage,
						Command: []string{"mc", "mb", "--ignore-existing", "lab/" + Bucket},
						Env: []corev1.EnvVar{
							{Name: "HOME", Value: "/tmp"},
							secretEnv("ACCESS_KEY", ObjstoreCredentialsSecret, ObjstoreAccessKey),
							secretEnv("SECRET_KEY", ObjstoreCredentialsSecret, ObjstoreSecretKey),
							{Name: "MC_HOST_lab", Value: "http://$(ACCESS_KEY):$(SECRET_KEY)@" + MinIOService + "." + Namespace + ".svc:" + strconv.Itoa(MinIOPort)},
						},
						VolumeMounts: []corev1.VolumeMount{{Name: "tmp", MountPath: "/tmp"}},
					}},
					Volumes: []corev1.Volume{emptyDir("tmp")},
				},
			},
		},
	}
}

func objstoreSecret(objstore []byte) *corev1.Secret {
	return &corev1.Secret{
		ObjectMeta: metav1.ObjectMeta{Name: ObjstoreSecret, Namespace: Namespace, Labels: labels("thanos")},
		Type:       corev1.SecretTypeOpaque,
		Data:       map[string][]byte{ObjstoreFile: objstore},
	}
}

// endpoint is one entry of Query's endpoint SD file
// (cmd/thanos/endpointset.go, endpointSettings).
type endpoint struct {
	Address string `json:"address"`
	Strict  bool   `json:"strict"`
}

// endpointConfig is Query's --endpoint.sd-config-file.
type endpointConfig struct {
	Endpoints []endpoint `json:"endpoints"`
}

// sidecar is one workload's discovered sidecar address.
type sidecar struct {
	// Cluster is the workload's name (argo-rollout1).
	Cluster string
	// Address is host:port, host being the LoadBalancer's IP or hostname.
	Address string
}

// sidecarAddress returns the address of a sidecar Service from its first
// LoadBalancer ingress (IP, else hostname), or false when it has none yet.
func sidecarAddress(svc *corev1.Service) (string, bool) {
	if len(svc.Status.LoadBalancer.Ingress) == 0 {
		return "", false
	}
	in := svc.Status.LoadBalancer.Ingress[0]
	host := in.IP
	if host == "" {
		host = in.Hostname
	}
	if host == "" {
		return "", false
	}
	port := int32(SidecarGRPCPort)
	for _, p := range svc.Spec.Ports {
		if p.Name == "grpc" {
			port = p.Port
		}
	}
	return net.JoinHostPort(host, strconv.Itoa(int(port))), true
}

// endpointsFile is Query's endpoint file: the hub's Store Gateway and
// Ruler, then each workload's sidecar, in the fleet's order.
func endpointsFile(sidecars []sidecar) []byte {
	var b strings.Builder
	b.WriteString("# Written by lockstep lab up from the sidecars' LoadBalancer addresses;\n")
	b.WriteString("# Thanos Query re-reads it every " + endpointsReload + ".\n")
	b.WriteString("endpoints:\n")
	// strict: a store that is down stays in Query's set, so queries
	// without partial responses fail instead of silently leaving a cluster
	// out (Thanos v0.42: cmd/thanos/endpointset.go, endpointSettings.Strict).
	b.WriteString("# strict: a store that is down makes queries fail, never quietly smaller.\n")
	fmt.Fprintf(&b, "- address: %s.%s.svc:%d\n  strict: true\n", StoreService, Namespace, ThanosGRPCPort)
	fmt.Fprintf(&b, "- address: %s.%s.svc:%d\n  strict: true\n", RulerService, Namespace, ThanosGRPCPort)
	for _, s := range sidecars {
		fmt.Fprintf(&b, "# %s: %s/%s\n", s.Cluster, Namespace, SidecarService)
		fmt.Fprintf(&b, "- address: %q\n  strict: true\n", s.Address)
	}
	return []byte(b.String())
}

// ruleGroups is a Prometheus rule file.
type ruleGroups struct {
	Groups []ruleGroup `json:"groups"`
}

type ruleGroup struct {
	Name  string `json:"name"`
	Rules []rule `json:"rules"`
}

type rule struct {
	Alert       string            `json:"alert"`
	Expr        string            `json:"expr"`
	Labels      map[string]string `json:"labels,omitempty"`
	Annotations map[string]string `json:"annotations,omitempty"`
}

// PrometheusDownExpr is the guide's meta-monitoring alert: no workload
// Prometheus reports `up` at all.
const PrometheusDownExpr = `absent(up{prometheus="` + Namespace + `/` + PrometheusName + `"})`

// rulesYAML is the Ruler's rule file, the guide's metamonitoring group.
func rulesYAML() ([]byte, error) {
	return yaml.Marshal(ruleGroups{Groups: []ruleGroup{{
		Name: "metamonitoring",
		Rules: []rule{{
			Alert:       "PrometheusDown",
			Expr:        PrometheusDownExpr,
			Annotations: map[string]string{"summary": "No workload Prometheus is sending metrics to Thanos."},
		}},
	}}})
}

func thanosContainer(s install.Settings, args []string, grpc bool, mounts ...corev1.VolumeMount) corev1.Container {
	ports := []corev1.ContainerPort{containerPort("http", ThanosHTTPPort)}
	if grpc {
		ports = append(ports, containerPort("grpc", ThanosGRPCPort))
	}
	return corev1.Container{
		Name:           "thanos",
		Image:          s.ThanosImage,
		Args:           args,
		Ports:          ports,
		ReadinessProbe: httpProbe("/-/ready", "http"),
		LivenessProbe:  httpProbe("/-/healthy", "http"),
		VolumeMounts:   mounts,
	}
}

var (
	httpAddress = "--http-address=0.0.0.0:" + strconv.Itoa(ThanosHTTPPort)
	grpcAddress = "--grpc-address=0.0.0.0:" + strconv.Itoa(ThanosGRPCPort)
	objstoreArg = "--objstore.config-file=" + objstoreDir + "/" + ObjstoreFile
)

func objstoreVolume() corev1.Volume {
	return corev1.Volume{Name: "objstore", VolumeSource: corev1.VolumeSource{Secret: &corev1.SecretVolumeSource{SecretName: ObjstoreSecret}}}
}

var objstoreMount = corev1.VolumeMount{Name: "objstore", MountPath: objstoreDir, ReadOnly: true}

// queryArgs, storeArgs, compactorArgs and rulerArgs are the pinned
// arguments of the Thanos v0.42.4 components (checked against its
// cmd/thanos flags).
var (
	queryArgs = []string{"query", "--log.level=info", httpAddress, grpcAddress,
		"--endpoint.sd-config-file=" + endpointsDir + "/" + QueryEndpointsFile,
		"--endpoint.sd-config-reload-interval=" + endpointsReload,
		"--query.replica-label=" + ReplicaLabel,
		"--query.replica-label=" + ruleReplicaLabel,
		// A missing cluster must fail a query, not become a warning
		// that an analysis reads as a pass.
		"--no-query.partial-response",
	}
	storeArgs = []string{"store", "--log.level=info", httpAddress, grpcAddress,
		"--data-dir=/var/thanos/store", objstoreArg}
	compactorArgs = []string{"compact", "--log.level=info", httpAddress,
		"--data-dir=/var/thanos/compact", objstoreArg, "--wait"}
	rulerArgs = []string{"rule", "--log.level=info", httpAddress, grpcAddress,
		"--data-dir=/var/thanos/rule",
		"--rule-file=" + rulesDir + "/*.yaml",
		"--query=" + strings.TrimPrefix(QueryURL, "http://"),
		objstoreArg,
		"--label=" + ruleReplicaLabel + `="thanos-ruler"`,
	}
)

// thanosObjects are Query, Store Gateway, Compactor and Ruler with their
// Services and the Query endpoints and Ruler rules ConfigMaps. The data
// directories are emptyDirs: the Store Gateway's and Compactor's are
// caches of the bucket; the Ruler's holds up to two hours of its own
// samples before they are uploaded, lost if its pod is deleted.
func thanosObjects(s install.Settings, objstore []byte, sidecars []sidecar) ([]runtime.Object, error) {
	rules, err := rulesYAML()
	if err != nil {
		return nil, err
	}
	objHash := map[string]string{templateHashAnnotation: hash(objstore)}
	query := deployment(QueryService, appsv1.RollingUpdateDeploymentStrategyType, nil, corev1.PodSpec{
		Containers: []corev1.Container{thanosContainer(s, queryArgs, true,
			corev1.VolumeMount{Name: "endpoints", MountPath: endpointsDir, ReadOnly: true})},
		Volumes: []corev1.Volume{{Name: "endpoints", VolumeSource: corev1.VolumeSource{ConfigMap: &corev1.ConfigMapVolumeSource{
			LocalObjectReference: corev1.LocalObjectReference{Name: QueryEndpointsConfigMap}}}}},
	})
	store := deployment(StoreService, appsv1.RollingUpdateDeploymentStrategyType, objHash, corev1.PodSpec{
		Containers: []corev1.Container{thanosContainer(s, storeArgs, true, objstoreMount,
			corev1.VolumeMount{Name: "data", MountPath: "/var/thanos/store"})},
		Volumes: []corev1.Volume{objstoreVolume(), emptyDir("data")},
	})
	// Only one compactor may work on a bucket at a time.
	compactor := deployment(CompactorService, appsv1.RecreateDeploymentStrategyType, objHash, corev1.PodSpec{
		Containers: []corev1.Container{thanosContainer(s, compactorArgs, false, objstoreMount,
			corev1.VolumeMount{Name: "data", MountPath: "/var/thanos/compact"})},
		Volumes: []corev1.Volume{objstoreVolume(), emptyDir("data")},
	})
	// The Ruler reads its rule files only at start: their hash restarts it.
	ruler := deployment(RulerService, appsv1.RecreateDeploymentStrategyType, map[string]string{templateHashAnnotation: hash(objstore, rules)}, corev1.PodSpec{
		Containers: []corev1.Container{thanosContainer(s, rulerArgs, true, objstoreMount,
			corev1.VolumeMount{Name: "rules", MountPath: rulesDir, ReadOnly: true},
			corev1.VolumeMount{Name: "data", MountPath: "/var/thanos/rule"})},
		Volumes: []corev1.Volume{objstoreVolume(), emptyDir("data"),
			{Name: "rules", VolumeSource: corev1.VolumeSource{ConfigMap: &corev1.ConfigMapVolumeSource{
				LocalObjectReference: corev1.LocalObjectReference{Name: RulesConfigMap}}}}},
	})
	http := func(port int32) corev1.ServicePort { return servicePort("http", port, "http") }
	grpc := servicePort("grpc", ThanosGRPCPort, "grpc")
	return []runtime.Object{
		&corev1.ConfigMap{ObjectMeta: metav1.ObjectMeta{Name: QueryEndpointsConfigMap, Namespace: Namespace, Labels: labels(QueryService)},
			Data: map[string]string{QueryEndpointsFile: string(endpointsFile(sidecars))}},
		&corev1.ConfigMap{ObjectMeta: metav1.ObjectMeta{Name: RulesConfigMap, Namespace: Namespace, Labels: labels(RulerService)},
			Data: map[string]string{rulesFile: string(rules)}},
		query, service(QueryService, http(QueryHTTPPort), grpc),
		store, service(StoreService, http(ThanosHTTPPort), grpc),
		compactor, service(CompactorService, http(ThanosHTTPPort)),
		ruler, service(RulerService, http(ThanosHTTPPort), grpc),
	}, nil
}

// discoverSidecars waits for every workload's sidecar Service to have a
// LoadBalancer address. A dry run does not wait: it uses what is there.
func discoverSidecars(c *install.Context) ([]sidecar, error) {
	var out []sidecar
	for _, cl := range c.Workloads {
		addr, err := waitSidecar(c, cl.Kube.CoreV1().Services(Namespace), 2*time.Second, c.Settings.Timeout, c.DryRun)
		if err != nil {
			return nil, fmt.Errorf("%s: %w", cl.Name, err)
		}
		if addr == "" {
			c.Logf("%s: %s has no LoadBalancer address yet (dry run)", cl.Name, SidecarService)
			continue
		}
		c.Logf("%s: Thanos sidecar at %s", cl.Name, addr)
		out = append(out, sidecar{Cluster: cl.Name, Address: addr})
	}
	return out, nil
}

type serviceGetter interface {
	Get(ctx context.Context, name string, opts metav1.GetOptions) (*corev1.Service, error)
}

// waitSidecar polls the sidecar Service until it has a LoadBalancer
// address (or only once), and says what was missing when it gives up.
func waitSidecar(ctx context.Context, sc serviceGetter, interval, timeout time.Duration, once bool) (string, error) {
	var addr, last string
	poll := func(ctx context.Context) (bool, error) {
		svc, err := sc.Get(ctx, SidecarService, metav1.GetOptions{})
		switch {
		case apierrors.IsNotFound(err):
			last = "the Service does not exist (run the prometheus action)"
			return false, nil
		case err != nil:
			last = err.Error()
			return false, nil
		}
		var ok bool
		addr, ok = sidecarAddress(svc)
		last = "no LoadBalancer ingress yet (on kind, run cloud-provider-kind)"
		return ok, nil
	}
	if once {
		_, err := poll(ctx)
		return addr, err
	}
	if err := wait.PollUntilContextTimeout(ctx, interval, timeout, true, poll); err != nil {
		if errors.Is(err, context.Canceled) {
			return "", err
		}
		return "", fmt.Errorf("service %s/%s: no address after %s: %s", Namespace, SidecarService, timeout, last)
	}
	return addr, nil
}

func installThanos(c *install.Context) error {
	hub := c.Hub
	creds, err := c.EnsureSecret(hub, Namespace, ObjstoreCredentialsSecret, labels("minio"), genObjstoreCredentials)
	if err != nil {
		return err
	}
	objstore, err := objstoreYAML(creds)
	if err != nil {
		return err
	}
	sidecars, err := discoverSidecars(c)
	if err != nil {
		return err
	}
	thanos, err := thanosObjects(c.Settings, objstore, sidecars)
	if err != nil {
		return err
	}
	typedObjs := append(minioObjects(c.Settings, objstore), bucketJob(c.Settings), objstoreSecret(objstore))
	objs, err := toUnstructured(append(typedObjs, thanos...)...)
	if err != nil {
		return err
	}
	if err := c.Apply(hub, append([]*unstructured.Unstructured{namespace()}, objs...)...); err != nil {
		return fmt.Errorf("thanos: %w", err)
	}
	return c.WaitDeployments(hub, Namespace, MinIOService, QueryService, StoreService, CompactorService, RulerService)
}
