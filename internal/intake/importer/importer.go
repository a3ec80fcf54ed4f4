// Package importer is `rampart import PATH...`: an operator hands Rampart
// report files it already has, and each is stored with
// [ingest.Store.Accept] (Source import) for the report.ingest job to decode.
//
// A path may be a file or a folder, which is walked recursively (hidden
// files and folders inside it, whose names start with a dot, are skipped).
// A file whose first line starts with "From " is an mbox and each of its
// messages is one input; any other file (XML, gzip, zip, a single e-mail
// message) is one input. Files are read one at a time and mbox files one
// message at a time, so memory holds one input, never a whole folder or
// mailbox.
//
// Without an account the reports may be for any hosted domain; with
// [Options.AccountID] they are scoped to that account and its children, as
// an upload would be.
//
// Accept refuses some inputs at once (too large, empty); they are listed in
// the [Summary] with their reasons. Whether an accepted input holds a
// report is decided later by the ingest job, which records a refusal reason
// on the blob for the owner to read: the summary says how many were queued
// for decoding, not how many reports were stored. [Importer.Wait] (`rampart
// import -wait`) then waits for those jobs and reads each input's outcome
// (stored, duplicate, or refused with its reason) into the summary, for
// [Summary.PrintOutcomes].
package importer

import (
	"context"
	"errors"
	"fmt"
	"io"
	"io/fs"
	"log/slog"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"time"

	"github.com/google/uuid"

	"github.com/rampartmail/rampart/internal/apperr"
	"github.com/rampartmail/rampart/internal/ingest"
	"github.com/rampartmail/rampart/internal/intake/mbox"
)

// Display chooses how progress is shown.
type Display int

// The displays.
const (
	// DisplayAuto draws a bar on a terminal and prints lines otherwise.
	DisplayAuto Display = iota
	// DisplayBar redraws one line with a bar.
	DisplayBar
	// DisplayLines prints a line every few seconds, for logs.
	DisplayLines
)

// Options configure an import.
type Options struct {
	// AccountID scopes the reports to an account; nil: any hosted domain.
	AccountID *uuid.UUID
	// MaxSize is the largest input (default [ingest.DefaultMaxSize]); it
	// should match the store's limit.
	MaxSize int64
	// Progress receives the progress display; nil shows none.
	Progress io.Writer
	Display  Display
	Log      *slog.Logger
}

// Importer imports files.
type Importer struct {
	store *ingest.Store
	opts  Options
	log   *slog.Logger
}

// New returns an Importer that stores inputs with store.
func New(store *ingest.Store, opts Options) *Importer {
	if opts.MaxSize <= 0 {
		opts.MaxSize = ingest.DefaultMaxSize
	}
	log := opts.Log
	if log == nil {
		log = slog.New(slog.DiscardHandler)
	}
	return &Importer{store: store, opts: opts, log: log}
}

// Summary is what became of an import's inputs.
type Summary struct {
	// Files is the number of files read; Inputs the number of inputs
	// (files, or messages of mbox files); Bytes their size.
	Files, Inputs int
	Bytes         int64
	// Accepted inputs were stored and queued for decoding.
	Accepted int
	// Duplicates were already stored: nothing was queued for them.
	Duplicates int
	// Refused lists the inputs refused, with their reasons.
	Refused []Refusal
	// Queued lists the inputs stored, in order, for [Importer.Wait].
	Queued  []Queued
	Elapsed time.Duration
}

// Queued is an input stored for decoding, or found stored already.
type Queued struct {
	// Path is the file, followed by "#n" for the nth message of an mbox.
	Path   string
	BlobID uuid.UUID
	// Again is true when the same bytes were stored before (a duplicate
	// input): BlobID is the earlier blob.
	Again bool
	// Outcome is what became of the blob, once [Importer.Wait] has seen
	// it; nil before, or if the blob no longer exists.
	Outcome *ingest.Outcome
}

// Refusal is one input that was not stored.
type Refusal struct {
	// Path is the file, followed by "#n" for the nth message of an mbox.
	Path   string
	Reason string
}

