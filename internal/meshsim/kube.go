package meshsim

import (
	"cmp"
	"context"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"maps"
	"slices"
	"strings"
	"sync"
	"sync/atomic"

	corev1 "k8s.io/api/core/v1"
	discoveryv1 "k8s.io/api/discovery/v1"
	apierrors "k8s.io/apimachinery/pkg/api/errors"
	"k8s.io/apimachinery/pkg/api/meta"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/apis/meta/v1/unstructured"
	"k8s.io/apimachinery/pkg/labels"
	"k8s.io/apimachinery/pkg/runtime/schema"
	"k8s.io/client-go/dynamic"
	"k8s.io/client-go/dynamic/dynamicinformer"
	"k8s.io/client-go/informers"
	"k8s.io/client-go/kubernetes"
	corelisters "k8s.io/client-go/listers/core/v1"
	discoverylisters "k8s.io/client-go/listers/discovery/v1"
	"k8s.io/client-go/tools/cache"
)

// VirtualServiceGVR is the Istio VirtualService resource meshsim reads.
var VirtualServiceGVR = schema.GroupVersionResource{Group: "networking.istio.io", Version: "v1", Resource: "virtualservices"}

// Defaults of the lab's helloworld scenario.
const (
	DefaultNamespace      = "helloworld"
	DefaultVirtualService = "helloworld-crosscluster-gateways"
	DefaultRoute          = "helloworld"
)

// KubeTopologyConfig configures a KubeTopology.
type KubeTopologyConfig struct {
	// Cluster is the Istio cluster ID of the local cluster.
	Cluster string
	// Namespace holds the pods and EndpointSlices to watch in every
	// cluster; default DefaultNamespace.
	Namespace string
	// VirtualService is the local VirtualService to read weights from, as
	// NAME (in Namespace) or NAMESPACE/NAME; default DefaultVirtualService.
	VirtualService string
	// Route is the name of its HTTP route; default DefaultRoute.
	Route string
	// Local and LocalDynamic reach the local cluster.
	Local        kubernetes.Interface
	LocalDynamic dynamic.Interface
	// Peers reach the other clusters of the mesh, by cluster ID.
	Peers map[string]kubernetes.Interface
	// Logger defaults to slog.Default().
	Logger *slog.Logger
}

// KubeTopology is a Topology fed by informers: pods and EndpointSlices of
// every cluster, and the VirtualService of the local one. Nothing waits
// for a cluster's caches: a peer that cannot be reached simply contributes
// no endpoints, and its errors are logged, so it never holds up the local
// gateway.
type KubeTopology struct {
	cluster   string
	namespace string
	vsKey     string
	route     string
	log       *slog.Logger

	local    *kubeCluster
	clusters []*kubeCluster // local first, then peers by name

	vsFactory  dynamicinformer.DynamicSharedInformerFactory
	vsInformer cache.SharedIndexInformer

	// The local cluster's Istio mesh config (istio-system/istio), for
	// the hosts it keeps cluster-local.
	meshFactory  informers.SharedInformerFactory
	meshInformer cache.SharedIndexInformer
	// mesh is the parsed mesh config, replaced when the ConfigMap changes
	// (Endpoints runs on every request; parsing YAML there would not do).
	mesh atomic.Pointer[MeshConfig]

	started atomic.Bool
	mu      sync.Mutex
	changed chan struct{}
}

type kubeCluster struct {
	name     string
	factory  informers.SharedInformerFactory
	podInf   cache.SharedIndexInformer
	sliceInf cache.SharedIndexInformer
	pods     corelisters.PodLister
	slices   discoverylisters.EndpointSliceLister
}

