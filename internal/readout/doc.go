// Package readout reads what the dashboard's page and `lockstep status`
// both show, so that neither the terminal nor the page reads through the
// other: the hub's FleetRollouts (ListFleetRollouts) and every cluster's
// success rate and latency from Thanos Query (Metrics, for the page's plots
// and the terminal's sparklines).
//
// It imports the FleetRollout types, internal/analysis's Querier,
// controller-runtime's client and Prometheus' model; the web package
// (internal/dashboard) and the CLI import it.
package readout
