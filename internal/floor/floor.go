// Package floor is the simplest correct client a load is measured against
// (make bench, loader's BenchmarkLoad): the same bytes, pushed with plain
// net/http and no checks; with bearer tokens (TokenTransport) and Harbor
// projects (CreateHarborProjects) for a real Harbor.
package floor

import (
	"bytes"
	"context"
	"fmt"
	"io"
	"net/http"
	"net/url"
	"strings"
	"sync"
	"sync/atomic"

	"github.com/opencontainers/go-digest"
	ocispec "github.com/opencontainers/image-spec/specs-go/v1"

	"github.com/cnrancher/docker-hangar/loader"
	"github.com/cnrancher/docker-hangar/manifest"
	"github.com/cnrancher/docker-hangar/oras"
)

// Manifest is one manifest the floor client pushes, after the blobs
// it names.
type Manifest struct {
	// Repo is the repository, Reference the tag (or digest) to push to.
	Repo, Reference string
	// MediaType and Body of the manifest, pushed as they are.
	MediaType string
	Body      []byte
	// Blobs are the blobs the manifest names (config and layers).
	Blobs []ocispec.Descriptor
	// Late manifests (indexes) are pushed after all the others.
	Late bool
}

// Stats counts what Push did.
type Stats struct {
	// Uploaded bytes and blobs: each distinct digest once.
	Uploaded      int64
	UploadedBlobs int
	// Mounted bytes and blobs: the other repositories that need a blob
	// get it by a cross-repository mount (no bytes sent).
	Mounted      int64
	MountedBlobs int
	// Manifests pushed.
	Manifests int
	// Requests sent, and the same by method (POST, PUT).
	Requests int64
	ByMethod map[string]int64
}

// Push is the simplest correct client a load can be measured against: it
// pushes each distinct blob of manifests exactly once (POST, then one PUT
// with the whole body streamed from open, into the first repository that
// names it), mounts it into the other repositories that name it (one POST
// each: distribution refuses a manifest whose blobs are not linked into its
// repository), then pushes the manifests, then the late ones. No HEAD
// checks, no retries; authentication, when the registry wants it, is the
// client's transport (TokenTransport), which never costs a refused
// request. concurrency bounds the requests in flight in each phase (1:
// strictly sequential).
func Push(ctx context.Context, client *http.Client, base string, open func(digest.Digest) (io.ReadCloser, error), manifests []Manifest, concurrency int) (Stats, error) {
	var st Stats
	base = strings.TrimSuffix(base, "/")
	type blobJob struct {
		repo string
		desc ocispec.Descriptor
		from string // mount from this repository when set
	}
	first := map[digest.Digest]string{}
	linked := map[string]bool{}
	var uploads, mounts []blobJob
	for _, m := range manifests {
		for _, b := range m.Blobs {
			key := m.Repo + "@" + b.Digest.String()
			if linked[key] {
				continue
			}
			linked[key] = true
			if from, ok := first[b.Digest]; ok {
				mounts = append(mounts, blobJob{repo: m.Repo, desc: b, from: from})
				continue
			}
			first[b.Digest] = m.Repo
			uploads = append(uploads, blobJob{repo: m.Repo, desc: b})
		}
	}
	var (
		countMu  sync.Mutex
		byMethod = map[string]int64{}
	)
	count := func(method string) {
		countMu.Lock()
		byMethod[method]++
		countMu.Unlock()
	}
	do := func(req *http.Request, want int) (*http.Response, error) {
		count(req.Method)
		resp, err := client.Do(req)
		if err != nil {
			return nil, err
		}
		_, _ = io.Copy(io.Discard, resp.Body)
		resp.Body.Close()
		if resp.StatusCode != want {
			return nil, fmt.Errorf("%s %s: %s", req.Method, req.URL.Path, resp.Status)
		}
		return resp, nil
	}
	startUpload := func(ctx context.Context, repo, query string) (*http.Response, error) {
		req, err := http.NewRequestWithContext(ctx, http.MethodPost, base+"/v2/"+repo+"/blobs/uploads/"+query, nil)
		if err != nil {
			return nil, err
		}
		count(req.Method)
		resp, err := client.Do(req)
		if err != nil {
			return nil, err
		}
		_, _ = io.Copy(io.Discard, resp.Body)
		resp.Body.Close()
		return resp, nil
	}
	upload := func(ctx context.Context, j blobJob, resp *http.Response) error {
		if resp.StatusCode != http.StatusAccepted {
			return fmt.Errorf("start upload of %s to %s: %s", j.desc.Digest, j.repo, resp.Status)
		}
		loc, err := resp.Location()
		if err != nil {
			return fmt.Errorf("start upload of %s to %s: %w", j.desc.Digest, j.repo, err)
		}
		q := loc.Query()
		q.Set("digest", j.desc.Digest.String())
		loc.RawQuery = q.Encode()
		rc, err := open(j.desc.Digest)
		if err != nil {
			return err
		}
		defer rc.Close()
		req, err := http.NewRequestWithContext(ctx, http.MethodPut, loc.String(), rc)
		if err != nil {
			return err
		}
		req.ContentLength = j.desc.Size
		req.Header.Set("Content-Type", "application/octet-stream")
		_, err = do(req, http.StatusCreated)
		return err
	}
	phase := func(n int, fn func(ctx context.Context, i int) error) error {
		return parallel(ctx, n, concurrency, fn)
	}
	var mu sync.Mutex
	err := phase(len(uploads), func(ctx context.Context, i int) error {
		j := uploads[i]
		resp, err := startUpload(ctx, j.repo, "")
		if err != nil {
			return err
		}
		if err := upload(ctx, j, resp); err != nil {
			return err
		}
		mu.Lock()
		st.Uploaded += j.desc.Size
		st.UploadedBlobs++
		mu.Unlock()
		return nil
	})
	if err == nil {
		err = phase(len(mounts), func(ctx context.Context, i int) error {
			j := mounts[i]
			q := "?mount=" + url.QueryEscape(j.desc.Digest.String()) + "&from=" + url.QueryEscape(j.from)
			resp, err := startUpload(ctx, j.repo, q)
			if err != nil {
				return err
			}
			mounted := resp.StatusCode == http.StatusCreated
			if !mounted {
				// The registry declined the mount: upload instead.
				if err := upload(ctx, j, resp); err != nil {
					return err
				}
			}
			mu.Lock()
			if mounted {
				st.Mounted += j.desc.Size
				st.MountedBlobs++
			} else {
				st.Uploaded += j.desc.Size
				st.UploadedBlobs++
			}
			mu.Unlock()
			return nil
		})
	}
	for _, late := range []bool{false, true} {
		if err != nil {
			break
		}
		var list []Manifest
		for _, m := range manifests {
			if m.Late == late {
				list = append(list, m)
			}
		}
		err = phase(len(list), func(ctx context.Context, i int) error {
			m := list[i]
			req, err := http.NewRequestWithContext(ctx, http.MethodPut, base+"/v2/"+m.Repo+"/manifests/"+m.Reference, bytes.NewReader(m.Body))
			if err != nil {
				return err
			}
			req.Header.Set("Content-Type", m.MediaType)
			if _, err := do(req, http.StatusCreated); err != nil {
				return err
			}
			mu.Lock()
			st.Manifests++
			mu.Unlock()
			return nil
		})
	}
	st.ByMethod = byMethod
	for _, n := range byMethod {
		st.Requests += n
	}
	if err != nil {
		return st, fmt.Errorf("floor: %w", err)
	}
	return st, nil
}