// NewKubeTopology builds the informers and registers their handlers. It
// does no I/O; Run starts the watches.
func NewKubeTopology(cfg KubeTopologyConfig) (*KubeTopology, error) {
	if cfg.Cluster == "" {
		return nil, errors.New("kube topology: cluster is required")
	}
	if cfg.Local == nil || cfg.LocalDynamic == nil {
		return nil, errors.New("kube topology: local clients are required")
	}
	namespace := cmp.Or(cfg.Namespace, DefaultNamespace)
	vsNamespace, vsName := namespace, cmp.Or(cfg.VirtualService, DefaultVirtualService)
	if ns, name, ok := strings.Cut(vsName, "/"); ok {
		vsNamespace, vsName = ns, name
	}
	if vsNamespace == "" || vsName == "" || strings.Contains(vsName, "/") {
		return nil, fmt.Errorf("kube topology: virtual service %q is not NAME or NAMESPACE/NAME", cfg.VirtualService)
	}
	t := &KubeTopology{
		cluster:   cfg.Cluster,
		namespace: namespace,
		vsKey:     vsNamespace + "/" + vsName,
		route:     cmp.Or(cfg.Route, DefaultRoute),
		log:       cmp.Or(cfg.Logger, slog.Default()),
		changed:   make(chan struct{}),
	}
	local, err := t.newCluster(cfg.Cluster, cfg.Local)
	if err != nil {
		return nil, err
	}
	t.local = local
	t.clusters = append(t.clusters, local)
	for _, name := range slices.Sorted(maps.Keys(cfg.Peers)) {
		if name == "" || name == cfg.Cluster {
			return nil, fmt.Errorf("kube topology: invalid peer cluster name %q", name)
		}
		if cfg.Peers[name] == nil {
			return nil, fmt.Errorf("kube topology: peer %q has no client", name)
		}
		c, err := t.newCluster(name, cfg.Peers[name])
		if err != nil {
			return nil, err
		}
		t.clusters = append(t.clusters, c)
	}

	// Watching only the one VirtualService by name keeps the informer
	// small in a cluster that holds many.
	t.vsFactory = dynamicinformer.NewFilteredDynamicSharedInformerFactory(cfg.LocalDynamic, 0, vsNamespace, func(o *metav1.ListOptions) {
		o.FieldSelector = "metadata.name=" + vsName
	})
	t.vsInformer = t.vsFactory.ForResource(VirtualServiceGVR).Informer()
	if err := t.vsInformer.SetWatchErrorHandlerWithContext(t.watchErrorHandler(cfg.Cluster, "virtualservices")); err != nil {
		return nil, fmt.Errorf("kube topology: %w", err)
	}
	if _, err := t.vsInformer.AddEventHandler(cache.ResourceEventHandlerFuncs{
		AddFunc:    func(obj any) { t.virtualServiceChanged(obj) },
		UpdateFunc: func(_, obj any) { t.virtualServiceChanged(obj) },
		DeleteFunc: func(any) {
			t.log.Warn("virtual service deleted", "cluster", t.cluster, "virtualService", t.vsKey)
			t.notify()
		},
	}); err != nil {
		return nil, fmt.Errorf("kube topology: %w", err)
	}
	t.meshFactory = informers.NewSharedInformerFactoryWithOptions(cfg.Local, 0,
		informers.WithNamespace(MeshConfigNamespace),
		informers.WithTweakListOptions(func(o *metav1.ListOptions) { o.FieldSelector = "metadata.name=" + MeshConfigName }))
	t.meshInformer = t.meshFactory.Core().V1().ConfigMaps().Informer()
	if err := t.meshInformer.SetWatchErrorHandlerWithContext(t.watchErrorHandler(cfg.Cluster, "configmaps")); err != nil {
		return nil, fmt.Errorf("kube topology: %w", err)
	}
	if _, err := t.meshInformer.AddEventHandler(cache.ResourceEventHandlerFuncs{
		AddFunc:    func(obj any) { t.meshConfigChanged(obj) },
		UpdateFunc: func(_, obj any) { t.meshConfigChanged(obj) },
		DeleteFunc: func(any) { t.meshConfigChanged(nil) },
	}); err != nil {
		return nil, fmt.Errorf("kube topology: %w", err)
	}
	return t, nil
}

// meshConfigChanged parses the local cluster's mesh config once per
// change; a missing or broken one is the default (every host mesh-wide),
// as istiod would start without one.
func (t *KubeTopology) meshConfigChanged(obj any) {
	mc := MeshConfig{}
	if cm, ok := obj.(*corev1.ConfigMap); ok {
		parsed, err := ParseMeshConfig(cm.Data[MeshConfigKey])
		if err != nil {
			t.log.Warn("mesh config unreadable; every host is mesh-wide", "cluster", t.cluster, "error", err)
		} else {
			mc = parsed
		}
	}
	t.mesh.Store(&mc)
	t.notify()
}

// meshConfig is the local cluster's mesh config as last parsed.
func (t *KubeTopology) meshConfig() MeshConfig {
	if mc := t.mesh.Load(); mc != nil {
		return *mc
	}
	return MeshConfig{}
}

