// Command lockstep runs multi-cluster canary upgrades in step. All behaviour
// lives in internal/cli; main only wires the process to it.
package main

import (
	"os"

	"lockstep.dev/lockstep/internal/cli"
)

func main() {
	os.Exit(cli.RunAs(os.Args[0], os.Args[1:], os.Stdin, os.Stdout, os.Stderr))
}
