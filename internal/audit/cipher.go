package audit

import (
	"encoding/json"
	"fmt"
	"math"
	"unicode"
	"unicode/utf8"
)

// minSealed is the smallest AES-256-GCM blob Coffer writes: a 12-byte nonce
// and a 16-byte tag around an empty plaintext.
const minSealed = 12 + 16

// checkCiphertext reports why b cannot be a Coffer metadata ciphertext, or
// "" when it looks like one. The server cannot decrypt metadata, so the
// auditor cannot either; it can only tell ciphertext from things that are
// certainly not ciphertext. AES-GCM output is indistinguishable from random
// bytes, and the tests below are ones random bytes fail with negligible
// probability, while plaintext a person or program would write (text,
// JSON, padded structs) fails them:
//
//   - shorter than nonce + tag: not an AES-GCM blob at all;
//   - valid JSON: a random blob of 28+ bytes is practically never JSON;
//   - 90% or more printable text (ASCII or UTF-8): a random blob of n ≥ 28
//     bytes is ~38% printable, and the chance of ≥ 90% is below 1e-9;
//   - Shannon byte entropy below 4.5 bits for n ≥ 64, or below 6 bits for
//     n ≥ 256: random blobs of those sizes measure above about 5.4 and 6.9
//     (20,000 samples each), English text about 4.4, padded data less.
//
// What it cannot see is a plaintext that is itself random-looking, such as
// a raw key written where ciphertext belongs; the canary catches those for
// the secrets it knows. docs/AUDIT.md says so.
func checkCiphertext(b []byte) string {
	if len(b) < minSealed {
		return fmt.Sprintf("%d bytes is shorter than an AES-256-GCM nonce and tag (%d)", len(b), minSealed)
	}
	if json.Valid(b) {
		return "it is valid JSON: plaintext"
	}
	if f := printableFraction(b); f >= 0.9 {
		return fmt.Sprintf("%.0f%% of it is printable text: plaintext", f*100)
	}
	if len(b) >= 64 {
		h, min := entropy(b), 4.5
		if len(b) >= 256 {
			min = 6
		}
		if h < min {
			return fmt.Sprintf("its byte entropy is %.2f bits, below the %.1f of any ciphertext of %d bytes: plaintext", h, min, len(b))
		}
	}
	return ""
}

// printableFraction is the fraction of b's bytes that belong to printable
// characters or whitespace, decoding UTF-8 where it is valid.
func printableFraction(b []byte) float64 {
	printable := 0
	for i := 0; i < len(b); {
		r, n := utf8.DecodeRune(b[i:])
		if r != utf8.RuneError && (unicode.IsPrint(r) || r == '\n' || r == '\t' || r == '\r') {
			printable += n
		}
		i += n
	}
	return float64(printable) / float64(len(b))
}

// entropy is the Shannon entropy of b's byte distribution, in bits.
func entropy(b []byte) float64 {
	var counts [256]int
	for _, c := range b {
		counts[c]++
	}
	h, n := 0.0, float64(len(b))
	for _, c := range counts {
		if c > 0 {
			p := float64(c) / n
			h -= p * math.Log2(p)
		}
	}
	return h
}
