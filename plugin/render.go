package plugin

import (
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"maps"
	"os"
	"slices"
	"strings"
	"sync"
	"time"

	"github.com/moby/term"

	"github.com/cnrancher/docker-hangar/loader"
)

// Progress modes (--progress), as docker buildx names them.
const (
	progressAuto  = "auto"
	progressTTY   = "tty"
	progressPlain = "plain"
	progressJSON  = "json"
)

var progressModes = []string{progressAuto, progressTTY, progressPlain, progressJSON}

// renderer turns the loader's events into output. Each command makes one
// and prints its own lines (warnings, summary, failed list, fatal errors)
// through log.
type renderer interface {
	// event renders one loader event; it is the loader's EventHandler.
	event(loader.Event)
	// log returns the logger for the command's own lines.
	log() *logger
	// close stops the renderer and erases what it drew; lines printed
	// stay.
	close()
}

// terminal is what docker's streams (streams.Out) offer: docker hands a
// plugin its own stream types, not *os.File.
type terminal interface {
	IsTerminal() bool
}

// isTerminal reports whether w is a terminal: a docker stream that says
// so, or an *os.File on a terminal.
func isTerminal(w io.Writer) bool {
	switch v := w.(type) {
	case terminal:
		return v.IsTerminal()
	case *os.File:
		return term.IsTerminal(v.Fd())
	}
	return false
}

// terminalWidth returns the columns of the terminal behind w (80 when
// unknown).
func terminalWidth(w io.Writer) int {
	type sizer interface{ GetTtySize() (uint, uint) }
	switch v := w.(type) {
	case sizer:
		if _, width := v.GetTtySize(); width > 0 {
			return int(width)
		}
	case *os.File:
		if ws, err := term.GetWinsize(v.Fd()); err == nil && ws.Width > 0 {
			return int(ws.Width)
		}
	}
	return 80
}

// newRenderer returns the renderer of a progress mode; auto is tty on a
// terminal and plain otherwise. validate renders a validation.
func newRenderer(mode string, stdout, stderr io.Writer, debug, hideTime, validate bool) renderer {
	if mode == progressAuto {
		mode = progressPlain
		if isTerminal(stdout) {
			mode = progressTTY
		}
	}
	log := &logger{out: stdout, err: stderr, debug: debug, hideTime: hideTime}
	switch mode {
	case progressJSON:
		log.out = io.Discard
		return &jsonRenderer{enc: json.NewEncoder(stdout), lines: hangarLines{l: log, validate: validate}}
	case progressTTY:
		live := newLiveProgress(stdout, terminalWidth(stdout), validate)
		log.out = live.writer()
		if isTerminal(stderr) {
			log.err = log.out
		}
		live.lines = hangarLines{l: log, validate: validate}
		return live
	}
	return &plainRenderer{lines: hangarLines{l: log, validate: validate}}
}

// hangarLines renders events as Hangar's log lines.
type hangarLines struct {
	l        *logger
	validate bool
}

func (h hangarLines) event(ev loader.Event) {
	switch e := ev.(type) {
	case loader.Planned:
		if e.Plan.Entries == 0 {
			h.l.warnf(0, "No images in the archive")
		}
		for _, l := range e.Plan.Ignored {
			h.l.warnf(0, "Ignore image list line %q: invalid format", l.Text)
		}
		for _, l := range e.Plan.Lines {
			if l.Err != nil {
				h.l.errorf(0, "error occurred on [IMG: %d]: %v", l.Number, l.Err)
			}
		}
	case loader.HarborProject:
		if e.Detected {
			h.l.infof(0, "Harbor V2 detected, creating project")
		}
		switch {
		case e.Err != nil:
			h.l.warnf(0, "Failed to init Harbor Project: %v", e.Err)
			h.l.warnf(0, "Please create the Harbor Project manually.")
		case e.Created:
			h.l.infof(0, "Created Harbor V2 project %q", e.Project)
		default:
			h.l.infof(0, "Project %q already exists", e.Project)
		}
	case loader.ImageLoading:
		for _, l := range e.Image.Lines {
			h.l.infof(l.Number, "Loading [%s] => [%s]", l.Source, e.Image.Reference())
		}
		for _, n := range e.Image.Notes {
			h.l.warnf(e.Image.Lines[0].Number, "%s", n)
		}
	case loader.ImageDone:
		h.imageDone(e.Image, e.Result)
	case loader.Stopped:
		if !isInterrupt(e.Err) {
			h.l.errorf(0, "Stopped: %v", e.Err)
		}
	case loader.Debug:
		h.l.logf(levelDebug, 0, "%s", e.Message)
	case loader.ManifestPushed:
		if e.Tag != "" {
			h.l.logf(levelDebug, 0, "Pushed %s to [%s:%s]", e.Descriptor.Digest, e.Image.Repository, e.Tag)
		} else {
			h.l.logf(levelDebug, 0, "Pushed %s to [%s]", e.Descriptor.Digest, e.Image.Repository)
		}
	}
}

