// Command hangar-floor is the benchmark's floor: the simplest client that
// leaves a registry as `docker hangar load` does, against which the load is
// measured.
//
//	hangar-floor -s ARCHIVE -d 127.0.0.1:PORT [-c 8]
//
// It selects what a default load selects (loader.Open with the default
// options: linux/amd64 and linux/arm64, attestations, per-platform tags),
// then, with plain net/http and no checks (registrytest.Floor):
//
//  1. pushes each distinct blob exactly once, into the first repository
//     that needs it: POST /v2/<repo>/blobs/uploads/, then one PUT
//     <location>?digest=<d> with the body streamed from the archive
//     (archive.Reader.Open: one sha256 pass on the client, as any correct
//     client must verify what it sends);
//  2. mounts it into every other repository that needs it (one POST with
//     ?mount=&from=, no bytes): distribution refuses a manifest whose blobs
//     are not linked into its repository;
//  3. PUTs the platform manifests, attestations, charts and files to their
//     tags, then each image's index (built as the loader builds it for an
//     empty registry) to its tag.
//
// So it sends the same bytes and leaves the same tags as a cold load, with
// no HEAD or GET, no retry, no authentication and no per-image ordering.
// Each phase keeps -c requests in flight (1 is strictly sequential); the
// fair floor for the loader's default flags is -c 8, the loader's default
// blob concurrency. It prints one line: seconds, bytes and blobs uploaded,
// bytes and blobs mounted, manifests, requests.
package main

import (
	"context"
	"flag"
	"fmt"
	"io"
	"net/http"
	"os"
	"time"

	"github.com/opencontainers/go-digest"
	ocispec "github.com/opencontainers/image-spec/specs-go/v1"

	"github.com/cnrancher/docker-hangar/internal/registrytest"
	"github.com/cnrancher/docker-hangar/loader"
	"github.com/cnrancher/docker-hangar/manifest"
)

func main() {
	source := flag.String("s", "", "archive")
	dest := flag.String("d", "", "registry host:port (plain HTTP)")
	conc := flag.Int("c", 8, "requests in flight per phase (1: sequential)")
	flag.Parse()
	if *source == "" || *dest == "" || flag.NArg() > 0 {
		fmt.Fprintln(os.Stderr, "usage: hangar-floor -s ARCHIVE -d 127.0.0.1:PORT [-c 8]")
		os.Exit(2)
	}
	if err := run(*source, *dest, *conc); err != nil {
		fmt.Fprintln(os.Stderr, "hangar-floor:", err)
		os.Exit(1)
	}
}

func run(source, dest string, conc int) error {
	start := time.Now()
	opts := loader.DefaultOptions()
	opts.Source, opts.Destination = source, dest
	ar, plan, err := loader.Open(opts)
	if err != nil {
		return err
	}
	defer ar.Close()
	list, err := FloorManifests(plan)
	if err != nil {
		return err
	}
	client := &http.Client{Transport: &http.Transport{MaxIdleConnsPerHost: max(conc, 1) * 2}}
	open := func(d digest.Digest) (io.ReadCloser, error) { return ar.Open(d) }
	st, err := registrytest.Floor(context.Background(), client, "http://"+plan.Host, open, list, conc)
	if err != nil {
		return err
	}
	fmt.Printf("floor -c %d: %.3fs uploaded %d bytes (%d blobs), mounted %d bytes (%d blobs), %d manifests, %d requests\n",
		conc, time.Since(start).Seconds(), st.Uploaded, st.UploadedBlobs, st.Mounted, st.MountedBlobs, st.Manifests, st.Requests)
	return nil
}

// FloorManifests lists what a cold load of plan pushes: each manifest to
// its tag (or by digest), then each image's index to the image's tag.
func FloorManifests(plan *loader.Plan) ([]registrytest.FloorManifest, error) {
	var list []registrytest.FloorManifest
	for _, img := range plan.Images {
		if img.Err != nil {
			return nil, fmt.Errorf("%s: %w", img.Source, img.Err)
		}
		var descs []ocispec.Descriptor
		for _, m := range img.Manifests {
			ref := m.Tag
			if ref == "" {
				ref = m.Descriptor.Digest.String()
			}
			list = append(list, registrytest.FloorManifest{Repo: img.Repository, Reference: ref, MediaType: m.Descriptor.MediaType, Body: m.Body, Blobs: m.Blobs})
			descs = append(descs, m.Descriptor)
		}
		if img.SkipIndex {
			continue
		}
		merged, err := manifest.Merge(nil, descs, manifest.MergeOptions{})
		if err != nil {
			return nil, fmt.Errorf("%s: %w", img.Source, err)
		}
		ref := img.Tag
		if ref == "" {
			ref = digest.FromBytes(merged.Bytes).String()
		}
		list = append(list, registrytest.FloorManifest{Repo: img.Repository, Reference: ref, MediaType: ocispec.MediaTypeImageIndex, Body: merged.Bytes, Late: true})
	}
	return list, nil
}
