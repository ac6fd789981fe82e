package fleet

import (
	"bytes"
	"context"
	"crypto/sha256"
	"encoding/hex"
	"errors"
	"fmt"
	"io"
	"net/http"
	"sync"
	"time"

	"github.com/go-logr/logr"
	apierrors "k8s.io/apimachinery/pkg/api/errors"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/runtime/schema"
	"k8s.io/client-go/dynamic"
	"k8s.io/client-go/dynamic/dynamicinformer"
	"k8s.io/client-go/rest"
	"k8s.io/client-go/tools/cache"
)

// ErrClusterNotConnected is matched (errors.Is) by every error the Cache
// returns for a member it cannot reach.
var ErrClusterNotConnected = errors.New("cluster not connected")

// NotConnectedError says which cluster cannot be reached and why.
type NotConnectedError struct {
	Cluster string
	Err     error
}

func (e *NotConnectedError) Error() string {
	if e.Err == nil {
		return fmt.Sprintf("cluster %s not connected", e.Cluster)
	}
	return fmt.Sprintf("cluster %s not connected: %v", e.Cluster, e.Err)
}

// Is makes errors.Is(err, ErrClusterNotConnected) true.
func (e *NotConnectedError) Is(target error) bool { return target == ErrClusterNotConnected }

// Unwrap returns the cause.
func (e *NotConnectedError) Unwrap() error { return e.Err }

// CacheOptions tune a Cache. Zero values take the defaults.
type CacheOptions struct {
	// HealthInterval is how often each member's /readyz is probed
	// (default 1s); HealthTimeout bounds one probe (default 1s).
	HealthInterval time.Duration
	HealthTimeout  time.Duration
	// FailureThreshold is how many probes in a row must fail before a
	// member counts as not connected (default 2): one lost probe on a busy
	// machine must not start the unreachable clock.
	FailureThreshold int
	// RequestTimeout bounds every request of the clients handed out
	// (default 5s), so a hung apiserver cannot hang a reconcile.
	RequestTimeout time.Duration
	// OnEvent is called (from informer and health goroutines) with the
	// member's name whenever a watched object changes or the member's
	// connection state flips. It must not block.
	OnEvent func(cluster string)
	Logger  logr.Logger
	// Transport, if set, wraps the transport of every API request (not
	// the health probes) to a member, e.g. to count them.
	Transport func(cluster string, rt http.RoundTripper) http.RoundTripper
}

// Cache builds, health-checks and caches one client per member cluster.
// It is safe for concurrent use. NewCache does no I/O; Update starts the
// background work for new members, Stop (or the end of Start's context)
// ends it.
type Cache struct {
	opts   CacheOptions
	ctx    context.Context
	cancel context.CancelFunc

	mu       sync.Mutex
	clusters map[string]*accessor
}

// NewCache returns an empty cache.
func NewCache(o CacheOptions) *Cache {
	if o.HealthInterval <= 0 {
		o.HealthInterval = time.Second
	}
	if o.HealthTimeout <= 0 {
		o.HealthTimeout = time.Second
	}
	if o.FailureThreshold <= 0 {
		o.FailureThreshold = 2
	}
	if o.RequestTimeout <= 0 {
		o.RequestTimeout = 5 * time.Second
	}
	if o.OnEvent == nil {
		o.OnEvent = func(string) {}
	}
	if o.Logger.GetSink() == nil {
		o.Logger = logr.Discard()
	}
	ctx, cancel := context.WithCancel(context.Background())
	return &Cache{opts: o, ctx: ctx, cancel: cancel, clusters: map[string]*accessor{}}
}

// Start blocks until ctx ends, then stops the cache; it lets a
// controller-runtime manager own the cache's lifetime.
func (c *Cache) Start(ctx context.Context) error {
	select {
	case <-ctx.Done():
	case <-c.ctx.Done():
	}
	c.Stop()
	return nil
}

// Stop ends every health check and watch.
func (c *Cache) Stop() {
	c.cancel()
}

// accessor is the client state of one member.
type accessor struct {
	name        string
	fingerprint string
	dyn         dynamic.Interface
	watchCfg    *rest.Config
	probe       func(ctx context.Context) error
	ctx         context.Context
	cancel      context.CancelFunc

	mu        sync.Mutex
	checked   bool
	connected bool
	failures  int
	lastErr   error
	watches   map[string]bool
}

