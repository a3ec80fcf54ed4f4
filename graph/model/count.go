package model

import (
	"encoding/json"
	"fmt"
	"io"
	"math"
	"strconv"

	"github.com/99designs/gqlgen/graphql"
)

// MaxExactCount is the largest count a JSON number carries exactly to
// every client: 2^53-1, the last integer an IEEE double (JavaScript's
// number) holds without rounding.
const MaxExactCount = 1<<53 - 1

// MarshalCount writes the Count scalar: a count (messages, records,
// duplicates, totalCount, sizes) as a 64-bit integer. GraphQL's Int is 32
// bits, and message counts pass 2^31. A count within ±(2^53-1) is a JSON
// number; beyond that it is a decimal string, so that a client parsing
// JSON into doubles never reads a rounded number as exact.
func MarshalCount(n int64) graphql.Marshaler {
	return graphql.WriterFunc(func(w io.Writer) {
		s := strconv.FormatInt(n, 10)
		if n > MaxExactCount || n < -MaxExactCount {
			s = strconv.Quote(s)
		}
		_, _ = io.WriteString(w, s)
	})
}

// UnmarshalCount reads the Count scalar from an argument or variable: a
// JSON number or a decimal string, of a whole number that fits in 64 bits.
func UnmarshalCount(v any) (int64, error) {
	switch x := v.(type) {
	case int:
		return int64(x), nil
	case int32:
		return int64(x), nil
	case int64:
		return x, nil
	case json.Number:
		return parseCount(string(x))
	case string:
		return parseCount(x)
	case float64:
		if x != math.Trunc(x) || math.Abs(x) > MaxExactCount {
			return 0, fmt.Errorf("%v is not a whole number within ±2^53", x)
		}
		return int64(x), nil
	}
	return 0, fmt.Errorf("%T is not a Count", v)
}

func parseCount(s string) (int64, error) {
	n, err := strconv.ParseInt(s, 10, 64)
	if err != nil {
		return 0, fmt.Errorf("%q is not a whole number of at most 64 bits", s)
	}
	return n, nil
}
