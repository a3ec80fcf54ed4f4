package dkim_test

import (
	"crypto/x509"
	"encoding/base64"
	"strings"
	"testing"

	"github.com/stretchr/testify/require"

	"github.com/rampartmail/rampart/internal/dkim"
)

// validCase is an input ParsePublicKey must accept, the key it must return
// and the kinds of warning it must give, in order.
type validCase struct {
	name     string
	in       string
	want     dkim.Key
	warnings []dkim.WarningCode
}

// validCases builds the accepted inputs from generated keys.
func validCases(t testing.TB) []validCase {
	t.Helper()
	rsa1024 := rsaKey(t, 1024)
	rsa2048 := rsaKey(t, 2048)
	rsa4096 := rsaKey(t, 4096)
	p1024 := b64(spki(t, &rsa1024.PublicKey))
	p2048 := b64(spki(t, &rsa2048.PublicKey))
	p4096 := b64(spki(t, &rsa4096.PublicKey))
	pkcs1 := x509.MarshalPKCS1PublicKey(&rsa2048.PublicKey)
	edPub, _ := ed25519Pair(t)
	edRaw := b64(edPub)
	edSPKI := spki(t, edPub)

	k1024 := dkim.Key{Type: dkim.TypeRSA, Bits: 1024, PublicKey: p1024}
	k2048 := dkim.Key{Type: dkim.TypeRSA, Bits: 2048, PublicKey: p2048}
	k4096 := dkim.Key{Type: dkim.TypeRSA, Bits: 4096, PublicKey: p4096}
	kEd := dkim.Key{Type: dkim.TypeEd25519, Bits: 256, PublicKey: edRaw}
	kRFC := dkim.Key{Type: dkim.TypeEd25519, Bits: 256, PublicKey: rfc8463Key}
	with := func(k dkim.Key, f func(*dkim.Key)) dkim.Key { f(&k); return k }

	return []validCase{
		{name: "bare rsa 2048", in: p2048, want: k2048},
		{name: "bare rsa 1024 is warned", in: p1024, want: k1024, warnings: []dkim.WarningCode{dkim.WarnShortKey}},
		{name: "record rsa 1024 is warned", in: "v=DKIM1; k=rsa; p=" + p1024, want: k1024, warnings: []dkim.WarningCode{dkim.WarnShortKey}},
		{name: "record rsa 2048", in: "v=DKIM1; k=rsa; p=" + p2048, want: k2048},
		{name: "record rsa 4096", in: "v=DKIM1; k=rsa; p=" + p4096, want: k4096},
		{name: "record without v and k", in: "p=" + p2048, want: k2048},
		{name: "bare key wrapped over lines", in: wrap(p2048, 64, "\n"), want: k2048},
		{name: "PEM public key", in: pemBlock("PUBLIC KEY", spki(t, &rsa2048.PublicKey)), want: k2048},
		{name: "PEM with text around it", in: "Your DKIM key:\n" + pemBlock("PUBLIC KEY", spki(t, &rsa2048.PublicKey)) + "\nThanks!", want: k2048},
		{
			name:     "PEM PKCS1 is converted",
			in:       pemBlock("RSA PUBLIC KEY", pkcs1),
			want:     k2048,
			warnings: []dkim.WarningCode{dkim.WarnConverted},
		},
		{
			name:     "bare PKCS1 is converted",
			in:       b64(pkcs1),
			want:     k2048,
			warnings: []dkim.WarningCode{dkim.WarnConverted},
		},
		{
			name:     "record with PKCS1 p is converted",
			in:       "v=DKIM1; k=rsa; p=" + b64(pkcs1),
			want:     k2048,
			warnings: []dkim.WarningCode{dkim.WarnConverted},
		},
		{
			name: "pasted split into quoted strings",
			in:   `"v=DKIM1; k=rsa; " "p=` + p2048[:200] + `" "` + p2048[200:] + `"`,
			want: k2048,
		},
		{
			name: "pasted with quotes and line breaks",
			in:   "\"v=DKIM1; k=rsa; \"\n\t\"p=" + wrap(p4096, 255, "\"\n\t\"") + "\"\n",
			want: k4096,
		},
		{
			name: "zone-file line with parentheses and comment",
			in: "default._domainkey\tIN\tTXT\t( \"v=DKIM1; h=sha256; k=rsa; s=email; \"\n" +
				"\t  \"p=" + p2048[:250] + "\"\n\t  \"" + p2048[250:] + "\" )  ; ----- DKIM key default for example.com\n",
			want: with(k2048, func(k *dkim.Key) { k.Hashes = []string{"sha256"}; k.Services = []string{"email"} }),
		},
		{
			name: "escaped semicolons",
			in:   `v=DKIM1\; k=rsa\; p=` + p2048,
			want: k2048,
		},
		{
			name: "quoted with decimal escape",
			in:   `"v=DKIM1\059 k=rsa\059 p=` + p2048 + `"`,
			want: k2048,
		},
		{
			name: "folding whitespace inside p",
			in:   "v=DKIM1; k=rsa;\r\n p=" + wrap(p2048, 76, "\r\n  "),
			want: k2048,
		},
		{
			name: "upper-case tags and values",
			in:   "V=dkim1; K=RSA; H=SHA256; P=" + p2048,
			want: with(k2048, func(k *dkim.Key) { k.Hashes = []string{"sha256"} }),
		},
		{
			name: "tags in another order with empty specs",
			in:   ";k=rsa;;p=" + p2048 + "; v=DKIM1;",
			want: k2048,
		},
		{
			name: "all optional tags",
			in:   "v=DKIM1; k=rsa; h=sha256 : sha1; s=email:*; t=y:s:y; n=Key  for\t mail=2C rotated 2026; p=" + p2048,
			want: with(k2048, func(k *dkim.Key) {
				k.Hashes = []string{"sha256", "sha1"}
				k.Services = []string{"email", "*"}
				k.Flags = []string{"y", "s"}
				k.Notes = "Key for mail=2C rotated 2026"
			}),
			warnings: []dkim.WarningCode{dkim.WarnSHA1, dkim.WarnTesting},
		},
		{
			name: "notes that look like PEM",
			in:   "v=DKIM1; k=rsa; n=-----BEGIN PUBLIC KEY----- not a PRIVATE KEY-----; p=" + p2048,
			want: with(k2048, func(k *dkim.Key) { k.Notes = "-----BEGIN PUBLIC KEY----- not a PRIVATE KEY-----" }),
		},
		{
			name:     "sha1 only is warned",
			in:       "v=DKIM1; k=rsa; h=sha1; p=" + p2048,
			want:     with(k2048, func(k *dkim.Key) { k.Hashes = []string{"sha1"} }),
			warnings: []dkim.WarningCode{dkim.WarnSHA1},
		},
		{
			name: "empty t and n are dropped",
			in:   "v=DKIM1; k=rsa; t=; n=; p=" + p2048,
			want: k2048,
		},
		{
			name:     "unknown and obsolete tags are dropped",
			in:       "v=DKIM1; g=*; k=rsa; x_vendor=abc; p=" + p2048,
			want:     k2048,
			warnings: []dkim.WarningCode{dkim.WarnIgnoredTag, dkim.WarnIgnoredTag},
		},
		{name: "bare ed25519 from RFC 8463", in: rfc8463Key, want: kRFC},
		{name: "bare ed25519 without padding", in: strings.TrimRight(rfc8463Key, "="), want: kRFC},
		{name: "record ed25519 from RFC 8463", in: "v=DKIM1; k=ed25519; p=" + rfc8463Key, want: kRFC},
		{name: "record ed25519 generated", in: "v=DKIM1; k=ed25519; h=sha256; p=" + edRaw, want: with(kEd, func(k *dkim.Key) { k.Hashes = []string{"sha256"} })},
		{
			name:     "PEM ed25519 is converted to raw",
			in:       pemBlock("PUBLIC KEY", edSPKI),
			want:     kEd,
			warnings: []dkim.WarningCode{dkim.WarnConverted},
		},
		{
			name:     "record ed25519 SPKI is converted to raw",
			in:       "v=DKIM1; k=ed25519; p=" + b64(edSPKI),
			want:     kEd,
			warnings: []dkim.WarningCode{dkim.WarnConverted},
		},
	}
}

