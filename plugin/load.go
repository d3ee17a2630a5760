package plugin

import (
	"context"
	"errors"
	"fmt"
	"io"
	"os"
	"slices"
	"strings"
	"sync"
	"time"

	"github.com/docker/cli/cli"
	"github.com/docker/go-units"
	"github.com/spf13/cobra"
	"github.com/spf13/pflag"

	"github.com/cnrancher/docker-hangar/loader"
	"github.com/cnrancher/docker-hangar/oras"
)

// loadFlags holds the flags of `load` or `load validate`.
type loadFlags struct {
	opts        loader.Options
	failed      string
	report      string
	progress    string
	chunkSize   string
	tlsVerify   optionalBool
	hideLogTime bool
	insecure    bool
	sigKey      string
	sigPass     string
}

const loadExample = `  # Load every image of an archive
  docker hangar load -s saved-images.zip -d registry.example.com

  # Load the images of a list, amd64 only, 4 images at a time
  docker hangar load -s saved-images.zip -d registry.example.com -f images.txt -a amd64 -j 4

  # Check what is in the registry afterwards
  docker hangar load validate -s saved-images.zip -d registry.example.com`

// defaultFailedList is where the failed list goes (-o), as in Hangar.
const defaultFailedList = "load-failed.txt"

func newLoadCommand() *cobra.Command {
	f := &loadFlags{opts: loader.DefaultOptions()}
	cmd := &cobra.Command{
		Use:   "load -s ARCHIVE -d REGISTRY [OPTIONS]",
		Short: "Load images from a Hangar archive into a registry",
		Long: `Load the images of a Hangar archive (the zip written by 'hangar save') into a registry.

Platform manifests are merged into the index already at each destination tag, so
archives of different architectures loaded one after the other give one multi-arch
image. Credentials come from 'docker login'.`,
		Example:               loadExample,
		Args:                  cobra.NoArgs,
		DisableFlagsInUseLine: true,
		RunE: func(cmd *cobra.Command, _ []string) error {
			return runLoad(cmd, f)
		},
	}
	fs := cmd.Flags()
	f.addCommon(cmd, fs)
	o := &f.opts
	fs.BoolVar(&o.Overwrite, "overwrite", o.Overwrite, "overwrite the existing index at the destination instead of merging")
	fs.BoolVar(&o.PlatformTags, "platform-tags", o.PlatformTags, "also push each platform manifest to its own tag (TAG-linux-amd64, ...) as hangar does")
	fs.BoolVar(&o.DryRun, "dry-run", o.DryRun, "print what would be loaded and write nothing to the registry")
	fs.StringVar(&f.report, "report", "", "write a JSON report of every image to this file")
	fs.StringVar(&f.chunkSize, "max-chunk-size", "", "upload blobs in chunks of at most this size (e.g. 50MiB), for proxies that limit request bodies (default: one request per blob; chunks after a 413)")
	fs.StringVar(&f.sigKey, "sigstore-private-key", "", "not supported: sign images with cosign")
	fs.StringVar(&f.sigPass, "sigstore-passphrase-file", "", "not supported: sign images with cosign")
	for _, name := range []string{"sigstore-private-key", "sigstore-passphrase-file"} {
		_ = fs.MarkHidden(name)
	}
	_ = cmd.MarkFlagFilename("report", "json")
	cmd.AddCommand(newValidateCommand())
	// docker's template shows a command with subcommands as
	// "load [OPTIONS] COMMAND"; load is used with its flags.
	cmd.SetUsageTemplate(loadUsageTemplate)
	cmd.SetHelpTemplate("{{.UsageString}}")
	return cmd
}

// loadUsageTemplate is docker's usage layout for a command that is run
// itself and also has a subcommand; it uses cobra's own template
// functions only, so it works standalone too.
const loadUsageTemplate = `Usage:  {{.UseLine}}
{{- range .Commands}}{{if .IsAvailableCommand}}
        {{.UseLine}}{{end}}{{end}}

{{.Long | trimTrailingWhitespaces}}
{{- if .HasExample}}

Examples:
{{.Example}}
{{- end}}

Options:
{{.LocalFlags.FlagUsages | trimTrailingWhitespaces}}
{{- if .HasAvailableSubCommands}}

Commands:
{{- range .Commands}}{{if .IsAvailableCommand}}
  {{rpad .Name .NamePadding}} {{.Short}}{{end}}{{end}}

Run '{{.CommandPath}} COMMAND --help' for more information on a command.
{{- end}}
`

