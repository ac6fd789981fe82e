// Command tiny stands in for lockstep in hack/image's tests: a static
// binary that links a package of k8s.io/client-go (so that its SBOM must
// list client-go) and builds in seconds.
package main

import (
	"fmt"

	"k8s.io/client-go/pkg/version"
)

func main() { fmt.Println(version.Get().GitVersion) }
