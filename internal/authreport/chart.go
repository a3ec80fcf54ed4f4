package authreport

import (
	"bytes"
	"context"
	"encoding/xml"
	"fmt"
	"log/slog"
	"net/http"
	"time"

	"github.com/google/uuid"

	"github.com/rampartmail/rampart/internal/apperr"
)

// The pass-rate chart's geometry, in SVG user units.
const (
	chartWidth, chartHeight = 720, 320
	chartLeft, chartRight   = 48, 120
	chartTop, chartBottom   = 24, 40
)

// categoryColours are the chart's line colours, one per category, chosen
// to stay apart for the common kinds of colour blindness.
var categoryColours = map[Category]string{
	Internal:     "#0072b2",
	Service:      "#009e73",
	Forwarded:    "#e69f00",
	Unidentified: "#d55e00",
}

// PassRateSVG draws the daily DMARC pass rate of each category over the
// days of title's report: one line per category with messages (a day
// without messages of it leaves a gap), the rate from 0 to 100%, and a
// legend. series holds the days of each category, every day of the range
// in order, as Reader.Daily returns them.
func PassRateSVG(title string, series map[Category][]Day) []byte {
	var b bytes.Buffer
	fmt.Fprintf(&b, `<svg xmlns="http://www.w3.org/2000/svg" width="%d" height="%d" viewBox="0 0 %d %d" role="img" font-family="sans-serif" font-size="12">`,
		chartWidth, chartHeight, chartWidth, chartHeight)
	b.WriteString(`<title>`)
	_ = xml.EscapeText(&b, []byte(title))
	b.WriteString(`</title>`)
	plotW, plotH := float64(chartWidth-chartLeft-chartRight), float64(chartHeight-chartTop-chartBottom)
	// The axes and gridlines: 0, 25, 50, 75 and 100%.
	for pct := 0; pct <= 100; pct += 25 {
		y := float64(chartTop) + plotH*(1-float64(pct)/100)
		fmt.Fprintf(&b, `<line class="grid" x1="%d" y1="%.1f" x2="%.1f" y2="%.1f" stroke="#ddd"/>`, chartLeft, y, float64(chartLeft)+plotW, y)
		fmt.Fprintf(&b, `<text x="%d" y="%.1f" text-anchor="end">%d%%</text>`, chartLeft-6, y+4, pct)
	}
	var days []time.Time
	for _, c := range Categories {
		if len(series[c]) > len(days) {
			days = days[:0]
			for _, d := range series[c] {
				days = append(days, d.Day)
			}
		}
	}
	x := func(i int) float64 {
		if len(days) < 2 {
			return float64(chartLeft) + plotW/2
		}
		return float64(chartLeft) + plotW*float64(i)/float64(len(days)-1)
	}
	if len(days) > 0 {
		fmt.Fprintf(&b, `<text x="%d" y="%d">%s</text>`, chartLeft, chartHeight-12, days[0].Format(time.DateOnly))
		fmt.Fprintf(&b, `<text x="%.1f" y="%d" text-anchor="end">%s</text>`, float64(chartLeft)+plotW, chartHeight-12, days[len(days)-1].Format(time.DateOnly))
	}
	for k, c := range Categories {
		colour := categoryColours[c]
		// A polyline per run of days with messages.
		var run bytes.Buffer
		flush := func() {
			if run.Len() > 0 {
				fmt.Fprintf(&b, `<polyline class="series" data-category="%s" fill="none" stroke="%s" stroke-width="2" points="%s"/>`, c, colour, bytes.TrimSpace(run.Bytes()))
				run.Reset()
			}
		}
		for i, d := range series[c] {
			if d.Stats.Messages == 0 {
				flush()
				continue
			}
			rate := d.Stats.Rate(d.Stats.DMARCPass)
			fmt.Fprintf(&run, "%.1f,%.1f ", x(i), float64(chartTop)+plotH*(1-rate))
		}
		flush()
		ly := chartTop + 16*k
		fmt.Fprintf(&b, `<rect x="%d" y="%d" width="12" height="12" fill="%s"/><text x="%d" y="%d">%s</text>`,
			chartWidth-chartRight+12, ly, colour, chartWidth-chartRight+30, ly+10, c)
	}
	b.WriteString(`</svg>`)
	return b.Bytes()
}

