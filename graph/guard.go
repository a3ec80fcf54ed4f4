package graph

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"mime"
	"net/http"
	"strconv"
	"strings"
	"unicode/utf8"

	"github.com/99designs/gqlgen/graphql"
	"github.com/vektah/gqlparser/v2/ast"
	"github.com/vektah/gqlparser/v2/gqlerror"
	"github.com/vektah/gqlparser/v2/parser"

	"github.com/rampartmail/rampart/internal/apperr"
)

// guard is the first check of every operation. It runs on the raw request,
// before gqlgen parses and validates the document (gqlgen's validation and
// complexity walks expand every fragment spread where it is spread, so their
// work can grow exponentially with the document) and before the bearer
// credential is checked or any SQL runs. It parses the document itself with
// the token limit and measures it in time linear in its size: each fragment
// is measured once and its measure reused wherever it is spread. Documents
// over a limit, with a fragment cycle, or with a NUL character in a string
// are refused with BAD_USER_INPUT; whatever passes costs gqlgen's validation
// and execution at most what the limits allow.
type guard struct {
	es     graphql.ExecutableSchema
	limits Limits
	// passed holds documents that passed the checks that do not depend on
	// variables (shape, strings, fragments), by their text, so that a
	// repeated query is not parsed and measured again: only its variables
	// and its cost with them are. gqlgen keeps its own cache of validated
	// documents beside it.
	passed graphql.Cache[*ast.QueryDocument]
}

var _ interface {
	graphql.HandlerExtension
	graphql.OperationParameterMutator
} = guard{}

func (guard) ExtensionName() string                          { return "Guard" }
func (guard) Validate(schema graphql.ExecutableSchema) error { return nil }

func (g guard) MutateOperationParameters(ctx context.Context, p *graphql.RawParams) *gqlerror.Error {
	for name, v := range p.Variables {
		if err := checkVariable("$"+name, v); err != nil {
			return err
		}
	}
	doc, ok := g.passed.Get(ctx, p.Query)
	if !ok {
		var gerr *gqlerror.Error
		if doc, gerr = g.checkDocument(ctx, p.Query); doc == nil || gerr != nil {
			return gerr
		}
		g.passed.Add(ctx, p.Query, doc)
	}
	// The cost of the operation that runs, with its variables; fragments
	// are measured again because their cost depends on the operation's
	// variable defaults.
	if op := doc.Operations.ForName(p.OperationName); op != nil {
		mc := newMeasurer(g.es, doc, op, p.Variables, true)
		s, err := mc.selectionSet(ctx, rootType(g.es.Schema(), op), op.SelectionSet)
		if err != nil {
			return err
		}
		if s.cost > g.limits.Complexity {
			return limitError(fmt.Sprintf("%s has complexity %s; the limit is %d", opName(op), atLeast(s.cost), g.limits.Complexity))
		}
	}
	return nil
}

// checkDocument parses a document with the token limit and checks what
// does not depend on variables. A document that does not parse returns
// nil and no error: gqlgen parses it again, with the same limit, and
// reports the error.
func (g guard) checkDocument(ctx context.Context, query string) (*ast.QueryDocument, *gqlerror.Error) {
	doc, err := parser.ParseQueryWithTokenLimit(&ast.Source{Input: query}, g.limits.Tokens)
	if err != nil {
		return nil, nil
	}
	if err := checkDocumentStrings(doc); err != nil {
		return nil, err
	}
	// Shape does not depend on variables; only cost does.
	m := newMeasurer(g.es, doc, nil, nil, false)
	for _, op := range doc.Operations {
		s, err := m.selectionSet(ctx, rootType(g.es.Schema(), op), op.SelectionSet)
		if err != nil {
			return nil, err
		}
		if err := g.check(op, s); err != nil {
			return nil, err
		}
	}
	for _, f := range doc.Fragments {
		// Validation walks every fragment on its own as well.
		s, err := m.fragmentDefinition(ctx, f)
		if err != nil {
			return nil, err
		}
		if s.fields > g.limits.Fields {
			return nil, limitError(fmt.Sprintf("fragment %s expands to %s field selections; the limit is %d", f.Name, atLeast(s.fields), g.limits.Fields))
		}
	}
	// gqlgen's validator walks each operation and each fragment with the
	// fragments it reaches (each once per walk): bound that product too.
	defs, sels := len(doc.Operations)+len(doc.Fragments), m.selections
	if defs > 1 && sels > 0 && defs*sels > g.limits.ValidationWork {
		return nil, limitError(fmt.Sprintf("document has %d definitions and %d selections; the limit on their product is %d", defs, sels, g.limits.ValidationWork))
	}
	return doc, nil
}

