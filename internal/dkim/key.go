package dkim

import (
	"crypto/ed25519"
	"crypto/rsa"
	"crypto/x509"
	"encoding/base64"
	"encoding/pem"
	"fmt"
	"strings"
)

// Key types, the values of the k= tag that Rampart publishes.
const (
	TypeRSA     = "rsa"     // RFC 6376 §3.6.1
	TypeEd25519 = "ed25519" // RFC 8463
)

// RSA key sizes, in bits of the modulus.
const (
	// MinRSABits is the shortest RSA key accepted (RFC 8301 §3.2).
	MinRSABits = 1024
	// RecommendedRSABits is the shortest RSA key accepted without a warning.
	RecommendedRSABits = 2048
	// MaxRSABits is the longest RSA key accepted. Keys above 4096 bits get
	// a warning, because verifiers need only handle 1024 to 4096 bits (RFC
	// 8301 §3.2); an 8192-bit key already makes a TXT answer of about 1.4
	// kB, above the 1232-byte UDP size that avoids fragmentation.
	MaxRSABits = 8192
)

// RevokedRecord is the TXT value that revokes the key of a selector: a key
// record with an empty p= tag (RFC 6376 §3.6.1). Verifiers then fail every
// signature made with the selector's old key.
const RevokedRecord = "v=DKIM1; p="

// maxInputLen bounds what ParsePublicKey reads. A PEM block of the longest
// accepted key is under 1.6 kB; the rest allows for pasted zone-file text.
const maxInputLen = 16 << 10

// Key is a DKIM public key, with the optional tags of its key record, in the
// canonical form [Key.Record] publishes. Build one with [ParsePublicKey].
//
// Optional list tags are nil when the record does not have them, and hold
// their values, lowercase and without duplicates, when it does.
type Key struct {
	// Type is TypeRSA or TypeEd25519.
	Type string
	// Bits is the size of the RSA modulus, or 256 for an ed25519 key.
	Bits int
	// PublicKey is the value of the p= tag in standard base64 with padding
	// and no whitespace: the DER SubjectPublicKeyInfo of an RSA key, or the
	// raw 32-byte ed25519 public key (RFC 8463 §4.2).
	PublicKey string
	// Hashes is the h= tag: the hash algorithms the key may be used with,
	// "sha256" and/or "sha1".
	Hashes []string
	// Services is the s= tag: the service types the key applies to, "email"
	// and/or "*".
	Services []string
	// Flags is the t= tag: "y" (the domain is testing DKIM) and/or "s"
	// (the i= domain of a signature must equal d=, not a subdomain).
	Flags []string
	// Notes is the n= tag, notes for people, as written in the record (in
	// quoted-printable), or "" when absent.
	Notes string
}

// Record returns the key record to publish as a TXT value:
//
//	v=DKIM1; k=rsa; p=MIIBIjANBgkqhkiG9w0BAQEFAAOC...
//
// with the optional tags in the order h, s, t, n between k and p when they
// are set. Record does not validate k; a Key from ParsePublicKey gives a
// record that ParsePublicKey reads back as the same Key. Values longer than
// 255 bytes must be split into several character-strings with [SplitTXT].
func (k Key) Record() string {
	var b strings.Builder
	b.Grow(len(k.PublicKey) + 64)
	b.WriteString("v=DKIM1; k=")
	b.WriteString(k.Type)
	if len(k.Hashes) > 0 {
		b.WriteString("; h=" + strings.Join(k.Hashes, ":"))
	}
	if len(k.Services) > 0 {
		b.WriteString("; s=" + strings.Join(k.Services, ":"))
	}
	if len(k.Flags) > 0 {
		b.WriteString("; t=" + strings.Join(k.Flags, ":"))
	}
	if k.Notes != "" {
		b.WriteString("; n=" + k.Notes)
	}
	b.WriteString("; p=")
	b.WriteString(k.PublicKey)
	return b.String()
}

// WarningCode identifies the kind of a [Warning], for callers that show or
// count warnings by kind.
type WarningCode string

