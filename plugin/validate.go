package plugin

import (
	"github.com/spf13/cobra"

	"github.com/cnrancher/docker-hangar/loader"
)

func newValidateCommand(f *loadFlags) *cobra.Command {
	return &cobra.Command{
		Use:   "validate -s ARCHIVE -d REGISTRY [flags]",
		Short: "Check that the images of a Hangar archive are in a registry",
		Long: `Check that every selected image of a Hangar archive is in the registry: each
platform manifest, attestation, chart and file must exist, and be named by the
index at the image's tag. Prints PASS or an error per image.`,
		Example: `  docker hangar load validate -s saved-images.zip -d registry.example.com -f images.txt`,
		Args:    cobra.NoArgs,
		RunE: func(cmd *cobra.Command, _ []string) error {
			opts, err := f.prepare(cmd)
			if err != nil {
				return err
			}
			ctx, stop := withInterrupt(cmd.Context(), cmd.ErrOrStderr())
			defer stop()
			res, err := loader.Validate(ctx, opts)
			if err != nil {
				return fatal(opts.Log, err.Error())
			}
			if len(res.Failed) > 0 || ctx.Err() != nil {
				return f.finishFailed(opts.Log, res.Failed, "Validate failed image list", "some images failed to validate")
			}
			opts.Log.Infof(0, "Done")
			return nil
		},
	}
}
