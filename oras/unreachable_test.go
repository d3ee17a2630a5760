package oras

import (
	"context"
	"errors"
	"net"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/cnrancher/docker-hangar/internal/registrytest"
)

// restartableRegistry serves a real registry handler on a fixed loopback
// port that the test can stop and start again (same content).
func restartableRegistry(t *testing.T) *registrytest.Restartable {
	t.Helper()
	h, err := registrytest.NewHandler(registrytest.Options{})
	if err != nil {
		t.Fatal(err)
	}
	srv, err := registrytest.StartRestartable(h)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(srv.Stop)
	return srv
}

// countingDial counts the connections dialled.
func countingDial(n *atomic.Int32) func(ctx context.Context, network, addr string) (net.Conn, error) {
	return func(ctx context.Context, network, addr string) (net.Conn, error) {
		n.Add(1)
		var d net.Dialer
		return d.DialContext(ctx, network, addr)
	}
}

func TestRegistryRestartsMidLoad(t *testing.T) {
	srv := restartableRegistry(t)
	opts, log := testOptions(t)
	opts.backoff = 50 * time.Millisecond
	r := mustRegistry(t, srv.Addr, opts)
	ctx := testContext(t)
	if err := r.Ping(ctx, true); err != nil {
		t.Fatal(err)
	}
	repo := mustRepository(t, r, "library/app")
	config, layer := newBlob([]byte("{}")), randomBlob(t, 256<<10)
	body, desc := manifestFor(config, layer)

	srv.Stop()
	restarted := make(chan error, 1)
	go func() {
		time.Sleep(1500 * time.Millisecond)
		restarted <- srv.Restart()
	}()
	// Uploads (whole-operation retries), HEADs and manifests (transport
	// retries) all wait for the registry to come back.
	var wg sync.WaitGroup
	errs := make([]error, 3)
	wg.Add(3)
	go func() { defer wg.Done(); errs[0] = repo.PushBlob(ctx, layer.desc, layer.open) }()
	go func() { defer wg.Done(); errs[1] = repo.PushBlob(ctx, config.desc, config.open) }()
	go func() { defer wg.Done(); _, errs[2] = repo.BlobExists(ctx, layer.desc) }()
	wg.Wait()
	if err := <-restarted; err != nil {
		t.Fatal(err)
	}
	for i, err := range errs {
		if err != nil {
			t.Fatalf("operation %d across the restart: %v\n%s", i, err, log)
		}
	}
	if err := repo.PushManifest(ctx, desc, body, "v1"); err != nil {
		t.Fatalf("PushManifest after the restart: %v", err)
	}
	if n := strings.Count(log.String(), "no connection"); n != 1 {
		t.Errorf("%d 'no connection' debug lines; want one for the whole outage\n%s", n, log)
	}
	if !strings.Contains(log.String(), "answering again") {
		t.Errorf("no 'answering again' debug line\n%s", log)
	}
}

func TestRegistryGoneForGood(t *testing.T) {
	srv := restartableRegistry(t)
	opts, log := testOptions(t)
	opts.UnreachableTimeout = time.Second
	opts.backoff = 20 * time.Millisecond
	var dials atomic.Int32
	opts.dial = countingDial(&dials)
	r := mustRegistry(t, srv.Addr, opts)
	ctx := testContext(t)
	if err := r.Ping(ctx, true); err != nil {
		t.Fatal(err)
	}
	srv.Stop()

	start := time.Now()
	const concurrent = 40
	var wg sync.WaitGroup
	errs := make([]error, concurrent)
	for i := range concurrent {
		wg.Add(1)
		go func() {
			defer wg.Done()
			repo := mustRepository(t, r, "library/app")
			blob := randomBlob(t, 1000+i)
			if i%2 == 0 {
				errs[i] = repo.PushBlob(ctx, blob.desc, blob.open)
			} else {
				_, errs[i] = repo.BlobExists(ctx, blob.desc)
			}
		}()
	}
	wg.Wait()
	if elapsed := time.Since(start); elapsed > 10*time.Second {
		t.Errorf("the requests took %s to give up; the bound is %s", elapsed, opts.UnreachableTimeout)
	}
	for i, err := range errs {
		if !errors.Is(err, ErrUnreachable) || !strings.Contains(err.Error(), srv.Addr) {
			t.Fatalf("request %d: %v; want ErrUnreachable naming %s", i, err, srv.Addr)
		}
	}
	t.Logf("%v", errs[0])
	if n := strings.Count(log.String(), "no connection"); n != 1 {
		t.Errorf("%d 'no connection' debug lines; want one\n%s", n, log)
	}
	if n := strings.Count(log.String(), "giving up"); n != 1 {
		t.Errorf("%d 'giving up' debug lines; want one", n)
	}

	// Given up: later requests fail at once, without a connection attempt.
	before := dials.Load()
	blob := randomBlob(t, 10)
	if err := mustRepository(t, r, "library/app").PushBlob(ctx, blob.desc, blob.open); !errors.Is(err, ErrUnreachable) {
		t.Fatalf("PushBlob after giving up = %v; want ErrUnreachable", err)
	}
	if _, _, err := mustRepository(t, r, "library/app").FetchManifest(ctx, "v1"); !errors.Is(err, ErrUnreachable) {
		t.Fatalf("FetchManifest after giving up = %v; want ErrUnreachable", err)
	}
	if err := r.Ping(ctx, false); !errors.Is(err, ErrUnreachable) {
		t.Fatalf("Ping after giving up = %v; want ErrUnreachable", err)
	}
	if n := dials.Load() - before; n != 0 {
		t.Fatalf("%d connections attempted after giving up; want none", n)
	}
}

func TestUnreachableAtFirstContact(t *testing.T) {
	srv := restartableRegistry(t)
	srv.Stop()
	opts, _ := testOptions(t)
	var dials atomic.Int32
	opts.dial = countingDial(&dials)
	start := time.Now()
	err := mustRegistry(t, srv.Addr, opts).Ping(testContext(t), true)
	if !errors.Is(err, ErrUnreachable) || !strings.Contains(err.Error(), srv.Addr) {
		t.Fatalf("Ping = %v; want ErrUnreachable naming the registry", err)
	}
	if elapsed := time.Since(start); elapsed > 5*time.Second {
		t.Errorf("Ping of a registry that never answered took %s; it must fail at once", elapsed)
	}
	// https, then the loopback plain-HTTP fallback: no retries.
	if n := dials.Load(); n > 2 {
		t.Errorf("%d connection attempts; want at most 2 (https, http)", n)
	}
}