// The warnings ParsePublicKey gives.
const (
	// WarnShortKey: an RSA key of 1024 to 2047 bits.
	WarnShortKey WarningCode = "short-key"
	// WarnLongKey: an RSA key above 4096 bits.
	WarnLongKey WarningCode = "long-key"
	// WarnConverted: the key was given in another encoding and was
	// converted to the one DKIM verifiers read.
	WarnConverted WarningCode = "converted"
	// WarnTesting: the t=y flag is set.
	WarnTesting WarningCode = "testing"
	// WarnSHA1: h= allows sha1.
	WarnSHA1 WarningCode = "sha1"
	// WarnIgnoredTag: a tag that is not part of a DKIM key record was
	// dropped.
	WarnIgnoredTag WarningCode = "ignored-tag"
)

// Warning is something about an accepted key that its owner should know.
type Warning struct {
	Code WarningCode
	// Message is meant to be shown to the owner as is.
	Message string
}

// String returns the message.
func (w Warning) String() string { return w.Message }

// ParsePublicKey reads a DKIM public key from what an owner pastes, and
// returns it in canonical form, with warnings about things that are allowed
// but unwise.
//
// The input may be:
//
//   - a whole key record, "v=DKIM1; k=rsa; p=MIIB...", as shown by a DNS
//     provider or vendor: possibly split into quoted character-strings
//     ("v=DKIM1; k=rsa; " "p=MIIB..."), wrapped over lines, in a zone-file
//     line with parentheses and a comment, or with semicolons escaped as \;
//   - the bare value of p=: base64 of an RSA SubjectPublicKeyInfo (or of a
//     PKCS #1 RSAPublicKey) or of a raw 32-byte ed25519 key, with or without
//     line breaks;
//   - a PEM block, "-----BEGIN PUBLIC KEY-----" (or "RSA PUBLIC KEY").
//
// See the package documentation for what is checked.
func ParsePublicKey(input string) (Key, []Warning, error) {
	if len(input) > maxInputLen {
		return Key{}, nil, errorf("", nil, fmt.Sprintf("the input is %d bytes long; a DKIM key record is at most a few kilobytes", len(input)))
	}
	s := strings.TrimSpace(input)
	if s == "" {
		return Key{}, nil, errorf("", nil, "no key was given")
	}
	var p parser
	var k Key
	var err error
	switch {
	case isPEM(s):
		k, err = p.pemKey(s)
	default:
		var text string
		text, err = unpaste(s)
		if err != nil {
			break
		}
		if isTagList(text) {
			k, err = p.record(text)
		} else {
			k, err = p.bareKey(text)
		}
	}
	if err != nil {
		return Key{}, nil, err
	}
	return k, p.warnings, nil
}

// parser collects the warnings of one ParsePublicKey call.
type parser struct {
	warnings []Warning
}

func (p *parser) warn(code WarningCode, format string, args ...any) {
	p.warnings = append(p.warnings, Warning{Code: code, Message: fmt.Sprintf(format, args...)})
}

func privateKeyError() error {
	return errorf("", ErrPrivateKey, "this is a private key: never paste or publish it; give the public key, the p= value your mail system shows, or the output of openssl pkey -pubout")
}

// isPEM reports whether s has a PEM boundary line. A key record cannot have
// one: it is a single line, and starts with a tag.
func isPEM(s string) bool {
	return strings.HasPrefix(s, "-----BEGIN ") || strings.Contains(s, "\n-----BEGIN ")
}

// pemKey reads a PEM block of a public key.
func (p *parser) pemKey(s string) (Key, error) {
	// Checked before decoding, so that a damaged private key is still
	// called what it is.
	if strings.Contains(s, "PRIVATE KEY-----") {
		return Key{}, privateKeyError()
	}
	block, rest := pem.Decode([]byte(s))
	if block == nil {
		return Key{}, errorf("", nil, "the PEM block is damaged: check that the BEGIN and END lines are complete and the lines between them unchanged")
	}
	if strings.Contains(string(rest), "-----BEGIN") {
		return Key{}, errorf("", nil, "the input holds more than one PEM block; give only the public key")
	}
	if len(block.Headers) > 0 {
		return Key{}, errorf("", nil, "the PEM block has headers; a public key block has none")
	}
	switch block.Type {
	case "PUBLIC KEY":
		return p.keyFromBytes("", block.Bytes, "", false)
	case "RSA PUBLIC KEY":
		pub, err := x509.ParsePKCS1PublicKey(block.Bytes)
		if err != nil {
			return Key{}, errorf("", nil, "the RSA PUBLIC KEY block does not hold a valid RSA public key")
		}
		p.warn(WarnConverted, "the key was given as a PKCS #1 RSA PUBLIC KEY; it is published as a SubjectPublicKeyInfo, the form all DKIM verifiers read")
		return p.rsaKey("", pub)
	case "CERTIFICATE":
		return Key{}, errorf("", nil, "this is a certificate, not a public key; DKIM publishes the bare key (openssl x509 -pubkey -noout prints it)")
	default:
		return Key{}, errorf("", nil, fmt.Sprintf("a PEM block of type %q is not a public key; expected BEGIN PUBLIC KEY", block.Type))
	}
}

