// Package plugin is the command layer of docker hangar: the cobra commands
// `docker hangar load` and `docker hangar load validate`, and the glue that
// makes the binary a Docker CLI plugin or a standalone program. It only
// turns flags into loader.Options and results into output and exit codes.
package plugin

import (
	"context"
	"errors"
	"fmt"
	"io"
	"os"
	"os/signal"
	"strings"
	"syscall"
	"time"

	"github.com/docker/cli/cli"
	"github.com/docker/cli/cli-plugins/metadata"
	"github.com/docker/cli/cli-plugins/plugin"
	"github.com/docker/cli/cli/command"
	"github.com/spf13/cobra"
)

// Version is the release version, set at build time.
var Version = "dev"

// Metadata describes the plugin to the docker CLI.
func Metadata() metadata.Metadata {
	return metadata.Metadata{
		SchemaVersion:    "0.1.0",
		Vendor:           "docker hangar",
		Version:          Version,
		ShortDescription: "Load Hangar archives into a registry",
		URL:              "https://github.com/cnrancher/docker-hangar",
	}
}

// NewRootCommand returns the `hangar` command with its subcommands.
func NewRootCommand() *cobra.Command {
	root := &cobra.Command{
		Use:           "hangar COMMAND",
		Short:         "Load Hangar archives into a registry",
		Long:          "docker hangar loads the archives written by `hangar save` into a private registry,\nleaving the registry as `hangar load` would, faster and more reliably.",
		SilenceUsage:  true,
		SilenceErrors: true,
		Version:       Version,
		Args:          unknownCommand,
		RunE: func(cmd *cobra.Command, _ []string) error {
			return cmd.Help()
		},
		DisableFlagsInUseLine: true,
		// suggest "load" for "lod", as docker does
		SuggestionsMinimumDistance: 2,
	}
	root.AddCommand(newLoadCommand())
	return root
}

// unknownCommand refuses arguments that name no subcommand, as docker
// does for `docker imag`: exit status 1, with suggestions.
func unknownCommand(cmd *cobra.Command, args []string) error {
	if len(args) == 0 {
		return nil
	}
	msg := fmt.Sprintf("%s: unknown command: %s %s", cmd.CommandPath(), cmd.CommandPath(), args[0])
	if s := cmd.SuggestionsFor(args[0]); len(s) > 0 {
		msg += "\n\nDid you mean this?\n\t" + strings.Join(s, "\n\t")
	}
	msg += fmt.Sprintf("\n\nRun '%s --help' for more information", cmd.CommandPath())
	return cli.StatusError{StatusCode: 1, Status: msg}
}

// Main runs the binary: as a docker CLI plugin when docker starts it, else
// standalone (`docker-hangar load ...`). It returns the exit status.
func Main(args []string) int {
	if os.Getenv("GOGC") == "" {
		tuneGC()
	}
	if !plugin.RunningStandalone() || (len(args) > 0 && args[0] == "hangar") {
		plugin.Run(func(command.Cli) *cobra.Command { return NewRootCommand() }, Metadata())
		return 0
	}
	root := NewRootCommand()
	root.Use = "docker-hangar"
	root.SetArgs(args)
	return Execute(root, os.Stderr)
}

// Execute runs a command tree and maps its error to an exit status (a
// cli.StatusError carries its own), printing the error to stderr.
func Execute(root *cobra.Command, stderr io.Writer) int {
	err := root.ExecuteContext(context.Background())
	if err == nil {
		return 0
	}
	if msg := err.Error(); msg != "" {
		fmt.Fprintln(stderr, msg)
	}
	var status cli.StatusError
	if errors.As(err, &status) && status.StatusCode != 0 {
		return status.StatusCode
	}
	return 1
}

// notifyInterrupt cancels ctx on the first SIGINT or SIGTERM, or when
// parent is cancelled (docker closes a plugin's socket when it gets a
// signal and its output is no terminal), with the cause errInterrupted,
// after calling first with what was received. A second signal, or grace
// passing without the returned stop function being called, calls exit
// (with why) and exits at once with status 130.
func notifyInterrupt(parent context.Context, grace time.Duration, first func(what string), exit func(why string)) (context.Context, func()) {
	ctx, cancel := context.WithCancelCause(context.WithoutCancel(parent))
	ch := make(chan os.Signal, 2)
	signal.Notify(ch, os.Interrupt, syscall.SIGTERM)
	done := make(chan struct{})
	go func() {
		signals := 0
		select {
		case s := <-ch:
			first(s.String())
			signals++
		case <-parent.Done():
			first("stop request from docker")
		case <-done:
			return
		}
		cancel(errInterrupted)
		timer := time.NewTimer(grace)
		defer timer.Stop()
		// Ctrl-C in a pipe signals the plugin and makes docker close its
		// socket: in either order, it takes a second signal to force
		for signals < 2 {
			select {
			case <-ch:
				signals++
			case <-timer.C:
				exit(fmt.Sprintf("did not stop within %s: exiting", grace))
				os.Exit(130)
			case <-done:
				return
			}
		}
		exit("was forced to stop")
		os.Exit(130)
	}()
	return ctx, func() {
		signal.Stop(ch)
		close(done)
		cancel(nil)
	}
}

// errInterrupted is the cause of a load stopped by a signal.
var errInterrupted = errors.New("interrupted")