// addCommon defines the flags that load and validate share; their
// defaults are loader.DefaultOptions'.
func (f *loadFlags) addCommon(cmd *cobra.Command, fs *pflag.FlagSet) {
	o := &f.opts
	fs.StringVarP(&o.Source, "source", "s", "", "saved archive filename (required)")
	fs.StringVarP(&o.Destination, "destination", "d", "", "destination registry url, host[:port][/prefix] (required)")
	fs.StringVarP(&o.ImageList, "file", "f", "", "image list file (optional: load all images if not provided)")
	fs.StringSliceVarP(&o.Arch, "arch", "a", o.Arch, "architecture list of images")
	fs.StringSliceVar(&o.OS, "os", o.OS, "OS list of images")
	fs.IntVarP(&o.Jobs, "jobs", "j", o.Jobs, fmt.Sprintf("worker number, copy images parallelly (%d-%d)", loader.MinJobs, loader.MaxJobs))
	fs.StringVarP(&f.failed, "failed", "o", defaultFailedList, "file name of the failed image list")
	fs.StringVar(&o.Project, "project", "", "override all destination image projects")
	fs.StringVar(&o.SourceRegistry, "source-registry", "", "override the source registry of image list")
	fs.DurationVar(&o.Timeout, "timeout", o.Timeout, "fail a transfer that makes no progress for this long (0: never)")
	fs.BoolVar(&o.Provenance, "provenance", o.Provenance, "load provenance (attestations) of images")
	fs.Var(&f.tlsVerify, "tls-verify", "require HTTPS and verify certificates when talking to the registry (default: verify, loopback may use plain HTTP)")
	fs.Lookup("tls-verify").NoOptDefVal = "true"
	fs.BoolVar(&o.SkipLogin, "skip-login", o.SkipLogin, "skip the check that docker credentials for the registry work")
	fs.BoolVar(&o.Debug, "debug", false, "enable debug output")
	fs.StringVar(&f.progress, "progress", progressAuto, "progress output: "+strings.Join(progressModes, ", ")+" (auto: tty on a terminal, else plain; json: one JSON event per line on stdout)")
	fs.BoolVar(&f.insecure, "insecure-policy", false, "accepted for compatibility with hangar (no signature policy is used)")
	fs.BoolVar(&f.hideLogTime, "hide-log-time", false, "print '-' instead of the time in log lines")
	for _, name := range []string{"insecure-policy", "hide-log-time"} {
		_ = fs.MarkHidden(name)
	}
	_ = cmd.MarkFlagFilename("source", "zip")
	_ = cmd.MarkFlagFilename("file", "txt")
	_ = cmd.MarkFlagFilename("failed")
	_ = cmd.RegisterFlagCompletionFunc("arch", cobra.FixedCompletions([]string{"amd64", "arm64", "arm", "386", "ppc64le", "s390x", "riscv64"}, cobra.ShellCompDirectiveNoFileComp))
	_ = cmd.RegisterFlagCompletionFunc("os", cobra.FixedCompletions([]string{"linux", "windows"}, cobra.ShellCompDirectiveNoFileComp))
	_ = cmd.RegisterFlagCompletionFunc("progress", cobra.FixedCompletions(progressModes, cobra.ShellCompDirectiveNoFileComp))
}