// parallel runs fn(ctx, i) for i in [0, n) with up to concurrency calls at
// a time (at least one); the first error cancels the others' context and is
// returned.
func parallel(ctx context.Context, n, concurrency int, fn func(ctx context.Context, i int) error) error {
	ctx, cancel := context.WithCancelCause(ctx)
	defer cancel(nil)
	var (
		wg   sync.WaitGroup
		next atomic.Int64
		once sync.Once
		ferr error
	)
	for range max(concurrency, 1) {
		wg.Add(1)
		go func() {
			defer wg.Done()
			for {
				i := int(next.Add(1) - 1)
				if i >= n || ctx.Err() != nil {
					return
				}
				if err := fn(ctx, i); err != nil {
					once.Do(func() { ferr = err; cancel(err) })
					return
				}
			}
		}()
	}
	wg.Wait()
	return ferr
}

// FromPlan lists what a cold load of plan pushes: each manifest to
// its tag (or by digest), then each image's index to the image's tag. The
// manifest bodies are read from src.
func FromPlan(plan *loader.Plan, src loader.Source) ([]Manifest, error) {
	var list []Manifest
	for _, img := range plan.Images {
		if img.Err != nil {
			return nil, fmt.Errorf("%s: %w", img.Source, img.Err)
		}
		var descs []ocispec.Descriptor
		for _, m := range img.Manifests() {
			desc := m.Descriptor()
			ref := m.Tag()
			if ref == "" {
				ref = desc.Digest.String()
			}
			body, err := src.ReadBlob(desc.Digest, oras.MaxManifestSize)
			if err != nil {
				return nil, fmt.Errorf("%s: %w", img.Source, err)
			}
			blobs := make([]ocispec.Descriptor, len(m.BlobIDs))
			for i, id := range m.BlobIDs {
				d, size, err := src.Blob(id)
				if err != nil {
					return nil, fmt.Errorf("%s: %w", img.Source, err)
				}
				blobs[i] = loader.Blob{Digest: d, Size: size, ID: id}.Descriptor()
			}
			list = append(list, Manifest{Repo: img.Repository, Reference: ref, MediaType: desc.MediaType, Body: body, Blobs: blobs})
			descs = append(descs, desc)
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
		list = append(list, Manifest{Repo: img.Repository, Reference: ref, MediaType: ocispec.MediaTypeImageIndex, Body: merged.Bytes, Late: true})
	}
	return list, nil
}
