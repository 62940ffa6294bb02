package coffer_test

import (
	"bytes"
	"encoding/hex"
	"fmt"
	"strings"
	"testing"

	"github.com/cofferhq/coffer"
)

func mustRecoveryKey(tb testing.TB, hexKey string) *coffer.RecoveryKey {
	tb.Helper()
	b, err := hex.DecodeString(hexKey)
	if err != nil || len(b) != coffer.RecoveryKeySize {
		tb.Fatalf("bad test key %q", hexKey)
	}
	return (*coffer.RecoveryKey)(b)
}

// The words are standard BIP-39 (English list, 8-bit checksum for 256
// bits): these are the 256-bit vectors of the BIP-39 reference.
func TestRecoveryWordsBIP39Vectors(t *testing.T) {
	for _, v := range []struct{ key, words string }{
		{strings.Repeat("00", 32), strings.Repeat("abandon ", 23) + "art"},
		{strings.Repeat("7f", 32), "legal winner thank year wave sausage worth useful legal winner thank year wave sausage worth useful legal winner thank year wave sausage worth title"},
		{strings.Repeat("80", 32), "letter advice cage absurd amount doctor acoustic avoid letter advice cage absurd amount doctor acoustic avoid letter advice cage absurd amount doctor acoustic bless"},
		{strings.Repeat("ff", 32), strings.Repeat("zoo ", 23) + "vote"},
		{"68a79eaca2324873eacc50cb9c6eca8cc68ea5d936f98787c60c7ebc74e6ce7c", "hamster diagram private dutch cause delay private meat slide toddler razor book happy fancy gospel tennis maple dilemma loan word shrug inflict delay length"},
	} {
		k := mustRecoveryKey(t, v.key)
		if got := k.Words(); got != v.words {
			t.Errorf("Words(%s…) = %q, want %q", v.key[:8], got, v.words)
		}
		back, err := coffer.ParseRecoveryWords(v.words)
		if err != nil || *back != *k {
			t.Errorf("ParseRecoveryWords(%q) = %x, %v", v.words, back, err)
		}
	}
}

func TestRecoveryWordsRoundTrip(t *testing.T) {
	for i := range 200 {
		k := coffer.NewRecoveryKey()
		if i < 32 { // leading zero bytes, which big-integer codecs can drop
			clear(k[:i])
		}
		w := k.Words()
		if n := len(strings.Fields(w)); n != coffer.RecoveryWordCount {
			t.Fatalf("%d words", n)
		}
		back, err := coffer.ParseRecoveryWords(w)
		if err != nil || *back != *k {
			t.Fatalf("round trip of key %d failed: %v", i, err)
		}
	}
	k := mustRecoveryKey(t, "68a79eaca2324873eacc50cb9c6eca8cc68ea5d936f98787c60c7ebc74e6ce7c")
	messy := "  " + strings.ToUpper(strings.ReplaceAll(k.Words(), " ", "\n\t ")) + "\n"
	if back, err := coffer.ParseRecoveryWords(messy); err != nil || *back != *k {
		t.Errorf("words in upper case across lines: %v", err)
	}
}