// prepare checks the flags, completes the options and makes the renderer;
// anything that cannot work is refused here, before any request.
func (f *loadFlags) prepare(cmd *cobra.Command, validate bool) (loader.Options, renderer, error) {
	o := f.opts
	switch {
	case o.Source == "":
		return o, nil, errors.New("source file not provided, use '--source' to specify the archive file")
	case o.Destination == "":
		return o, nil, errors.New("destination registry not provided, use '--destination' to specify the registry")
	case f.sigKey != "" || f.sigPass != "":
		return o, nil, errors.New("signing is not supported: load the images, then sign them with cosign (https://github.com/sigstore/cosign)")
	case !slices.Contains(progressModes, f.progress):
		return o, nil, fmt.Errorf("invalid --progress %q: use one of %s", f.progress, strings.Join(progressModes, ", "))
	}
	o.Registry.TLSVerify = f.tlsVerify.ptr()
	if f.chunkSize != "" {
		n, err := units.RAMInBytes(f.chunkSize)
		if err != nil || n < oras.MinChunkSize {
			return o, nil, fmt.Errorf("invalid --max-chunk-size %q: give a size of at least %s, such as 50MiB", f.chunkSize, humanBytes(oras.MinChunkSize))
		}
		o.Registry.MaxChunkSize = n
	}
	o.Jobs = min(max(o.Jobs, loader.MinJobs), loader.MaxJobs)
	if err := o.Check(); err != nil {
		return o, nil, err
	}
	for _, p := range []struct{ flag, path string }{{"--failed", f.failed}, {"--report", f.report}} {
		if err := checkWritable(p.path); err != nil {
			return o, nil, fmt.Errorf("%s: %s", p.flag, quoteControl(err.Error()))
		}
	}
	r := newRenderer(f.progress, cmd.OutOrStdout(), cmd.ErrOrStderr(), o.Debug, f.hideLogTime, validate)
	if f.opts.Jobs != o.Jobs {
		r.log().warnf(0, "invalid worker num: %d, set to %d", f.opts.Jobs, o.Jobs)
	}
	o.Events = r.event
	return o, r, nil
}

// checkWritable reports a path that cannot be written, without leaving a
// file behind: an existing file is opened for writing (not truncated), a
// missing one is created and removed.
func checkWritable(path string) error {
	if path == "" {
		return nil
	}
	if fi, err := os.Stat(path); err == nil {
		if !fi.Mode().IsRegular() {
			return fmt.Errorf("%s is not a regular file", path)
		}
		fh, err := os.OpenFile(path, os.O_WRONLY, 0)
		if err != nil {
			return err
		}
		return fh.Close()
	}
	fh, err := os.OpenFile(path, os.O_WRONLY|os.O_CREATE|os.O_EXCL, 0o644)
	if err != nil {
		return err
	}
	fh.Close()
	return os.Remove(path)
}

// execute runs a load or a validation (run) with the flags: it makes the
// options and the renderer, handles signals, prints Hangar's filter lines,
// then ends with finish once the renderer is closed.
func (f *loadFlags) execute(cmd *cobra.Command, validate bool, run func(context.Context, loader.Options) (*loader.Result, error), finish func(*logger, loader.Options, *loader.Result) error) error {
	opts, r, err := f.prepare(cmd, validate)
	if err != nil {
		return err
	}
	log := r.log()
	ctx, events, stop := f.withInterrupt(cmd.Context(), log, opts.Events)
	opts.Events = events
	defer stop()
	log.infof(0, "Arch List: [%s]", strings.Join(opts.Arch, ","))
	log.infof(0, "OS List: [%s]", strings.Join(opts.OS, ","))
	res, err := run(ctx, opts)
	r.close()
	if err != nil {
		return fatal(log, err.Error())
	}
	return finish(log, opts, res)
}

func runLoad(cmd *cobra.Command, f *loadFlags) error {
	return f.execute(cmd, false, loader.Load, func(log *logger, opts loader.Options, res *loader.Result) error {
		if f.report != "" {
			if err := loader.WriteReport(f.report, res); err != nil {
				log.errorf(0, "write report: %v", err)
			}
		}
		if opts.DryRun && f.progress != progressJSON { // stdout holds only JSON
			printPlan(cmd.OutOrStdout(), res)
		}
		printSummary(log, res, opts.DryRun, false)
		if len(res.Failed) > 0 || res.Stopped != nil {
			return f.finishFailed(log, res, "Copy failed image list", "some images failed to copy")
		}
		log.infof(0, "Done")
		return nil
	})
}

// finishFailed logs and writes the failed list, and returns the exit
// error: status 130 when the load was interrupted, else 1.
func (f *loadFlags) finishFailed(log *logger, res *loader.Result, title, msg string) error {
	log.block(levelError, title, res.FailedKeys())
	if err := loader.WriteFailedList(f.failed, res.Failed); err != nil {
		log.errorf(0, "write failed list: %v", err)
	} else {
		log.infof(0, "Failed image list exported to %q", f.failed)
	}
	if isInterrupt(res.Stopped) {
		return cli.StatusError{StatusCode: 130, Status: log.line(levelFatal, 0, "%s", "interrupted: "+msg)}
	}
	return fatal(log, msg)
}

