package monitoring

import (
	"bytes"
	"context"
	"crypto/md5"
	"crypto/rand"
	"encoding/hex"
	"encoding/json"
	"fmt"
	"os"
	"path"
	"sort"
	"strings"

	appsv1 "k8s.io/api/apps/v1"
	corev1 "k8s.io/api/core/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/apis/meta/v1/unstructured"
	"k8s.io/apimachinery/pkg/runtime"
	"sigs.k8s.io/yaml"

	"lockstep.dev/lockstep/internal/lab/install"
	"lockstep.dev/lockstep/internal/lab/sources"
)

// IstioDashboardsDir holds Istio's Grafana dashboards in sources.Istio.
const IstioDashboardsDir = "manifests/addons/dashboards"

const (
	grafanaDatasourcesConfigMap = "grafana-datasources"
	grafanaProvidersConfigMap   = "grafana-providers"
	grafanaDashboardPrefix      = "grafana-dashboard-"
	grafanaDashboardsDir        = "/etc/grafana/dashboards"
	lockstepFolder              = "Lockstep"
	istioFolder                 = "Istio"
	lockstepDashboardFile       = "lockstep-fleet.json"
	// maxConfigMap is the API server's limit on a ConfigMap's data.
	maxConfigMap = 1 << 20
)

func genGrafanaAdmin() (map[string][]byte, error) {
	b := make([]byte, 24)
	if _, err := rand.Read(b); err != nil {
		return nil, err
	}
	return map[string][]byte{GrafanaUserKey: []byte(GrafanaAdminUser), GrafanaPasswordKey: []byte(hex.EncodeToString(b))}, nil
}

// grafanaDatasource is one entry of Grafana's datasource provisioning file.
type grafanaDatasource struct {
	Name      string         `json:"name"`
	Type      string         `json:"type"`
	UID       string         `json:"uid"`
	Access    string         `json:"access"`
	URL       string         `json:"url"`
	IsDefault bool           `json:"isDefault"`
	Editable  bool           `json:"editable"`
	JSONData  map[string]any `json:"jsonData,omitempty"`
}

type grafanaDatasources struct {
	APIVersion  int                 `json:"apiVersion"`
	Datasources []grafanaDatasource `json:"datasources"`
}

// datasourcesYAML provisions Thanos Query as Grafana's default Prometheus
// datasource.
func datasourcesYAML() ([]byte, error) {
	return yaml.Marshal(grafanaDatasources{APIVersion: 1, Datasources: []grafanaDatasource{{
		Name: "Thanos", Type: "prometheus", UID: DatasourceUID, Access: "proxy", URL: QueryURL,
		IsDefault: true, Editable: false,
		JSONData: map[string]any{"prometheusType": "Thanos", "timeInterval": "15s"},
	}}})
}

// providersYAML provisions every file under grafanaDashboardsDir, one
// Grafana folder per directory.
func providersYAML() ([]byte, error) {
	return yaml.Marshal(map[string]any{"apiVersion": 1, "providers": []any{map[string]any{
		"name": "lockstep", "orgId": 1, "type": "file",
		"disableDeletion": true, "allowUiUpdates": false, "updateIntervalSeconds": 30,
		"options": map[string]any{"path": grafanaDashboardsDir, "foldersFromFilesStructure": true},
	}}})
}

// dashboardFile is one dashboard to provision.
type dashboardFile struct {
	// File is the file name (istio-service-dashboard.json).
	File string
	// Folder is the Grafana folder (a directory under grafanaDashboardsDir).
	Folder string
	UID    string
	JSON   []byte
}

// configMapName is the dashboard's ConfigMap: one per dashboard keeps each
// well under the 1 MiB limit.
func (d dashboardFile) configMapName() string {
	base := strings.TrimSuffix(strings.TrimSuffix(d.File, ".json"), ".gen")
	return grafanaDashboardPrefix + strings.ToLower(base)
}

