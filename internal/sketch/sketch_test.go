package sketch_test

import (
	"math"
	"math/rand/v2"
	"net/netip"
	"testing"

	"github.com/stretchr/testify/require"

	"github.com/rampartmail/rampart/internal/sketch"
)

func addr(rng *rand.Rand) netip.Addr {
	if rng.IntN(4) == 0 {
		var b [16]byte
		for i := range b {
			b[i] = byte(rng.Uint32())
		}
		return netip.AddrFrom16(b)
	}
	return netip.AddrFrom4([4]byte{byte(rng.Uint32()), byte(rng.Uint32()), byte(rng.Uint32()), byte(rng.Uint32())})
}

// TestCounts: merged through their stored form, sketches of overlapping
// sets count the union, exactly while small and within 2% when large.
func TestCounts(t *testing.T) {
	t.Parallel()
	for _, n := range []int{0, 1, 10, 1000, 3000, 50_000, 300_000} {
		rng := rand.New(rand.NewPCG(uint64(n), 7))
		distinct := map[netip.Addr]bool{}
		var parts [5]sketch.Addresses
		for i := 0; i < n; i++ {
			ip := addr(rng)
			distinct[ip] = true
			parts[i%5].Add(ip)
			if i%3 == 0 { // the same address on another day
				parts[(i+1)%5].Add(ip)
			}
		}
		var all sketch.Addresses
		for i := range parts {
			b, err := parts[i].Bytes()
			require.NoError(t, err)
			require.NoError(t, all.Merge(b))
		}
		got, want := all.Count(), int64(len(distinct))
		if want <= 3000 {
			require.Equal(t, want, got, "n=%d", n)
		} else {
			require.LessOrEqual(t, math.Abs(float64(got-want))/float64(want), 0.02, "n=%d: %d for %d", n, got, want)
		}
	}
}

// TestMappedIsOne: an IPv4 address and its mapped form count once.
func TestMappedIsOne(t *testing.T) {
	t.Parallel()
	var s sketch.Addresses
	s.Add(netip.MustParseAddr("192.0.2.1"))
	s.Add(netip.MustParseAddr("::ffff:192.0.2.1"))
	require.Equal(t, int64(1), s.Count())
}

// TestBadBytes: a damaged sketch is an error, never a panic.
func TestBadBytes(t *testing.T) {
	t.Parallel()
	var s sketch.Addresses
	s.Add(netip.MustParseAddr("192.0.2.1"))
	b, err := s.Bytes()
	require.NoError(t, err)
	require.Error(t, s.Merge(b[:3]))
	require.Error(t, s.Merge([]byte{0xff, 0xff, 0xff, 0xff, 0xff, 0xff}))
}

func FuzzMerge(f *testing.F) {
	var s sketch.Addresses
	s.Add(netip.MustParseAddr("192.0.2.1"))
	b, _ := s.Bytes()
	f.Add(b)
	f.Add([]byte{1, 14})
	f.Fuzz(func(t *testing.T, b []byte) {
		var a sketch.Addresses
		if a.Merge(b) == nil {
			_ = a.Count()
			_, _ = a.Bytes()
		}
	})
}
