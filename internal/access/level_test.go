package access

import (
	"testing"
	"unicode/utf8"

	"github.com/google/uuid"
	"github.com/stretchr/testify/require"

	"github.com/rampartmail/rampart/internal/apperr"
)

// TestLevels: each level holds exactly its own permissions and those of
// the levels below it; only the owner level manages users.
func TestLevels(t *testing.T) {
	t.Parallel()
	want := map[Level][]Permission{
		LevelRead:          {ViewReports},
		LevelManageSenders: {ViewReports, ManageSenders, ManageDKIM},
		LevelManagePolicy:  {ViewReports, ManageSenders, ManageDKIM, ManagePolicy},
		LevelAdmin:         {ViewReports, ManageSenders, ManageDKIM, ManagePolicy, ManageDomains},
		LevelOwner:         {ViewReports, ManageSenders, ManageDKIM, ManagePolicy, ManageDomains, ManageUsers},
	}
	all := []Permission{ViewReports, ManageSenders, ManageDKIM, ManagePolicy, ManageDomains, ManageUsers}
	for l, perms := range want {
		require.ElementsMatch(t, perms, l.Permissions(), l.String())
		for _, p := range all {
			require.Equal(t, contains(perms, p), l.Holds(p), "%s holds %s", l, p)
		}
	}
	for _, p := range all {
		require.False(t, Level(0).Holds(p), "no grant holds %s", p)
	}
}

func contains(ps []Permission, p Permission) bool {
	for _, q := range ps {
		if q == p {
			return true
		}
	}
	return false
}

// TestDomainSetWithin: a set is within another only when it cannot cover
// more, now or once labels change.
func TestDomainSetWithin(t *testing.T) {
	t.Parallel()
	a, b := uuid.New(), uuid.New()
	all := DomainSet{Kind: AllDomains}
	ab := DomainSet{Kind: NamedDomains, Domains: []uuid.UUID{a, b}}
	onlyA := DomainSet{Kind: NamedDomains, Domains: []uuid.UUID{a}}
	label := DomainSet{Kind: LabelDomains, Label: "marketing"}
	other := DomainSet{Kind: LabelDomains, Label: "sales"}
	require.True(t, onlyA.Within(ab))
	require.False(t, ab.Within(onlyA))
	require.True(t, ab.Within(all))
	require.False(t, all.Within(ab))
	require.True(t, label.Within(label))
	require.False(t, label.Within(other))
	require.False(t, onlyA.Within(label), "a labelled domain may lose its label")
	require.False(t, label.Within(ab))
	require.True(t, label.Within(all))
}

// FuzzNormalizeLabel: any input gives a clean label or BAD_USER_INPUT,
// never a panic, and a clean label normalises to itself.
func FuzzNormalizeLabel(f *testing.F) {
	for _, s := range []string{"marketing", " Marketing ", "eu-west_1.b", "", "no spaces", "é", "\x00", "a\xff"} {
		f.Add(s)
	}
	f.Fuzz(func(t *testing.T, in string) {
		l, err := NormalizeLabel(in)
		if err != nil {
			require.ErrorIs(t, err, apperr.ErrBadUserInput)
			return
		}
		require.True(t, utf8.ValidString(l))
		require.NotEmpty(t, l)
		require.LessOrEqual(t, len(l), MaxLabelLen)
		again, err := NormalizeLabel(l)
		require.NoError(t, err)
		require.Equal(t, l, again)
	})
}
