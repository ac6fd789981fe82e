package readout

import (
	"context"
	"fmt"

	apierrors "k8s.io/apimachinery/pkg/api/errors"
	"k8s.io/apimachinery/pkg/api/meta"
	"sigs.k8s.io/controller-runtime/pkg/client"

	v1alpha1 "lockstep.dev/lockstep/api/v1alpha1"
)

// ListFleetRollouts lists the hub's FleetRollouts: in every namespace when
// all is set and the hub allows it, else in namespace. A hub without the
// FleetRollout CRD has none.
func ListFleetRollouts(ctx context.Context, hub client.Reader, namespace string, all bool) ([]v1alpha1.FleetRollout, error) {
	var list v1alpha1.FleetRolloutList
	var err error
	if all {
		err = hub.List(ctx, &list)
	}
	if !all || apierrors.IsForbidden(err) {
		err = hub.List(ctx, &list, client.InNamespace(namespace))
	}
	if err != nil {
		if meta.IsNoMatchError(err) || apierrors.IsNotFound(err) {
			return nil, nil
		}
		return nil, fmt.Errorf("list fleetrollouts on the hub: %w", err)
	}
	return list.Items, nil
}
