package model_test

import (
	"bytes"
	"encoding/json"
	"math"
	"testing"

	"github.com/stretchr/testify/require"

	"github.com/rampartmail/rampart/graph/model"
)

func TestCount(t *testing.T) {
	t.Parallel()
	for _, tc := range []struct {
		n    int64
		json string
	}{
		{0, `0`},
		{1<<31 + 5, `2147483653`},
		{model.MaxExactCount, `9007199254740991`},
		{-model.MaxExactCount, `-9007199254740991`},
		{model.MaxExactCount + 1, `"9007199254740992"`},
		{math.MaxInt64, `"9223372036854775807"`},
		{math.MinInt64, `"-9223372036854775808"`},
	} {
		var b bytes.Buffer
		model.MarshalCount(tc.n).MarshalGQL(&b)
		require.Equal(t, tc.json, b.String())
		// What is written reads back: as a decoded JSON value (number or
		// string) and as a variable decoded with UseNumber.
		var v any
		d := json.NewDecoder(&b)
		d.UseNumber()
		require.NoError(t, d.Decode(&v))
		got, err := model.UnmarshalCount(v)
		require.NoError(t, err)
		require.Equal(t, tc.n, got)
	}
	for _, bad := range []any{"1.5", "9223372036854775808", 1.5, 1e300, true, nil, "x"} {
		_, err := model.UnmarshalCount(bad)
		require.Error(t, err, "%v", bad)
	}
}