// bareKey reads the base64 value of p= given on its own.
func (p *parser) bareKey(s string) (Key, error) {
	data, err := decodeBase64("", stripSpace(s))
	if err != nil {
		return Key{}, err
	}
	return p.keyFromBytes("", data, "", false)
}

// record reads a whole key record.
func (p *parser) record(text string) (Key, error) {
	tags, err := parseTagList(text)
	if err != nil {
		return Key{}, err
	}
	var (
		k          Key
		keyType    = TypeRSA // RFC 6376 §3.6.1: k defaults to rsa
		explicitK  bool
		pValue     string
		havePValue bool
	)
	for _, t := range tags {
		switch t.name {
		case "v":
			if !strings.EqualFold(t.value, "DKIM1") {
				return Key{}, errorf("v", ErrNotDKIM, fmt.Sprintf("%q: this is not a DKIM key record, whose v= is DKIM1", shorten(t.value)))
			}
		case "k":
			switch v := strings.ToLower(t.value); v {
			case TypeRSA, TypeEd25519:
				keyType, explicitK = v, true
			case "":
				return Key{}, errorf("k", nil, "the value is empty; use rsa or ed25519")
			default:
				return Key{}, errorf("k", nil, fmt.Sprintf("key type %q is not supported: use rsa or ed25519", shorten(v)))
			}
		case "p":
			pValue, havePValue = t.value, true
		case "h":
			if k.Hashes, err = parseList("h", t.value, []string{"sha256", "sha1"}, "hash algorithm", "use sha256"); err != nil {
				return Key{}, err
			}
			if k.Hashes == nil {
				return Key{}, errorf("h", nil, "the value is empty, which would allow no hash at all; use sha256 or leave the tag out")
			}
		case "s":
			if k.Services, err = parseList("s", t.value, []string{"email", "*"}, "service type", "use email or *"); err != nil {
				return Key{}, err
			}
			if k.Services == nil {
				return Key{}, errorf("s", nil, "the value is empty, which would apply the key to no service; use email or leave the tag out")
			}
		case "t":
			if k.Flags, err = parseList("t", t.value, []string{"y", "s"}, "flag", "use y, s or both (y:s)"); err != nil {
				return Key{}, err
			}
		case "n":
			if k.Notes, err = parseNotes(t.value); err != nil {
				return Key{}, err
			}
		case "g":
			p.warn(WarnIgnoredTag, "g= (key granularity) was removed from DKIM by RFC 6376 and has been dropped")
		default:
			p.warn(WarnIgnoredTag, "%s= is not a tag of DKIM key records and has been dropped", shorten(t.name))
		}
	}
	if !havePValue {
		return Key{}, errorf("p", nil, "the required p= tag, the public key, is missing")
	}
	pValue = stripSpace(pValue)
	if pValue == "" {
		return Key{}, errorf("p", ErrRevoked, "the value is empty, which revokes the key: there is no key to publish")
	}
	data, err := decodeBase64("p", pValue)
	if err != nil {
		return Key{}, err
	}
	key, err := p.keyFromBytes("p", data, keyType, explicitK)
	if err != nil {
		return Key{}, err
	}
	if key.Type == TypeEd25519 && k.Hashes != nil && !contains(k.Hashes, "sha256") {
		return Key{}, errorf("h", nil, "ed25519 keys sign with sha256 only (RFC 8463), which h= does not allow; use h=sha256 or leave the tag out")
	}
	if contains(k.Hashes, "sha1") {
		if len(k.Hashes) == 1 {
			p.warn(WarnSHA1, "h=sha1 limits the key to rsa-sha1 signatures, which RFC 8301 forbids verifiers to accept; use h=sha256 or leave the tag out")
		} else {
			p.warn(WarnSHA1, "h= allows sha1, which RFC 8301 forbids; list sha256 only")
		}
	}
	if contains(k.Flags, "y") {
		p.warn(WarnTesting, "t=y marks the domain as testing DKIM: verifiers may treat its signatures as absent; remove it once signing works")
	}
	key.Hashes, key.Services, key.Flags, key.Notes = k.Hashes, k.Services, k.Flags, k.Notes
	return key, nil
}

