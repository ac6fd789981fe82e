package status

import "lockstep.dev/lockstep/internal/readout"

// DefaultThanosQuery is the success rate of the requests a cluster's pods
// served (Istio's destination side, as meshsim and Istio export it) over
// the last minute; {{cluster}} becomes the cluster's destination_cluster
// value. It is the dashboard's success-rate plot's query: the live view
// and the page draw the same numbers.
const DefaultThanosQuery = readout.DefaultRateQuery
