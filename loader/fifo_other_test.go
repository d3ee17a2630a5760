//go:build !unix

package loader_test

import "errors"

func mkfifo(string) error { return errors.New("no FIFOs on this system") }

func unblockFIFO(string) {}
