package oras

import (
	"bytes"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"net/http"
	"net/http/httptest"
	"sort"
	"strings"
	"syscall"
	"testing"

	"github.com/cnrancher/docker-hangar/internal/registrytest"
	"github.com/opencontainers/go-digest"
	ocispec "github.com/opencontainers/image-spec/specs-go/v1"
)

func TestBlobs(t *testing.T) {
	reg := startRegistry(t, nil)
	opts, _ := testOptions(t)
	r := mustRegistry(t, reg.Host(), opts)
	ctx := testContext(t)
	if err := r.Ping(ctx, true); err != nil {
		t.Fatalf("Ping: %v", err)
	}
	src := mustRepository(t, r, "library/src")
	dst := mustRepository(t, r, "library/dst")
	other := mustRepository(t, r, "other/app")
	blob := randomBlob(t, 256<<10)

	if ok, err := src.BlobExists(ctx, blob.desc); err != nil || ok {
		t.Fatalf("BlobExists before push = %t, %v; want false", ok, err)
	}
	if err := src.PushBlob(ctx, blob.desc, blob.open); err != nil {
		t.Fatalf("PushBlob: %v", err)
	}
	if ok, err := src.BlobExists(ctx, blob.desc); err != nil || !ok {
		t.Fatalf("BlobExists after push = %t, %v; want true", ok, err)
	}
	if got := readBlob(t, reg, "library/src", blob.desc.Digest); !bytes.Equal(got, blob.data) {
		t.Fatal("pushed blob differs")
	}

	fresh := randomBlob(t, 1000)
	tests := []struct {
		name        string
		repo        *Repository
		blob        testBlob
		from        string
		wantMounted bool
		wantOpens   int
	}{
		{"mount across repositories", dst, blob, "library/src", true, 0},
		{"mount from a repository without the blob uploads", other, fresh, "library/src", false, 1},
		{"mount from itself uploads", src, fresh, "library/src", false, 1},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			open, opens := tt.blob.countingOpen()
			mounted, err := tt.repo.MountBlob(ctx, tt.blob.desc, tt.from, open)
			if err != nil {
				t.Fatalf("MountBlob: %v", err)
			}
			if mounted != tt.wantMounted || opens() != tt.wantOpens {
				t.Fatalf("MountBlob mounted=%t opens=%d; want %t, %d", mounted, opens(), tt.wantMounted, tt.wantOpens)
			}
			if got := readBlob(t, reg, tt.repo.Name(), tt.blob.desc.Digest); !bytes.Equal(got, tt.blob.data) {
				t.Fatal("blob differs")
			}
		})
	}

	bad := []struct {
		name string
		data []byte
	}{
		{"corrupt", append([]byte{blob.data[0] ^ 1}, blob.data[1:]...)},
		{"short", blob.data[:len(blob.data)-1]},
		{"long", append(append([]byte{}, blob.data...), 0)},
	}
	for _, tt := range bad {
		t.Run("content mismatch "+tt.name, func(t *testing.T) {
			open, opens := newBlob(tt.data).countingOpen()
			err := other.PushBlob(ctx, blob.desc, open)
			if !errors.Is(err, ErrDigestMismatch) {
				t.Fatalf("PushBlob = %v; want ErrDigestMismatch", err)
			}
			if opens() != 1 {
				t.Fatalf("opened %d times; a content mismatch must not be retried", opens())
			}
			if !strings.Contains(err.Error(), blob.desc.Digest.String()) || !strings.Contains(err.Error(), "other/app") {
				t.Fatalf("error %q does not name the blob and repository", err)
			}
			if hasBlob(t, reg, "other/app", blob.desc.Digest) {
				// With one byte too many, the first desc.Size bytes are the
				// blob itself: net/http sends them (Content-Length) before it
				// reads on and meets the extra byte, and the registry may
				// commit them. Only wrong bytes must never be committed.
				if tt.name != "long" {
					t.Fatal("mismatching content was committed")
				}
				if got := readBlob(t, reg, "other/app", blob.desc.Digest); !bytes.Equal(got, blob.data) {
					t.Fatal("mismatching content was committed")
				}
			}
		})
	}

	t.Run("open error is not retried", func(t *testing.T) {
		boom := errors.New("boom")
		n := 0
		err := other.PushBlob(ctx, blob.desc, func() (io.ReadCloser, error) { n++; return nil, boom })
		if !errors.Is(err, boom) || n != 1 {
			t.Fatalf("PushBlob = %v after %d opens; want boom after 1", err, n)
		}
	})

	t.Run("invalid names", func(t *testing.T) {
		if _, err := r.Repository("UPPER/case"); err == nil {
			t.Fatal("Repository accepted an invalid name")
		}
		if _, err := NewRegistry("https://example.com", DefaultRegistryOptions()); err == nil {
			t.Fatal("NewRegistry accepted a URL")
		}
		if _, err := src.BlobExists(ctx, ocispec.Descriptor{Digest: "sha256:zz"}); err == nil {
			t.Fatal("BlobExists accepted an invalid digest")
		}
	})
}

