package loader

import (
	"context"
	"errors"
	"fmt"
	"sync"
	"time"

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
	if err := opts.Check(); err != nil {
		return nil, err
	}
	em := newEmitter(opts.Events)
	ar, plan, err := Open(opts)
	if err != nil {
		return nil, err
	}
	defer ar.Close()
	em.emit(Planned{Plan: plan})
	reg, err := connect(ctx, plan, opts, em, true)
	if err != nil {
		return nil, err
	}
	start := time.Now()
	res := newResult(plan)
	sem := semaphore.NewWeighted(int64(max(opts.Jobs, 1)))
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
			em.emit(ImageStarted{Image: img})
			ir.Status = StatusLoaded
			if err := validateImage(ctx, reg, img); err != nil {
				ir.Status, ir.Err = StatusFailed, err
				if ctx.Err() != nil {
					ir.Status = StatusInterrupted
				}
			}
			em.emit(ImageDone{Image: img, Result: ir})
		}()
	}
	wg.Wait()
	if ctx.Err() != nil {
		res.Stopped = context.Cause(ctx)
		em.emit(Stopped{Err: res.Stopped})
	}
	res.Failed = failures(plan, res)
	res.Duration = time.Since(start)
	em.emit(LoadDone{Result: res})
	return res, nil
}

func validateImage(ctx context.Context, reg Registry, img *Image) error {
	if img.Err != nil {
		return fmt.Errorf("image [%s]: %w", img.Source, img.Err)
	}
	manifests := img.Manifests()
	if len(manifests) == 0 {
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
			return fmt.Errorf("image [%s] does not exists in destination registry server: %w", img.Reference(), ErrValidation)
		}
		if err != nil {
			return fmt.Errorf("image [%s]: %w", img.Reference(), err)
		}
		if existing, err = manifest.ParseExisting(desc.MediaType, body); err != nil {
			return fmt.Errorf("image [%s]: %w", img.Reference(), err)
		}
	}
	for _, m := range manifests {
		desc := manifestDescriptor(m)
		if img.SkipIndex && m.Tag() != "" {
			// a chart or file: the tag holds the last manifest that
			// claims it (the others were pushed by digest)
			got, err := repo.ResolveManifest(ctx, m.Tag())
			if err != nil && !errors.Is(err, oras.ErrNotFound) {
				return fmt.Errorf("image [%s]: %w", img.Reference(), err)
			}
			if err != nil || got.Digest != desc.Digest {
				return fmt.Errorf("image [%s] digest [%s] does not exists in destination registry: %w", img.Reference(), desc.Digest, ErrValidation)
			}
			continue
		}
		if !img.SkipIndex && img.Tag != "" && !existing.HasDigest(desc.Digest) {
			return fmt.Errorf("image [%s] digest [%s] (%s) is not in the destination index: %w", img.Reference(), desc.Digest, platformString(m.entry.platform), ErrValidation)
		}
		ok, err := repo.ManifestExists(ctx, desc)
		if err != nil {
			return fmt.Errorf("image [%s]: %w", img.Reference(), err)
		}
		if !ok {
			return fmt.Errorf("image [%s] digest [%s] (%s) does not exists in destination registry: %w", img.Reference(), desc.Digest, platformString(m.entry.platform), ErrValidation)
		}
	}
	return nil
}
