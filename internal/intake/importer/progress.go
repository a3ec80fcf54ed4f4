package importer

import (
	"fmt"
	"io"
	"os"
	"strings"
	"time"
)

// progress shows how far an import is, by bytes: a bar redrawn in place on
// a terminal, or a line every few seconds elsewhere (a log file, CI). It is a courtesy: write errors are
// dropped and the import goes on.
type progress struct {
	w           io.Writer
	bar         bool
	files       int
	total       int64
	done        int64
	filesDone   int
	interval    time.Duration
	last        time.Time
	drawnLength int
}

func newProgress(w io.Writer, d Display, files int, total int64) *progress {
	p := &progress{w: w, files: files, total: total}
	switch d {
	case DisplayBar:
		p.bar = true
	case DisplayAuto:
		p.bar = isTerminal(w)
	}
	p.interval = 5 * time.Second
	if p.bar {
		p.interval = 100 * time.Millisecond
	}
	return p
}

func isTerminal(w io.Writer) bool {
	f, ok := w.(*os.File)
	if !ok {
		return false
	}
	fi, err := f.Stat()
	return err == nil && fi.Mode()&os.ModeCharDevice != 0
}

func (p *progress) update(done int64, filesDone int) {
	if p.w == nil {
		return
	}
	p.done, p.filesDone = done, filesDone
	if now := time.Now(); now.Sub(p.last) >= p.interval {
		p.last = now
		p.draw()
	}
}

func (p *progress) finish() {
	if p.w == nil {
		return
	}
	p.draw()
	if p.bar {
		_, _ = fmt.Fprintln(p.w)
	}
}

func (p *progress) fraction() float64 {
	if p.total <= 0 {
		if p.files == 0 {
			return 1
		}
		return float64(p.filesDone) / float64(p.files)
	}
	return min(1, float64(p.done)/float64(p.total))
}

func (p *progress) draw() {
	f := p.fraction()
	counts := fmt.Sprintf("%3.0f%%  %d/%d files  %s/%s", f*100, p.filesDone, p.files, byteSize(p.done), byteSize(p.total))
	if !p.bar {
		_, _ = fmt.Fprintf(p.w, "import: %s\n", counts)
		return
	}
	const width = 30
	filled := int(f * width)
	line := "[" + strings.Repeat("=", filled) + strings.Repeat(" ", width-filled) + "] " + counts
	pad := max(0, p.drawnLength-len(line))
	p.drawnLength = len(line)
	_, _ = fmt.Fprintf(p.w, "\r%s%s", line, strings.Repeat(" ", pad))
}
