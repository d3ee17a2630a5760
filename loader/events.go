package loader

import (
	"sync"

	ocispec "github.com/opencontainers/image-spec/specs-go/v1"
)

// Event is something a load or a validation reports as it happens; its
// dynamic type is one of the event types of this package. The loader never
// prints: the command layer renders events (Hangar-shaped log lines,
// terminal bars, JSON lines).
//
// Events of one load arrive one at a time (the loader serialises the
// calls), in this order: Planned; then HarborProject events; then, per
// image, ImageStarted, ImageProgress (repeatedly), ImageLoading,
// ManifestPushed (per push) and ImageDone, images overlapping each other
// but ImageLoading in plan order at -j 1; then Stopped, if the load stopped
// early, and LoadDone. Debug events may come at any time.
type Event interface{ event() }

// EventHandler receives the events of a load. It is called from the
// loader's goroutines, never concurrently, and should return quickly.
type EventHandler func(Event)

// Planned reports the plan, once, before the registry is contacted.
type Planned struct{ Plan *Plan }

// HarborProject reports the Harbor project of images being loaded: created,
// found already there, or (Err) not created, which is a warning as in
// Hangar. Detected is true on the first such event of a load.
type HarborProject struct {
	Project  string
	Created  bool
	Detected bool
	Err      error
}

// ImageStarted reports that an image started: its destination is being
// read and its blobs uploaded. Total is the bytes of its distinct blobs.
type ImageStarted struct {
	Image *Image
	Total int64
}

// ImageProgress reports the bytes of an image accounted for so far:
// uploaded (including the part of an upload in flight; a retried upload
// starts again from zero), mounted or already present. Done never exceeds
// Total. It is sent at most every ProgressInterval per image, and when a
// blob completes.
type ImageProgress struct {
	Image       *Image
	Done, Total int64
}

// ImageLoading reports that an image's manifests are about to be pushed:
// it is Hangar's "Loading [src] => [dst]" moment, in plan order. Notes are
// warnings about archive items that were skipped.
type ImageLoading struct {
	Image *Image
}

// ManifestPushed reports one manifest push: a platform manifest (Manifest
// set) or the index at the main tag (Manifest nil). Tag is empty for a push
// by digest.
type ManifestPushed struct {
	Image      *Image
	Manifest   *Manifest
	Descriptor ocispec.Descriptor
	Tag        string
}

// ImageDone reports the outcome of an image (loaded, unchanged, failed,
// interrupted; for a validation, passed or failed).
type ImageDone struct {
	Image  *Image
	Result *ImageResult
}

// Stopped reports that the load stopped before its end, and why: an
// interruption (the context's cause) or a registry that stopped answering.
// The images not finished are interrupted or not attempted.
type Stopped struct{ Err error }

// LoadDone reports the result of the load, once, at its end.
type LoadDone struct{ Result *Result }

// Debug is a debug line (requests, retries, decisions); it never holds a
// secret.
type Debug struct{ Message string }

func (Planned) event()        {}
func (HarborProject) event()  {}
func (ImageStarted) event()   {}
func (ImageProgress) event()  {}
func (ImageLoading) event()   {}
func (ManifestPushed) event() {}
func (ImageDone) event()      {}
func (Stopped) event()        {}
func (LoadDone) event()       {}
func (Debug) event()          {}

// emitter serialises the calls to an EventHandler; a nil handler discards.
type emitter struct {
	mu sync.Mutex
	fn EventHandler
}

func newEmitter(fn EventHandler) *emitter { return &emitter{fn: fn} }

func (e *emitter) emit(ev Event) {
	if e == nil || e.fn == nil {
		return
	}
	e.mu.Lock()
	defer e.mu.Unlock()
	e.fn(ev)
}

func (e *emitter) enabled() bool { return e != nil && e.fn != nil }
