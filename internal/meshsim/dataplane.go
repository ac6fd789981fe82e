package meshsim

import (
	"cmp"
	"encoding/base64"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"math/rand/v2"
	"net/http"
	"net/url"
	"strings"
	"time"
)

// Headers of a request that one cluster's gateway hands to another
// cluster's east-west port. A real east-west gateway learns the target
// from the TLS SNI and the peer identity from Istio's metadata exchange;
// meshsim carries the same facts in plain headers.
const (
	// HeaderDestinationPod names the pod that is to answer.
	HeaderDestinationPod = "X-Meshsim-Destination-Pod"
	// HeaderDestinationService is the FQDN of the service the pod was
	// picked for, which the serving side reports as destination_service.
	HeaderDestinationService = "X-Meshsim-Destination-Service"
	// HeaderPeerMetadata carries the source Peer, as base64 of its JSON,
	// like Istio's x-envoy-peer-metadata.
	HeaderPeerMetadata = "X-Meshsim-Peer-Metadata"
)

// maxRelayedBody bounds what the gateway copies back from a peer cluster;
// helloworld answers are a line long, so anything near this is a bug.
const maxRelayedBody = 1 << 20

// Envoy's bodies for the failures meshsim reproduces, so that clients and
// humans see the familiar text.
const (
	bodyNoHealthyUpstream = "no healthy upstream"
	bodyUpstreamFailure   = "upstream connect error or disconnect/reset before headers. reset reason: connection failure"
	bodyInjectedFault     = "meshsim: injected fault\n"
)

// DataPlaneConfig configures the data plane of one cluster.
type DataPlaneConfig struct {
	// Cluster is the Istio cluster ID of the local cluster.
	Cluster string
	// Topology supplies weights and endpoints.
	Topology Topology
	// Metrics receives a record for every request; nil creates a private
	// set.
	Metrics *Metrics
	// PeerEastWest maps each peer cluster ID to the base URL of its
	// meshsim east-west port, e.g. http://127.0.0.1:15443.
	PeerEastWest map[string]string
	// Rand drives routing and fault decisions; nil seeds one at random.
	Rand *rand.Rand
	// Client forwards requests to peers; nil uses a client that ignores
	// proxy settings, since peers are always on this machine.
	Client *http.Client
	// Logger defaults to slog.Default().
	Logger *slog.Logger
}

// DataPlane provides the ingress-gateway and east-west handlers of one
// cluster.
type DataPlane struct {
	cluster string
	topo    Topology
	metrics *Metrics
	peers   map[string]string
	rng     *LockedRand
	client  *http.Client
	log     *slog.Logger
}

// NewDataPlane validates cfg. It does no I/O.
func NewDataPlane(cfg DataPlaneConfig) (*DataPlane, error) {
	if cfg.Cluster == "" {
		return nil, errors.New("data plane: cluster is required")
	}
	if cfg.Topology == nil {
		return nil, errors.New("data plane: topology is required")
	}
	peers := make(map[string]string, len(cfg.PeerEastWest))
	for name, raw := range cfg.PeerEastWest {
		if name == cfg.Cluster {
			return nil, fmt.Errorf("data plane: east-west address given for the local cluster %q", name)
		}
		u, err := url.Parse(raw)
		if err != nil {
			return nil, fmt.Errorf("data plane: east-west address of %q: %w", name, err)
		}
		if (u.Scheme != "http" && u.Scheme != "https") || u.Host == "" || u.RawQuery != "" || u.Fragment != "" {
			return nil, fmt.Errorf("data plane: east-west address of %q must be an http(s) base URL, got %q", name, raw)
		}
		peers[name] = strings.TrimSuffix(u.String(), "/")
	}
	client := cfg.Client
	if client == nil {
		transport := http.DefaultTransport.(*http.Transport).Clone()
		transport.Proxy = nil
		transport.MaxIdleConnsPerHost = 64
		client = &http.Client{Transport: transport}
	}
	metrics := cfg.Metrics
	if metrics == nil {
		metrics = NewMetrics()
	}
	return &DataPlane{
		cluster: cfg.Cluster,
		topo:    cfg.Topology,
		metrics: metrics,
		peers:   peers,
		rng:     NewLockedRand(cfg.Rand),
		client:  client,
		log:     cmp.Or(cfg.Logger, slog.Default()),
	}, nil
}

