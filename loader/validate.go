package loader

import (
	"context"
	"errors"
	"fmt"
	"sync"

	"golang.org/x/sync/semaphore"

	"github.com/cnrancher/docker-hangar/manifest"
	"github.com/cnrancher/docker-hangar/oras"
)

// ErrValidation is returned for an image that is not fully in the
// destination.
var ErrValidation = errors.New("validation failed")

// Validate checks that every image of the plan is in the destination: each
// selected platform manifest, attestation (with provenance), chart and file
// must exist in its repository, and, for images with an index, be named by
// the index at the main tag. Misses are reported per image in the Result,
// as for a load.
//
// References: hangar-load.md section 3, decisions.md D4.
func Validate(ctx context.Context, opts Options) (*Result, error) {
	ar, plan, err := Open(opts)
	if err != nil {
		return nil, err
	}
	defer ar.Close()
	res, reg, err := begin(ctx, plan, opts)
	if err != nil {
		return nil, err
	}
	jobs := max(opts.Jobs, 1)
	sem := semaphore.NewWeighted(int64(jobs))
	var wg sync.WaitGroup
	for _, img := range plan.Images {
		if err := sem.Acquire(ctx, 1); err != nil {
			break
		}
		wg.Add(1)
		go func() {
			defer wg.Done()
			defer sem.Release(1)
			ir := res.Images[img]
			ir.Status = StatusLoaded
			if err := validateImage(ctx, reg, img); err != nil {
				ir.Status, ir.Err = StatusFailed, err
				if ctx.Err() != nil {
					ir.Status = StatusNotAttempted
				}
				for _, l := range img.Lines {
					opts.Log.Errorf(l.Number, "%v", err)
				}
			} else {
				for _, l := range img.Lines {
					opts.Log.Infof(l.Number, "PASS: [%s]", l.Source)
				}
			}
		}()
	}
	wg.Wait()
	res.Failed = failedKeys(plan, res)
	return res, nil
}

func validateImage(ctx context.Context, reg *oras.Registry, img *Image) error {
	if img.Err != nil {
		return fmt.Errorf("image [%s]: %w", img.Source, img.Err)
	}
	if len(img.Manifests) == 0 {
		return nil
	}
	repo, err := reg.Repository(img.Repository)
	if err != nil {
		return err
	}
	var existing *manifest.Existing
	if img.Tag != "" && !img.SkipIndex {
		desc, body, err := repo.FetchManifest(ctx, img.Tag)
		if errors.Is(err, oras.ErrNotFound) {
			return fmt.Errorf("image [%s] does not exists in destination registry server: %w", img.Reference, ErrValidation)
		}
		if err != nil {
			return fmt.Errorf("image [%s]: %w", img.Reference, err)
		}
		if existing, err = manifest.ParseExisting(desc.MediaType, body); err != nil {
			return fmt.Errorf("image [%s]: %w", img.Reference, err)
		}
	}
	for _, m := range img.Manifests {
		desc := manifestDescriptor(m)
		if img.SkipIndex && img.Tag != "" {
			got, err := repo.ResolveManifest(ctx, img.Tag)
			if err != nil && !errors.Is(err, oras.ErrNotFound) {
				return fmt.Errorf("image [%s]: %w", img.Reference, err)
			}
			if err != nil || got.Digest != desc.Digest {
				return fmt.Errorf("image [%s] digest [%s] does not exists in destination registry: %w", img.Reference, desc.Digest, ErrValidation)
			}
			continue
		}
		if img.Tag != "" && !existing.HasDigest(desc.Digest) {
			return fmt.Errorf("image [%s] digest [%s] (%s) is not in the destination index: %w", img.Reference, desc.Digest, platformString(m.Descriptor.Platform), ErrValidation)
		}
		ok, err := repo.ManifestExists(ctx, desc)
		if err != nil {
			return fmt.Errorf("image [%s]: %w", img.Reference, err)
		}
		if !ok {
			return fmt.Errorf("image [%s] digest [%s] (%s) does not exists in destination registry: %w", img.Reference, desc.Digest, platformString(m.Descriptor.Platform), ErrValidation)
		}
	}
	return nil
}

// failedKeys returns the failed list of a result: the lines whose image did
// not load (or validate), in line order, each once. Image-list misses and
// images never attempted record the raw line, failed images their
// source:tag (as Hangar does).
func failedKeys(plan *Plan, res *Result) []string {
	var keys []string
	seen := map[string]bool{}
	for _, l := range plan.Lines {
		key := l.Key
		if l.Err == nil {
			ir := res.Images[l.Image]
			if ir.Status == StatusLoaded || ir.Status == StatusUnchanged {
				continue
			}
			if ir.Status == StatusFailed {
				key = l.Source
			}
		}
		if !seen[key] {
			seen[key] = true
			keys = append(keys, key)
		}
	}
	return keys
}
