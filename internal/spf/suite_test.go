package spf

import (
	"context"
	"errors"
	"fmt"
	"io"
	"net/netip"
	"os"
	"sort"
	"strings"
	"sync/atomic"
	"testing"
	"time"

	"github.com/stretchr/testify/require"
	"go.yaml.in/yaml/v3"
)

// The OpenSPF conformance suites (testdata/*.yml, BSD-3-Clause, licences
// beside them). Each YAML document of a suite is a scenario: zone data and
// test cases giving the client address, HELO, MAIL FROM and the acceptable
// results.

type suiteDoc struct {
	Description string               `yaml:"description"`
	Tests       map[string]suiteCase `yaml:"tests"`
	ZoneData    map[string][]any     `yaml:"zonedata"`
}

type suiteCase struct {
	Host        string       `yaml:"host"`
	HELO        string       `yaml:"helo"`
	MailFrom    string       `yaml:"mailfrom"`
	Result      suiteResults `yaml:"result"`
	Explanation string       `yaml:"explanation"`
}

// suiteResults is a result or a list of acceptable results.
type suiteResults []string

func (r *suiteResults) UnmarshalYAML(n *yaml.Node) error {
	if n.Kind == yaml.ScalarNode {
		*r = suiteResults{n.Value}
		return nil
	}
	var list []string
	if err := n.Decode(&list); err != nil {
		return err
	}
	*r = list
	return nil
}

// loadSuite reads all scenarios of a suite file.
func loadSuite(t testing.TB, path string) []suiteDoc {
	t.Helper()
	f, err := os.Open(path)
	require.NoError(t, err)
	defer func() { _ = f.Close() }()
	dec := yaml.NewDecoder(f)
	var docs []suiteDoc
	for {
		var d suiteDoc
		err := dec.Decode(&d)
		if errors.Is(err, io.EOF) {
			break
		}
		require.NoError(t, err, "decode %s", path)
		docs = append(docs, d)
	}
	return docs
}

// zoneFromSuite builds the zone of a scenario.
func zoneFromSuite(t testing.TB, data map[string][]any) zone {
	t.Helper()
	z := zone{}
	for name, entries := range data {
		name = strings.ToLower(strings.TrimSuffix(name, "."))
		z[name] = []zoneRecord{} // the name exists even with no records
		for _, e := range entries {
			if s, ok := e.(string); ok {
				require.Equal(t, "TIMEOUT", s, "zone entry of %s", name)
				z[name] = append(z[name], zoneRecord{typ: "TIMEOUT"})
				continue
			}
			m, ok := e.(map[string]any)
			require.True(t, ok, "zone entry of %s: %#v", name, e)
			for typ, v := range m {
				z[name] = append(z[name], suiteRecord(t, name, typ, v))
			}
		}
	}
	return z
}

func suiteRecord(t testing.TB, name, typ string, v any) zoneRecord {
	rec := zoneRecord{typ: typ}
	switch typ {
	case "TXT", "SPF":
		switch v := v.(type) {
		case string:
			rec.text = v
			rec.none = typ == "TXT" && v == "NONE"
		case []any:
			var b strings.Builder
			for _, s := range v {
				fmt.Fprint(&b, s)
			}
			rec.text = b.String()
		default:
			t.Fatalf("%s %s: unexpected value %#v", name, typ, v)
		}
	case "A", "AAAA":
		a, err := netip.ParseAddr(fmt.Sprint(v))
		require.NoError(t, err, "%s %s", name, typ)
		rec.addr = a
	case "MX":
		l, ok := v.([]any)
		require.True(t, ok && len(l) == 2, "%s MX: %#v", name, v)
		rec.text = fmt.Sprint(l[1])
	case "PTR", "CNAME":
		rec.text = fmt.Sprint(v)
	default:
		t.Fatalf("%s: unknown record type %s", name, typ)
	}
	return rec
}

// suiteSkips lists the cases not run, each with why, by file and
// "scenario/case". There are none: every case of both suites runs.
//
// The RFC 4408 suite predates RFC 7208, and where RFC 7208 changed or
// settled behaviour its cases accept several results: txtonly, spfonly,
// spftimeout, txttimeout, nospftxttimeout (SPF RR type dropped, §3.1),
// spfoverride, multitxt1, multispf2 (only TXT is consulted, §4.5),
// exists-dnserr (DNS errors give temperror, §5), cidr6-0-ip4 and cidr6-ip4
// (IPv4-mapped clients are IPv4, §5), mx-limit (more than 10 MX is
// permerror, §4.6.4) and the three invalid-domain cases (undefined, §4.8).
// TestRFC4408AgreesWithRFC7208 checks that for each of them we give the
// result the RFC 7208 suite expects, not merely one RFC 4408 allowed.
var suiteSkips = map[string]map[string]string{
	"rfc7208-tests.yml": {},
	"rfc4408-tests.yml": {},
}