func TestManifests(t *testing.T) {
	reg := startRegistry(t, nil)
	opts, _ := testOptions(t)
	r := mustRegistry(t, reg.Host(), opts)
	ctx := testContext(t)
	repo := mustRepository(t, r, "library/app")

	body, desc := pushImage(t, ctx, repo, "v1")
	if got, mt, err := registrytest.Manifest(reg.Client(), reg.Server.URL, "library/app", "v1"); err != nil || !bytes.Equal(got, body) || mt != desc.MediaType {
		t.Fatalf("registry has %q (%s, %v); want the exact bytes pushed", got, mt, err)
	}

	// An index, 2-space indented, pushed by tag and by digest.
	index := []byte(fmt.Sprintf("{\n  \"schemaVersion\": 2,\n  \"mediaType\": %q,\n  \"manifests\": [\n    {\n      \"mediaType\": %q,\n      \"digest\": %q,\n      \"size\": %d,\n      \"platform\": {\n        \"architecture\": \"amd64\",\n        \"os\": \"linux\"\n      }\n    }\n  ]\n}",
		ocispec.MediaTypeImageIndex, desc.MediaType, desc.Digest, desc.Size))
	indexDesc := ocispec.Descriptor{MediaType: ocispec.MediaTypeImageIndex, Digest: digest.FromBytes(index), Size: int64(len(index))}
	if err := repo.PushManifest(ctx, indexDesc, index, "multi"); err != nil {
		t.Fatalf("push index: %v", err)
	}
	byDigest := mustRepository(t, r, "library/bydigest")
	_, d2 := pushImage(t, ctx, byDigest, "")

	// A manifest with a subject: oras must not add a referrers tag.
	subject := []byte(fmt.Sprintf("{\"schemaVersion\":2,\"mediaType\":%q,\"artifactType\":\"application/vnd.test\",\"config\":{\"mediaType\":\"application/vnd.oci.empty.v1+json\",\"digest\":\"sha256:44136fa355b3678a1146ad16f7e8649e94fb4fc21fe77e8310c060f61caaff8a\",\"size\":2},\"layers\":[],\"subject\":{\"mediaType\":%q,\"digest\":%q,\"size\":%d}}",
		ocispec.MediaTypeImageManifest, desc.MediaType, desc.Digest, desc.Size))
	empty := newBlob([]byte("{}"))
	if err := repo.PushBlob(ctx, empty.desc, empty.open); err != nil {
		t.Fatal(err)
	}
	subjectDesc := ocispec.Descriptor{MediaType: ocispec.MediaTypeImageManifest, Digest: digest.FromBytes(subject), Size: int64(len(subject))}
	if err := repo.PushManifest(ctx, subjectDesc, subject, "v1-att"); err != nil {
		t.Fatalf("push manifest with subject: %v", err)
	}

	fetch := []struct {
		name    string
		repo    *Repository
		ref     string
		want    []byte
		wantErr error
	}{
		{"tag", repo, "v1", body, nil},
		{"digest", repo, desc.Digest.String(), body, nil},
		{"index", repo, "multi", index, nil},
		{"pushed by digest", byDigest, d2.Digest.String(), nil, nil},
		{"missing tag", repo, "nope", nil, ErrNotFound},
		{"missing digest", repo, digest.FromString("x").String(), nil, ErrNotFound},
		{"missing repository", mustRepository(t, r, "no/such"), "v1", nil, ErrNotFound},
	}
	for _, tt := range fetch {
		t.Run("fetch "+tt.name, func(t *testing.T) {
			d, got, err := tt.repo.FetchManifest(ctx, tt.ref)
			if tt.wantErr != nil {
				if !errors.Is(err, tt.wantErr) {
					t.Fatalf("FetchManifest = %v; want %v", err, tt.wantErr)
				}
				return
			}
			if err != nil {
				t.Fatalf("FetchManifest: %v", err)
			}
			if tt.want != nil && !bytes.Equal(got, tt.want) {
				t.Fatalf("FetchManifest bytes = %q; want %q", got, tt.want)
			}
			if d.Digest != digest.FromBytes(got) || d.Size != int64(len(got)) || d.MediaType == "" {
				t.Fatalf("FetchManifest descriptor %+v does not describe the bytes", d)
			}
		})
	}

	exists := []struct {
		name string
		desc ocispec.Descriptor
		want bool
	}{
		{"present", desc, true},
		{"index", indexDesc, true},
		{"absent", ocispec.Descriptor{MediaType: ocispec.MediaTypeImageManifest, Digest: digest.FromString("y"), Size: 1}, false},
	}
	for _, tt := range exists {
		t.Run("exists "+tt.name, func(t *testing.T) {
			if ok, err := repo.ManifestExists(ctx, tt.desc); err != nil || ok != tt.want {
				t.Fatalf("ManifestExists = %t, %v; want %t", ok, err, tt.want)
			}
		})
	}

	t.Run("push errors", func(t *testing.T) {
		missing := randomBlob(t, 10)
		b, d := manifestFor(empty, missing)
		err := repo.PushManifest(ctx, d, b, "broken")
		if err == nil || errors.Is(err, ErrNotFound) {
			t.Fatalf("PushManifest with a missing blob = %v; want a plain error", err)
		}
		if err := repo.PushManifest(ctx, desc, append([]byte(" "), body...), "x"); !errors.Is(err, ErrDigestMismatch) {
			t.Fatalf("PushManifest with other bytes = %v; want ErrDigestMismatch", err)
		}
	})

	// registrytest.State lists repositories with tags only; library/bydigest
	// has none, so read library/app's tags directly.
	resp, err := reg.Client().Get(reg.Server.URL + "/v2/library/app/tags/list")
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	var list struct {
		Tags []string `json:"tags"`
	}
	if err := json.NewDecoder(resp.Body).Decode(&list); err != nil {
		t.Fatal(err)
	}
	sort.Strings(list.Tags)
	if got, want := strings.Join(list.Tags, " "), "multi v1 v1-att"; got != want {
		t.Fatalf("library/app tags = %s; want %s (no referrers tag)", got, want)
	}
}

