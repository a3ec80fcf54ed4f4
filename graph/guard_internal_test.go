package graph

import (
	"context"
	"testing"

	"github.com/99designs/gqlgen/complexity"
	"github.com/stretchr/testify/require"
	"github.com/vektah/gqlparser/v2/ast"
	"github.com/vektah/gqlparser/v2/parser"
	"github.com/vektah/gqlparser/v2/validator"
)

// TestGuardCostMatchesGqlgen: the guard's cost, computed before validation
// with each fragment measured once, equals gqlgen's complexity of the
// validated document (which walks every spread), for documents with
// fragments, inline fragments, variables and their defaults.
func TestGuardCostMatchesGqlgen(t *testing.T) {
	t.Parallel()
	es := executableSchema(&Resolver{})
	for _, tc := range []struct {
		query string
		vars  map[string]any
	}{
		{`{ viewer { user { email } accounts { id name } } }`, nil},
		{`{ domains(first: 7) { totalCount nodes { name account { domains { nodes { name } } } } } }`, nil},
		{`query($n: Int = 3) { domains(first: $n) { nodes { ...d } } } fragment d on Domain { name ... on Domain { mode } account { ...a } } fragment a on Account { domains(first: $n) { nodes { name } } }`, nil},
		{`query($n: Int = 3) { domains(first: $n) { nodes { ...d } } } fragment d on Domain { name account { domains(first: $n) { nodes { name } } } }`, map[string]any{"n": 9}},
		{`{ ...q ...q viewer { ...v } } fragment q on Query { domains { nodes { name } } } fragment v on Viewer { accounts { ...w } } fragment w on Account { domains(first: 2) { totalCount } }`, nil},
		{`{ __typename viewer { __typename } }`, nil},
		{`{ domains(first: 3) { nodes { authReport(range: LAST_7_DAYS) { totals { messages dispositions { none } } categories { category }
			senders(first: 2) { totalCount nodes { name stats { messages } } } unidentified { ip } daily { day } source(ip: "192.0.2.1") { ip } } } }
			account { authReport { totals { messages } } } }`, nil},
	} {
		doc, err := parser.ParseQuery(&ast.Source{Input: tc.query})
		require.NoError(t, err, tc.query)
		m := newMeasurer(es, doc, doc.Operations[0], tc.vars, true)
		got, gerr := m.selectionSet(context.Background(), es.Schema().Query, doc.Operations[0].SelectionSet)
		require.Nil(t, gerr)

		require.Empty(t, validator.ValidateWithRules(es.Schema(), doc, nil), tc.query)
		vars, err := validator.VariableValues(es.Schema(), doc.Operations[0], tc.vars)
		require.NoError(t, err)
		want := complexity.Calculate(context.Background(), es, doc.Operations[0], vars)
		require.Equal(t, want, got.cost, tc.query)
		require.Greater(t, got.cost, 1, tc.query)
	}
}