// fingerprint identifies the credentials and endpoint of a config, so that
// a rotated token or a moved server replaces the cached client.
func fingerprint(cfg *rest.Config) string {
	h := sha256.New()
	for _, b := range [][]byte{
		[]byte(cfg.Host), []byte(cfg.BearerToken), []byte(cfg.Username), []byte(cfg.Password),
		[]byte(cfg.TLSClientConfig.ServerName), cfg.TLSClientConfig.CAData, cfg.TLSClientConfig.CertData,
		cfg.TLSClientConfig.KeyData, []byte(cfg.BearerTokenFile), []byte(cfg.TLSClientConfig.CAFile),
		[]byte(fmt.Sprint(cfg.TLSClientConfig.Insecure)),
	} {
		h.Write(b)
		h.Write([]byte{0})
	}
	return hex.EncodeToString(h.Sum(nil))
}

// Update registers members. A member whose endpoint or credentials
// changed gets a new client (its watches are restarted on the next Watch
// call); members not listed are kept, since other callers may use them.
func (c *Cache) Update(members []Member) error {
	c.mu.Lock()
	defer c.mu.Unlock()
	for _, m := range members {
		fp := fingerprint(m.Config)
		if old, ok := c.clusters[m.Name]; ok {
			if old.fingerprint == fp {
				continue
			}
			old.cancel()
			c.opts.Logger.Info("Member credentials changed, replacing client", "cluster", m.Name)
		}
		a, err := c.newAccessor(m, fp)
		if err != nil {
			return fmt.Errorf("cluster %s: %w", m.Name, err)
		}
		c.clusters[m.Name] = a
		go c.healthLoop(a)
	}
	return nil
}

func (c *Cache) newAccessor(m Member, fp string) (*accessor, error) {
	// Watches have no timeout; requests and probes do. The probe's client
	// is neither rate-limited nor counted (Transport), the others are.
	probeCfg := rest.CopyConfig(m.Config)
	probeCfg.Timeout = c.opts.RequestTimeout
	watchCfg := rest.CopyConfig(m.Config)
	// The coordinator reads a handful of objects per reconcile; client-go's
	// default 5 QPS would turn a burst of watch events into latency.
	watchCfg.QPS, watchCfg.Burst = 100, 200
	if wrap := c.opts.Transport; wrap != nil {
		name := m.Name
		watchCfg.Wrap(func(rt http.RoundTripper) http.RoundTripper { return wrap(name, rt) })
	}
	reqCfg := rest.CopyConfig(watchCfg)
	reqCfg.Timeout = c.opts.RequestTimeout
	dyn, err := dynamic.NewForConfig(reqCfg)
	if err != nil {
		return nil, err
	}
	httpClient, err := rest.HTTPClientFor(probeCfg)
	if err != nil {
		return nil, err
	}
	ctx, cancel := context.WithCancel(c.ctx)
	host := m.Config.Host
	timeout := c.opts.HealthTimeout
	probe := func(ctx context.Context) error {
		ctx, cancel := context.WithTimeout(ctx, timeout)
		defer cancel()
		req, err := http.NewRequestWithContext(ctx, http.MethodGet, host+"/readyz", nil)
		if err != nil {
			return err
		}
		resp, err := httpClient.Do(req)
		if err != nil {
			return err
		}
		defer resp.Body.Close()
		// A health answer is a few lines; a member must not make the hub
		// buffer more.
		var body bytes.Buffer
		_, _ = body.ReadFrom(io.LimitReader(resp.Body, maxProbeBody))
		switch resp.StatusCode {
		case http.StatusOK:
		case http.StatusUnauthorized, http.StatusForbidden:
			// The member answers but refuses these credentials: an API
			// status error, so callers tell it from an outage.
			reason := metav1.StatusReasonUnauthorized
			if resp.StatusCode == http.StatusForbidden {
				reason = metav1.StatusReasonForbidden
			}
			return &apierrors.StatusError{ErrStatus: metav1.Status{Status: metav1.StatusFailure, Code: int32(resp.StatusCode), Reason: reason,
				Message: fmt.Sprintf("GET /readyz: %s: the member refuses these credentials", resp.Status)}}
		default:
			return fmt.Errorf("readyz: %s: %s", resp.Status, firstLine(body.String()))
		}
		return nil
	}
	return &accessor{
		name: m.Name, fingerprint: fp, dyn: dyn, watchCfg: watchCfg, probe: probe,
		ctx: ctx, cancel: cancel, watches: map[string]bool{},
	}, nil
}

// maxProbeBody bounds what is read of a /readyz answer.
const maxProbeBody = 16 << 10

