package loader_test

import (
	"fmt"
	"strings"
	"sync"
	"testing"

	"github.com/cnrancher/docker-hangar/loader"
)

// recorder keeps the events of a load, for assertions and for the test
// log. The command layer renders events for users (plugin/render.go);
// describe is only what a failing test needs to show.
type recorder struct {
	mu     sync.Mutex
	events []loader.Event
}

func (r *recorder) handle(ev loader.Event) {
	r.mu.Lock()
	defer r.mu.Unlock()
	r.events = append(r.events, ev)
}

// all returns the events of type T, in order.
func all[T loader.Event](r *recorder) []T {
	r.mu.Lock()
	defer r.mu.Unlock()
	var out []T
	for _, ev := range r.events {
		if e, ok := ev.(T); ok {
			out = append(out, e)
		}
	}
	return out
}

// String describes every event, one per line, with every message and error
// it carries (tests search it for secrets).
func (r *recorder) String() string {
	r.mu.Lock()
	defer r.mu.Unlock()
	var b strings.Builder
	for _, ev := range r.events {
		b.WriteString(describe(ev))
		b.WriteByte('\n')
	}
	return b.String()
}

func describe(ev loader.Event) string {
	switch e := ev.(type) {
	case loader.Planned:
		var errs []string
		for _, l := range e.Plan.Lines {
			if l.Err != nil {
				errs = append(errs, fmt.Sprintf("line %d: %v", l.Number, l.Err))
			}
		}
		return fmt.Sprintf("planned: %d images %s", len(e.Plan.Images), strings.Join(errs, "; "))
	case loader.HarborProject:
		return fmt.Sprintf("harbor project %q: created=%t err=%v", e.Project, e.Created, e.Err)
	case loader.ImageStarted:
		return fmt.Sprintf("started [%s] (%d bytes)", e.Image.Reference(), e.Total)
	case loader.ImageProgress:
		return fmt.Sprintf("progress [%s] %d/%d", e.Image.Reference(), e.Done, e.Total)
	case loader.ImageLoading:
		return fmt.Sprintf("Loading [%s] => [%s] %q", e.Image.Source, e.Image.Reference(), e.Image.Notes)
	case loader.ManifestPushed:
		return fmt.Sprintf("pushed %s to [%s] tag %q", e.Descriptor.Digest, e.Image.Repository, e.Tag)
	case loader.ImageDone:
		return fmt.Sprintf("done [%s]: %s %v", e.Image.Reference(), e.Result.Status, e.Result.Err)
	case loader.Stopped:
		return fmt.Sprintf("stopped: %v", e.Err)
	case loader.LoadDone:
		return fmt.Sprintf("load done: %+v failed %v", e.Result.Summary(), e.Result.FailedKeys())
	case loader.Debug:
		return "debug: " + e.Message
	}
	return fmt.Sprintf("%T", ev)
}

// record sets opts to record events (with debug events) and to log them
// when the test fails.
func record(t *testing.T, opts *loader.Options) *recorder {
	t.Helper()
	rec := &recorder{}
	opts.Events = rec.handle
	opts.Debug = true
	t.Cleanup(func() {
		if t.Failed() {
			t.Logf("load events:\n%s", rec)
		}
	})
	return rec
}