// keyFromBytes interprets data, a decoded key, as a key of type want, or of
// any supported type if want is "". tag names the tag the data came from,
// for errors; explicitK says whether want was written in the record rather
// than defaulted.
func (p *parser) keyFromBytes(tag string, data []byte, want string, explicitK bool) (Key, error) {
	if isPrivateKey(data) {
		return Key{}, privateKeyError()
	}
	// A raw ed25519 key is recognised by its length. RSA keys come first
	// when k=rsa, since DER of some other length is then the only option.
	if len(data) == ed25519.PublicKeySize && want != TypeRSA {
		return ed25519Key(data), nil
	}
	pub, spkiErr := x509.ParsePKIXPublicKey(data)
	if spkiErr == nil {
		switch pub := pub.(type) {
		case *rsa.PublicKey:
			if want == TypeEd25519 {
				return Key{}, errorf(tag, ErrKeyMismatch, "k=ed25519, but p= holds an RSA key; use k=rsa")
			}
			return p.rsaKey(tag, pub)
		case ed25519.PublicKey:
			if want == TypeRSA {
				return Key{}, mismatchRSA(tag, explicitK, "an ed25519 key")
			}
			p.warn(WarnConverted, "the ed25519 key was given as a SubjectPublicKeyInfo; it is published as the raw 32-byte key, the form RFC 8463 requires")
			return ed25519Key(pub), nil
		default:
			return Key{}, errorf(tag, nil, fmt.Sprintf("this is a %T key; DKIM keys are RSA or ed25519", pub))
		}
	}
	if want != TypeEd25519 {
		if pub, err := x509.ParsePKCS1PublicKey(data); err == nil {
			p.warn(WarnConverted, "the key was given as a PKCS #1 RSAPublicKey; it is published as a SubjectPublicKeyInfo, the form all DKIM verifiers read")
			return p.rsaKey(tag, pub)
		}
	}
	switch want {
	case TypeRSA:
		if len(data) == ed25519.PublicKeySize {
			return Key{}, mismatchRSA(tag, explicitK, "32 bytes, the size of a raw ed25519 key")
		}
		return Key{}, errorf(tag, nil, fmt.Sprintf("the %d bytes of the key are not an RSA public key (SubjectPublicKeyInfo or RSAPublicKey); the key may be cut short or damaged", len(data)))
	case TypeEd25519:
		return Key{}, errorf(tag, nil, fmt.Sprintf("an ed25519 key is the raw 32-byte public key (RFC 8463), but this one is %d bytes", len(data)))
	default:
		return Key{}, errorf(tag, nil, fmt.Sprintf("the %d bytes of the key are neither an RSA public key (SubjectPublicKeyInfo or RSAPublicKey) nor a 32-byte ed25519 key; the key may be cut short or damaged", len(data)))
	}
}

func mismatchRSA(tag string, explicitK bool, what string) error {
	if explicitK {
		return errorf(tag, ErrKeyMismatch, fmt.Sprintf("k=rsa, but p= holds %s; use k=ed25519", what))
	}
	return errorf(tag, ErrKeyMismatch, fmt.Sprintf("k= is absent, so the key type is rsa, but p= holds %s; add k=ed25519", what))
}