// parseDashboard reads one Istio file and reports whether it is a
// dashboard (a JSON object with panels: jsonnetfile.json is not). A
// dashboard without a uid gets the one Istio's links use for it, the MD5 of
// its file name (manifests/addons/dashboards/README.md), so Grafana keeps
// it stable and cross-dashboard links work.
func parseDashboard(file string, b []byte) (dashboardFile, bool, error) {
	dec := json.NewDecoder(bytes.NewReader(b))
	dec.UseNumber()
	var m map[string]any
	if err := dec.Decode(&m); err != nil {
		return dashboardFile{}, false, fmt.Errorf("dashboard %s: %w", file, err)
	}
	if _, ok := m["panels"].([]any); !ok {
		return dashboardFile{}, false, nil
	}
	uid, _ := m["uid"].(string)
	if uid == "" {
		sum := md5.Sum([]byte(file))
		uid = hex.EncodeToString(sum[:])
		m["uid"] = uid
	}
	var out bytes.Buffer
	enc := json.NewEncoder(&out)
	enc.SetEscapeHTML(false)
	if err := enc.Encode(m); err != nil {
		return dashboardFile{}, false, fmt.Errorf("dashboard %s: %w", file, err)
	}
	return dashboardFile{File: file, Folder: istioFolder, UID: uid, JSON: out.Bytes()}, true, nil
}

// istioDashboards reads Istio's dashboards: the .json files (hand-made and
// .gen.json, generated from the jsonnet) that are dashboards, sorted.
func istioDashboards(ctx context.Context, r *sources.Resolver) ([]dashboardFile, error) {
	dir, err := r.Path(ctx, sources.Istio, IstioDashboardsDir)
	if err != nil {
		return nil, err
	}
	entries, err := os.ReadDir(dir)
	if err != nil {
		return nil, fmt.Errorf("%s %s: %w", sources.Istio, IstioDashboardsDir, err)
	}
	var out []dashboardFile
	for _, e := range entries {
		if e.IsDir() || !strings.HasSuffix(e.Name(), ".json") {
			continue
		}
		b, err := r.ReadFile(ctx, sources.Istio, path.Join(IstioDashboardsDir, e.Name()))
		if err != nil {
			return nil, err
		}
		d, ok, err := parseDashboard(e.Name(), b)
		if err != nil {
			return nil, err
		}
		if ok {
			out = append(out, d)
		}
	}
	if len(out) == 0 {
		return nil, fmt.Errorf("%s %s: no dashboards", sources.Istio, IstioDashboardsDir)
	}
	sort.Slice(out, func(i, j int) bool { return out[i].File < out[j].File })
	return out, nil
}

// allDashboards is the Lockstep dashboard then Istio's, checked for
// unique uids and ConfigMap names and for size.
func allDashboards(istio []dashboardFile) ([]dashboardFile, error) {
	ls, err := lockstepDashboardJSON()
	if err != nil {
		return nil, err
	}
	all := append([]dashboardFile{{File: lockstepDashboardFile, Folder: lockstepFolder, UID: LockstepDashboardUID, JSON: ls}}, istio...)
	uids, names := map[string]string{}, map[string]string{}
	for _, d := range all {
		if prev, dup := uids[d.UID]; dup {
			return nil, fmt.Errorf("dashboards %s and %s share uid %s", prev, d.File, d.UID)
		}
		uids[d.UID] = d.File
		if prev, dup := names[d.configMapName()]; dup {
			return nil, fmt.Errorf("dashboards %s and %s map to ConfigMap %s", prev, d.File, d.configMapName())
		}
		names[d.configMapName()] = d.File
		if len(d.JSON)+len(d.File) >= maxConfigMap {
			return nil, fmt.Errorf("dashboard %s is %d bytes, over a ConfigMap's 1 MiB", d.File, len(d.JSON))
		}
	}
	return all, nil
}