func (g guard) check(op *ast.OperationDefinition, s measure) *gqlerror.Error {
	switch {
	case s.depth > g.limits.Depth:
		return limitError(fmt.Sprintf("%s is nested %s levels deep; the limit is %d", opName(op), atLeast(s.depth), g.limits.Depth))
	case s.aliases > g.limits.Aliases:
		return limitError(fmt.Sprintf("%s uses %s aliases; the limit is %d", opName(op), atLeast(s.aliases), g.limits.Aliases))
	case s.fields > g.limits.Fields:
		return limitError(fmt.Sprintf("%s expands to %s field selections; the limit is %d", opName(op), atLeast(s.fields), g.limits.Fields))
	}
	return nil
}

func opName(op *ast.OperationDefinition) string {
	if op.Name == "" {
		return "operation"
	}
	return "operation " + op.Name
}

// atLeast prints a saturated count as "more than" the largest int.
func atLeast(n int) string {
	if n == maxInt {
		return "more than " + strconv.Itoa(maxInt-1)
	}
	return strconv.Itoa(n)
}

func rootType(s *ast.Schema, op *ast.OperationDefinition) *ast.Definition {
	switch op.Operation {
	case ast.Mutation:
		return s.Mutation
	case ast.Subscription:
		return s.Subscription
	default:
		return s.Query
	}
}

// measure is what a selection set expands to, fragments spread in place.
// Counts saturate at maxInt.
type measure struct {
	// depth is the deepest nesting of fields, this set's own fields at 1.
	depth int
	// aliases counts aliased fields.
	aliases int
	// fields counts field selections.
	fields int
	// cost is gqlgen's complexity: a field costs 1 plus its children, or
	// what the schema's complexity function says (a list its page size times
	// its children). Only computed when the measurer is asked to.
	cost int
}

func (m *measure) add(o measure) {
	m.depth = max(m.depth, o.depth)
	m.aliases = satAdd(m.aliases, o.aliases)
	m.fields = satAdd(m.fields, o.fields)
	m.cost = satAdd(m.cost, o.cost)
}

const maxInt = int(^uint(0) >> 1)

func satAdd(a, b int) int {
	if a < 0 || b < 0 {
		return max(a, b, 0)
	}
	if c := a + b; c >= a {
		return c
	}
	return maxInt
}

// measurer measures selection sets, each fragment once.
type measurer struct {
	es        graphql.ExecutableSchema
	schema    *ast.Schema
	op        *ast.OperationDefinition // for variable defaults, when computing cost
	vars      map[string]any
	withCost  bool
	fragments map[string]*ast.FragmentDefinition
	memo      map[string]measure
	// active holds the fragments being measured, to find cycles.
	active map[string]bool
	// selections counts the selections walked (each fragment's once).
	selections int
}

func newMeasurer(es graphql.ExecutableSchema, doc *ast.QueryDocument, op *ast.OperationDefinition, vars map[string]any, withCost bool) *measurer {
	m := &measurer{
		es: es, schema: es.Schema(), op: op, vars: vars, withCost: withCost,
		fragments: make(map[string]*ast.FragmentDefinition, len(doc.Fragments)),
		memo:      make(map[string]measure, len(doc.Fragments)),
		active:    map[string]bool{},
	}
	for _, f := range doc.Fragments {
		if _, ok := m.fragments[f.Name]; !ok { // as gqlgen: the first of duplicates
			m.fragments[f.Name] = f
		}
	}
	return m
}

// fragmentDefinition measures a fragment definition; for the first of its
// name the measure is kept for its spreads.
func (m *measurer) fragmentDefinition(ctx context.Context, f *ast.FragmentDefinition) (measure, *gqlerror.Error) {
	if m.fragments[f.Name] == f {
		return m.spread(ctx, f.Name)
	}
	return m.selectionSet(ctx, m.schema.Types[f.TypeCondition], f.SelectionSet)
}

