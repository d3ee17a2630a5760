package plugin

import (
	"context"
	"errors"
	"fmt"
	"io"
	"time"

	"github.com/docker/cli/cli"
	"github.com/spf13/cobra"

	"github.com/cnrancher/docker-hangar/loader"
)

// loadFlags holds the flags of `load`, shared by `load validate`.
type loadFlags struct {
	opts        loader.Options
	failed      string
	report      string
	tlsVerify   optionalBool
	debug       bool
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

func newLoadCommand() *cobra.Command {
	f := &loadFlags{opts: loader.DefaultOptions()}
	cmd := &cobra.Command{
		Use:   "load -s ARCHIVE -d REGISTRY [flags]",
		Short: "Load images from a Hangar archive into a registry",
		Long: `Load the images of a Hangar archive (the zip written by 'hangar save') into a registry.

Platform manifests are merged into the index already at each destination tag, so
archives of different architectures loaded one after the other give one multi-arch
image. Credentials come from 'docker login'.`,
		Example: loadExample,
		Args:    cobra.NoArgs,
		RunE: func(cmd *cobra.Command, _ []string) error {
			return runLoad(cmd, f)
		},
	}
	flags := cmd.PersistentFlags()
	o := &f.opts
	flags.StringVarP(&o.Source, "source", "s", "", "saved archive filename")
	flags.StringVarP(&o.Destination, "destination", "d", "", "destination registry url")
	flags.StringVarP(&o.ImageList, "file", "f", "", "image list file (optional: load all images if not provided)")
	flags.StringSliceVarP(&o.Arch, "arch", "a", o.Arch, "architecture list of images")
	flags.StringSliceVar(&o.OS, "os", o.OS, "OS list of images")
	flags.IntVarP(&o.Jobs, "jobs", "j", 1, "worker number, copy images parallelly (1-20)")
	flags.StringVarP(&f.failed, "failed", "o", "load-failed.txt", "file name of the load failed image list")
	flags.StringVar(&o.Project, "project", "", "override all destination image projects")
	flags.StringVar(&o.SourceRegistry, "source-registry", "", "override the source registry of image list")
	flags.DurationVar(&o.Timeout, "timeout", o.Timeout, "fail a transfer that makes no progress for this long (0: never)")
	flags.BoolVar(&o.Provenance, "provenance", true, "load provenance (attestations) of images")
	flags.BoolVar(&o.Overwrite, "overwrite", false, "overwrite the existing index at the destination instead of merging")
	flags.Var(&f.tlsVerify, "tls-verify", "require HTTPS and verify certificates when talking to the registry (default: verify, loopback may use plain HTTP)")
	flags.Lookup("tls-verify").NoOptDefVal = "true"
	flags.BoolVar(&o.SkipLogin, "skip-login", false, "skip the check that docker credentials for the registry work")
	flags.BoolVar(&f.debug, "debug", false, "enable debug output")
	flags.BoolVar(&o.PlatformTags, "platform-tags", true, "also push each platform manifest to its own tag (TAG-linux-amd64, ...) as hangar does")
	flags.BoolVar(&o.DryRun, "dry-run", false, "print what would be loaded and write nothing to the registry")
	flags.StringVar(&f.report, "report", "", "write a JSON report of every image to this file")
	flags.BoolVar(&f.insecure, "insecure-policy", false, "accepted for compatibility with hangar (no signature policy is used)")
	flags.BoolVar(&f.hideLogTime, "hide-log-time", false, "print '-' instead of the time in log lines")
	flags.StringVar(&f.sigKey, "sigstore-private-key", "", "not supported: sign images with cosign")
	flags.StringVar(&f.sigPass, "sigstore-passphrase-file", "", "not supported: sign images with cosign")
	for _, name := range []string{"insecure-policy", "hide-log-time", "sigstore-private-key", "sigstore-passphrase-file"} {
		_ = flags.MarkHidden(name)
	}
	_ = cmd.MarkPersistentFlagFilename("source", "zip")
	_ = cmd.MarkPersistentFlagFilename("file", "txt")
	_ = cmd.MarkPersistentFlagFilename("failed")
	_ = cmd.MarkPersistentFlagFilename("report", "json")
	_ = cmd.RegisterFlagCompletionFunc("arch", cobra.FixedCompletions([]string{"amd64", "arm64", "arm", "386", "ppc64le", "s390x", "riscv64"}, cobra.ShellCompDirectiveNoFileComp))
	_ = cmd.RegisterFlagCompletionFunc("os", cobra.FixedCompletions([]string{"linux", "windows"}, cobra.ShellCompDirectiveNoFileComp))
	cmd.AddCommand(newValidateCommand(f))
	return cmd
}

// prepare checks the flags and completes the options.
func (f *loadFlags) prepare(cmd *cobra.Command) (loader.Options, error) {
	o := f.opts
	switch {
	case o.Source == "":
		return o, errors.New("source file not provided, use '--source' to specify the archive file")
	case o.Destination == "":
		return o, errors.New("destination registry not provided, use '--destination' to specify the registry")
	case f.sigKey != "" || f.sigPass != "":
		return o, errors.New("signing is not supported: load the images, then sign them with cosign (https://github.com/sigstore/cosign)")
	}
	o.Log = &loader.Logger{Out: cmd.OutOrStdout(), Err: cmd.ErrOrStderr(), Debug: f.debug, HideTime: f.hideLogTime}
	switch {
	case o.Jobs < 1:
		o.Log.Warnf(0, "invalid worker num: %d, set to 1", o.Jobs)
		o.Jobs = 1
	case o.Jobs > 20:
		o.Log.Warnf(0, "invalid worker num: %d, set to 20", o.Jobs)
		o.Jobs = 20
	}
	if o.Timeout < 0 {
		o.Timeout = 0
	}
	o.Registry.TLSVerify = f.tlsVerify.ptr()
	return o, nil
}

func runLoad(cmd *cobra.Command, f *loadFlags) error {
	opts, err := f.prepare(cmd)
	if err != nil {
		return err
	}
	ctx, stop := withInterrupt(cmd.Context(), cmd.ErrOrStderr())
	defer stop()
	var live *liveProgress
	if !opts.DryRun && isTerminal(cmd.OutOrStdout()) {
		// docker push-like live progress; log lines print above it
		live = newLiveProgress(cmd.OutOrStdout())
		opts.Log.Out = live.Writer()
		if isTerminal(cmd.ErrOrStderr()) {
			opts.Log.Err = opts.Log.Out
		}
		opts.Progress = live
	}
	res, err := loader.Load(ctx, opts)
	if live != nil {
		live.Close()
	}
	return f.finishLoad(ctx, cmd, opts, res, err)
}

// finishLoad reports the outcome of a load and returns the exit error.
func (f *loadFlags) finishLoad(ctx context.Context, cmd *cobra.Command, opts loader.Options, res *loader.Result, err error) error {
	if err != nil {
		return fatal(opts.Log, err.Error())
	}
	if f.report != "" {
		if err := loader.WriteReport(f.report, res); err != nil {
			opts.Log.Errorf(0, "write report: %v", err)
		}
	}
	if opts.DryRun {
		printPlan(cmd.OutOrStdout(), res)
	}
	printSummary(opts.Log, res)
	if ctx.Err() != nil || len(res.Failed) > 0 {
		return f.finishFailed(opts.Log, res.Failed, "Copy failed image list", "some images failed to copy")
	}
	opts.Log.Infof(0, "Done")
	return nil
}

// finishFailed logs and writes the failed list, and returns the exit error.
func (f *loadFlags) finishFailed(log *loader.Logger, failed []string, title, msg string) error {
	list := ""
	for _, k := range failed {
		list += "\n" + k
	}
	log.Errorf(0, "%s: %s", title, list)
	if err := loader.WriteFailedList(f.failed, failed); err != nil {
		log.Errorf(0, "write failed list: %v", err)
	} else {
		log.Infof(0, "Failed image list exported to %q", f.failed)
	}
	return fatal(log, msg)
}

// fatal returns the error that ends a command with status 1; docker (or
// Execute) prints it as Hangar's last FATA line.
func fatal(log *loader.Logger, msg string) error {
	return cli.StatusError{StatusCode: 1, Status: log.Line(loader.LevelFatal, 0, "%s", msg)}
}

func printSummary(log *loader.Logger, res *loader.Result) {
	var loaded, unchanged, failed, notAttempted int
	for _, ir := range res.Images {
		switch ir.Status {
		case loader.StatusLoaded:
			loaded++
		case loader.StatusUnchanged:
			unchanged++
		case loader.StatusFailed:
			failed++
		default:
			notAttempted++
		}
	}
	secs := res.Duration.Seconds()
	rate := 0.0
	if secs > 0 {
		rate = float64(res.Uploaded) / secs
	}
	log.Infof(0, "Summary: %d loaded, %d unchanged, %d failed, %d not attempted; uploaded %s, mounted %s, already present %s in %s (%s/s)",
		loaded, unchanged, failed, notAttempted, humanBytes(res.Uploaded), humanBytes(res.Mounted), humanBytes(res.Present),
		res.Duration.Round(time.Millisecond), humanBytes(int64(rate)))
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
			state = "would fail: " + ir.Err.Error()
		}
		fmt.Fprintf(w, "  %s <= %s: %d manifests, %s to upload, %s to mount, %s present (%s)\n",
			img.Reference, img.Source, len(img.Manifests), humanBytes(ir.Uploaded), humanBytes(ir.Mounted), humanBytes(ir.Present), state)
	}
}

func humanBytes(n int64) string {
	const unit = 1024
	if n < unit {
		return fmt.Sprintf("%d B", n)
	}
	div, exp := int64(unit), 0
	for m := n / unit; m >= unit; m /= unit {
		div *= unit
		exp++
	}
	return fmt.Sprintf("%.1f %ciB", float64(n)/float64(div), "KMGTPE"[exp])
}