// rsaKey checks an RSA key and returns it in canonical form.
func (p *parser) rsaKey(tag string, pub *rsa.PublicKey) (Key, error) {
	if pub.N == nil || pub.N.Sign() <= 0 || pub.N.Bit(0) == 0 {
		return Key{}, errorf(tag, nil, "this is not a valid RSA public key: its modulus is not a positive odd number")
	}
	if pub.E < 3 || pub.E%2 == 0 {
		return Key{}, errorf(tag, nil, fmt.Sprintf("this is not a valid RSA public key: its public exponent %d is not an odd number of at least 3", pub.E))
	}
	bits := pub.N.BitLen()
	switch {
	case bits < MinRSABits:
		return Key{}, errorf(tag, ErrWeakKey, fmt.Sprintf("an RSA key of %d bits is too short: DKIM requires at least %d bits (RFC 8301), and %d are recommended", bits, MinRSABits, RecommendedRSABits))
	case bits > MaxRSABits:
		return Key{}, errorf(tag, nil, fmt.Sprintf("an RSA key of %d bits is too long: at most %d bits are accepted, and verifiers need only handle up to 4096 (RFC 8301)", bits, MaxRSABits))
	case bits > 4096:
		p.warn(WarnLongKey, "an RSA key of %d bits is longer than the 4096 bits verifiers must handle (RFC 8301); some will fail its signatures", bits)
	case bits < RecommendedRSABits:
		p.warn(WarnShortKey, "an RSA key of %d bits is allowed but weak; use %d bits or more", bits, RecommendedRSABits)
	}
	der, err := x509.MarshalPKIXPublicKey(pub)
	if err != nil {
		return Key{}, errorf(tag, nil, "this RSA public key cannot be encoded")
	}
	return Key{Type: TypeRSA, Bits: bits, PublicKey: base64.StdEncoding.EncodeToString(der)}, nil
}

func ed25519Key(raw []byte) Key {
	return Key{Type: TypeEd25519, Bits: 8 * ed25519.PublicKeySize, PublicKey: base64.StdEncoding.EncodeToString(raw)}
}

// isPrivateKey reports whether data is the DER of a private key in one of
// the encodings key tools write.
func isPrivateKey(data []byte) bool {
	if _, err := x509.ParsePKCS8PrivateKey(data); err == nil {
		return true
	}
	if _, err := x509.ParsePKCS1PrivateKey(data); err == nil {
		return true
	}
	_, err := x509.ParseECPrivateKey(data)
	return err == nil
}

// decodeBase64 decodes s, which has no whitespace, naming the first problem
// it finds. Missing padding is tolerated.
func decodeBase64(tag string, s string) ([]byte, error) {
	pad := -1
	for i := 0; i < len(s); i++ {
		c := s[i]
		switch {
		case c == '=':
			if pad < 0 {
				pad = i
			}
		case pad >= 0:
			return nil, errorf(tag, nil, fmt.Sprintf("not valid base64: '=' at character %d is padding, which may only come at the end", pad+1))
		case c == '-' || c == '_':
			return nil, errorf(tag, nil, "not valid base64: it uses the URL-safe alphabet ('-' or '_'); DKIM keys use standard base64 with '+' and '/'")
		case !isBase64Char(c):
			return nil, errorf(tag, nil, fmt.Sprintf("not valid base64: %s at character %d is not a base64 character", describeByte(c), i+1))
		}
	}
	data := s
	if pad >= 0 {
		if len(s)-pad > 2 {
			return nil, errorf(tag, nil, "not valid base64: it ends in more than two '=' characters")
		}
		data = s[:pad]
	}
	if len(data)%4 == 1 {
		return nil, errorf(tag, nil, fmt.Sprintf("not valid base64: %d characters cannot be a whole number of bytes; the key may be cut short", len(data)))
	}
	if pad >= 0 && (len(s))%4 != 0 {
		return nil, errorf(tag, nil, "not valid base64: the padding does not match the length; the key may be cut short")
	}
	out, err := base64.RawStdEncoding.DecodeString(data)
	if err != nil {
		return nil, errorf(tag, nil, "not valid base64; the key may be cut short or damaged")
	}
	return out, nil
}

func isBase64Char(c byte) bool {
	return 'A' <= c && c <= 'Z' || 'a' <= c && c <= 'z' || '0' <= c && c <= '9' || c == '+' || c == '/'
}

// describeByte names a byte for an error message.
func describeByte(c byte) string {
	if c > ' ' && c < 0x7f {
		return fmt.Sprintf("'%c'", c)
	}
	return fmt.Sprintf("byte 0x%02x", c)
}
