package jobs_test

import (
	"testing"
	"time"

	"github.com/stretchr/testify/require"

	"github.com/rampartmail/rampart/jobs"
)

// TestTimeouts: with the defaults every kind has a timeout, the rescue delay
// exceeds the longest, and a job abandoned by a dead process is retried
// within five minutes (rescue delay, the rescuer's 30-second interval, the
// scheduler's 5 seconds, the first retry's 1-second backoff).
func TestTimeouts(t *testing.T) {
	t.Parallel()
	timeouts := jobs.Timeouts(jobs.Config{})
	require.ElementsMatch(t, []string{"report.ingest", "report.retention", "auth.prune_login_failures",
		"sender.expire_pins", "sender.resolve_ranges", "domain.check_claims", "domain.maintain_edge",
		"domain.check_published", "enrich.sources", "sources.classify"}, keys(timeouts))
	for kind, d := range timeouts {
		require.Positive(t, d, kind)
		require.Less(t, d, jobs.DefaultRescueAfter, kind)
	}
	require.Equal(t, jobs.DefaultJobTimeout, timeouts["report.ingest"])
	require.LessOrEqual(t, jobs.DefaultRescueAfter+30*time.Second+5*time.Second+time.Second, 5*time.Minute)

	// A short job timeout bounds every kind.
	for kind, d := range jobs.Timeouts(jobs.Config{JobTimeout: 10 * time.Second}) {
		require.LessOrEqual(t, d, 10*time.Second, kind)
	}
}

// TestConfigCheck: a rescue delay that does not exceed the job timeout is
// refused, since River would run a job still working a second time.
func TestConfigCheck(t *testing.T) {
	t.Parallel()
	require.NoError(t, jobs.Config{}.Check())
	require.NoError(t, jobs.Config{JobTimeout: 15 * time.Second, RescueAfter: 16 * time.Second}.Check())
	require.ErrorContains(t, jobs.Config{JobTimeout: 15 * time.Second, RescueAfter: 15 * time.Second}.Check(), "must exceed")
	require.ErrorContains(t, jobs.Config{RescueAfter: time.Minute}.Check(), "must exceed")
	require.ErrorContains(t, jobs.Config{JobTimeout: 5 * time.Minute}.Check(), "must exceed")
	require.Error(t, jobs.Config{JobTimeout: -time.Second}.Check())
}

func keys(m map[string]time.Duration) []string {
	var k []string
	for n := range m {
		k = append(k, n)
	}
	return k
}
