// Package cli is the top of Lockstep's import graph: the cobra command tree.
// Each verb lives in its own sub-package with a flag struct and a
// NewCommand(streams) constructor; nothing imports this package except
// cmd/lockstep. Commands print for people on Out and report errors as one
// line on ErrOut.
package cli