// Metrics returns the metrics the data plane records into.
func (d *DataPlane) Metrics() *Metrics { return d.metrics }

// Gateway returns the ingress-gateway handler. /healthz is answered by
// meshsim itself; every other path is routed, like a VirtualService route
// without match conditions, and the helloworld pod answers /hello.
func (d *DataPlane) Gateway() http.Handler {
	return http.HandlerFunc(d.serveGateway)
}

// EastWest returns the handler of the east-west port, which serves
// requests that a peer cluster's gateway routed to a local pod.
func (d *DataPlane) EastWest() http.Handler {
	return http.HandlerFunc(d.serveEastWest)
}

func (d *DataPlane) serveGateway(w http.ResponseWriter, r *http.Request) {
	if r.URL.Path == "/healthz" {
		healthz(w, r)
		return
	}
	start := time.Now()
	src := GatewayPeer(d.cluster)
	rec := Record{Reporter: ReporterSource, Source: src}
	defer func() {
		rec.Duration = time.Since(start)
		d.metrics.Record(rec)
	}()

	weights, err := d.topo.Weights()
	if err != nil {
		d.log.Debug("no route for request", "cluster", d.cluster, "path", r.URL.Path, "err", err)
		rec.Code, rec.Flags = http.StatusNotFound, FlagNoRoute
		w.WriteHeader(http.StatusNotFound)
		return
	}
	endpoints := make(map[ServiceKey][]Endpoint, len(weights.Destinations))
	for _, dst := range weights.Destinations {
		if _, ok := endpoints[dst.Service]; !ok {
			endpoints[dst.Service] = d.topo.Endpoints(dst.Service)
		}
	}
	choice, err := d.rng.Pick(weights, endpoints)
	switch {
	case errors.Is(err, ErrNoHealthyUpstream):
		rec.Service = choice.Destination.Service
		rec.Code, rec.Flags = http.StatusServiceUnavailable, FlagNoHealthyUpstream
		writeText(w, http.StatusServiceUnavailable, bodyNoHealthyUpstream)
		return
	case err != nil:
		rec.Code, rec.Flags = http.StatusNotFound, FlagNoRoute
		w.WriteHeader(http.StatusNotFound)
		return
	}
	ep := choice.Endpoint
	rec.Service = choice.Destination.Service
	rec.Destination = ep.Peer()
	if ep.Cluster == d.cluster {
		rec.Code, rec.Flags = d.serveApp(w, r, ep, rec.Service, src)
		return
	}
	rec.Code, rec.Flags = d.forward(w, r, ep, rec.Service, src)
}

// forward relays the request to the east-west port of the endpoint's
// cluster and copies the answer back.
func (d *DataPlane) forward(w http.ResponseWriter, r *http.Request, ep Endpoint, svc ServiceKey, src Peer) (int, string) {
	base, ok := d.peers[ep.Cluster]
	if !ok {
		d.log.Warn("no east-west address for peer cluster", "cluster", d.cluster, "peer", ep.Cluster, "pod", ep.Pod)
		writeText(w, http.StatusServiceUnavailable, bodyUpstreamFailure)
		return http.StatusServiceUnavailable, FlagUpstreamFailure
	}
	req, err := http.NewRequestWithContext(r.Context(), r.Method, base+r.URL.RequestURI(), r.Body)
	if err != nil {
		d.log.Warn("cannot build east-west request", "cluster", d.cluster, "peer", ep.Cluster, "err", err)
		writeText(w, http.StatusServiceUnavailable, bodyUpstreamFailure)
		return http.StatusServiceUnavailable, FlagUpstreamFailure
	}
	req.Header.Set(HeaderDestinationPod, ep.Pod)
	req.Header.Set(HeaderDestinationService, svc.FQDN())
	req.Header.Set(HeaderPeerMetadata, encodePeer(src))
	resp, err := d.client.Do(req)
	if err != nil {
		if r.Context().Err() != nil {
			return 0, FlagDownstreamDisconnect
		}
		d.log.Warn("east-west request failed", "cluster", d.cluster, "peer", ep.Cluster, "pod", ep.Pod, "err", err)
		writeText(w, http.StatusServiceUnavailable, bodyUpstreamFailure)
		return http.StatusServiceUnavailable, FlagUpstreamFailure
	}
	defer func() { _ = resp.Body.Close() }()
	if ct := resp.Header.Get("Content-Type"); ct != "" {
		w.Header().Set("Content-Type", ct)
	}
	w.WriteHeader(resp.StatusCode)
	if _, err := io.Copy(w, io.LimitReader(resp.Body, maxRelayedBody)); err != nil {
		d.log.Debug("relaying east-west answer failed", "cluster", d.cluster, "peer", ep.Cluster, "err", err)
	}
	return resp.StatusCode, FlagNone
}

