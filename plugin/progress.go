package plugin

import (
	"fmt"
	"io"
	"os"
	"strings"
	"sync"
	"time"

	"github.com/moby/term"

	"github.com/cnrancher/docker-hangar/loader"
)

// isTerminal reports whether w is a terminal.
func isTerminal(w io.Writer) bool {
	f, ok := w.(*os.File)
	return ok && term.IsTerminal(f.Fd())
}

// liveProgress draws docker-push-like progress on a terminal: one line per
// image in flight with its bytes and rate, and a total line. Log lines are
// written above it through Writer.
type liveProgress struct {
	out   io.Writer
	start time.Time

	mu       sync.Mutex
	active   []*imageProgress
	done     int
	total    int
	bytes    int64
	drawn    int // lines drawn by the last frame
	closed   bool
	stop     chan struct{}
	finished chan struct{}
}

type imageProgress struct {
	img   *loader.Image
	sent  int64
	size  int64
	start time.Time
}

func newLiveProgress(out io.Writer) *liveProgress {
	p := &liveProgress{out: out, start: time.Now(), stop: make(chan struct{}), finished: make(chan struct{})}
	go p.loop()
	return p
}

func (p *liveProgress) loop() {
	defer close(p.finished)
	tick := time.NewTicker(200 * time.Millisecond)
	defer tick.Stop()
	for {
		select {
		case <-p.stop:
			p.mu.Lock()
			p.clear()
			p.closed = true
			p.mu.Unlock()
			return
		case <-tick.C:
			p.mu.Lock()
			p.clear()
			p.draw()
			p.mu.Unlock()
		}
	}
}

// Close stops drawing and erases the progress lines.
func (p *liveProgress) Close() {
	close(p.stop)
	<-p.finished
}

// LoadStarted implements loader.Progress.
func (p *liveProgress) LoadStarted(plan *loader.Plan) {
	p.mu.Lock()
	p.total = len(plan.Images)
	p.mu.Unlock()
}

// ImageStarted implements loader.Progress.
func (p *liveProgress) ImageStarted(img *loader.Image) {
	var size int64
	for _, m := range img.Manifests {
		size += m.Size()
	}
	p.mu.Lock()
	p.active = append(p.active, &imageProgress{img: img, size: size, start: time.Now()})
	p.mu.Unlock()
}

// BlobBytes implements loader.Progress.
func (p *liveProgress) BlobBytes(img *loader.Image, n int64) {
	p.mu.Lock()
	defer p.mu.Unlock()
	p.bytes += n
	for _, a := range p.active {
		if a.img == img {
			a.sent += n
			return
		}
	}
}

// ImageDone implements loader.Progress.
func (p *liveProgress) ImageDone(img *loader.Image, _ *loader.ImageResult) {
	p.mu.Lock()
	defer p.mu.Unlock()
	p.done++
	for i, a := range p.active {
		if a.img == img {
			p.active = append(p.active[:i], p.active[i+1:]...)
			return
		}
	}
}

// Writer returns a writer whose lines appear above the progress lines.
func (p *liveProgress) Writer() io.Writer { return progressWriter{p} }

type progressWriter struct{ p *liveProgress }

func (w progressWriter) Write(b []byte) (int, error) {
	w.p.mu.Lock()
	defer w.p.mu.Unlock()
	w.p.clear()
	n, err := w.p.out.Write(b)
	w.p.draw()
	return n, err
}

// clear erases the last frame; the caller holds mu.
func (p *liveProgress) clear() {
	if p.drawn > 0 {
		fmt.Fprintf(p.out, "\x1b[%dA\x1b[J", p.drawn)
		p.drawn = 0
	}
}

// draw writes a frame; the caller holds mu.
func (p *liveProgress) draw() {
	if p.closed {
		return
	}
	var b strings.Builder
	lines := 0
	for i, a := range p.active {
		if i == 8 {
			fmt.Fprintf(&b, "  ... and %d more\n", len(p.active)-i)
			lines++
			break
		}
		sent := min(a.sent, a.size)
		fmt.Fprintf(&b, "  %s %s %s/%s\n", truncate(a.img.Reference, 50), bar(sent, a.size, 20), humanBytes(sent), humanBytes(a.size))
		lines++
	}
	elapsed := time.Since(p.start).Seconds()
	rate := 0.0
	if elapsed > 0 {
		rate = float64(p.bytes) / elapsed
	}
	fmt.Fprintf(&b, "Images %d/%d, uploaded %s (%s/s)\n", p.done, p.total, humanBytes(p.bytes), humanBytes(int64(rate)))
	lines++
	io.WriteString(p.out, b.String())
	p.drawn = lines
}

func bar(n, total int64, width int) string {
	if total <= 0 {
		return "[" + strings.Repeat("=", width) + "]"
	}
	filled := int(int64(width) * n / total)
	if filled >= width {
		return "[" + strings.Repeat("=", width) + "]"
	}
	return "[" + strings.Repeat("=", filled) + ">" + strings.Repeat(" ", width-filled-1) + "]"
}

func truncate(s string, n int) string {
	if len(s) <= n {
		return s
	}
	return "..." + s[len(s)-n+3:]
}
