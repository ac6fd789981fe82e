// Package e2e holds the scenarios that run against a real local fleet. One
// fleet is started per test package (TestMain) through the real CLI binary
// and shared by every test; `go test -short` skips them and says why. It may
// import any lockstep package and client-go; nothing imports it.
package e2e
