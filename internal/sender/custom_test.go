package sender_test

import (
	"errors"
	"fmt"
	"strings"
	"testing"

	"github.com/google/uuid"
	"github.com/stretchr/testify/require"

	"github.com/rampartmail/rampart/internal/apperr"
	"github.com/rampartmail/rampart/internal/catalog"
	"github.com/rampartmail/rampart/internal/sender"
)

func TestNormalizeService(t *testing.T) {
	got, err := sender.NormalizeService(sender.ServiceInput{
		Name: " Relay ", SPFIncludes: []string{"include:_SPF.Relay.example.net.", "_spf2.relay.example.net", "_spf.relay.example.net"},
		Ranges:      []string{"2001:db8::/32", "192.0.2.7", "198.51.100.0/24", "192.0.2.7/32"},
		DKIMDomains: []string{"Relay.example.net", "relay.example.net."}, DKIMSelectors: []string{"S1"},
		HELOSuffixes: []string{"out.relay.example.net", ".OUT.relay.example.net"},
	})
	require.NoError(t, err)
	require.Equal(t, sender.ServiceInput{
		Name: "Relay", Category: sender.DefaultServiceCategory, SPFIncludes: []string{"_spf.relay.example.net", "_spf2.relay.example.net"},
		Ranges:      []string{"192.0.2.7/32", "198.51.100.0/24", "2001:db8::/32"},
		DKIMDomains: []string{"relay.example.net"}, DKIMSelectors: []string{"s1"},
		HELOSuffixes: []string{".out.relay.example.net"},
	}, got)

	_, err = sender.NormalizeService(sender.ServiceInput{Name: "x", DKIMDomains: make([]string, sender.MaxServiceNames+1)})
	e, ok := apperr.As(err)
	require.True(t, ok)
	require.Equal(t, "dkimDomains", e.Field)

	// Includes: each checked, at most MaxServiceIncludes, together within
	// the edge's hand-over answer; each refusal names spfIncludes.
	eleven := make([]string, sender.MaxServiceIncludes+1)
	for i := range eleven {
		eleven[i] = fmt.Sprintf("_spf%d.relay.example.net", i)
	}
	long := strings.Repeat("a", 60) + "." + strings.Repeat("b", 60) + ".example.net"
	for _, includes := range [][]string{
		{"_spf.relay.example.net", "not a host"},
		{"_spf.relay.example.net", ""},
		{"%{i}.spf.example.net"},
		eleven,
		{long, "x" + long},
	} {
		_, err = sender.NormalizeService(sender.ServiceInput{Name: "x", SPFIncludes: includes})
		e, ok := apperr.As(err)
		require.True(t, ok, "%v", includes)
		require.Equal(t, "spfIncludes", e.Field, "%v", includes)
	}
}

// TestAccountSlug: an account's slugs are never a catalog slug.
func TestAccountSlug(t *testing.T) {
	id := uuid.MustParse("0f3c5d2e-9a1b-4c7d-8e6f-0123456789ab")
	slug := sender.AccountSlug(id, "relay")
	require.Equal(t, "relay.0f3c5d2e9a1b4c7d8e6f0123456789ab", slug)
	require.False(t, catalog.IsSlug(slug))
	_, err := sender.ParseServiceLabel("relay.0f3c")
	require.Error(t, err)
	_, err = sender.ParseServiceLabel(strings.Repeat("a", sender.MaxServiceLabel+1))
	require.Error(t, err)
}

// FuzzNormalizeService: any input is either refused with a BAD_USER_INPUT
// error naming a field, or normalised into a form that normalises to
// itself and keeps within the bounds.
func FuzzNormalizeService(f *testing.F) {
	f.Add("Relay", "transactional", "_spf.relay.example.net,_spf2.relay.example.net", "192.0.2.0/24", "relay.example.net", "s1", ".out.relay.example.net", "https://relay.example.net/")
	f.Add("x", "", "include:a.b.", "2001:db8::1", "co.uk", "_domainkey", "com", "ftp://x")
	f.Add("\x00", "A B", "%{i}.x.y", "0.0.0.0/0", "a..b", "-s", "..x", "http://")
	f.Fuzz(func(t *testing.T, name, category, include, rng, dkimDomain, selector, helo, setup string) {
		in := sender.ServiceInput{Name: name, Category: category, SPFIncludes: strings.Split(include, ","), SetupURL: setup,
			Ranges: strings.Split(rng, ","), DKIMDomains: strings.Split(dkimDomain, ","),
			DKIMSelectors: strings.Split(selector, ","), HELOSuffixes: strings.Split(helo, ",")}
		out, err := sender.NormalizeService(in)
		if err != nil {
			e, ok := apperr.As(err)
			require.True(t, ok, "%v", err)
			require.True(t, errors.Is(err, apperr.ErrBadUserInput), "%v", err)
			require.NotEmpty(t, e.Field)
			return
		}
		again, err := sender.NormalizeService(out)
		require.NoError(t, err)
		require.Equal(t, out, again)
		require.LessOrEqual(t, len([]rune(out.Name)), sender.MaxServiceName)
		require.LessOrEqual(t, len(out.Ranges), sender.MaxServiceRanges)
		require.LessOrEqual(t, len(out.SPFIncludes), sender.MaxServiceIncludes)
		require.True(t, catalog.IsSlug(out.Category))
	})
}
