package graph

import (
	"context"
	"strings"
	"time"

	"github.com/google/uuid"

	"github.com/rampartmail/rampart/graph/model"
	"github.com/rampartmail/rampart/internal/readiness"
)

// readinessModel converts a verdict for the API.
func readinessModel(rd readiness.Readiness) *model.Readiness {
	out := &model.Readiness{
		Verdict: model.ReadinessVerdict(rd.Verdict),
		Reasons: reasonModels(rd.Reasons),
		Senders: make([]*model.ReadinessSender, len(rd.Senders)),
		From:    rd.From.Format(time.DateOnly), To: rd.To.Format(time.DateOnly), Days: rd.Days,
		Messages: rd.Messages, UnidentifiedMessages: rd.Unidentified, ForwardedMessages: rd.Forwarded,
		UnidentifiedShare: rd.UnidentifiedShare, Threshold: rd.Threshold,
		Rules: &model.ReadinessRules{
			WindowDays: rd.Settings.WindowDays, NewSenderDays: rd.Settings.NewSenderDays,
			MinDays: rd.Settings.MinDays, MinMessages: rd.Settings.MinMessages,
			QuarantineUnidentified: rd.Settings.QuarantineUnidentified, RejectUnidentified: rd.Settings.RejectUnidentified,
		},
	}
	for i, s := range rd.Senders {
		out.Senders[i] = &model.ReadinessSender{
			Key: s.Key, Name: s.Name, Authorized: s.Authorized, Messages: s.Messages, Passed: s.Passed,
			PassRate: s.PassRate, Threshold: s.Threshold, OwnThreshold: s.Own,
			FirstSeen: s.FirstSeen.Format(time.DateOnly), New: s.New,
		}
	}
	return out
}

// reasonModels converts a verdict's reasons for the API.
func reasonModels(rs []readiness.Reason) []*model.ReadinessReason {
	out := make([]*model.ReadinessReason, len(rs))
	for i, r := range rs {
		var sender *string
		if r.Sender != "" {
			sender = &r.Sender
		}
		out[i] = &model.ReadinessReason{
			Code: model.ReadinessReasonCode(r.Code), Sender: sender, Value: r.Value, Threshold: r.Threshold,
			Blocks: model.DmarcDisposition(strings.ToUpper(string(r.Blocks))), Message: r.Message,
		}
	}
	return out
}

// readiness is a domain's verdict, through the operation's loader.
func (r *Resolver) readiness(ctx context.Context, accountID, domainID uuid.UUID) (readiness.Readiness, error) {
	l, ok := ctx.Value(loadersKey{}).(*loaders)
	if !ok { // not within an operation of the handler: read alone
		return r.ReadinessSvc.Get(ctx, accountID, domainID)
	}
	return l.readiness.Load(ctx, readiness.Domain{Account: accountID, ID: domainID})
}
