package plugin

import (
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
			return f.execute(cmd, true, loader.Validate, func(log *logger, _ loader.Options, res *loader.Result) error {
				printSummary(log, res, false, true)
				if len(res.Failed) > 0 || res.Stopped != nil {
					return f.finishFailed(log, res, "Validate failed image list", "some images failed to validate")
				}
				log.infof(0, "Done")
				return nil
			})
		},
	}
	f.addCommon(cmd, cmd.Flags())
	return cmd
}
