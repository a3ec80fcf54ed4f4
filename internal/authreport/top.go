package authreport

import (
	"bytes"
	"context"
	"encoding/json"
	"fmt"
	"slices"
	"time"

	"github.com/google/uuid"
	"github.com/jackc/pgx/v5"
	"github.com/jackc/pgx/v5/pgxpool"

	"github.com/rampartmail/rampart/internal/authreport/authreportdb"
)

// PresetDays are the ranges, ending today, whose top unidentified sources
// and senders' distinct addresses are kept per domain and per account
// (report_presets, migration 00032) by [RefreshPresets]: summing
// every source of an account's 1,000 domains over 30 days, or merging 90
// days of its busiest senders' sketches, on each read takes hundreds of
// milliseconds. A preset serves a read only while it is exact: computed
// for the same last day and members, none of whose summaries has changed
// since (their generations), with no day of the range queued. Any other
// range, and a read the preset cannot serve, sums the sources and merges
// the sketches.
var PresetDays = []int32{7, 30, 90}

// preset says which preset may serve the scope's top unidentified sources
// at now: a domain's, or the account's when it covers accounts whole and
// no single domain.
func (s *Scope) preset(now time.Time) (id uuid.UUID, days int32, members []uuid.UUID, ok bool) {
	if !s.rng.To.Equal(day(now)) {
		return uuid.Nil, 0, nil, false
	}
	for _, d := range PresetDays {
		if int(d) == s.rng.Days() {
			days = d
		}
	}
	switch {
	case days == 0:
		return uuid.Nil, 0, nil, false
	case s.domain != uuid.Nil:
		return s.domain, days, []uuid.UUID{s.domain}, true
	case len(s.single) > 0 || len(s.whole) == 0:
		return uuid.Nil, 0, nil, false
	}
	return s.account, days, sortedIDs(s.whole), true
}

func sortedIDs(ids []uuid.UUID) []uuid.UUID {
	out := slices.Clone(ids)
	slices.SortFunc(out, func(a, b uuid.UUID) int { return bytes.Compare(a[:], b[:]) })
	return out
}

// presetSource is one source as a preset stores it.
type presetSource struct {
	IP                    string   `json:"ip"`
	Messages              int64    `json:"messages"`
	DMARCPass             int64    `json:"dmarc_pass"`
	SPFPass               int64    `json:"spf_pass"`
	SPFAligned            int64    `json:"spf_aligned"`
	DKIMPass              int64    `json:"dkim_pass"`
	DKIMAligned           int64    `json:"dkim_aligned"`
	DispositionNone       int64    `json:"disposition_none"`
	DispositionQuarantine int64    `json:"disposition_quarantine"`
	DispositionReject     int64    `json:"disposition_reject"`
	Reporters             []string `json:"reporters"`
}

// presetSender is a sender's distinct addresses as a preset stores them.
type presetSender struct {
	Class   string `json:"class"`
	Service string `json:"service"`
	Sources int64  `json:"sources"`
}

// PresetRefresh is what one [RefreshPresets] did.
type PresetRefresh struct {
	// Stored presets, and those left because a day of their range was
	// queued (the next run takes them).
	Stored, Queued int
	// Done is false when the run stopped at its deadline with work left.
	Done bool
}

// RefreshPresets computes the presets (the top unidentified
// sources, the senders' distinct addresses) that are not current at now, for every domain with summaries in
// the longest preset range and every account with domains (its report as
// its owner reads it: with its customer accounts'), until deadline (zero:
// none). Each is computed in a repeatable-read transaction, so that the
// generations it records are those of the data it summed.
func RefreshPresets(ctx context.Context, pool *pgxpool.Pool, now time.Time, deadline time.Time) (PresetRefresh, error) {
	var res PresetRefresh
	to := day(now)
	q := authreportdb.New(pool)
	stale, err := q.StalePresets(ctx, authreportdb.StalePresetsParams{Since: pgDate(to.AddDate(0, 0, -int(slices.Max(PresetDays)-1))),
		Days: PresetDays, ToDay: pgDate(to)})
	if err != nil {
		return res, fmt.Errorf("list the stale presets: %w", err)
	}
	for _, c := range stale {
		if !deadline.IsZero() && time.Now().After(deadline) {
			return res, nil
		}
		stored, err := refreshPreset(ctx, pool, c, to)
		if err != nil {
			return res, err
		}
		if stored {
			res.Stored++
		} else {
			res.Queued++
		}
	}
	res.Done = true
	return res, nil
}

