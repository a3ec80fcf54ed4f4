// Package dkim checks and composes DKIM public key records, the TXT records
// published at <selector>._domainkey.<domain> (RFC 6376 §3.6).
//
// Owners add DKIM keys for their domains through the API, and Rampart's DNS
// edge serves them. The API reads what the owner pastes with [ParseSelector]
// and [ParsePublicKey], or [ParseCNAMETarget] for a key that a sending
// service rotates itself behind a CNAME, and stores the canonical values
// they return. The edge answers with [Key.Record] cut into character-strings
// by [SplitTXT], or with [RevokedRecord] for a revoked key. The package
// deals with text only: it does not look anything up in DNS, sign or verify.
//
// Errors are meant for people: each is an [*Error] naming the tag at fault
// and what is wrong, for example
//
//	dkim: tag "p": an RSA key of 512 bits is too short: DKIM requires at least 1024 bits (RFC 8301), and 2048 are recommended
//
// and the failures a caller may branch on wrap the sentinels [ErrNotDKIM],
// [ErrRevoked], [ErrPrivateKey], [ErrWeakKey] and [ErrKeyMismatch]. Errors
// never quote key material.
//
// # Reading keys
//
// [ParsePublicKey] accepts a whole key record, the bare base64 of p=, or a
// PEM block, in the shapes DNS providers and key tools print them (see its
// documentation). It checks that:
//
//   - the base64 decodes; the error names the first bad character, the
//     URL-safe alphabet, misplaced padding or a length that cannot be whole
//     bytes (usually a key cut short when copying);
//   - an RSA key is a valid public key (odd modulus, odd exponent of at least
//     3) of 1024 to 8192 bits. Under 1024 bits is refused ([ErrWeakKey], RFC
//     8301 §3.2); under 2048 and over 4096 bits give a [Warning];
//   - an ed25519 key is exactly 32 bytes, the raw public key of RFC 8463;
//   - k= names the type of the key in p= ([ErrKeyMismatch]). When k= is
//     absent the type is rsa, as RFC 6376 defines, so a bare 32-byte p= in
//     a record without k=ed25519 is refused rather than guessed;
//   - h= lists only sha256 and sha1, s= only email and *, t= only y and s,
//     and n= is printable ASCII. These tags are kept. h= with sha1 and t=y
//     give warnings; an ed25519 key whose h= leaves out sha256 is refused,
//     since it could verify nothing;
//   - v=, if present, is DKIM1 ([ErrNotDKIM]); tags may come in any order
//     and are read case-insensitively, since the record is rewritten;
//   - no tag occurs twice; tags DKIM does not define are dropped with a
//     warning, as verifiers ignore them;
//   - p= is not empty ([ErrRevoked]) and the input is not a private key
//     ([ErrPrivateKey]).
//
// Keys given in another encoding are converted, with a warning: an RSA key
// in PKCS #1 form (RSAPublicKey, "BEGIN RSA PUBLIC KEY") is published as a
// SubjectPublicKeyInfo, which every verifier reads although RFC 6376's text
// names RSAPublicKey, and an ed25519 key wrapped in a SubjectPublicKeyInfo
// (what openssl prints) is published as its raw 32 bytes.
//
// # Canonical form
//
// A [Key] holds canonical values: the type, the key size, p= in standard
// base64 without whitespace, and the optional tags in lowercase without
// duplicates. [Key.Record] writes "v=DKIM1; k=<type>", the optional tags in
// the order h, s, t, n, and p= last, separated by "; ". ParsePublicKey of a
// Record gives the same Key back.
//
// # Names
//
// [ParseSelector] accepts the host-name syntax of RFC 6376 §3.1 (no
// underscores) up to [MaxSelectorLen] octets, and [RecordName] checks that
// the full name fits in DNS for a given domain. [ParseCNAMETarget] accepts
// host names with underscores, as vendors point selectors at names such as
// selector1-example-com._domainkey.example.onmicrosoft.com.
package dkim