func (m *measurer) spread(ctx context.Context, name string) (measure, *gqlerror.Error) {
	if s, ok := m.memo[name]; ok {
		return s, nil
	}
	f := m.fragments[name]
	if f == nil {
		return measure{}, nil // validation reports the unknown fragment
	}
	if m.active[name] {
		return measure{}, limitError(fmt.Sprintf("fragment %s spreads itself", name))
	}
	m.active[name] = true
	s, err := m.selectionSet(ctx, m.schema.Types[f.TypeCondition], f.SelectionSet)
	delete(m.active, name)
	if err != nil {
		return s, err
	}
	m.memo[name] = s
	return s, nil
}

func (m *measurer) selectionSet(ctx context.Context, parent *ast.Definition, set ast.SelectionSet) (measure, *gqlerror.Error) {
	var total measure
	for _, sel := range set {
		m.selections++
		switch s := sel.(type) {
		case *ast.Field:
			f, err := m.field(ctx, parent, s)
			if err != nil {
				return total, err
			}
			total.add(f)
		case *ast.InlineFragment:
			t := parent
			if s.TypeCondition != "" {
				t = m.schema.Types[s.TypeCondition]
			}
			f, err := m.selectionSet(ctx, t, s.SelectionSet)
			if err != nil {
				return total, err
			}
			total.add(f)
		case *ast.FragmentSpread:
			f, err := m.spread(ctx, s.Name)
			if err != nil {
				return total, err
			}
			total.add(f)
		}
	}
	return total, nil
}

func (m *measurer) field(ctx context.Context, parent *ast.Definition, f *ast.Field) (measure, *gqlerror.Error) {
	var def *ast.FieldDefinition
	var typ *ast.Definition
	switch {
	case f.Name == "__typename":
	case parent != nil:
		def = parent.Fields.ForName(f.Name)
		if def == nil && parent == m.schema.Query {
			switch f.Name { // introspection's root fields
			case "__schema":
				typ = m.schema.Types["__Schema"]
			case "__type":
				typ = m.schema.Types["__Type"]
			}
		}
	}
	if def != nil {
		typ = m.schema.Types[def.Type.Name()]
	}
	children, err := m.selectionSet(ctx, typ, f.SelectionSet)
	if err != nil {
		return children, err
	}
	s := measure{depth: satAdd(children.depth, 1), aliases: children.aliases, fields: satAdd(children.fields, 1)}
	if f.Alias != "" && f.Alias != f.Name {
		s.aliases = satAdd(s.aliases, 1)
	}
	if m.withCost && (typ == nil || typ.Name != "__Schema") { // gqlgen does not count introspection
		childCost := 0
		if typ == nil || typ.Kind == ast.Object || typ.Kind == ast.Interface || typ.Kind == ast.Union {
			childCost = children.cost
		}
		s.cost = m.fieldCost(ctx, parent, def, f, childCost)
	}
	return s, nil
}

// fieldCost follows gqlgen's complexity package: the schema's complexity
// function when it has one for the field, else 1 plus the children; for a
// field of an interface, the dearest of its implementations.
func (m *measurer) fieldCost(ctx context.Context, parent *ast.Definition, def *ast.FieldDefinition, f *ast.Field, childCost int) int {
	cost := satAdd(1, childCost)
	if parent == nil || def == nil {
		return cost
	}
	args := m.arguments(def, f)
	types := []*ast.Definition{parent}
	if parent.Kind == ast.Interface {
		types = m.schema.GetPossibleTypes(parent)
	}
	dearest := 0
	for _, t := range types {
		c := cost
		if custom, ok := m.es.Complexity(ctx, t.Name, f.Name, childCost, args); ok && custom >= 1 {
			c = custom
		}
		dearest = max(dearest, c)
	}
	return max(dearest, 1)
}

// arguments are a field's argument values with the request's variables and
// the defaults, as far as they can be known before validation; a value
// that cannot be read is left out (validation refuses it later).
func (m *measurer) arguments(def *ast.FieldDefinition, f *ast.Field) map[string]any {
	if len(def.Arguments) == 0 {
		return nil
	}
	out := make(map[string]any, len(def.Arguments))
	for _, ad := range def.Arguments {
		var v any
		ok := false
		if a := f.Arguments.ForName(ad.Name); a != nil {
			if a.Value.Kind == ast.Variable {
				v, ok = m.vars[a.Value.Raw]
				if !ok && m.op != nil {
					if vd := m.op.VariableDefinitions.ForName(a.Value.Raw); vd != nil && vd.DefaultValue != nil {
						v, ok = literal(vd.DefaultValue, nil)
					}
				}
			} else {
				v, ok = literal(a.Value, m.vars)
			}
		}
		if !ok && ad.DefaultValue != nil {
			v, ok = literal(ad.DefaultValue, nil)
		}
		if ok {
			out[ad.Name] = v
		}
	}
	return out
}

