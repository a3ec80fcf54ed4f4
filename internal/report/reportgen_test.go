package report_test

import (
	"bytes"
	"regexp"
	"strconv"
	"testing"

	"github.com/stretchr/testify/require"

	"github.com/rampartmail/rampart/internal/report"
	"github.com/rampartmail/rampart/internal/report/reportgen"
)

// TestGenerateReport checks the benchmark's input: the generated report
// decodes cleanly, with the counts found by a regular expression.
func TestGenerateReport(t *testing.T) {
	t.Parallel()
	data := reportgen.GenerateReport(2000)
	require.Equal(t, data, reportgen.GenerateReport(2000), "deterministic")
	var want int64
	counts := regexp.MustCompile(`<count>(\d+)</count>`).FindAllSubmatch(data, -1)
	for _, m := range counts {
		n, err := strconv.ParseInt(string(m[1]), 10, 64)
		require.NoError(t, err)
		want += n
	}
	rep, warns, err := report.Decode(bytes.NewReader(data), report.Limits{})
	require.NoError(t, err)
	require.Empty(t, warns)
	require.Len(t, counts, 2000)
	require.Len(t, rep.Records, 2000)
	require.Equal(t, want, rep.MessageCount())
	require.True(t, rep.Records[4].SourceIP.Is6())
}