func (h hangarLines) imageDone(img *loader.Image, res *loader.ImageResult) {
	if h.l.debug {
		h.l.logf(levelDebug, img.Lines[0].Number, "[%s] %s: %s", img.Reference(), res.Status, requestsString(res.Requests.ByMethod()))
	}
	switch {
	case h.validate && res.Status == loader.StatusLoaded:
		for _, l := range img.Lines {
			h.l.infof(l.Number, "PASS: [%s]", l.Source)
		}
	case h.validate && res.Status == loader.StatusFailed:
		for _, l := range img.Lines {
			h.l.errorf(l.Number, "%v", res.Err)
		}
	case res.Status == loader.StatusFailed:
		for _, l := range img.Lines {
			h.l.errorf(0, "error occurred on [IMG: %d]: %v", l.Number, res.Err)
		}
	}
}

// plainRenderer writes Hangar's log lines: INFO on stdout, WARN and above
// on stderr.
type plainRenderer struct{ lines hangarLines }

func (p *plainRenderer) event(ev loader.Event) { p.lines.event(ev) }
func (p *plainRenderer) log() *logger          { return p.lines.l }
func (p *plainRenderer) close()                {}

// jsonRenderer writes one JSON object per event on stdout (and nothing
// else there); warnings and errors also go to stderr as Hangar's lines.
type jsonRenderer struct {
	mu    sync.Mutex
	enc   *json.Encoder
	lines hangarLines
}

// jsonEvent is one line of --progress=json. Event names the kind:
// planned, image-started, image-progress, image-loading, manifest-pushed,
// image-done, harbor-project, stopped, summary.
type jsonEvent struct {
	Event    string    `json:"event"`
	Time     time.Time `json:"time"`
	Image    string    `json:"image,omitempty"`
	Source   string    `json:"source,omitempty"`
	Lines    []int     `json:"lines,omitempty"`
	Done     *int64    `json:"done,omitempty"`
	Total    *int64    `json:"total,omitempty"`
	Digest   string    `json:"digest,omitempty"`
	Tag      string    `json:"tag,omitempty"`
	Platform string    `json:"platform,omitempty"`
	Status   string    `json:"status,omitempty"`
	Error    string    `json:"error,omitempty"`
	Project  string    `json:"project,omitempty"`
	Created  *bool     `json:"created,omitempty"`
	Notes    []string  `json:"notes,omitempty"`
	Images   *int      `json:"images,omitempty"`
	Uploaded *int64    `json:"bytesUploaded,omitempty"`
	Mounted  *int64    `json:"bytesMounted,omitempty"`
	Present  *int64    `json:"bytesPresent,omitempty"`
	Seconds  *float64  `json:"seconds,omitempty"`

	Summary  *jsonSummary  `json:"summary,omitempty"`
	Failed   []jsonFailure `json:"failed,omitempty"`
	NotFound []jsonFailure `json:"notInArchive,omitempty"`
}

type jsonSummary struct {
	Loaded       int `json:"loaded"`
	Unchanged    int `json:"unchanged"`
	Failed       int `json:"failed"`
	NotInArchive int `json:"notInArchive"`
	Interrupted  int `json:"interrupted"`
	NotAttempted int `json:"notAttempted"`
}

type jsonFailure struct {
	Key    string `json:"key"`
	Status string `json:"status"`
	Line   int    `json:"line,omitempty"`
	Error  string `json:"error,omitempty"`
}

func ptr[T any](v T) *T { return &v }

func imageEvent(kind string, img *loader.Image) jsonEvent {
	e := jsonEvent{Event: kind, Time: time.Now(), Image: img.Reference(), Source: img.Source}
	for _, l := range img.Lines {
		e.Lines = append(e.Lines, l.Number)
	}
	return e
}