// explanationFold lists the cases whose expected explanation differs from
// ours only in letter case, with why.
var explanationFold = map[string]string{
	// The suite spells the nibbles of %{ir} for an IPv6 address in
	// uppercase. RFC 7208 §7.4 shows them in lowercase
	// ("1.0.b.c.0.0...8.b.d.0.1.0.0.2.ip6._spf.example.com"), and DNS names
	// compare case-insensitively, so we keep lowercase.
	"Macro expansion rules/v-macro-ip6": "nibble case",
}

func TestRFC7208Suite(t *testing.T) {
	t.Parallel()
	runSuite(t, "testdata/rfc7208-tests.yml", 203)
}

func TestRFC4408Suite(t *testing.T) {
	t.Parallel()
	runSuite(t, "testdata/rfc4408-tests.yml", 191)
}

func runSuite(t *testing.T, path string, want int) {
	docs := loadSuite(t, path)
	skips := suiteSkips[path[strings.LastIndexByte(path, '/')+1:]]
	var total, ran, passed, skipped atomic.Int32
	t.Run("cases", func(t *testing.T) {
		for _, doc := range docs {
			z := zoneFromSuite(t, doc.ZoneData)
			names := make([]string, 0, len(doc.Tests))
			for name := range doc.Tests {
				names = append(names, name)
			}
			sort.Strings(names)
			for _, name := range names {
				tc := doc.Tests[name]
				key := doc.Description + "/" + name
				total.Add(1)
				t.Run(key, func(t *testing.T) {
					t.Parallel()
					ran.Add(1)
					if why, ok := skips[key]; ok {
						skipped.Add(1)
						t.Skip(why)
					}
					runSuiteCase(t, key, z, tc)
					if !t.Failed() {
						passed.Add(1)
					}
				})
			}
		}
	})
	t.Logf("%s: %d cases, %d run, %d passed, %d skipped", path, total.Load(), ran.Load(), passed.Load(), skipped.Load())
	require.EqualValues(t, want, total.Load(), "number of cases in %s", path)
	require.Equal(t, ran.Load(), passed.Load()+skipped.Load(), "every case run passes or is skipped with a reason")
}

func runSuiteCase(t *testing.T, key string, z zone, tc suiteCase) {
	ip, err := netip.ParseAddr(tc.Host)
	require.NoError(t, err)
	c := &Checker{Resolver: z, Trace: true, Now: func() time.Time { return time.Unix(1700000000, 0) }}
	out := c.Check(context.Background(), ip, tc.HELO, tc.MailFrom)

	var trace strings.Builder
	for _, s := range out.Trace {
		fmt.Fprintf(&trace, "%*s%s %q -> %q match=%v %s: %s\n", 2*s.Depth, "", s.Domain, s.Term, s.Target, s.Match, s.Result, s.Detail)
	}
	if os.Getenv("SPF_TRACE") != "" {
		t.Log(trace.String())
	}
	require.Contains(t, []string(tc.Result), out.Result.String(), "err: %v\ntrace:\n%s", out.Err, trace.String())

	switch {
	case tc.Explanation == "" || out.Result != Fail:
	case tc.Explanation == "DEFAULT":
		require.Empty(t, out.Explanation, "the record has no usable exp=")
	case explanationFold[key] != "":
		require.True(t, strings.EqualFold(tc.Explanation, out.Explanation), "explanation %q, want %q", out.Explanation, tc.Explanation)
	default:
		require.Equal(t, tc.Explanation, out.Explanation)
	}
}

// TestRFC4408AgreesWithRFC7208 runs the cases of the RFC 4408 suite that
// accept more than one result and also appear, with the same inputs, in
// the RFC 7208 suite, and requires the result RFC 7208 expects.
func TestRFC4408AgreesWithRFC7208(t *testing.T) {
	t.Parallel()
	newer := map[string]suiteCase{}
	for _, doc := range loadSuite(t, "testdata/rfc7208-tests.yml") {
		for name, tc := range doc.Tests {
			newer[doc.Description+"/"+name] = tc
		}
	}
	checked := 0
	for _, doc := range loadSuite(t, "testdata/rfc4408-tests.yml") {
		z := zoneFromSuite(t, doc.ZoneData)
		for name, tc := range doc.Tests {
			key := doc.Description + "/" + name
			nc, ok := newer[key]
			if len(tc.Result) < 2 || !ok || nc.Host != tc.Host || nc.HELO != tc.HELO || nc.MailFrom != tc.MailFrom {
				continue
			}
			checked++
			tc.Result = nc.Result
			t.Run(key, func(t *testing.T) {
				t.Parallel()
				runSuiteCase(t, key, z, tc)
			})
		}
	}
	require.GreaterOrEqual(t, checked, 15)
}
