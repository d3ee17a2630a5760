//go:build !unix

package oras

import "os/exec"

// ownProcessGroup keeps exec's default cancellation (kill the helper) where
// process groups are not available.
func ownProcessGroup(*exec.Cmd) {}
