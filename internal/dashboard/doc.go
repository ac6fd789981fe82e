// Package dashboard serves the web page of a fleet canary: an index of the
// hub's FleetRollouts and one live page per FleetRollout (or per Rollout
// read directly in every cluster, without a coordinator). The page shows a
// row per member cluster (phase, step, weights, images, pods, reachability
// and the judge's evidence), plots every cluster's canary weight as a step
// chart and its success rate and latency from Thanos Query over time, the
// barrier's hold countdown, the coordinator's decisions and the hub's
// Events, and has buttons for the fleet-wide verbs.
//
// The server holds no state of its own that matters: every picture is read
// from the API servers (through a Source) and the plots' points are a
// bounded in-memory cache of what it read. Pages update over server-sent
// events. Actions need the per-run token the command printed (a cookie set
// from the URL, sent back in a header, so a page of another site can
// neither read nor forge it), and are off on a non-loopback address unless
// the caller allows them.
//
// The HTML, CSS and script are embedded (go:embed); the charting library is
// uPlot, vendored as its own built files with its licence
// (hack/fetch-uplot.sh re-fetches them pinned). There is no build step.
//
// Off loopback (Options.Exposed) every read needs the token too, the Host
// must be an IP address or an allowed name, and page streams are bounded;
// an action never waits for a tracker slot.
//
// It imports the pure view model (internal/view), the readings it shares
// with the terminal (internal/readout: the Thanos sampler and the
// FleetRollout lister), the FleetRollout types and controller-runtime's
// client for StatusSource; it is a leaf that serves pages, and only the CLI
// imports it. The CLI (internal/cli/dashboard) provides the Source that
// reads members directly and runs the verbs; `lockstep coordinator`
// serves StatusSource read-only.
package dashboard
