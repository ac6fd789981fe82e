package istio

import (
	"errors"
	"fmt"
	"time"

	"lockstep.dev/lockstep/internal/lab/install"
)

// certsAction gives the mesh one root of trust: a root CA kept on the hub
// and an intermediate CA per workload cluster in istio-system/cacerts,
// where istiod picks it up instead of making its own self-signed root
// (https://istio.io/latest/docs/tasks/security/cert-management/plugin-ca-cert/).
// Without a shared root, sidecars of different clusters would not trust
// each other's certificates.
//
// Both Secrets are generated once (install.Context.EnsureSecret) and read
// back on every later run: a rerun changes nothing, and a cluster added
// later gets an intermediate under the same root.
type certsAction struct{}

func (certsAction) Name() string { return "istio-certs" }
func (certsAction) Description() string {
	return "Istio CA: a shared root on the hub, one intermediate per workload cluster"
}

func (certsAction) Execute(c *install.Context) error {
	labels := map[string]string{"app.kubernetes.io/part-of": "istio"}
	rootData, err := c.EnsureSecret(c.Hub, install.StateNamespace, RootCASecret, labels, func() (map[string][]byte, error) {
		return newRootCA(time.Now())
	})
	if err != nil {
		return err
	}
	root, err := parseRootCA(rootData)
	if err != nil {
		return fmt.Errorf("%s: secret %s/%s: %w", c.Hub.Name, install.StateNamespace, RootCASecret, err)
	}
	c.Logf("%s: root CA in secret %s/%s (%q, expires %s)", c.Hub.Name, install.StateNamespace, RootCASecret,
		root.cert.Subject.String(), root.cert.NotAfter.Format(time.DateOnly))
	var errs []error
	for _, cl := range c.Workloads {
		data, err := c.EnsureSecret(cl, SystemNamespace, CACertsSecret, labels, func() (map[string][]byte, error) {
			return newCACerts(root, cl.Name, time.Now())
		})
		if err != nil {
			errs = append(errs, err)
			continue
		}
		if !sameRoot(data, root) {
			errs = append(errs, fmt.Errorf("%s: secret %s/%s chains to another root CA than the hub's %s/%s; delete it to have it reissued",
				cl.Name, SystemNamespace, CACertsSecret, install.StateNamespace, RootCASecret))
			continue
		}
		// EnsureSecret creates istio-system unlabelled when it makes the
		// Secret; give it its network now so istiod never starts on a
		// namespace without one.
		if err := c.Apply(cl, systemNamespace(network(c, cl))); err != nil {
			errs = append(errs, err)
			continue
		}
		c.Logf("%s: intermediate CA in secret %s/%s", cl.Name, SystemNamespace, CACertsSecret)
	}
	return errors.Join(errs...)
}
