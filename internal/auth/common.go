package auth

import (
	_ "embed"
	"strings"
	"sync"
	"unicode"
)

// commonPasswords is the 10,000 most common passwords of a public list
// (SecLists, MIT License; the file's header has the notice), one a line.
//
//go:embed common_passwords.txt
var commonPasswords string

var commonSet = sync.OnceValue(func() map[string]struct{} {
	set := make(map[string]struct{}, 10000)
	for line := range strings.Lines(commonPasswords) {
		line = strings.TrimRight(line, "\r\n")
		if line == "" || strings.HasPrefix(line, "#") {
			continue
		}
		set[strings.ToLower(line)] = struct{}{}
	}
	return set
})

// IsCommonPassword reports whether pw, in lower case, is one of the most
// common passwords, or one of them with digits, punctuation or spaces
// added before or after it ("Password2024!", "!!qwertyuiop"): padding a
// common password to the required length does not make it harder to guess.
func IsCommonPassword(pw string) bool {
	set := commonSet()
	p := strings.ToLower(pw)
	if _, ok := set[p]; ok {
		return true
	}
	core := strings.TrimFunc(p, func(r rune) bool {
		return unicode.IsDigit(r) || unicode.IsPunct(r) || unicode.IsSymbol(r) || unicode.IsSpace(r)
	})
	if core == "" || core == p {
		return false
	}
	_, ok := set[core]
	return ok
}
