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
// no HEAD or GET, no retry and no per-image ordering.
//
// With -u USER (password in $HANGAR_FLOOR_PASSWORD) it authenticates as a
// client of a real registry must, at the least cost: one GET /v2/ for the
// registry's Bearer challenge, then one token per repository (and per
// repository and mount source) from the token service, fetched before the
// first request that needs it and cached (floor.TokenTransport). With
// -harbor it first creates the Harbor projects of the images (one POST
// /api/v2.0/projects each, 201 or 409; floor.CreateHarborProjects), as a
// load into Harbor does; both are part of the time it prints.
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
	user := flag.String("u", "", "authenticate as this user (password in $HANGAR_FLOOR_PASSWORD): bearer tokens, Harbor's API")
	harbor := flag.Bool("harbor", false, "create the images' Harbor projects first (needs -u)")
	flag.Parse()
	if *source == "" || *dest == "" || flag.NArg() > 0 || *harbor && *user == "" {
		fmt.Fprintln(os.Stderr, "usage: hangar-floor -s ARCHIVE -d 127.0.0.1:PORT [-c 8] [-u USER [-harbor]]")
		os.Exit(2)
	}
	var cred *floor.Credentials
	if *user != "" {
		cred = &floor.Credentials{Username: *user, Password: os.Getenv("HANGAR_FLOOR_PASSWORD")}
	}
	if err := run(*source, *dest, *conc, cred, *harbor); err != nil {
		fmt.Fprintln(os.Stderr, "hangar-floor:", err)
		os.Exit(1)
	}
}

func run(source, dest string, conc int, cred *floor.Credentials, harbor bool) error {
	start := time.Now()
	ctx := context.Background()
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
	transport := &http.Transport{MaxIdleConnsPerHost: max(conc, 1) * 2}
	client := &http.Client{Transport: transport}
	base := "http://" + plan.Host
	var (
		extra  string
		tokens *floor.TokenTransport
	)
	if cred != nil {
		if harbor {
			n, err := floor.CreateHarborProjects(ctx, client, base, *cred, floor.Projects(list), conc)
			if err != nil {
				return err
			}
			extra += fmt.Sprintf(", %d harbor api requests", n)
		}
		realm, service, err := floor.Challenge(ctx, client, base)
		if err != nil {
			return err
		}
		if realm != "" {
			tokens = &floor.TokenTransport{Base: transport, Realm: realm, Service: service, Credentials: *cred}
			client = &http.Client{Transport: tokens}
		}
		extra += ", 1 challenge request"
	}
	open := func(d digest.Digest) (io.ReadCloser, error) { return ar.Open(d) }
	st, err := floor.Push(ctx, client, base, open, list, conc)
	if err != nil {
		return err
	}
	if tokens != nil {
		extra += fmt.Sprintf(", %d token requests", tokens.Requests())
	}
	fmt.Printf("floor -c %d: %.3fs uploaded %d bytes (%d blobs), mounted %d bytes (%d blobs), %d manifests, %d requests (POST %d, PUT %d)%s\n",
		conc, time.Since(start).Seconds(), st.Uploaded, st.UploadedBlobs, st.Mounted, st.MountedBlobs, st.Manifests, st.Requests, st.ByMethod["POST"], st.ByMethod["PUT"], extra)
	return nil
}