func TestParsePublicKey(t *testing.T) {
	t.Parallel()
	for _, tc := range validCases(t) {
		t.Run(tc.name, func(t *testing.T) {
			t.Parallel()
			got, warnings, err := dkim.ParsePublicKey(tc.in)
			require.NoError(t, err)
			require.Equal(t, tc.want, got)
			var codes []dkim.WarningCode
			for _, w := range warnings {
				require.NotEmpty(t, w.Message)
				codes = append(codes, w.Code)
			}
			require.Equal(t, tc.warnings, codes)

			// The canonical record reads back as the same key.
			again, _, err := dkim.ParsePublicKey(got.Record())
			require.NoError(t, err)
			require.Equal(t, got, again)
		})
	}
}

func TestRecord(t *testing.T) {
	t.Parallel()
	k := dkim.Key{Type: dkim.TypeRSA, Bits: 2048, PublicKey: "MIIB"}
	require.Equal(t, "v=DKIM1; k=rsa; p=MIIB", k.Record())

	k = dkim.Key{Type: dkim.TypeEd25519, Bits: 256, PublicKey: rfc8463Key}
	require.Equal(t, "v=DKIM1; k=ed25519; p="+rfc8463Key, k.Record())

	k = dkim.Key{
		Type: dkim.TypeRSA, PublicKey: "MIIB",
		Hashes: []string{"sha256"}, Services: []string{"email"}, Flags: []string{"y", "s"}, Notes: "a note",
	}
	require.Equal(t, "v=DKIM1; k=rsa; h=sha256; s=email; t=y:s; n=a note; p=MIIB", k.Record())
}