// fatal returns the error that ends a command with status 1; docker (or
// Execute) prints it as Hangar's last FATA line.
func fatal(log *logger, msg string) error {
	return cli.StatusError{StatusCode: 1, Status: log.line(levelFatal, 0, "%s", msg)}
}

// printSummary logs the counts of a result, which add up to the images
// planned and the lines of the failed list.
func printSummary(log *logger, res *loader.Result, dryRun, validate bool) {
	s := res.Summary()
	var parts []string
	add := func(n int, what string) {
		if n > 0 || what == "failed" {
			parts = append(parts, fmt.Sprintf("%d %s", n, what))
		}
	}
	switch {
	case validate:
		add(s.Loaded, "passed")
	case dryRun:
		add(s.Loaded, "would load")
		add(s.Unchanged, "up to date")
	default:
		add(s.Loaded, "loaded")
		add(s.Unchanged, "unchanged")
	}
	add(s.Failed, "failed")
	add(s.NotInArchive, "not in archive")
	add(s.Interrupted, "interrupted")
	add(s.NotAttempted, "not attempted")
	title := "Summary"
	if dryRun {
		title = "Summary (dry run)"
	}
	if validate {
		log.infof(0, "%s: %s in %s", title, strings.Join(parts, ", "), res.Duration.Round(1e6))
		return
	}
	secs := res.Duration.Seconds()
	rate := 0.0
	if secs > 0 {
		rate = float64(res.Uploaded) / secs
	}
	verb := "uploaded"
	if dryRun {
		verb = "to upload"
	}
	log.infof(0, "%s: %s; %s %s, mounted %s, already present %s in %s (%s/s)",
		title, strings.Join(parts, ", "), verb, humanBytes(res.Uploaded), humanBytes(res.Mounted), humanBytes(res.Present),
		res.Duration.Round(1e6), humanBytes(int64(rate)))
}

func printPlan(w io.Writer, res *loader.Result) {
	fmt.Fprintln(w, "Dry run: nothing was written to the registry. Plan:")
	for _, img := range res.Plan.Images {
		ir := res.Images[img]
		state := "would load"
		switch ir.Status {
		case loader.StatusUnchanged:
			state = "up to date"
		case loader.StatusFailed:
			state = "would fail: " + quoteControl(ir.Err.Error())
		}
		fmt.Fprintf(w, "  %s <= %s: %d manifests, %s to upload, %s to mount, %s present (%s)\n",
			quoteControl(img.Reference()), quoteControl(img.Source), len(img.Manifests()), humanBytes(ir.Uploaded), humanBytes(ir.Mounted), humanBytes(ir.Present), state)
	}
}

// humanBytes formats a size in binary units, as docker does.
func humanBytes(n int64) string { return units.BytesSize(float64(n)) }

// stopGrace is how long the command waits, after the first signal, for
// the load to stop before it exits anyway.
const stopGrace = 5 * time.Second

// withInterrupt cancels ctx on the first SIGINT or SIGTERM, with the cause
// errInterrupted, telling the user through log (above any progress bars).
// A second signal, or the load not stopping within stopGrace (a blocking
// step that ignores cancellation), exits at once with status 130, after
// writing a failed list of every planned line to failed. The returned
// handler passes events on to events, noting the plan.
func (f *loadFlags) withInterrupt(ctx context.Context, log *logger, events loader.EventHandler) (context.Context, loader.EventHandler, func()) {
	var mu sync.Mutex
	var plan *loader.Plan
	handler := func(ev loader.Event) {
		if p, ok := ev.(loader.Planned); ok {
			mu.Lock()
			plan = p.Plan
			mu.Unlock()
		}
		events(ev)
	}
	exit := func(why string) {
		log.errorf(0, "docker hangar %s", why)
		mu.Lock()
		defer mu.Unlock()
		if plan == nil {
			return
		}
		var all []loader.Failure
		for _, l := range plan.Lines {
			all = append(all, loader.Failure{Key: l.Key, Status: loader.StatusNotAttempted})
		}
		if err := loader.WriteFailedList(f.failed, all); err == nil {
			log.infof(0, "Failed image list (every line) exported to %q", f.failed)
		}
	}
	ctx, stop := notifyInterrupt(ctx, stopGrace, func(what string) {
		log.warnf(0, "Abort: [%s] received, stopping: images not loaded go to the failed list", what)
		log.warnf(0, "Use 'Ctrl-C' again to force exit (not recommended)")
	}, exit)
	return ctx, handler, stop
}
