package verify

import (
	"context"
	"fmt"
	"slices"
	"sort"
	"strings"

	authv1 "k8s.io/api/authorization/v1"
	rbacv1 "k8s.io/api/rbac/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/client-go/kubernetes"
	"sigs.k8s.io/yaml"

	"lockstep.dev/lockstep/config"
	"lockstep.dev/lockstep/internal/access"
	"lockstep.dev/lockstep/internal/fleet"
)

// baseline are the rules every authenticated identity has through the
// default system:basic-user role: asking what it may do. They are not the
// coordinator's to drop.
var baseline = map[string]bool{
	"authorization.k8s.io/selfsubjectaccessreviews:create": true,
	"authorization.k8s.io/selfsubjectrulesreviews:create":  true,
	"authentication.k8s.io/selfsubjectreviews:create":      true,
}

// grantSet flattens rules into "group/resource:verb" entries.
func grantSet(rules []rbacv1.PolicyRule) map[string]bool {
	out := map[string]bool{}
	for _, r := range rules {
		for _, g := range r.APIGroups {
			for _, res := range r.Resources {
				for _, v := range r.Verbs {
					out[g+"/"+res+":"+v] = true
				}
			}
		}
	}
	return out
}

// WorkloadGrants are what the generated workload role allows.
func WorkloadGrants() (map[string]bool, error) {
	b, err := config.RBAC.ReadFile(config.WorkloadRole)
	if err != nil {
		return nil, err
	}
	var role rbacv1.ClusterRole
	if err := yaml.Unmarshal(b, &role); err != nil {
		return nil, fmt.Errorf("%s: %w", config.WorkloadRole, err)
	}
	return grantSet(role.Rules), nil
}

// Excess compares effective rules (from a SelfSubjectRulesReview) with
// the grants wanted: what is allowed beyond them (a wildcard counts as
// beyond), and what is missing. baseline entries are neither.
func Excess(effective []authv1.ResourceRule, want map[string]bool) (extra, missing []string) {
	var rules []rbacv1.PolicyRule
	for _, r := range effective {
		rules = append(rules, rbacv1.PolicyRule{APIGroups: r.APIGroups, Resources: r.Resources, Verbs: r.Verbs})
	}
	have := grantSet(rules)
	for g := range have {
		if !want[g] && !baseline[g] {
			extra = append(extra, g)
		}
	}
	for g := range want {
		if !have[g] {
			missing = append(missing, g)
		}
	}
	sort.Strings(extra)
	sort.Strings(missing)
	return extra, missing
}

// CoordinatorAccess checks, for every workload in want, the coordinator's
// own cluster Secret on the hub (lockstep-system, lockstep.dev/secret-type=
// cluster): its credentials reach the member, and what the member says
// they may do (SelfSubjectRulesReview in namespace) is exactly the
// generated workload role: more fails, and so does less.
func CoordinatorAccess(ctx context.Context, hub kubernetes.Interface, namespace string, want []string) []Result {
	secrets, err := hub.CoreV1().Secrets(access.Namespace).List(ctx, metav1.ListOptions{LabelSelector: access.SecretTypeLabel + "=" + access.SecretTypeCluster})
	if err != nil {
		return []Result{{Name: "Coordinator access", Detail: "cannot list the coordinator's Secrets: " + firstLine(err.Error()),
			Fix: "lockstep lab up (it registers the coordinator in every workload)"}}
	}
	grants, err := WorkloadGrants()
	if err != nil {
		return []Result{{Name: "Coordinator access", Detail: err.Error()}}
	}
	byName := map[string][]map[string][]byte{}
	for _, s := range secrets.Items {
		byName[string(s.Data["name"])] = append(byName[string(s.Data["name"])], s.Data)
	}
	names := slices.Clone(want)
	sort.Strings(names)
	var out []Result
	for _, w := range names {
		r := Result{Name: "Coordinator access to " + w, Fix: "re-register it: `lockstep lab up` (local) or `lockstep lab up --provider existing --from lockstep-coordinator`"}
		ds := byName[w]
		switch {
		case len(ds) == 0:
			r.Detail = "no cluster Secret for it in " + access.Namespace
			out = append(out, r)
			continue
		case len(ds) > 1:
			r.Detail = fmt.Sprintf("%d Secrets in %s register it; the coordinator holds until one is left", len(ds), access.Namespace)
			out = append(out, r)
			continue
		}
		cfg, err := restConfigFromSecret(ds[0])
		if err != nil {
			r.Detail = err.Error()
			out = append(out, r)
			continue
		}
		kc, err := kubernetes.NewForConfig(cfg)
		if err != nil {
			r.Detail = err.Error()
			out = append(out, r)
			continue
		}
		rev, err := kc.AuthorizationV1().SelfSubjectRulesReviews().Create(ctx, &authv1.SelfSubjectRulesReview{
			Spec: authv1.SelfSubjectRulesReviewSpec{Namespace: namespace}}, metav1.CreateOptions{})
		if err != nil {
			r.Detail = "rules review with the coordinator's token failed: " + firstLine(err.Error())
			out = append(out, r)
			continue
		}
		if rev.Status.Incomplete {
			r.Detail = "the member cannot list every rule (" + rev.Status.EvaluationError + "); not verifiable"
			out = append(out, r)
			continue
		}
		extra, missing := Excess(rev.Status.ResourceRules, grants)
		switch {
		case len(extra) > 0:
			r.Detail = "may do more than the workload role: " + strings.Join(extra, ", ")
			r.Fix = "remove the extra bindings of " + access.Namespace + "/" + access.ServiceAccount + " in " + w
		case len(missing) > 0:
			r.Detail = "lacks part of the workload role: " + strings.Join(missing, ", ")
		default:
			r.OK = true
			r.Detail = fmt.Sprintf("exactly the workload role in %s (%d grants): %s", namespace, len(grants), summary(grants))
		}
		if why := fleet.Insecure(cfg); why != "" {
			r.Warning, r.Detail = true, r.Detail+"; but "+why
			r.Fix = "register it with its CA and an https:// server"
		}
		out = append(out, r)
	}
	return out
}

// summary groups grants as "group/resource verb,verb".
func summary(grants map[string]bool) string {
	verbs := map[string][]string{}
	for g := range grants {
		res, verb, _ := strings.Cut(g, ":")
		verbs[res] = append(verbs[res], verb)
	}
	var parts []string
	for res, vs := range verbs {
		sort.Strings(vs)
		parts = append(parts, res+" "+strings.Join(vs, ","))
	}
	sort.Strings(parts)
	return strings.Join(parts, "; ")
}