// grafanaObjects are Grafana's provisioning ConfigMaps, one ConfigMap per
// dashboard, the Deployment (emptyDir database: provisioning recreates the
// datasource and dashboards, and the admin user from the Secret, at each
// start) and its ClusterIP Service (reach it with kubectl port-forward).
// creds is the admin Secret's data, only hashed here so that a new
// password restarts Grafana.
func grafanaObjects(s install.Settings, dashboards []dashboardFile, creds map[string][]byte) ([]runtime.Object, error) {
	ds, err := datasourcesYAML()
	if err != nil {
		return nil, err
	}
	providers, err := providersYAML()
	if err != nil {
		return nil, err
	}
	cm := func(name, key string, data []byte) *corev1.ConfigMap {
		return &corev1.ConfigMap{ObjectMeta: metav1.ObjectMeta{Name: name, Namespace: Namespace, Labels: labels(GrafanaService)},
			Data: map[string]string{key: string(data)}}
	}
	objs := []runtime.Object{
		cm(grafanaDatasourcesConfigMap, "datasources.yaml", ds),
		cm(grafanaProvidersConfigMap, "providers.yaml", providers),
	}
	var projections []corev1.VolumeProjection
	for _, d := range dashboards {
		c := cm(d.configMapName(), d.File, d.JSON)
		c.Labels["grafana_dashboard"] = "1"
		objs = append(objs, c)
		projections = append(projections, corev1.VolumeProjection{ConfigMap: &corev1.ConfigMapProjection{
			LocalObjectReference: corev1.LocalObjectReference{Name: d.configMapName()},
			Items:                []corev1.KeyToPath{{Key: d.File, Path: d.Folder + "/" + d.File}},
		}})
	}
	// Dashboards are re-read by the provider every 30 s; the datasource,
	// the provider and the admin user only at start.
	annotations := map[string]string{templateHashAnnotation: hash(ds, providers, creds[GrafanaUserKey], creds[GrafanaPasswordKey])}
	cmVolume := func(name, cm string) corev1.Volume {
		return corev1.Volume{Name: name, VolumeSource: corev1.VolumeSource{ConfigMap: &corev1.ConfigMapVolumeSource{
			LocalObjectReference: corev1.LocalObjectReference{Name: cm}}}}
	}
	d := deployment(GrafanaService, appsv1.RecreateDeploymentStrategyType, annotations, corev1.PodSpec{
		Containers: []corev1.Container{{
			Name:  "grafana",
			Image: s.GrafanaImage,
			Env: []corev1.EnvVar{
				secretEnv("GF_SECURITY_ADMIN_USER", GrafanaAdminSecret, GrafanaUserKey),
				secretEnv("GF_SECURITY_ADMIN_PASSWORD", GrafanaAdminSecret, GrafanaPasswordKey),
				{Name: "GF_USERS_ALLOW_SIGN_UP", Value: "false"},
				{Name: "GF_ANALYTICS_REPORTING_ENABLED", Value: "false"},
				{Name: "GF_ANALYTICS_CHECK_FOR_UPDATES", Value: "false"},
				{Name: "GF_ANALYTICS_CHECK_FOR_PLUGIN_UPDATES", Value: "false"},
				{Name: "GF_DASHBOARDS_DEFAULT_HOME_DASHBOARD_PATH", Value: grafanaDashboardsDir + "/" + lockstepFolder + "/" + lockstepDashboardFile},
			},
			Ports:          []corev1.ContainerPort{containerPort("http", GrafanaPort)},
			ReadinessProbe: httpProbe("/api/health", "http"),
			LivenessProbe:  httpProbe("/api/health", "http"),
			VolumeMounts: []corev1.VolumeMount{
				{Name: "storage", MountPath: "/var/lib/grafana"},
				{Name: "datasources", MountPath: "/etc/grafana/provisioning/datasources", ReadOnly: true},
				{Name: "providers", MountPath: "/etc/grafana/provisioning/dashboards", ReadOnly: true},
				{Name: "dashboards", MountPath: grafanaDashboardsDir, ReadOnly: true},
			},
		}},
		Volumes: []corev1.Volume{
			emptyDir("storage"),
			cmVolume("datasources", grafanaDatasourcesConfigMap),
			cmVolume("providers", grafanaProvidersConfigMap),
			{Name: "dashboards", VolumeSource: corev1.VolumeSource{Projected: &corev1.ProjectedVolumeSource{Sources: projections}}},
		},
	})
	return append(objs, d, service(GrafanaService, servicePort("http", GrafanaPort, "http"))), nil
}

func installGrafana(c *install.Context) error {
	creds, err := c.EnsureSecret(c.Hub, Namespace, GrafanaAdminSecret, labels(GrafanaService), genGrafanaAdmin)
	if err != nil {
		return err
	}
	istio, err := istioDashboards(c, c.Sources)
	if err != nil {
		return err
	}
	dashboards, err := allDashboards(istio)
	if err != nil {
		return err
	}
	typedObjs, err := grafanaObjects(c.Settings, dashboards, creds)
	if err != nil {
		return err
	}
	objs, err := toUnstructured(typedObjs...)
	if err != nil {
		return err
	}
	if err := c.Apply(c.Hub, append([]*unstructured.Unstructured{namespace()}, objs...)...); err != nil {
		return fmt.Errorf("grafana: %w", err)
	}
	c.Logf("%s: Grafana with %d dashboards; admin password in secret %s/%s", c.Hub.Name, len(dashboards), Namespace, GrafanaAdminSecret)
	return c.WaitDeployments(c.Hub, Namespace, GrafanaService)
}
