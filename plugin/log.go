package plugin

import (
	"fmt"
	"io"
	"strconv"
	"strings"
	"sync"
	"time"
	"unicode"
	"unicode/utf8"
)

// level is the severity of a log line.
type level int

// Levels, printed as Hangar's four-letter names.
const (
	levelDebug level = iota
	levelInfo
	levelWarn
	levelError
	levelFatal
)

func (l level) String() string {
	return [...]string{"DEBU", "INFO", "WARN", "ERRO", "FATA"}[l]
}

// logger writes log lines shaped like Hangar's:
// "[HH:MM:SS] [INFO] [IMG:n] message". INFO and DEBUG go to out, WARN and
// above to err, as Hangar does. Arguments are quoted where they hold
// control characters (they come from archives, lists and registries), so
// that nothing printed can drive the terminal.
//
// References: hangar-load.md section 2.14.
type logger struct {
	out, err io.Writer
	// debug enables DEBU lines.
	debug bool
	// hideTime prints "-" instead of the time.
	hideTime bool

	mu sync.Mutex
}

// logf writes one line; img is the IMG number, or 0 for none.
func (l *logger) logf(lv level, img int, format string, args ...any) {
	if lv == levelDebug && !l.debug {
		return
	}
	l.write(lv, l.line(lv, img, format, args...)+"\n")
}

// block writes one entry made of a title and lines, as Hangar writes the
// failed list: "[time] [ERRO] title: \nline1\nline2".
func (l *logger) block(lv level, title string, lines []string) {
	var b strings.Builder
	b.WriteString(l.line(lv, 0, "%s: ", title))
	for _, s := range lines {
		b.WriteByte('\n')
		b.WriteString(quoteControl(s))
	}
	b.WriteByte('\n')
	l.write(lv, b.String())
}

func (l *logger) write(lv level, s string) {
	w := l.out
	if lv >= levelWarn {
		w = l.err
	}
	l.mu.Lock()
	defer l.mu.Unlock()
	io.WriteString(w, s)
}

// line formats one log line, without its newline.
func (l *logger) line(lv level, img int, format string, args ...any) string {
	stamp := "-"
	if !l.hideTime {
		stamp = time.Now().Format("15:04:05")
	}
	var b strings.Builder
	fmt.Fprintf(&b, "[%s] [%s] ", stamp, lv)
	if img > 0 {
		fmt.Fprintf(&b, "[IMG:%d] ", img)
	}
	fmt.Fprintf(&b, format, quoteArgs(args)...)
	return b.String()
}

func (l *logger) infof(img int, format string, args ...any) { l.logf(levelInfo, img, format, args...) }
func (l *logger) warnf(img int, format string, args ...any) { l.logf(levelWarn, img, format, args...) }
func (l *logger) errorf(img int, format string, args ...any) {
	l.logf(levelError, img, format, args...)
}

// quoteArgs returns args with the text of strings, errors and Stringers
// quoted by quoteControl.
func quoteArgs(args []any) []any {
	out := make([]any, len(args))
	for i, a := range args {
		switch v := a.(type) {
		case string:
			out[i] = quoteControl(v)
		case error:
			out[i] = quoteControl(v.Error())
		case fmt.Stringer:
			out[i] = quoteControl(v.String())
		default:
			out[i] = a
		}
	}
	return out
}

// quoteControl replaces control characters (C0, DEL, C1) and invalid
// UTF-8 bytes in s by Go escapes such as \x1b, so that text from an
// archive, an image list or a registry cannot move the cursor, retitle or
// clear the terminal when printed.
func quoteControl(s string) string {
	clean := true
	for _, r := range s {
		if r == utf8.RuneError || unicode.IsControl(r) {
			clean = false
			break
		}
	}
	if clean {
		return s
	}
	var b strings.Builder
	for i := 0; i < len(s); {
		r, size := utf8.DecodeRuneInString(s[i:])
		switch {
		case r == utf8.RuneError && size <= 1:
			fmt.Fprintf(&b, `\x%02x`, s[i])
		case unicode.IsControl(r):
			q := strconv.QuoteRuneToASCII(r)
			b.WriteString(q[1 : len(q)-1])
		default:
			b.WriteString(s[i : i+size])
		}
		i += size
	}
	return b.String()
}
