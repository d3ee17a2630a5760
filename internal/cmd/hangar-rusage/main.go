// Command hangar-rusage runs a command and reports its wall time and peak
// resident set size, like `/usr/bin/time -f '%e %M'` without depending on
// it:
//
//	hangar-rusage [-o FILE] -- COMMAND [ARGS...]
//
// The command's stdin, stdout and stderr are passed through. One line is
// written to FILE (stderr without -o): "WALL_SECONDS MAXRSS_KIB
// USER_SECONDS SYS_SECONDS EXIT_STATUS". hangar-rusage exits with the
// command's status. MAXRSS is the peak RSS of the command process itself
// (getrusage ru_maxrss of the waited child).
package main

import (
	"errors"
	"flag"
	"fmt"
	"os"
	"os/exec"
	"syscall"
	"time"
)

func main() {
	out := flag.String("o", "", "append the measurement line to this file")
	flag.Parse()
	args := flag.Args()
	if len(args) == 0 {
		fmt.Fprintln(os.Stderr, "usage: hangar-rusage [-o FILE] -- COMMAND [ARGS...]")
		os.Exit(2)
	}
	cmd := exec.Command(args[0], args[1:]...)
	cmd.Stdin, cmd.Stdout, cmd.Stderr = os.Stdin, os.Stdout, os.Stderr
	start := time.Now()
	err := cmd.Run()
	wall := time.Since(start)
	status := 0
	if err != nil {
		var ee *exec.ExitError
		if !errors.As(err, &ee) {
			fmt.Fprintln(os.Stderr, "hangar-rusage:", err)
			os.Exit(127)
		}
		status = ee.ExitCode()
		if status < 0 {
			status = 128 // killed by a signal
		}
	}
	var maxrss int64
	var user, sys time.Duration
	if ru, ok := cmd.ProcessState.SysUsage().(*syscall.Rusage); ok {
		maxrss = int64(ru.Maxrss) // KiB on Linux
		user, sys = cmd.ProcessState.UserTime(), cmd.ProcessState.SystemTime()
	}
	line := fmt.Sprintf("%.3f %d %.3f %.3f %d\n", wall.Seconds(), maxrss, user.Seconds(), sys.Seconds(), status)
	if *out == "" {
		fmt.Fprint(os.Stderr, line)
	} else {
		f, ferr := os.OpenFile(*out, os.O_APPEND|os.O_CREATE|os.O_WRONLY, 0o644)
		if ferr == nil {
			_, ferr = f.WriteString(line)
			if cerr := f.Close(); ferr == nil {
				ferr = cerr
			}
		}
		if ferr != nil {
			fmt.Fprintln(os.Stderr, "hangar-rusage:", ferr)
			os.Exit(127)
		}
	}
	os.Exit(status)
}