// DomainLookup finds a domain the context's principal may see, by name.
type DomainLookup func(ctx context.Context, name string) (accountID, domainID uuid.UUID, err error)

// ChartHandler serves the pass-rate chart of a domain's report, as
// image/svg+xml, at GET ?domain=<name>&days=<7|30|90> (default 30) or
// &from=<YYYY-MM-DD>&to=<YYYY-MM-DD>. The caller must be authenticated
// (the route wraps it so) and may see the domain's reports.
func ChartHandler(reader *Reader, lookup DomainLookup, now func() time.Time, log *slog.Logger) http.Handler {
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		ctx := r.Context()
		q := r.URL.Query()
		rng, err := chartRange(q.Get("days"), q.Get("from"), q.Get("to"), now())
		if err != nil {
			chartError(w, log, r, err)
			return
		}
		account, id, err := lookup(ctx, q.Get("domain"))
		if err != nil {
			chartError(w, log, r, err)
			return
		}
		scope, err := reader.Domain(ctx, account, id, rng)
		if err != nil {
			chartError(w, log, r, err)
			return
		}
		series := map[Category][]Day{}
		for _, c := range Categories {
			if series[c], err = reader.Daily(ctx, scope, c); err != nil {
				chartError(w, log, r, err)
				return
			}
		}
		title := fmt.Sprintf("DMARC pass rate of %s by category, %s to %s", q.Get("domain"), rng.From.Format(time.DateOnly), rng.To.Format(time.DateOnly))
		w.Header().Set("Content-Type", "image/svg+xml")
		w.Header().Set("Cache-Control", "private, max-age=60")
		w.Header().Set("X-Content-Type-Options", "nosniff")
		// An SVG opened by itself runs no script and loads nothing.
		w.Header().Set("Content-Security-Policy", "default-src 'none'; style-src 'unsafe-inline'")
		_, _ = w.Write(PassRateSVG(title, series))
	})
}

// chartRange reads the chart's range: days (7, 30 or 90; default 30) or
// an explicit from and to.
func chartRange(days, from, to string, now time.Time) (Range, error) {
	if from != "" || to != "" {
		if from == "" || to == "" {
			return Range{}, apperr.Invalid("from", "from and to go together")
		}
		f, err1 := time.Parse(time.DateOnly, from)
		t, err2 := time.Parse(time.DateOnly, to)
		if err1 != nil || err2 != nil {
			return Range{}, apperr.Invalid("from", "from and to are dates, YYYY-MM-DD")
		}
		return Between(f, t)
	}
	switch days {
	case "", "30":
		return LastDays(now, 30), nil
	case "7":
		return LastDays(now, 7), nil
	case "90":
		return LastDays(now, 90), nil
	}
	return Range{}, apperr.Invalid("days", "days is 7, 30 or 90")
}

// chartError answers an error as plain text with its status.
func chartError(w http.ResponseWriter, log *slog.Logger, r *http.Request, err error) {
	status, msg := http.StatusInternalServerError, "internal error"
	if ae, ok := apperr.As(err); ok {
		switch ae.Code {
		case apperr.NotFound:
			status, msg = http.StatusNotFound, ae.Message
		case apperr.BadUserInput:
			status, msg = http.StatusBadRequest, ae.Message
		case apperr.Unauthenticated:
			status, msg = http.StatusUnauthorized, ae.Message
		case apperr.Forbidden:
			status, msg = http.StatusForbidden, ae.Message
		}
	}
	if status == http.StatusInternalServerError {
		log.ErrorContext(r.Context(), "pass-rate chart", "err", err)
	}
	http.Error(w, msg, status)
}