func (d *DataPlane) serveEastWest(w http.ResponseWriter, r *http.Request) {
	if r.URL.Path == "/healthz" {
		healthz(w, r)
		return
	}
	pod := r.Header.Get(HeaderDestinationPod)
	host := r.Header.Get(HeaderDestinationService)
	if pod == "" || host == "" {
		writeText(w, http.StatusBadRequest, "meshsim: "+HeaderDestinationPod+" and "+HeaderDestinationService+" are required\n")
		return
	}
	svc, err := ResolveHost(host, "")
	if err != nil {
		writeText(w, http.StatusBadRequest, "meshsim: bad "+HeaderDestinationService+": "+err.Error()+"\n")
		return
	}
	ep, ok := d.topo.LocalEndpoint(svc, pod)
	if !ok {
		writeText(w, http.StatusNotFound, fmt.Sprintf("meshsim: no pod %s/%s in cluster %s\n", svc.Namespace, pod, d.cluster))
		return
	}
	src, err := decodePeer(r.Header.Get(HeaderPeerMetadata))
	if err != nil {
		// Istio reports a peer whose metadata it cannot read as unknown
		// rather than refusing the request; so does meshsim.
		d.log.Debug("unreadable peer metadata", "cluster", d.cluster, "err", err)
	}
	d.serveApp(w, r, ep, svc, src)
}

// serveApp answers as the helloworld pod ep would, behind its sidecar, and
// records the sidecar's destination-side report.
func (d *DataPlane) serveApp(w http.ResponseWriter, r *http.Request, ep Endpoint, svc ServiceKey, src Peer) (code int, flags string) {
	start := time.Now()
	defer func() {
		d.metrics.Record(Record{
			Reporter:    ReporterDestination,
			Source:      src,
			Destination: ep.Peer(),
			Service:     svc,
			Code:        code,
			Flags:       flags,
			Duration:    time.Since(start),
		})
	}()
	if ep.Latency > 0 {
		timer := time.NewTimer(ep.Latency)
		defer timer.Stop()
		select {
		case <-timer.C:
		case <-r.Context().Done():
			return 0, FlagDownstreamDisconnect
		}
	}
	switch {
	case d.rng.Fails(ep.ErrorRate):
		writeText(w, http.StatusServiceUnavailable, bodyInjectedFault)
		return http.StatusServiceUnavailable, FlagNone
	case r.URL.Path == "/hello":
		writeText(w, http.StatusOK, HelloBody(ep.Version, ep.Pod))
		return http.StatusOK, FlagNone
	default:
		writeText(w, http.StatusNotFound, "Not Found\n")
		return http.StatusNotFound, FlagNone
	}
}

// HelloBody is the answer of Istio's helloworld image.
func HelloBody(version, pod string) string {
	return "Hello version: " + version + ", instance: " + pod + "\n"
}

func healthz(w http.ResponseWriter, _ *http.Request) {
	writeText(w, http.StatusOK, "ok\n")
}

func writeText(w http.ResponseWriter, code int, body string) {
	w.Header().Set("Content-Type", "text/plain; charset=utf-8")
	w.WriteHeader(code)
	_, _ = io.WriteString(w, body)
}

func encodePeer(p Peer) string {
	raw, err := json.Marshal(p)
	if err != nil {
		// Marshalling a struct of strings cannot fail; an empty header
		// would only make the peer report the source as unknown.
		return ""
	}
	return base64.RawURLEncoding.EncodeToString(raw)
}

func decodePeer(header string) (Peer, error) {
	var p Peer
	if header == "" {
		return p, errors.New("no peer metadata")
	}
	raw, err := base64.RawURLEncoding.DecodeString(header)
	if err != nil {
		return Peer{}, fmt.Errorf("decoding peer metadata: %w", err)
	}
	if err := json.Unmarshal(raw, &p); err != nil {
		return Peer{}, fmt.Errorf("decoding peer metadata: %w", err)
	}
	return p, nil
}
