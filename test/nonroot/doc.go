// Package nonroot runs `lockstep lab up` as an unprivileged user (uid 65534,
// through setpriv) with the real binary, and checks that the fleet then has
// no server on a non-loopback address of the host: Argo CD's
// application-controller and the Argo Rollouts controllers, which bind
// 0.0.0.0, run in the private network namespace made from a user namespace.
// It also checks that --no-netns without --bare is refused. The tests need
// root (to switch users) and the component cache; under -short they skip
// and say why. It may import lockstep's internal packages and client-go;
// nothing imports it.
package nonroot