func TestRecordLength(t *testing.T) {
	t.Parallel()
	// A 4096-bit key record is too long for one character-string.
	k, _, err := dkim.ParsePublicKey(b64(spki(t, &rsaKey(t, 4096).PublicKey)))
	require.NoError(t, err)
	rec := k.Record()
	require.Greater(t, len(rec), 700)
	parts := dkim.SplitTXT(rec)
	require.Len(t, parts, 3)
	require.Equal(t, rec, strings.Join(parts, ""))
}

func TestParsePublicKeyErrors(t *testing.T) {
	t.Parallel()
	p2048 := b64(spki(t, &rsaKey(t, 2048).PublicKey))
	edPub, edPriv := ed25519Pair(t)
	pkcs8, err := x509.MarshalPKCS8PrivateKey(edPriv)
	require.NoError(t, err)
	rsaPriv := x509.MarshalPKCS1PrivateKey(rsaKey(t, 1024))
	short := b64(spki(t, fakeRSA(t, 512, 65537)))

	cases := []struct {
		name     string
		in       string
		sentinel error
		tag      string
		contains string
	}{
		{name: "empty", in: " \n", contains: "no key"},
		{name: "too long", in: strings.Repeat("A", 20000), contains: "bytes long"},
		{name: "bad base64 character", in: "v=DKIM1; k=rsa; p=MIIB!!!", tag: "p", contains: "'!' at character 5 is not a base64 character"},
		{name: "bad base64 bare", in: "MIIBIjAN*BgkqhkiG9w0BAQEFAAOCAQ8AMIIBCgKCAQEA", contains: "'*' at character 9"},
		{name: "non-ASCII in base64", in: "p=MIIB\u00e9", tag: "p", contains: "byte 0xc3"},
		{name: "URL-safe base64", in: "p=MIIB-abc_def", tag: "p", contains: "URL-safe"},
		{name: "padding in the middle", in: "p=ab==cd", tag: "p", contains: "padding"},
		{name: "too much padding", in: "p=ab===", tag: "p", contains: "more than two"},
		{name: "cut short", in: "v=DKIM1; k=rsa; p=" + p2048[:len(p2048)-3], tag: "p", contains: "cannot be a whole number"},
		{name: "cut short by a block", in: "v=DKIM1; k=rsa; p=" + p2048[:len(p2048)-4], tag: "p", contains: "not an RSA public key"},
		{name: "garbage of the right shape", in: "v=DKIM1; p=" + b64([]byte("this is not a key at all, just some text")), tag: "p", contains: "not an RSA public key"},
		{name: "bare garbage", in: b64([]byte("this is not a key at all, just some text")), contains: "neither an RSA public key"},
		{name: "rsa 512 refused", in: "v=DKIM1; k=rsa; p=" + short, sentinel: dkim.ErrWeakKey, tag: "p", contains: "512 bits is too short"},
		{name: "bare rsa 512 refused", in: short, sentinel: dkim.ErrWeakKey, contains: "512 bits"},
		{name: "rsa too long", in: b64(spki(t, fakeRSA(t, 9000, 65537))), contains: "9000 bits is too long"},
		{name: "rsa exponent 1", in: b64(spki(t, fakeRSA(t, 2048, 1))), contains: "public exponent 1"},
		{name: "rsa even exponent", in: b64(spki(t, fakeRSA(t, 2048, 65536))), contains: "public exponent 65536"},
		{name: "k mismatch rsa key", in: "v=DKIM1; k=ed25519; p=" + p2048, sentinel: dkim.ErrKeyMismatch, tag: "p", contains: "k=ed25519, but p= holds an RSA key"},
		{name: "k mismatch ed25519 key", in: "v=DKIM1; k=rsa; p=" + rfc8463Key, sentinel: dkim.ErrKeyMismatch, tag: "p", contains: "use k=ed25519"},
		{name: "k absent with ed25519 key", in: "v=DKIM1; p=" + rfc8463Key, sentinel: dkim.ErrKeyMismatch, tag: "p", contains: "add k=ed25519"},
		{name: "k mismatch ed25519 SPKI", in: "v=DKIM1; k=rsa; p=" + b64(spki(t, edPub)), sentinel: dkim.ErrKeyMismatch, tag: "p"},
		{name: "ed25519 31 bytes", in: "v=DKIM1; k=ed25519; p=" + b64(make([]byte, 31)), tag: "p", contains: "this one is 31 bytes"},
		{name: "ed25519 33 bytes", in: "v=DKIM1; k=ed25519; p=" + b64(make([]byte, 33)), tag: "p", contains: "this one is 33 bytes"},
		{name: "bare 33 bytes", in: b64(make([]byte, 33)), contains: "32-byte ed25519"},
		{name: "ed25519 without sha256", in: "v=DKIM1; k=ed25519; h=sha1; p=" + rfc8463Key, tag: "h", contains: "sha256"},
		{name: "ecdsa key", in: pemBlock("PUBLIC KEY", spki(t, ecdsaPublic(t))), contains: "RSA or ed25519"},
		{name: "unsupported k", in: "v=DKIM1; k=dsa; p=" + p2048, tag: "k", contains: `"dsa" is not supported`},
		{name: "empty k", in: "v=DKIM1; k=; p=" + p2048, tag: "k", contains: "empty"},
		{name: "SPF record", in: "v=spf1 include:_spf.google.com ~all", sentinel: dkim.ErrNotDKIM, tag: "v"},
		{name: "DMARC record", in: "v=DMARC1; p=none", sentinel: dkim.ErrNotDKIM, tag: "v"},
		{name: "other version", in: "v=DKIM2; p=" + p2048, sentinel: dkim.ErrNotDKIM, tag: "v"},
		{name: "revoked", in: dkim.RevokedRecord, sentinel: dkim.ErrRevoked, tag: "p"},
		{name: "revoked with spaces", in: "v=DKIM1; k=rsa; p= ;", sentinel: dkim.ErrRevoked, tag: "p"},
		{name: "p missing", in: "v=DKIM1; k=rsa", tag: "p", contains: "missing"},
		{name: "duplicate tag", in: "v=DKIM1; p=" + p2048 + "; P=" + p2048, tag: "p", contains: "more than once"},
		{name: "not a pair", in: "v=DKIM1; rsa; p=" + p2048, contains: `"rsa" is not a tag=value pair`},
		{name: "key without p=", in: "v=DKIM1; k=rsa; " + p2048, contains: "is p= missing"},
		{name: "zone line without quotes", in: "default._domainkey IN TXT v=DKIM1; p=" + p2048, contains: "paste only the TXT value"},
		{name: "bad tag name", in: "v=DKIM1; 1k=rsa; p=" + p2048, contains: "not a valid tag name"},
		{name: "unclosed quote", in: `"v=DKIM1; k=rsa; p=` + p2048, contains: "not closed"},
		{name: "mixed quoting", in: `v=DKIM1; k=rsa; "p=` + p2048 + `"`, contains: "mixes quoted and unquoted"},
		{name: "lone backslash", in: `v=DKIM1; p=abc\`, contains: "lone backslash"},
		{name: "escape out of range", in: `v=DKIM1\999 p=abc`, contains: "not a byte value"},
		{name: "hash md5", in: "v=DKIM1; h=md5; p=" + p2048, tag: "h", contains: `"md5" is not supported`},
		{name: "empty h", in: "v=DKIM1; h=; p=" + p2048, tag: "h", contains: "empty"},
		{name: "empty h item", in: "v=DKIM1; h=sha256::sha1; p=" + p2048, tag: "h", contains: "empty item"},
		{name: "service foo", in: "v=DKIM1; s=foo; p=" + p2048, tag: "s", contains: `"foo" is not supported`},
		{name: "empty s", in: "v=DKIM1; s=; p=" + p2048, tag: "s", contains: "empty"},
		{name: "flag x", in: "v=DKIM1; t=x; p=" + p2048, tag: "t", contains: `"x" is not supported`},
		{name: "notes with quote", in: `v=DKIM1; n=say \"hi\"; p=` + p2048, tag: "n", contains: "=22"},
		{name: "notes with non-ASCII", in: "v=DKIM1; n=caf\u00e9; p=" + p2048, tag: "n", contains: "printable ASCII"},
		{name: "certificate", in: "-----BEGIN CERTIFICATE-----\nMIIB\n-----END CERTIFICATE-----\n", contains: "certificate"},
		{name: "other PEM type", in: "-----BEGIN DH PARAMETERS-----\nMIIB\n-----END DH PARAMETERS-----\n", contains: `"DH PARAMETERS"`},
		{name: "damaged PEM", in: "-----BEGIN PUBLIC KEY-----\n" + p2048[:100] + "\n", contains: "PEM block is damaged"},
		{name: "two PEM blocks", in: pemBlock("PUBLIC KEY", spki(t, edPub)) + pemBlock("PUBLIC KEY", spki(t, edPub)), contains: "more than one PEM block"},
		{name: "PEM with headers", in: "-----BEGIN PUBLIC KEY-----\nProc-Type: 4,ENCRYPTED\n\n" + b64(spki(t, edPub)) + "\n-----END PUBLIC KEY-----\n", contains: "headers"},
		{name: "damaged PKCS1 PEM", in: pemBlock("RSA PUBLIC KEY", []byte("nonsense")), contains: "does not hold a valid RSA public key"},
		{name: "private key PEM", in: pemBlock("PRIVATE KEY", pkcs8), sentinel: dkim.ErrPrivateKey},
		{name: "RSA private key PEM", in: pemBlock("RSA PRIVATE KEY", rsaPriv), sentinel: dkim.ErrPrivateKey},
		{name: "private key bare", in: b64(pkcs8), sentinel: dkim.ErrPrivateKey},
		{name: "damaged private key PEM", in: "-----BEGIN PRIVATE KEY-----\nMIIB\n", sentinel: dkim.ErrPrivateKey},
		{name: "private key in p", in: "v=DKIM1; k=rsa; p=" + b64(rsaPriv), sentinel: dkim.ErrPrivateKey},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			t.Parallel()
			k, warnings, err := dkim.ParsePublicKey(tc.in)
			require.Error(t, err)
			require.Zero(t, k)
			require.Nil(t, warnings)
			var de *dkim.Error
			require.ErrorAs(t, err, &de)
			require.Equal(t, tc.tag, de.Tag)
			if tc.sentinel != nil {
				require.ErrorIs(t, err, tc.sentinel)
			} else {
				require.NoError(t, de.Err)
			}
			require.Contains(t, err.Error(), tc.contains)
			require.True(t, strings.HasPrefix(err.Error(), "dkim: "), err.Error())
			// Errors never carry key material.
			require.NotContains(t, err.Error(), p2048[20:60])
			require.NotContains(t, err.Error(), b64(pkcs8)[20:40])
		})
	}
}

func TestParsePublicKeyNoMaterialInPrivateKeyError(t *testing.T) {
	t.Parallel()
	der := x509.MarshalPKCS1PrivateKey(rsaKey(t, 2048))
	in := pemBlock("RSA PRIVATE KEY", der)
	_, _, err := dkim.ParsePublicKey(in)
	require.ErrorIs(t, err, dkim.ErrPrivateKey)
	body := base64.StdEncoding.EncodeToString(der)
	for i := 0; i+16 <= len(body); i += 16 {
		require.NotContains(t, err.Error(), body[i:i+16])
	}
}