// Print writes the summary for a person. It is a courtesy: the import is
// done whether or not the summary can be written, so write errors are dropped.
func (s Summary) Print(w io.Writer) {
	_, _ = fmt.Fprintf(w, "Imported %d %s from %d %s (%s) in %s:\n", s.Inputs, plural(s.Inputs, "input"),
		s.Files, plural(s.Files, "file"), byteSize(s.Bytes), s.Elapsed.Round(time.Millisecond))
	_, _ = fmt.Fprintf(w, "  accepted   %6d  queued %d for decoding; each report's outcome is shown with its upload\n", s.Accepted, s.Accepted)
	_, _ = fmt.Fprintf(w, "  duplicate  %6d  already stored, skipped\n", s.Duplicates)
	_, _ = fmt.Fprintf(w, "  refused    %6d\n", len(s.Refused))
	for _, r := range s.Refused {
		_, _ = fmt.Fprintf(w, "    %s: %s\n", r.Path, r.Reason)
	}
}

// file is one file found by the walk.
type file struct {
	path string
	size int64
}

// Import walks the paths and stores every input. A path that cannot be
// read is refused, not fatal; an error is returned only when storing
// failed for a reason other than the input (the database is unavailable,
// ctx ended), with the summary so far. Running the same import again is
// harmless: what was stored comes back as duplicates.
func (im *Importer) Import(ctx context.Context, paths []string) (Summary, error) {
	start := time.Now()
	var sum Summary
	files := im.walk(paths, &sum)
	var total int64
	for _, f := range files {
		total += f.size
	}
	bar := newProgress(im.opts.Progress, im.opts.Display, len(files), total)
	var done int64
	var err error
	for i, f := range files {
		if err = ctx.Err(); err != nil {
			break
		}
		sum.Files++
		err = im.file(ctx, f, &sum, func(n int64) { bar.update(done+n, i) })
		done += f.size
		bar.update(done, i+1)
		if err != nil {
			break
		}
	}
	bar.finish()
	sum.Elapsed = time.Since(start)
	return sum, err
}

// walk lists the files under the paths, in order.
func (im *Importer) walk(paths []string, sum *Summary) []file {
	var files []file
	for _, root := range paths {
		// A trailing separator makes WalkDir follow a root that is a link
		// to a folder.
		if fi, err := os.Stat(root); err == nil && fi.IsDir() && !strings.HasSuffix(root, string(filepath.Separator)) {
			root += string(filepath.Separator)
		}
		err := filepath.WalkDir(root, func(path string, d fs.DirEntry, err error) error {
			if err != nil {
				sum.Refused = append(sum.Refused, Refusal{Path: path, Reason: reason(err)})
				if d != nil && d.IsDir() {
					return fs.SkipDir
				}
				return nil
			}
			if path != root && strings.HasPrefix(d.Name(), ".") {
				if d.IsDir() {
					return fs.SkipDir
				}
				return nil
			}
			if d.IsDir() {
				return nil
			}
			// Follow a link to a file; a link to a folder is not walked,
			// which also keeps a loop of links from running forever.
			fi, err := os.Stat(path)
			if err != nil {
				sum.Refused = append(sum.Refused, Refusal{Path: path, Reason: reason(err)})
				return nil
			}
			if !fi.Mode().IsRegular() {
				if path == root || !fi.IsDir() {
					sum.Refused = append(sum.Refused, Refusal{Path: path, Reason: "not a regular file"})
				}
				return nil
			}
			files = append(files, file{path: path, size: fi.Size()})
			return nil
		})
		if err != nil {
			sum.Refused = append(sum.Refused, Refusal{Path: root, Reason: reason(err)})
		}
	}
	return files
}