func TestFetchManifestErrorsAreNotAbsence(t *testing.T) {
	tests := []struct {
		name    string
		status  int
		wantErr error
	}{
		{"server error", http.StatusInternalServerError, nil},
		{"unauthorized without credentials", http.StatusUnauthorized, ErrLoginRequired},
		{"forbidden", http.StatusForbidden, ErrUnauthorized},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			reg := startRegistry(t, func(next http.Handler) http.Handler {
				return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
					if strings.Contains(r.URL.Path, "/manifests/") {
						if tt.status == http.StatusUnauthorized {
							w.Header().Set("WWW-Authenticate", `Basic realm="x"`)
						}
						w.WriteHeader(tt.status)
						return
					}
					next.ServeHTTP(w, r)
				})
			})
			opts, _ := testOptions(t)
			opts.MaxAttempts = 2
			repo := mustRepository(t, mustRegistry(t, reg.Host(), opts), "library/app")
			_, _, err := repo.FetchManifest(testContext(t), "v1")
			if err == nil || errors.Is(err, ErrNotFound) {
				t.Fatalf("FetchManifest = %v; want an error that is not ErrNotFound", err)
			}
			if tt.wantErr != nil && !errors.Is(err, tt.wantErr) {
				t.Fatalf("FetchManifest = %v; want %v", err, tt.wantErr)
			}
		})
	}
}

// refusingHost returns a loopback host:port that refuses connections: a
// socket bound to it and never listening, held until the test ends, so
// that no listener (of this test or another) can take the port meanwhile,
// as one can a port a closed server has just freed.
func refusingHost(t *testing.T) string {
	t.Helper()
	fd, err := syscall.Socket(syscall.AF_INET, syscall.SOCK_STREAM, 0)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { _ = syscall.Close(fd) })
	if err := syscall.Bind(fd, &syscall.SockaddrInet4{Addr: [4]byte{127, 0, 0, 1}}); err != nil {
		t.Fatal(err)
	}
	sa, err := syscall.Getsockname(fd)
	if err != nil {
		t.Fatal(err)
	}
	return fmt.Sprintf("127.0.0.1:%d", sa.(*syscall.SockaddrInet4).Port)
}

func TestPing(t *testing.T) {
	html := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		w.Header().Set("Content-Type", "text/html")
		_, _ = w.Write([]byte("<!DOCTYPE html><html></html>"))
	}))
	t.Cleanup(html.Close)
	notFound := httptest.NewServer(http.NotFoundHandler())
	t.Cleanup(notFound.Close)
	closedHost := refusingHost(t)
	reg := startRegistry(t, nil)

	tests := []struct {
		name    string
		host    string
		wantErr error
		wantMsg string
	}{
		{"registry", reg.Host(), nil, ""},
		{"html page", strings.TrimPrefix(html.URL, "http://"), ErrNotRegistry, "is not a registry"},
		{"404 on /v2/", strings.TrimPrefix(notFound.URL, "http://"), ErrNotRegistry, "404"},
		{"connection refused", closedHost, ErrUnreachable, closedHost},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			opts, _ := testOptions(t)
			err := mustRegistry(t, tt.host, opts).Ping(testContext(t), true)
			if tt.wantErr == nil {
				if err != nil {
					t.Fatalf("Ping: %v", err)
				}
				return
			}
			if !errors.Is(err, tt.wantErr) || !strings.Contains(err.Error(), tt.wantMsg) {
				t.Fatalf("Ping = %v; want %v mentioning %q", err, tt.wantErr, tt.wantMsg)
			}
		})
	}
}
