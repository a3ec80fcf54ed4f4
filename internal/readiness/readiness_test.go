package readiness_test

import (
	"testing"
	"time"

	"github.com/stretchr/testify/require"

	"github.com/rampartmail/rampart/internal/dmarc"
	"github.com/rampartmail/rampart/internal/readiness"
)

var today = time.Date(2026, 3, 31, 15, 4, 5, 0, time.UTC)

func ago(days int) time.Time { return today.AddDate(0, 0, -days) }

func codes(r readiness.Readiness) []string {
	var out []string
	for _, rs := range r.Reasons {
		out = append(out, string(rs.Code)+":"+rs.Sender+":"+string(rs.Blocks))
	}
	return out
}

// TestDecide: every reason, what each blocks, and the verdict they give.
func TestDecide(t *testing.T) {
	t.Parallel()
	seventy := 70.0
	base := func() readiness.Input {
		return readiness.Input{
			Days: 20, Threshold: 95,
			Volumes: []readiness.Volume{
				{Class: "internal", Messages: 1000, Passed: 995, FirstSeen: ago(25)},
				{Class: "service", Service: "sendgrid", Messages: 2000, Passed: 1990, FirstSeen: ago(29)},
				{Class: "forwarded", Messages: 50, Passed: 0, FirstSeen: ago(20)},
			},
			Services: map[string]readiness.Service{"sendgrid": {Name: "SendGrid", Enabled: true}},
		}
	}
	for _, tc := range []struct {
		name    string
		edit    func(*readiness.Input)
		verdict readiness.Verdict
		reasons []string
	}{
		{"clean", func(*readiness.Input) {}, readiness.ReadyForReject, nil},
		{"failing sender", func(in *readiness.Input) { in.Volumes[1].Passed = 1000 }, readiness.NotReady,
			[]string{"SENDER_FAILING:sendgrid:quarantine"}},
		{"the sender's own threshold", func(in *readiness.Input) {
			in.Volumes[1].Passed = 1500
			in.Services["sendgrid"] = readiness.Service{Name: "SendGrid", Enabled: true, Threshold: &seventy}
		}, readiness.ReadyForReject, nil},
		{"the domain's threshold", func(in *readiness.Input) { in.Threshold, in.Volumes[0].Passed = 99.2, 990 }, readiness.NotReady,
			[]string{"SENDER_FAILING:internal:quarantine"}},
		{"a service not enabled is held to the threshold", func(in *readiness.Input) {
			in.Volumes = append(in.Volumes, readiness.Volume{Class: "service", Service: "mandrill", Messages: 100, Passed: 10, FirstSeen: ago(28)})
		}, readiness.NotReady, []string{"SENDER_FAILING:mandrill:quarantine"}},
		{"new sender", func(in *readiness.Input) { in.Volumes[1].FirstSeen = ago(13) }, readiness.NotReady,
			[]string{"NEW_SENDER:sendgrid:quarantine"}},
		{"14 days is not new", func(in *readiness.Input) { in.Volumes[1].FirstSeen = ago(14) }, readiness.ReadyForReject, nil},
		{"unidentified share above 2%", func(in *readiness.Input) {
			in.Volumes = append(in.Volumes, readiness.Volume{Class: "unidentified", Messages: 100, FirstSeen: ago(3)})
		}, readiness.ReadyForQuarantine, []string{"UNIDENTIFIED_SHARE::reject"}},
		{"unidentified share above 5%", func(in *readiness.Input) {
			in.Volumes = append(in.Volumes, readiness.Volume{Class: "unidentified", Messages: 200, FirstSeen: ago(3)})
		}, readiness.NotReady, []string{"UNIDENTIFIED_SHARE::quarantine"}},
		{"too little data", func(in *readiness.Input) {
			in.Days = 6
			in.Volumes = in.Volumes[:1]
			in.Volumes[0].Messages, in.Volumes[0].Passed = 99, 99
		}, readiness.NotReady, []string{"TOO_FEW_DAYS::quarantine", "TOO_FEW_MESSAGES::quarantine"}},
		{"nothing at all", func(in *readiness.Input) { in.Days, in.Volumes = 0, nil }, readiness.NotReady,
			[]string{"TOO_FEW_DAYS::quarantine", "TOO_FEW_MESSAGES::quarantine"}},
	} {
		t.Run(tc.name, func(t *testing.T) {
			in := base()
			tc.edit(&in)
			r := readiness.Decide(in, readiness.Defaults, today)
			require.Equal(t, tc.verdict, r.Verdict, "%v", r.Reasons)
			require.Equal(t, tc.reasons, codes(r))
			for _, rs := range r.Reasons {
				require.NotEmpty(t, rs.Message)
			}
		})
	}

	r := readiness.Decide(base(), readiness.Defaults, today)
	require.Equal(t, time.Date(2026, 3, 2, 0, 0, 0, 0, time.UTC), r.From)
	require.Equal(t, time.Date(2026, 3, 31, 0, 0, 0, 0, time.UTC), r.To)
	require.Equal(t, int64(3050), r.Messages)
	require.Equal(t, int64(50), r.Forwarded, "forwarded mail is counted, and left out of the rates")
	require.Len(t, r.Senders, 2)
	require.Equal(t, "internal", r.Senders[0].Key, "the domain's own servers first")
	require.Equal(t, "SendGrid", r.Senders[1].Name)
	require.InDelta(t, 99.5, r.Senders[1].PassRate, 1e-9)
	require.Equal(t, dmarc.Reject, r.Verdict.Allows())

	in := base()
	in.Volumes[1].Passed = 1000
	r = readiness.Decide(in, readiness.Defaults, today)
	require.Equal(t, readiness.Reason{Code: readiness.SenderFailing, Sender: "sendgrid", Value: 50, Threshold: 95, Blocks: dmarc.Quarantine,
		Message: "SendGrid passes DMARC for 50% of its 2000 messages; it needs 95%: align its SPF or DKIM with the domain first."}, r.Reasons[0])
}

func TestCheckThreshold(t *testing.T) {
	t.Parallel()
	for _, ok := range []float64{50, 95, 99.5, 100} {
		require.NoError(t, readiness.CheckThreshold("threshold", ok))
	}
	for _, bad := range []float64{49.9, 100.1, -1} {
		require.Error(t, readiness.CheckThreshold("threshold", bad))
	}
}

func TestParseSettings(t *testing.T) {
	t.Parallel()
	s, err := readiness.ParseSettings("")
	require.NoError(t, err)
	require.Equal(t, readiness.Defaults, s)
	again, err := readiness.ParseSettings(s.String())
	require.NoError(t, err)
	require.Equal(t, s, again)
	s, err = readiness.ParseSettings(" window=60, min-messages=1000,reject-unidentified=0.5 ")
	require.NoError(t, err)
	want := readiness.Defaults
	want.WindowDays, want.MinMessages, want.RejectUnidentified = 60, 1000, 0.5
	require.Equal(t, want, s)
	for _, bad := range []string{"window", "window=6", "window=abc", "new-sender=31", "min-days=0", "min-messages=0",
		"quarantine-unidentified=101", "reject-unidentified=6", "colour=blue"} {
		_, err := readiness.ParseSettings(bad)
		require.Error(t, err, bad)
	}
}
