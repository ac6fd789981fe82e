// Package streams holds the I/O triple every command receives, so commands
// never touch os.Stdout directly and golden tests can capture them. It
// imports only the standard library.
package streams

import "io"

// IO is the standard input, output and error of a command.
type IO struct {
	In     io.Reader
	Out    io.Writer
	ErrOut io.Writer
}
