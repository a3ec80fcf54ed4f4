package report

// Limits bound the work and memory spent on one input. A zero or negative
// field means its default, so the zero Limits is the default set.
type Limits struct {
	// MaxCompressed caps the raw input handed to Extract, and any archive
	// that must be held in memory after unpacking. Default 25 MB. A bare
	// XML file, which is not compressed, is capped by MaxInflated instead
	// (see [Limits.MaxInput]).
	MaxCompressed int64
	// MaxInflated caps the bytes one decompressed stream may yield: each
	// gzip layer and each zip entry; and a bare XML input. Default 100 MB.
	MaxInflated int64
	// MaxRatio caps inflated bytes divided by the compressed bytes read so
	// far, once more than RatioGrace bytes were inflated. Default 500.
	//
	// Deflate compresses nothing better than about 1032:1, and comes near
	// that only on runs of one byte, the stuff of bombs: 8 MB of zeros or
	// spaces gzip at 1025:1 (821:1 at the fastest level). Content that
	// repeats only every few hundred bytes, as a report's records do, pays
	// for each 258-byte match with the distance's extra bits: 100,000
	// identical records gzip at 228:1 at every level, and real records,
	// whose addresses and counts differ, far worse. 500 lies between, so a
	// bomb of runs is refused within its first megabytes while a report
	// however repetitive is not; a bomb that repeats a longer pattern to
	// stay under 500:1 is held by MaxInflated.
	MaxRatio int64
	// RatioGrace is the number of inflated bytes allowed before MaxRatio is
	// enforced; small files compress far better than large ones. Default 1 MB.
	RatioGrace int64
	// MaxEntries caps the entries of one zip archive. Default 10.
	MaxEntries int
	// MaxDepth caps how many archive layers (gzip or zip) may wrap a
	// report: .xml.gz.gz is 2. Default 3.
	MaxDepth int
	// MaxParts caps the MIME entities of a message, containers included.
	// Default 100.
	MaxParts int
	// MaxPartDepth caps the nesting of multipart and message/rfc822
	// entities. Default 5.
	MaxPartDepth int

	// MaxElementDepth caps XML element nesting. Default 32.
	MaxElementDepth int
	// MaxRecords caps the records of one report. Default 5,000,000.
	MaxRecords int
	// MaxValueBytes caps one XML text value and one tag. Default 64 KiB.
	MaxValueBytes int
}

// Default limits; see the fields of [Limits].
const (
	DefaultMaxCompressed   = 25 << 20
	DefaultMaxInflated     = 100 << 20
	DefaultMaxRatio        = 500
	DefaultRatioGrace      = 1 << 20
	DefaultMaxEntries      = 10
	DefaultMaxDepth        = 3
	DefaultMaxParts        = 100
	DefaultMaxPartDepth    = 5
	DefaultMaxElementDepth = 32
	DefaultMaxRecords      = 5_000_000
	DefaultMaxValueBytes   = 64 << 10
)

// withDefaults returns l with every unset field at its default.
func (l Limits) withDefaults() Limits {
	def := func(v *int64, d int64) {
		if *v <= 0 {
			*v = d
		}
	}
	defInt := func(v *int, d int) {
		if *v <= 0 {
			*v = d
		}
	}
	def(&l.MaxCompressed, DefaultMaxCompressed)
	def(&l.MaxInflated, DefaultMaxInflated)
	def(&l.MaxRatio, DefaultMaxRatio)
	def(&l.RatioGrace, DefaultRatioGrace)
	defInt(&l.MaxEntries, DefaultMaxEntries)
	defInt(&l.MaxDepth, DefaultMaxDepth)
	defInt(&l.MaxParts, DefaultMaxParts)
	defInt(&l.MaxPartDepth, DefaultMaxPartDepth)
	defInt(&l.MaxElementDepth, DefaultMaxElementDepth)
	defInt(&l.MaxRecords, DefaultMaxRecords)
	defInt(&l.MaxValueBytes, DefaultMaxValueBytes)
	return l
}

// MaxInput returns the largest raw input [Extract] takes that begins with
// head (its first bytes, at least 64 of them when there are): MaxInflated
// for a bare XML file, which is read as it is and never inflated, else
// MaxCompressed. Intake paths ask it too, so that what they take is what
// Extract accepts.
func (l Limits) MaxInput(head []byte) int64 {
	l = l.withDefaults()
	if sniff(head) == kindXML {
		return max(l.MaxInflated, l.MaxCompressed)
	}
	return l.MaxCompressed
}