func literal(v *ast.Value, vars map[string]any) (any, bool) {
	val, err := v.Value(vars)
	return val, err == nil
}

// limitError refuses an operation before it runs.
func limitError(msg string) *gqlerror.Error {
	return &gqlerror.Error{Message: msg, Extensions: map[string]any{"code": string(apperr.BadUserInput)}}
}

// inputError refuses a string argument or variable, naming it.
func inputError(field, msg string, pos *ast.Position) *gqlerror.Error {
	err := &gqlerror.Error{Message: msg, Extensions: map[string]any{"code": string(apperr.BadUserInput), "field": field}}
	if pos != nil {
		err.Locations = []gqlerror.Location{{Line: pos.Line, Column: pos.Column}}
	}
	return err
}

// badString says what is wrong with a string PostgreSQL cannot store or
// that is not text: "" when nothing is.
func badString(s string) string { return apperr.TextProblem(s) }

// checkVariable refuses a variable with a bad string anywhere in it.
func checkVariable(path string, v any) *gqlerror.Error {
	switch v := v.(type) {
	case string:
		if why := badString(v); why != "" {
			return inputError(path, fmt.Sprintf("variable %s %s", path, why), nil)
		}
	case map[string]any:
		for k, e := range v {
			p := path + "." + k
			if why := badString(k); why != "" {
				return inputError(path, fmt.Sprintf("a field name in variable %s %s", path, why), nil)
			}
			if err := checkVariable(p, e); err != nil {
				return err
			}
		}
	case []any:
		for i, e := range v {
			if err := checkVariable(path+"["+strconv.Itoa(i)+"]", e); err != nil {
				return err
			}
		}
	}
	return nil
}

// checkDocumentStrings refuses string literals with a bad string in any
// argument (of fields and directives) and variable default, walking each
// definition once.
func checkDocumentStrings(doc *ast.QueryDocument) *gqlerror.Error {
	var sets func(set ast.SelectionSet) *gqlerror.Error
	argOf := func(owner string) func(string) string {
		return func(path string) string { return "argument " + path + " of " + owner }
	}
	directives := func(owner string, ds ast.DirectiveList) *gqlerror.Error {
		for _, d := range ds {
			for _, a := range d.Arguments {
				if err := checkValue(argOf("directive @"+d.Name+" on "+owner), a.Name, a.Value); err != nil {
					return err
				}
			}
		}
		return nil
	}
	sets = func(set ast.SelectionSet) *gqlerror.Error {
		for _, sel := range set {
			switch s := sel.(type) {
			case *ast.Field:
				for _, a := range s.Arguments {
					if err := checkValue(argOf("field "+s.Name), a.Name, a.Value); err != nil {
						return err
					}
				}
				if err := directives("field "+s.Name, s.Directives); err != nil {
					return err
				}
				if err := sets(s.SelectionSet); err != nil {
					return err
				}
			case *ast.InlineFragment:
				if err := directives("inline fragment", s.Directives); err != nil {
					return err
				}
				if err := sets(s.SelectionSet); err != nil {
					return err
				}
			case *ast.FragmentSpread:
				if err := directives("fragment spread "+s.Name, s.Directives); err != nil {
					return err
				}
			}
		}
		return nil
	}
	for _, op := range doc.Operations {
		for _, vd := range op.VariableDefinitions {
			if vd.DefaultValue != nil {
				if err := checkValue(func(p string) string { return "the default value of " + p }, "$"+vd.Variable, vd.DefaultValue); err != nil {
					return err
				}
			}
			if err := directives("variable $"+vd.Variable, vd.Directives); err != nil {
				return err
			}
		}
		if err := directives(opName(op), op.Directives); err != nil {
			return err
		}
		if err := sets(op.SelectionSet); err != nil {
			return err
		}
	}
	for _, f := range doc.Fragments {
		if err := directives("fragment "+f.Name, f.Directives); err != nil {
			return err
		}
		if err := sets(f.SelectionSet); err != nil {
			return err
		}
	}
	return nil
}