func (t *KubeTopology) newCluster(name string, client kubernetes.Interface) (*kubeCluster, error) {
	factory := informers.NewSharedInformerFactoryWithOptions(client, 0,
		informers.WithNamespace(t.namespace),
		informers.WithTransform(stripManagedFields))
	pods := factory.Core().V1().Pods()
	endpointSlices := factory.Discovery().V1().EndpointSlices()
	c := &kubeCluster{
		name:     name,
		factory:  factory,
		podInf:   pods.Informer(),
		sliceInf: endpointSlices.Informer(),
		pods:     pods.Lister(),
		slices:   endpointSlices.Lister(),
	}
	for resource, inf := range map[string]cache.SharedIndexInformer{"pods": c.podInf, "endpointslices": c.sliceInf} {
		if err := inf.SetWatchErrorHandlerWithContext(t.watchErrorHandler(name, resource)); err != nil {
			return nil, fmt.Errorf("kube topology: cluster %s: %w", name, err)
		}
	}
	if _, err := c.podInf.AddEventHandler(cache.ResourceEventHandlerFuncs{
		AddFunc:    func(obj any) { t.podChanged(name, nil, obj) },
		UpdateFunc: func(old, obj any) { t.podChanged(name, old, obj) },
		DeleteFunc: func(any) { t.notify() },
	}); err != nil {
		return nil, fmt.Errorf("kube topology: cluster %s: %w", name, err)
	}
	if _, err := c.sliceInf.AddEventHandler(cache.ResourceEventHandlerFuncs{
		AddFunc:    func(any) { t.notify() },
		UpdateFunc: func(any, any) { t.notify() },
		DeleteFunc: func(any) { t.notify() },
	}); err != nil {
		return nil, fmt.Errorf("kube topology: cluster %s: %w", name, err)
	}
	return c, nil
}

// stripManagedFields drops managedFields before objects enter the caches;
// meshsim never reads them and they are most of a pod's size.
func stripManagedFields(obj any) (any, error) {
	if m, err := meta.Accessor(obj); err == nil {
		m.SetManagedFields(nil)
	}
	return obj, nil
}

// watchErrorHandler logs list and watch failures with the cluster they
// concern. It replaces client-go's default handler, which logs through
// klog and would not say which cluster of several is unreachable.
func (t *KubeTopology) watchErrorHandler(cluster, resource string) cache.WatchErrorHandlerWithContext {
	return func(_ context.Context, _ *cache.Reflector, err error) {
		switch {
		case errors.Is(err, io.EOF):
			// The server closed the watch normally; the reflector resumes.
		case apierrors.IsResourceExpired(err) || apierrors.IsGone(err) || errors.Is(err, io.ErrUnexpectedEOF):
			t.log.Debug("watch restarted", "cluster", cluster, "resource", resource, "err", err)
		default:
			t.log.Warn("cannot list or watch cluster; its endpoints are left out until it answers",
				"cluster", cluster, "local", cluster == t.cluster, "resource", resource, "err", err)
		}
	}
}

func (t *KubeTopology) podChanged(cluster string, old, obj any) {
	defer t.notify()
	pod, ok := obj.(*corev1.Pod)
	if !ok {
		return
	}
	if oldPod, ok := old.(*corev1.Pod); ok &&
		oldPod.Annotations[AnnotationErrorRate] == pod.Annotations[AnnotationErrorRate] &&
		oldPod.Annotations[AnnotationLatency] == pod.Annotations[AnnotationLatency] {
		return
	}
	fault, problems := ParseFault(pod.Annotations)
	for _, p := range problems {
		t.log.Warn("ignoring invalid fault annotation", "cluster", cluster, "pod", pod.Namespace+"/"+pod.Name, "reason", p)
	}
	if fault != (Fault{}) {
		t.log.Info("pod has injected faults", "cluster", cluster, "pod", pod.Namespace+"/"+pod.Name,
			"errorRate", fault.ErrorRate, "latency", fault.Latency)
	}
}

func (t *KubeTopology) virtualServiceChanged(obj any) {
	defer t.notify()
	u, ok := obj.(*unstructured.Unstructured)
	if !ok {
		return
	}
	w, err := ParseWeights(u.UnstructuredContent(), t.route)
	if err != nil {
		t.log.Warn("virtual service route unusable; the gateway answers 404 until it is fixed",
			"cluster", t.cluster, "virtualService", t.vsKey, "err", err)
		return
	}
	t.log.Info("routing weights", "cluster", t.cluster, "virtualService", t.vsKey, "route", t.route, "weights", w.String())
}

