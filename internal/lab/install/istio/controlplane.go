package istio

import (
	"fmt"

	apierrors "k8s.io/apimachinery/pkg/api/errors"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/apis/meta/v1/unstructured"

	"lockstep.dev/lockstep/internal/lab/install"
)

// controlPlanesAction installs an istiod in every workload cluster, each
// its own primary on its own network: Istio's base chart (CRDs, the reader
// ServiceAccount, the default validator) and istiod chart with the mesh
// ID, the cluster's name and its network, as the multi-network guide's
// `helm install` lines set them.
//
// The charts are rendered with Helm's SDK and server-side applied, as
// `helm template | kubectl apply --server-side` would, rather than
// installed as Helm releases: an apply of unchanged objects is a no-op, so
// a rerun changes nothing and creates no new release revision (a `helm
// upgrade` writes a release Secret every time), and the field manager
// makes Lockstep the declared owner of what it installed.
type controlPlanesAction struct{}

func (controlPlanesAction) Name() string { return "istio-control-planes" }
func (controlPlanesAction) Description() string {
	return "Istio control planes: base and istiod charts in every workload cluster"
}

func (controlPlanesAction) Execute(c *install.Context) error {
	for _, cl := range c.Workloads {
		net := network(c, cl)
		if err := c.Apply(cl, systemNamespace(net)); err != nil {
			return err
		}
		var objs []*unstructured.Unstructured
		for _, r := range []release{baseRelease(), istiodRelease(c.Settings, cl.Name, net)} {
			o, err := renderRelease(c, cl, r)
			if err != nil {
				return err
			}
			objs = append(objs, o...)
		}
		if err := forDataPlane(c, cl, objs); err != nil {
			return err
		}
		// One apply for both charts, so the CRDs of base are established
		// before istiod's objects and the sort puts the webhooks last.
		sortForApply(objs)
		if err := c.Apply(cl, objs...); err != nil {
			return err
		}
		c.Logf("%s: istiod (cluster %s, network %s, mesh %s, %s/pilot:%s)", cl.Name, cl.Name, net, c.Settings.MeshID, c.Settings.IstioHub, c.Settings.IstioTag)
	}
	for _, cl := range c.Workloads {
		if err := c.WaitDeployments(cl, SystemNamespace, "istiod"); err != nil {
			return err
		}
	}
	return nil
}

// forDataPlane makes the one change a simulated data plane needs: no
// istiod process ever answers there, so Istio's webhooks must not fail
// closed. On a real data plane it keeps the validating webhooks istiod has
// already closed closed (see keepFailClosed).
func forDataPlane(c *install.Context, cl *install.Cluster, objs []*unstructured.Unstructured) error {
	if cl.DataPlane != install.DataPlaneSimulated {
		if cl.Kube == nil {
			return nil
		}
		live := map[string]map[string]string{}
		for _, o := range objs {
			if o.GetKind() != "ValidatingWebhookConfiguration" {
				continue
			}
			got, err := cl.Kube.AdmissionregistrationV1().ValidatingWebhookConfigurations().Get(c, o.GetName(), metav1.GetOptions{})
			if apierrors.IsNotFound(err) {
				continue
			}
			if err != nil {
				return fmt.Errorf("%s: get ValidatingWebhookConfiguration %s: %w", cl.Name, o.GetName(), err)
			}
			live[o.GetName()] = map[string]string{}
			for _, h := range got.Webhooks {
				if h.FailurePolicy != nil {
					live[o.GetName()][h.Name] = string(*h.FailurePolicy)
				}
			}
		}
		if n := keepFailClosed(objs, live); n > 0 {
			c.Logf("%s: %d Istio validating webhooks stay failurePolicy Fail, as istiod set them", cl.Name, n)
		}
		return nil
	}
	n, err := ignoreWebhookFailures(objs)
	if err != nil {
		return fmt.Errorf("%s: %w", cl.Name, err)
	}
	if n > 0 {
		c.Logf("%s: simulated data plane (kwok nodes, no istiod answers): failurePolicy Ignore on %d Istio webhooks, the only simulation-specific change", cl.Name, n)
	}
	return nil
}

// keepFailClosed sets failurePolicy Fail on the validating webhooks objs
// would apply with Ignore while the cluster (live: configuration name ->
// webhook name -> policy) already has them at Fail, and returns how many.
// Istio's charts render Ignore on a first install only ("the webhook
// controller will update this to Fail ... when the webhook endpoint is
// ready") and leave the field alone on upgrades; a re-apply of the install
// rendering would reopen validation on every run until istiod closed it
// again, and count as a change each time.
func keepFailClosed(objs []*unstructured.Unstructured, live map[string]map[string]string) int {
	n := 0
	for _, o := range objs {
		if o.GetKind() != "ValidatingWebhookConfiguration" || live[o.GetName()] == nil {
			continue
		}
		hooks, _, _ := unstructured.NestedSlice(o.Object, "webhooks")
		for _, h := range hooks {
			m, ok := h.(map[string]any)
			if !ok || m["failurePolicy"] != "Ignore" {
				continue
			}
			if name, _ := m["name"].(string); live[o.GetName()][name] == "Fail" {
				m["failurePolicy"] = "Fail"
				n++
			}
		}
		_ = unstructured.SetNestedSlice(o.Object, hooks, "webhooks")
	}
	return n
}