func firstLine(s string) string {
	for i, r := range s {
		if r == '\n' {
			return s[:i]
		}
	}
	return s
}

// healthLoop probes a member until its accessor is replaced or the cache
// stops.
func (c *Cache) healthLoop(a *accessor) {
	t := time.NewTicker(c.opts.HealthInterval)
	defer t.Stop()
	for {
		c.check(a)
		select {
		case <-a.ctx.Done():
			return
		case <-t.C:
		}
	}
}

// check probes once and records the result, reporting a flip of state.
func (c *Cache) check(a *accessor) {
	err := a.probe(a.ctx)
	if a.ctx.Err() != nil {
		return
	}
	a.mu.Lock()
	was, wasChecked := a.connected, a.checked
	a.checked = true
	if err == nil {
		a.failures, a.lastErr, a.connected = 0, nil, true
	} else {
		a.failures++
		a.lastErr = err
		// The first probe decides alone: a member that is down at start-up
		// is not connected, and the threshold only guards against blips.
		if !wasChecked || a.failures >= c.opts.FailureThreshold {
			a.connected = false
		}
	}
	now := a.connected
	a.mu.Unlock()
	if wasChecked && was == now {
		return
	}
	if now {
		c.opts.Logger.Info("Member connected", "cluster", a.name)
	} else {
		c.opts.Logger.Info("Member not connected", "cluster", a.name, "err", err)
	}
	c.opts.OnEvent(a.name)
}

func (c *Cache) get(name string) (*accessor, error) {
	c.mu.Lock()
	a, ok := c.clusters[name]
	c.mu.Unlock()
	if !ok {
		return nil, &NotConnectedError{Cluster: name, Err: errors.New("not registered")}
	}
	return a, nil
}

// Client returns the dynamic client of a connected member, or a
// *NotConnectedError. A member never probed yet is probed now, so the first
// reconcile after a start does not wait for the health loop.
func (c *Cache) Client(ctx context.Context, name string) (dynamic.Interface, error) {
	a, err := c.get(name)
	if err != nil {
		return nil, err
	}
	a.mu.Lock()
	checked := a.checked
	a.mu.Unlock()
	if !checked {
		c.check(a)
	}
	a.mu.Lock()
	defer a.mu.Unlock()
	if !a.connected {
		return nil, &NotConnectedError{Cluster: name, Err: a.lastErr}
	}
	return a.dyn, nil
}

// Connected reports whether a member is registered and connected, without
// probing.
func (c *Cache) Connected(name string) bool {
	a, err := c.get(name)
	if err != nil {
		return false
	}
	a.mu.Lock()
	defer a.mu.Unlock()
	return a.connected
}

// Watch makes sure the objects of resource gvr in namespace of member name
// are watched; every change calls OnEvent(name). It is idempotent and
// cheap to call on every reconcile. The watch keeps retrying while the
// member is unreachable and ends when the member's client is replaced.
func (c *Cache) Watch(name string, gvr schema.GroupVersionResource, namespace string) error {
	a, err := c.get(name)
	if err != nil {
		return err
	}
	key := gvr.String() + "/" + namespace
	a.mu.Lock()
	defer a.mu.Unlock()
	if a.watches[key] {
		return nil
	}
	dyn, err := dynamic.NewForConfig(a.watchCfg)
	if err != nil {
		return &NotConnectedError{Cluster: name, Err: err}
	}
	// No resync: the coordinator requeues on its own timers, and a resync
	// would only add reconciles.
	f := dynamicinformer.NewFilteredDynamicSharedInformerFactory(dyn, 0, namespace, nil)
	inf := f.ForResource(gvr).Informer()
	notify := func(any) { c.opts.OnEvent(name) }
	// A list or watch the member refuses (401/403: a revoked token, a
	// removed role binding) is news too: the caller re-reads the member
	// and reports the refusal instead of waiting for its next resync.
	if err := inf.SetWatchErrorHandlerWithContext(func(ctx context.Context, r *cache.Reflector, err error) {
		cache.DefaultWatchErrorHandler(ctx, r, err)
		if apierrors.IsForbidden(err) || apierrors.IsUnauthorized(err) {
			notify(nil)
		}
	}); err != nil {
		return err
	}
	if _, err := inf.AddEventHandler(cache.ResourceEventHandlerFuncs{
		AddFunc:    notify,
		UpdateFunc: func(_, obj any) { notify(obj) },
		DeleteFunc: notify,
	}); err != nil {
		return err
	}
	f.Start(a.ctx.Done())
	a.watches[key] = true
	return nil
}
