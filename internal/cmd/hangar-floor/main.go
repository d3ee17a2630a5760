// Command hangar-floor is the benchmark's floor: the simplest client that
// leaves a registry as `docker hangar load` does, against which the load is
// measured.
//
//	hangar-floor -s ARCHIVE -d 127.0.0.1:PORT [-c 8]
//
// It selects what a default load selects (loader.Open with the default
// options: linux/amd64 and linux/arm64, attestations, per-platform tags),
// then, with plain net/http and no checks (floor.Push):
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

	"github.com/cnrancher/docker-hangar/internal/floor"
	"github.com/cnrancher/docker-hangar/loader"
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
	list, err := floor.FromPlan(plan, ar)
	if err != nil {
		return err
	}
	client := &http.Client{Transport: &http.Transport{MaxIdleConnsPerHost: max(conc, 1) * 2}}
	open := func(d digest.Digest) (io.ReadCloser, error) { return ar.Open(d) }
	st, err := floor.Push(context.Background(), client, "http://"+plan.Host, open, list, conc)
	if err != nil {
		return err
	}
	fmt.Printf("floor -c %d: %.3fs uploaded %d bytes (%d blobs), mounted %d bytes (%d blobs), %d manifests, %d requests\n",
		conc, time.Since(start).Seconds(), st.Uploaded, st.UploadedBlobs, st.Mounted, st.MountedBlobs, st.Manifests, st.Requests)
	return nil
}
