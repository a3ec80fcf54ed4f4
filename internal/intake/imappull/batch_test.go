package imappull

import (
	"testing"

	"github.com/emersion/go-imap/v2"
	"github.com/stretchr/testify/require"
)

func TestBatches(t *testing.T) {
	t.Parallel()
	set := func(rs ...[2]uint32) imap.UIDSet {
		var s imap.UIDSet
		for _, r := range rs {
			s = append(s, imap.UIDRange{Start: imap.UID(r[0]), Stop: imap.UID(r[1])})
		}
		return s
	}
	for _, tc := range []struct {
		name string
		uids imap.UIDSet
		last uint32
		n    int
		want []string
	}{
		{name: "none", uids: nil, n: 3, want: nil},
		{name: "one range split", uids: set([2]uint32{1, 7}), n: 3, want: []string{"1:3", "4:6", "7"}},
		{name: "ranges joined", uids: set([2]uint32{1, 2}, [2]uint32{5, 5}, [2]uint32{9, 12}), n: 3, want: []string{"1:2,5", "9:11", "12"}},
		{name: "at or below last dropped", uids: set([2]uint32{3, 3}, [2]uint32{8, 10}), last: 8, n: 10, want: []string{"9:10"}},
		{name: "n:* matched the highest, below last", uids: set([2]uint32{5, 5}), last: 9, n: 10, want: nil},
		{name: "reversed range", uids: set([2]uint32{6, 4}), n: 2, want: []string{"4:5", "6"}},
		{name: "top of the UID space", uids: set([2]uint32{4294967294, 4294967295}), n: 1, want: []string{"4294967294", "4294967295"}},
		{name: "nothing above the top", uids: set([2]uint32{4294967295, 4294967295}), last: 4294967295, n: 1, want: nil},
	} {
		t.Run(tc.name, func(t *testing.T) {
			t.Parallel()
			var got []string
			for b := range batches(tc.uids, tc.last, tc.n) {
				got = append(got, b.String())
			}
			require.Equal(t, tc.want, got)
		})
	}
}