// refreshTop computes and stores one preset; false when a day of its range
// is queued.
func refreshPreset(ctx context.Context, pool *pgxpool.Pool, c authreportdb.StalePresetsRow, to time.Time) (bool, error) {
	from := to.AddDate(0, 0, -int(c.Days-1))
	stored := false
	err := pgx.BeginTxFunc(ctx, pool, pgx.TxOptions{IsoLevel: pgx.RepeatableRead, AccessMode: pgx.ReadWrite}, func(tx pgx.Tx) error {
		q := authreportdb.New(tx)
		in, err := q.PresetInputs(ctx, authreportdb.PresetInputsParams{Members: c.Members, FromDay: pgDate(from), ToDay: pgDate(to)})
		if err != nil {
			return fmt.Errorf("read a preset's generations: %w", err)
		}
		if in.Queued {
			return nil
		}
		rows, err := q.TopUnidentified(ctx, authreportdb.TopUnidentifiedParams{DomainIds: c.Domains, FromDay: pgDate(from), ToDay: pgDate(to),
			Lim: MaxPage, Members: []uuid.UUID{}})
		if err != nil {
			return fmt.Errorf("sum a preset's sources: %w", err)
		}
		srcs := make([]presetSource, len(rows))
		for i, r := range rows {
			srcs[i] = presetSource{IP: r.Ip, Messages: r.Messages, DMARCPass: r.DmarcPass, SPFPass: r.SpfPass, SPFAligned: r.SpfAligned,
				DKIMPass: r.DkimPass, DKIMAligned: r.DkimAligned, DispositionNone: r.DispositionNone,
				DispositionQuarantine: r.DispositionQuarantine, DispositionReject: r.DispositionReject, Reporters: r.Reporters}
		}
		top, err := json.Marshal(srcs)
		if err != nil {
			return fmt.Errorf("encode a preset: %w", err)
		}
		sp := authreportdb.ScopeSketchesParams{FromDay: pgDate(from), ToDay: pgDate(to), AccountIds: []uuid.UUID{}, DomainIds: c.Members}
		if c.IsAccount {
			sp.AccountIds, sp.DomainIds = c.Members, []uuid.UUID{}
		}
		sk, err := q.ScopeSketches(ctx, sp)
		if err != nil {
			return fmt.Errorf("read a preset's senders: %w", err)
		}
		senders := make([]presetSender, len(sk))
		for i, r := range sk {
			n, err := sources(r.Sketches, r.Ips)
			if err != nil {
				return fmt.Errorf("count the addresses of %s %s: %w", r.Class, r.Service, err)
			}
			senders[i] = presetSender{Class: r.Class, Service: r.Service, Sources: n}
		}
		sb, err := json.Marshal(senders)
		if err != nil {
			return fmt.Errorf("encode a preset: %w", err)
		}
		p := authreportdb.StorePresetParams{Days: c.Days, ToDay: pgDate(to), Members: c.Members, Generations: in.Generations, Top: top, Senders: sb}
		id := c.ScopeID
		if c.IsAccount {
			p.AccountID = &id
		} else {
			p.DomainID = &id
		}
		if err := q.StorePreset(ctx, p); err != nil {
			return fmt.Errorf("store a preset: %w", err)
		}
		stored = true
		return nil
	})
	return stored, err
}