func (j *jsonRenderer) event(ev loader.Event) {
	var out jsonEvent
	switch e := ev.(type) {
	case loader.Planned:
		out = jsonEvent{Event: "planned", Time: time.Now(), Images: ptr(len(e.Plan.Images)), Total: ptr(planBytes(e.Plan))}
		for _, l := range e.Plan.Lines {
			if l.Err != nil {
				out.NotFound = append(out.NotFound, jsonFailure{Key: l.Key, Status: loader.StatusNotInArchive.String(), Line: l.Number, Error: l.Err.Error()})
			}
		}
	case loader.HarborProject:
		out = jsonEvent{Event: "harbor-project", Time: time.Now(), Project: e.Project, Created: ptr(e.Created)}
		if e.Err != nil {
			out.Error = e.Err.Error()
		}
	case loader.ImageStarted:
		out = imageEvent("image-started", e.Image)
		out.Total = ptr(e.Total)
	case loader.ImageProgress:
		out = imageEvent("image-progress", e.Image)
		out.Done, out.Total = ptr(e.Done), ptr(e.Total)
	case loader.ImageLoading:
		out = imageEvent("image-loading", e.Image)
		out.Notes = e.Image.Notes
	case loader.ManifestPushed:
		out = imageEvent("manifest-pushed", e.Image)
		out.Digest, out.Tag = e.Descriptor.Digest.String(), e.Tag
		if e.Manifest != nil {
			out.Platform = e.Manifest.Platform()
		} else {
			out.Platform = "index"
		}
	case loader.ImageDone:
		out = imageEvent("image-done", e.Image)
		r := e.Result
		out.Status = r.Status.String()
		if j.lines.validate && r.Status == loader.StatusLoaded {
			out.Status = "passed"
		}
		if r.Err != nil {
			out.Error = r.Err.Error()
		}
		if d := r.Index(); d != "" {
			out.Digest = d.String()
		}
		out.Uploaded, out.Mounted, out.Present = ptr(r.Uploaded), ptr(r.Mounted), ptr(r.Present)
		out.Seconds = ptr(r.Duration.Seconds())
	case loader.Stopped:
		out = jsonEvent{Event: "stopped", Time: time.Now(), Error: e.Err.Error()}
	case loader.LoadDone:
		out = summaryEvent(e.Result)
	default:
		j.lines.event(ev)
		return
	}
	j.mu.Lock()
	_ = j.enc.Encode(out)
	j.mu.Unlock()
	j.lines.event(ev) // warnings and errors on stderr
}

func summaryEvent(res *loader.Result) jsonEvent {
	s := res.Summary()
	out := jsonEvent{Event: "summary", Time: time.Now(),
		Summary:  &jsonSummary{Loaded: s.Loaded, Unchanged: s.Unchanged, Failed: s.Failed, NotInArchive: s.NotInArchive, Interrupted: s.Interrupted, NotAttempted: s.NotAttempted},
		Uploaded: ptr(res.Uploaded), Mounted: ptr(res.Mounted), Present: ptr(res.Present), Seconds: ptr(res.Duration.Seconds()),
		Failed: []jsonFailure{},
	}
	if res.Stopped != nil {
		out.Error = res.Stopped.Error()
	}
	for _, f := range res.Failed {
		out.Failed = append(out.Failed, jsonFailure{Key: f.Key, Status: f.Status.String()})
	}
	return out
}

func (j *jsonRenderer) log() *logger { return j.lines.l }
func (j *jsonRenderer) close()       {}

func planBytes(plan *loader.Plan) int64 {
	var n int64
	for _, img := range plan.Images {
		n += img.Size()
	}
	return n
}

func isInterrupt(err error) bool { return errors.Is(err, errInterrupted) }

// requestsString formats request counts: "5 requests (GET 1, HEAD 4)".
func requestsString(byMethod map[string]int) string {
	methods := slices.Sorted(maps.Keys(byMethod))
	total := 0
	parts := make([]string, 0, len(methods))
	for _, m := range methods {
		total += byMethod[m]
		parts = append(parts, fmt.Sprintf("%s %d", m, byMethod[m]))
	}
	switch total {
	case 0:
		return "no request"
	case 1:
		return fmt.Sprintf("1 request (%s)", parts[0])
	}
	return fmt.Sprintf("%d requests (%s)", total, strings.Join(parts, ", "))
}
