package plugin

import (
	"strings"

	"github.com/spf13/cobra"

	"github.com/cnrancher/docker-hangar/loader"
)

func newValidateCommand() *cobra.Command {
	f := &loadFlags{opts: loader.DefaultOptions()}
	cmd := &cobra.Command{
		Use:   "validate -s ARCHIVE -d REGISTRY [OPTIONS]",
		Short: "Check that the images of a Hangar archive are in a registry",
		Long: `Check that every selected image of a Hangar archive is in the registry: each
platform manifest, attestation, chart and file must exist, and be named by the
index at the image's tag. Prints PASS or an error per image.`,
		Example:               `  docker hangar load validate -s saved-images.zip -d registry.example.com -f images.txt`,
		Args:                  cobra.NoArgs,
		DisableFlagsInUseLine: true,
		RunE: func(cmd *cobra.Command, _ []string) error {
			opts, r, err := f.prepare(cmd, true)
			if err != nil {
				return err
			}
			log := r.log()
			ctx, events, stop := f.withInterrupt(cmd.Context(), log, opts.Events)
			opts.Events = events
			defer stop()
			log.infof(0, "Arch List: [%s]", strings.Join(opts.Arch, ","))
			log.infof(0, "OS List: [%s]", strings.Join(opts.OS, ","))
			res, err := loader.Validate(ctx, opts)
			r.close()
			if err != nil {
				return fatal(log, err.Error())
			}
			printSummary(log, res, false, true)
			if len(res.Failed) > 0 || res.Stopped != nil {
				return f.finishFailed(log, res, "Validate failed image list", "some images failed to validate")
			}
			log.infof(0, "Done")
			return nil
		},
	}
	f.addCommon(cmd, cmd.Flags())
	return cmd
}
