package loader

import (
	"fmt"
	"io"
	"strings"
	"sync"
	"time"
)

// Level is the severity of a log line.
type Level int

// Levels, printed as Hangar's four-letter names.
const (
	LevelDebug Level = iota
	LevelInfo
	LevelWarn
	LevelError
	LevelFatal
)

func (l Level) String() string {
	return [...]string{"DEBU", "INFO", "WARN", "ERRO", "FATA"}[l]
}

// Logger writes log lines shaped like Hangar's:
// "[HH:MM:SS] [INFO] [IMG:n] message". INFO and DEBUG go to Out, WARN and
// above to Err, as Hangar does. A nil *Logger discards everything.
//
// References: hangar-load.md section 2.14.
type Logger struct {
	Out, Err io.Writer
	// Debug enables DEBU lines.
	Debug bool
	// HideTime prints "-" instead of the time.
	HideTime bool
	// Now returns the time of a line; nil means time.Now.
	Now func() time.Time

	mu sync.Mutex
}

// Logf writes one line; img is the IMG number, or 0 for none.
func (l *Logger) Logf(level Level, img int, format string, args ...any) {
	if l == nil || (level == LevelDebug && !l.Debug) {
		return
	}
	w := l.Out
	if level >= LevelWarn {
		w = l.Err
	}
	if w == nil {
		return
	}
	line := l.Line(level, img, format, args...)
	l.mu.Lock()
	defer l.mu.Unlock()
	io.WriteString(w, line+"\n")
}

// Line formats one log line, without its newline.
func (l *Logger) Line(level Level, img int, format string, args ...any) string {
	stamp := "-"
	if l != nil && !l.HideTime {
		now := time.Now
		if l != nil && l.Now != nil {
			now = l.Now
		}
		stamp = now().Format("15:04:05")
	}
	var b strings.Builder
	fmt.Fprintf(&b, "[%s] [%s] ", stamp, level)
	if img > 0 {
		fmt.Fprintf(&b, "[IMG:%d] ", img)
	}
	fmt.Fprintf(&b, format, args...)
	return b.String()
}

// Infof logs at INFO.
func (l *Logger) Infof(img int, format string, args ...any) { l.Logf(LevelInfo, img, format, args...) }

// Warnf logs at WARN.
func (l *Logger) Warnf(img int, format string, args ...any) { l.Logf(LevelWarn, img, format, args...) }

// Errorf logs at ERRO.
func (l *Logger) Errorf(img int, format string, args ...any) {
	l.Logf(LevelError, img, format, args...)
}

// Debugf logs at DEBU when Debug is set.
func (l *Logger) Debugf(img int, format string, args ...any) {
	l.Logf(LevelDebug, img, format, args...)
}