// file imports one file; read reports the bytes read so far.
func (im *Importer) file(ctx context.Context, f file, sum *Summary, read func(int64)) error {
	fh, err := os.Open(f.path)
	if err != nil {
		sum.Inputs++
		sum.Refused = append(sum.Refused, Refusal{Path: f.path, Reason: reason(err)})
		return nil
	}
	defer func() { _ = fh.Close() }()
	cr := &countingReader{r: fh, report: read}
	head := make([]byte, 5)
	n, _ := io.ReadFull(cr, head)
	head = head[:n]
	if mbox.IsMbox(head) {
		return im.mbox(ctx, f, io.MultiReader(strings.NewReader(string(head)), cr), sum)
	}
	sum.Inputs++
	if f.size > im.opts.MaxSize {
		sum.Bytes += f.size
		sum.Refused = append(sum.Refused, Refusal{Path: f.path,
			Reason: fmt.Sprintf("the file is %s; the limit is %s", byteSize(f.size), byteSize(im.opts.MaxSize))})
		return nil
	}
	rest, err := io.ReadAll(io.LimitReader(cr, im.opts.MaxSize+1-int64(len(head))))
	if err != nil {
		sum.Refused = append(sum.Refused, Refusal{Path: f.path, Reason: reason(err)})
		return nil
	}
	raw := append(head, rest...)
	sum.Bytes += int64(len(raw))
	return im.accept(ctx, f.path, filepath.Base(f.path), raw, sum)
}

func (im *Importer) mbox(ctx context.Context, f file, r io.Reader, sum *Summary) error {
	mr := mbox.NewReader(r, im.opts.MaxSize)
	for {
		m, err := mr.Next()
		if errors.Is(err, io.EOF) {
			return nil
		}
		if err != nil {
			sum.Refused = append(sum.Refused, Refusal{Path: f.path, Reason: reason(err)})
			return nil
		}
		sum.Inputs++
		sum.Bytes += m.Size
		name := f.path + "#" + strconv.Itoa(m.Index)
		if m.TooLarge {
			sum.Refused = append(sum.Refused, Refusal{Path: name,
				Reason: fmt.Sprintf("the message is %s; the limit is %s", byteSize(m.Size), byteSize(im.opts.MaxSize))})
			continue
		}
		if err := im.accept(ctx, name, filepath.Base(name), m.Raw, sum); err != nil {
			return err
		}
	}
}

func (im *Importer) accept(ctx context.Context, path, filename string, raw []byte, sum *Summary) error {
	acc, err := im.store.Accept(ctx, ingest.Incoming{
		Source: ingest.SourceImport, Raw: raw, AccountID: im.opts.AccountID, Filename: filename,
	})
	if e, ok := apperr.As(err); ok {
		sum.Refused = append(sum.Refused, Refusal{Path: path, Reason: e.Message})
		return nil
	}
	if err != nil {
		return fmt.Errorf("import %s: %w", path, err)
	}
	if acc.Duplicate {
		sum.Duplicates++
	} else {
		sum.Accepted++
	}
	sum.Queued = append(sum.Queued, Queued{Path: path, BlobID: acc.BlobID, Again: acc.Duplicate})
	im.log.Debug("report imported", "path", path, "blob", acc.BlobID, "duplicate", acc.Duplicate)
	return nil
}

// reason is a refusal's text for an error reading a path.
func reason(err error) string {
	var pe *fs.PathError
	if errors.As(err, &pe) {
		err = pe.Err
	}
	switch {
	case errors.Is(err, fs.ErrNotExist):
		return "no such file or folder"
	case errors.Is(err, fs.ErrPermission):
		return "permission denied"
	}
	return err.Error()
}

type countingReader struct {
	r      io.Reader
	n      int64
	report func(int64)
}

func (c *countingReader) Read(p []byte) (int, error) {
	n, err := c.r.Read(p)
	c.n += int64(n)
	c.report(c.n)
	return n, err
}

func plural(n int, word string) string {
	if n == 1 {
		return word
	}
	return word + "s"
}

func byteSize(n int64) string {
	switch {
	case n >= 1<<20:
		return fmt.Sprintf("%.1f MB", float64(n)/(1<<20))
	case n >= 1<<10:
		return fmt.Sprintf("%.1f KB", float64(n)/(1<<10))
	}
	return fmt.Sprintf("%d bytes", n)
}
