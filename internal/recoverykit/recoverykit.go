// Package recoverykit renders an account's recovery kit for people: the
// recovery key's 24 words, and a QR code that holds the same line of words,
// so any QR reader yields exactly the text `coffer recover` reads on stdin.
//
// The kit is a secret. Callers show it once, on a terminal, or write it to
// a file of mode 0600; they never log it.
package recoverykit

import (
	"github.com/skip2/go-qrcode"

	"github.com/cofferhq/coffer"
)

// Kit is a recovery key's printable forms.
type Kit struct {
	// Words is the recovery key as 24 words on one line.
	Words string
	qr    *qrcode.QRCode
}

// New returns the kit of k. The QR code uses error-correction level M
// (15% of codewords recoverable), which keeps a 24-word line in a code a
// phone reads off a terminal.
func New(k *coffer.RecoveryKey) (*Kit, error) {
	words := k.Words()
	q, err := qrcode.New(words, qrcode.Medium)
	if err != nil {
		return nil, coffer.Errorf(coffer.EINTERNAL, "cannot encode the recovery kit as a QR code")
	}
	return &Kit{Words: words, qr: q}, nil
}

// Terminal returns the QR code drawn with Unicode half blocks, two modules
// per character row, dark on a light terminal.
func (k *Kit) Terminal() string { return k.qr.ToSmallString(false) }

// PNG returns the QR code as a PNG image of size×size pixels.
func (k *Kit) PNG(size int) ([]byte, error) { return k.qr.PNG(size) }

// Parse reads a recovery key from what a person typed or a QR reader gave:
// the kit's words, in any case, with any whitespace between them.
func Parse(text string) (*coffer.RecoveryKey, error) { return coffer.ParseRecoveryWords(text) }
