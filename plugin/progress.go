package plugin

import (
	"fmt"
	"io"
	"strings"
	"sync"
	"time"

	"github.com/cnrancher/docker-hangar/loader"
)

// liveProgress draws docker-push-like progress on a terminal: one line per
// image in flight with its bar and bytes (uploaded, mounted or already
// present), and a total line. Log lines are written above it through
// writer, and stay when it is erased.
type liveProgress struct {
	out      io.Writer
	width    int
	validate bool
	lines    hangarLines
	start    time.Time

	mu        sync.Mutex
	active    []*imageProgress
	done      int
	total     int
	doneBytes int64 // bytes of finished images
	allBytes  int64
	drawn     int // lines drawn by the last frame
	closed    bool
	planned   bool // nothing is drawn before the plan is known
	stop      chan struct{}
	finished  chan struct{}
}

type imageProgress struct {
	img         *loader.Image
	done, total int64
}

func newLiveProgress(out io.Writer, width int, validate bool) *liveProgress {
	p := &liveProgress{out: out, width: max(width, 20), validate: validate, start: time.Now(), stop: make(chan struct{}), finished: make(chan struct{})}
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

func (p *liveProgress) log() *logger { return p.lines.l }

// close stops drawing and erases the progress lines.
func (p *liveProgress) close() {
	p.mu.Lock()
	closed := p.closed
	p.mu.Unlock()
	if !closed {
		close(p.stop)
		<-p.finished
	}
}

// event renders a loader event: the bars, and Hangar's lines above them.
func (p *liveProgress) event(ev loader.Event) {
	p.lines.event(ev)
	p.mu.Lock()
	defer p.mu.Unlock()
	switch e := ev.(type) {
	case loader.Planned:
		p.total = len(e.Plan.Images)
		p.allBytes = planBytes(e.Plan)
		p.planned = true
	case loader.ImageStarted:
		p.active = append(p.active, &imageProgress{img: e.Image, total: e.Total})
	case loader.ImageProgress:
		if a := p.find(e.Image); a != nil {
			a.done, a.total = e.Done, e.Total
		}
	case loader.ImageDone:
		p.done++
		for i, a := range p.active {
			if a.img == e.Image {
				p.doneBytes += a.total
				p.active = append(p.active[:i], p.active[i+1:]...)
				break
			}
		}
	}
}

func (p *liveProgress) find(img *loader.Image) *imageProgress {
	for _, a := range p.active {
		if a.img == img {
			return a
		}
	}
	return nil
}

// writer returns a writer whose lines appear above the progress lines.
func (p *liveProgress) writer() io.Writer { return progressWriter{p} }

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
		// from the start of the line: the terminal may have echoed
		// something (^C) after the frame
		fmt.Fprintf(p.out, "\r\x1b[%dA\x1b[J", p.drawn)
		p.drawn = 0
	}
}

// draw writes a frame; the caller holds mu. Lines are cut to the terminal
// width, so that none wraps and clear erases exactly what was drawn.
func (p *liveProgress) draw() {
	if p.closed || !p.planned {
		return
	}
	var b strings.Builder
	lines := 0
	line := func(s string) {
		b.WriteString(truncate(s, p.width-1))
		b.WriteByte('\n')
		lines++
	}
	sum := p.doneBytes
	for i, a := range p.active {
		sum += a.done
		if i == 8 {
			continue
		}
		if p.validate {
			line("  " + quoteControl(a.img.Reference()) + " checking")
			continue
		}
		done := min(a.done, a.total)
		sizes := humanBytes(done) + "/" + humanBytes(a.total)
		name := truncate(quoteControl(a.img.Reference()), max(p.width-len(sizes)-27, 10))
		line(fmt.Sprintf("  %s %s %s", name, bar(done, a.total, 20), sizes))
	}
	if len(p.active) > 8 {
		line(fmt.Sprintf("  ... and %d more", len(p.active)-8))
	}
	elapsed := time.Since(p.start).Seconds()
	rate := 0.0
	if elapsed > 0 {
		rate = float64(sum) / elapsed
	}
	if p.validate {
		line(fmt.Sprintf("Images %d/%d checked", p.done, p.total))
	} else {
		line(fmt.Sprintf("Images %d/%d, %s/%s (%s/s)", p.done, p.total, humanBytes(sum), humanBytes(p.allBytes), humanBytes(int64(rate))))
	}
	io.WriteString(p.out, b.String())
	p.drawn = lines
}

func bar(n, total int64, width int) string {
	if total <= 0 || n >= total {
		return "[" + strings.Repeat("=", width) + "]"
	}
	filled := int(int64(width) * n / total)
	return "[" + strings.Repeat("=", filled) + ">" + strings.Repeat(" ", width-filled-1) + "]"
}

// truncate cuts s to n runes, marking the cut with "..." at its start.
func truncate(s string, n int) string {
	r := []rune(s)
	if len(r) <= n {
		return s
	}
	if n <= 3 {
		return string(r[:n])
	}
	return "..." + string(r[len(r)-n+3:])
}