func TestParseRecoveryWordsErrors(t *testing.T) {
	k := mustRecoveryKey(t, "68a79eaca2324873eacc50cb9c6eca8cc68ea5d936f98787c60c7ebc74e6ce7c")
	words := strings.Fields(k.Words())
	with := func(edit func(w []string) []string) string {
		return strings.Join(edit(append([]string(nil), words...)), " ")
	}
	for _, tc := range []struct {
		name, text, want string
	}{
		{"empty", "", "has 24 words, got 0"},
		{"23 words", with(func(w []string) []string { return w[:23] }), "got 23"},
		{"25 words", with(func(w []string) []string { return append(w, "abandon") }), "got 25"},
		{"misspelt word", with(func(w []string) []string { w[4] = "sluide"; return w }), `word 5 ("sluide")`},
		{"word not in the list", with(func(w []string) []string { w[0] = "coffer"; return w }), "word 1"},
		{"last word changed", with(func(w []string) []string { w[23] = "lend"; return w }), "checksum"},
		{"first word changed", with(func(w []string) []string { w[0] = "abandon"; return w }), "checksum"},
		{"two words swapped", with(func(w []string) []string { w[1], w[2] = w[2], w[1]; return w }), "checksum"},
		{"words reversed", with(func(w []string) []string {
			for i, j := 0, len(w)-1; i < j; i, j = i+1, j-1 {
				w[i], w[j] = w[j], w[i]
			}
			return w
		}), "checksum"},
	} {
		_, err := coffer.ParseRecoveryWords(tc.text)
		if err == nil || coffer.ErrorCode(err) != coffer.EINVALID || !strings.Contains(coffer.ErrorMessage(err), tc.want) {
			t.Errorf("%s: err = %v, want an invalid error containing %q", tc.name, err, tc.want)
			continue
		}
		// The error never repeats the valid words.
		for _, w := range words[1:4] {
			if strings.Contains(coffer.ErrorMessage(err), w) {
				t.Errorf("%s: the error repeats the secret word %q", tc.name, w)
			}
		}
	}
}

func TestRecoveryKeyDerivations(t *testing.T) {
	k := mustRecoveryKey(t, strings.Repeat("42", 32))
	k2 := mustRecoveryKey(t, strings.Repeat("43", 32))
	a := coffer.NewAccountID()
	if !k.SigningKey().Public().Equal(k.SigningKey().Public()) || k.SigningKey().Public().Equal(k2.SigningKey().Public()) {
		t.Errorf("the signing key is not a function of the recovery key")
	}
	if !bytes.Equal(k.EncryptionKey().PublicKey().Bytes(), k.EncryptionKey().PublicKey().Bytes()) ||
		bytes.Equal(k.EncryptionKey().PublicKey().Bytes(), k2.EncryptionKey().PublicKey().Bytes()) {
		t.Errorf("the encryption key is not a function of the recovery key")
	}
	if c := k.Commitment(a); c != mustRecoveryKey(t, strings.Repeat("42", 32)).Commitment(a) || c == k2.Commitment(a) || k.Commitment(a) == k.Commitment(coffer.NewAccountID()) {
		t.Errorf("the commitment does not bind the key and the account")
	}
	sig := k.SigningKey().Sign(testLabelV2, []byte("x"))
	if err := k.SigningKey().Public().Verify(testLabelV2, []byte("x"), sig); err != nil {
		t.Error(err)
	}
}

func TestRecoveryKeyRedacted(t *testing.T) {
	k := mustRecoveryKey(t, "68a79eaca2324873eacc50cb9c6eca8cc68ea5d936f98787c60c7ebc74e6ce7c")
	out := fmt.Sprintf("%v %s %x %X %#v %+v %v %x %d", k, k, k, k, k, k, *k, *k, *k)
	for _, secret := range []string{"68a79eac", "68A79EAC", "104 167", "hamster"} {
		if strings.Contains(out, secret) {
			t.Errorf("formatting a recovery key printed %q: %s", secret, out)
		}
	}
}

// FuzzParseRecoveryWords: the words come from a person or a QR reader.
// Whatever parses must re-encode to the same words, normalized.
func FuzzParseRecoveryWords(f *testing.F) {
	f.Add(mustRecoveryKey(f, strings.Repeat("7f", 32)).Words())
	f.Add(strings.Repeat("abandon ", 23) + "art")
	f.Add("")
	f.Add(strings.Repeat("zoo ", 24))
	f.Fuzz(func(t *testing.T, s string) {
		k, err := coffer.ParseRecoveryWords(s)
		if err != nil {
			return
		}
		if got, want := k.Words(), strings.Join(strings.Fields(strings.ToLower(s)), " "); got != want {
			t.Fatalf("parsed words re-encode to %q, input was %q", got, want)
		}
	})
}