// checkValue refuses a literal holding a bad string; describe names the
// place from the value's path, e.g. "policy.rua[1]".
func checkValue(describe func(path string) string, path string, v *ast.Value) *gqlerror.Error {
	if v == nil {
		return nil
	}
	switch v.Kind {
	case ast.StringValue, ast.BlockValue:
		if why := badString(v.Raw); why != "" {
			return inputError(path, describe(path)+" "+why, v.Position)
		}
	case ast.ObjectValue:
		for _, c := range v.Children {
			if err := checkValue(describe, path+"."+c.Name, c.Value); err != nil {
				return err
			}
		}
	case ast.ListValue:
		for i, c := range v.Children {
			if err := checkValue(describe, path+"["+strconv.Itoa(i)+"]", c.Value); err != nil {
				return err
			}
		}
	}
	return nil
}

// rejectInvalidUTF8 wraps the GraphQL handler: a JSON request body must be
// UTF-8 (RFC 8259), and Go's JSON decoder would silently turn invalid bytes
// into U+FFFD, so such a body is refused with 400, naming the JSON member
// that holds them ("query", "$name.field" for a variable).
func rejectInvalidUTF8(next http.Handler) http.Handler {
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		mt, _, _ := mime.ParseMediaType(r.Header.Get("Content-Type"))
		if r.Method != http.MethodPost || mt != "application/json" {
			next.ServeHTTP(w, r)
			return
		}
		body, err := io.ReadAll(r.Body)
		if err != nil {
			status := http.StatusBadRequest
			var tooBig *http.MaxBytesError
			if errors.As(err, &tooBig) {
				status = http.StatusRequestEntityTooLarge
			}
			writeGraphQLError(w, status, limitError("could not read the request body: "+err.Error()))
			return
		}
		if !utf8.Valid(body) {
			field := invalidUTF8Member(body)
			writeGraphQLError(w, http.StatusBadRequest, inputError(field, fmt.Sprintf("%s in the request is not valid UTF-8", field), nil))
			return
		}
		r.Body = io.NopCloser(bytes.NewReader(body))
		next.ServeHTTP(w, r)
	})
}

func writeGraphQLError(w http.ResponseWriter, status int, err *gqlerror.Error) {
	w.Header().Set("Content-Type", "application/json")
	w.WriteHeader(status)
	_ = json.NewEncoder(w).Encode(graphql.Response{Errors: gqlerror.List{err}})
}

// invalidUTF8Member finds the first JSON string holding invalid UTF-8 in
// one pass and names where it is: "query", "operationName", "$var.a[2]" for
// a variable, or "request body" when the JSON cannot be followed that far.
func invalidUTF8Member(body []byte) string {
	type frame struct {
		object  bool
		key     string // in an object: the current member's key
		wantKey bool
		index   int // in an array: the current element's index
	}
	var stack []frame
	path := func() string {
		if len(stack) == 0 || !stack[0].object || stack[0].key == "" {
			return "request body"
		}
		var b strings.Builder
		first := 1
		if stack[0].key == "variables" && len(stack) > 1 && stack[1].object {
			b.WriteString("$" + stack[1].key)
			first = 2
		} else {
			b.WriteString(stack[0].key)
		}
		for _, f := range stack[first:] {
			if f.object {
				b.WriteString("." + f.key)
			} else {
				b.WriteString("[" + strconv.Itoa(f.index) + "]")
			}
		}
		return b.String()
	}
	dec := json.NewDecoder(bytes.NewReader(body))
	prev := int64(0)
	for {
		tok, err := dec.Token()
		if err != nil {
			return "request body"
		}
		raw := body[prev:dec.InputOffset()]
		prev = dec.InputOffset()
		top := len(stack) - 1
		closing := tok == json.Delim('}') || tok == json.Delim(']')
		if !closing && top >= 0 && stack[top].object && stack[top].wantKey {
			stack[top].key, stack[top].wantKey = fmt.Sprint(tok), false
			if !utf8.Valid(raw) {
				return path()
			}
			continue
		}
		if !closing && top >= 0 && !stack[top].object {
			stack[top].index++
		}
		switch tok {
		case json.Delim('{'):
			stack = append(stack, frame{object: true, wantKey: true})
			continue
		case json.Delim('['):
			stack = append(stack, frame{index: -1})
			continue
		case json.Delim('}'), json.Delim(']'):
			stack = stack[:top]
		default:
			if _, ok := tok.(string); ok && !utf8.Valid(raw) {
				return path()
			}
		}
		// A value ended: an enclosing object wants its next key.
		if n := len(stack); n > 0 && stack[n-1].object {
			stack[n-1].wantKey = true
		}
	}
}