func (t *KubeTopology) notify() {
	t.mu.Lock()
	defer t.mu.Unlock()
	close(t.changed)
	t.changed = make(chan struct{})
}

// Changed returns a channel that is closed at the next change of any
// watched object. Take it before inspecting the topology, then wait on it,
// to wait for a condition without polling.
func (t *KubeTopology) Changed() <-chan struct{} {
	t.mu.Lock()
	defer t.mu.Unlock()
	return t.changed
}

// HasSynced reports whether the local cluster's caches are filled. Peers
// are left out on purpose: they may be unreachable.
func (t *KubeTopology) HasSynced() bool {
	return t.local.podInf.HasSynced() && t.local.sliceInf.HasSynced() && t.vsInformer.HasSynced() && t.meshInformer.HasSynced()
}

// Run starts the informers and blocks until ctx is done, then stops them.
func (t *KubeTopology) Run(ctx context.Context) error {
	if !t.started.CompareAndSwap(false, true) {
		return errors.New("kube topology: Run called twice")
	}
	for _, c := range t.clusters {
		c.factory.Start(ctx.Done())
	}
	t.vsFactory.Start(ctx.Done())
	t.meshFactory.Start(ctx.Done())
	var wg sync.WaitGroup
	for _, c := range t.clusters {
		wg.Go(func() {
			if cache.WaitForCacheSync(ctx.Done(), c.podInf.HasSynced, c.sliceInf.HasSynced) {
				t.log.Info("cluster synced", "cluster", c.name, "local", c == t.local)
				// Being synced is a change too: HasSynced may turn true
				// only after the last event has been handled.
				t.notify()
			}
		})
	}
	wg.Go(func() {
		if cache.WaitForCacheSync(ctx.Done(), t.vsInformer.HasSynced) {
			t.notify()
			if _, exists, _ := t.vsInformer.GetIndexer().GetByKey(t.vsKey); !exists {
				t.log.Warn("virtual service not found; the gateway answers 404 until it exists",
					"cluster", t.cluster, "virtualService", t.vsKey)
			}
		}
	})
	<-ctx.Done()
	wg.Wait()
	for _, c := range t.clusters {
		c.factory.Shutdown()
	}
	t.vsFactory.Shutdown()
	t.meshFactory.Shutdown()
	return nil
}

// Weights implements Topology.
func (t *KubeTopology) Weights() (Weights, error) {
	obj, exists, err := t.vsInformer.GetIndexer().GetByKey(t.vsKey)
	if err != nil {
		return Weights{}, fmt.Errorf("virtual service %s: %w", t.vsKey, err)
	}
	if !exists {
		return Weights{}, fmt.Errorf("virtual service %s not found in cluster %s", t.vsKey, t.cluster)
	}
	u, ok := obj.(*unstructured.Unstructured)
	if !ok {
		return Weights{}, fmt.Errorf("virtual service %s: unexpected %T in cache", t.vsKey, obj)
	}
	return ParseWeights(u.UnstructuredContent(), t.route)
}

// Endpoints implements Topology.
func (t *KubeTopology) Endpoints(svc ServiceKey) []Endpoint {
	if svc.Namespace != t.namespace {
		return nil
	}
	selector := labels.SelectorFromSet(labels.Set{discoveryv1.LabelServiceName: svc.Name})
	clusters := t.clusters
	if t.meshConfig().ClusterLocal(svc.FQDN()) {
		// Istio's clusterLocal: only this cluster's endpoints.
		clusters = []*kubeCluster{t.local}
	}
	var all []Endpoint
	for _, c := range clusters {
		endpointSlices, err := c.slices.EndpointSlices(svc.Namespace).List(selector)
		if err != nil {
			continue
		}
		pods := c.pods.Pods(svc.Namespace)
		all = append(all, EndpointsFromSlices(c.name, svc, endpointSlices, func(name string) (*corev1.Pod, bool) {
			p, err := pods.Get(name)
			return p, err == nil
		})...)
	}
	SortEndpoints(all)
	return all
}

// LocalEndpoint implements Topology.
func (t *KubeTopology) LocalEndpoint(svc ServiceKey, pod string) (Endpoint, bool) {
	if svc.Namespace != t.namespace {
		return Endpoint{}, false
	}
	p, err := t.local.pods.Pods(svc.Namespace).Get(pod)
	if err != nil {
		return Endpoint{}, false
	}
	e, _ := EndpointFromPod(t.cluster, svc, p.Status.PodIP, p)
	return e, true
}
