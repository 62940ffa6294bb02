package content

import (
	"bytes"
	"errors"
	"fmt"
	"io"
	"strconv"

	"filippo.io/age"
	"golang.org/x/crypto/chacha20poly1305"

	"github.com/cofferhq/coffer"
	"github.com/cofferhq/coffer/internal/groupkey"
)

// AuditFileKey is for coffer-audit canary only: it returns the age file key
// of a resource ciphertext whose epoch key is one of keys, so the canary can
// search the server's storage for the file keys of the resources it
// uploaded. It reads only the age header of blob. A blob that is not a
// resource made under one of keys gives an error.
func AuditFileKey(blob io.Reader, keys []groupkey.EpochKey) ([]byte, error) {
	hdr, err := age.ExtractHeader(blob)
	if err != nil {
		return nil, err
	}
	return age.DecryptHeader(hdr, &auditIdentity{keys: keys})
}

// auditIdentity opens a coffer-v1 stanza with any of several epoch keys,
// taking the group, epoch and resource from the stanza's arguments.
type auditIdentity struct{ keys []groupkey.EpochKey }

func (a *auditIdentity) Unwrap(stanzas []*age.Stanza) ([]byte, error) {
	for _, s := range stanzas {
		if s.Type != stanzaType || len(s.Args) != 3 || len(s.Body) != wrappedKeySize {
			continue
		}
		g, err1 := coffer.ParseGroupID(s.Args[0])
		epoch, err2 := strconv.ParseUint(s.Args[1], 10, 64)
		r, err3 := coffer.ParseResourceID(s.Args[2])
		if err := errors.Join(err1, err2, err3); err != nil {
			continue
		}
		for _, k := range a.keys {
			b := binding{key: k, group: g, epoch: epoch, resource: r}
			if fk, err := b.aead().Open(nil, nil, s.Body, nil); err == nil {
				return fk, nil
			}
		}
	}
	return nil, age.ErrIncorrectIdentity
}

// AuditAgeFile is for coffer-audit db only: it reports why ageFile cannot
// be the age file of a resource (as Encrypt writes it), or returns its
// payload, the part that must look like ciphertext. A resource's age file
// is age's header with exactly one coffer-v1 stanza, then the payload
// nonce and the sealed chunks.
func AuditAgeFile(ageFile []byte) (payload []byte, err error) {
	hdr, err := age.ExtractHeader(bytes.NewReader(ageFile))
	if err != nil {
		return nil, fmt.Errorf("not an age file: %w", err)
	}
	var stanzas int
	if _, err := age.DecryptHeader(hdr, identityFunc(func(ss []*age.Stanza) ([]byte, error) {
		for _, s := range ss {
			if s.Type != stanzaType || len(s.Args) != 3 || len(s.Body) != wrappedKeySize {
				return nil, fmt.Errorf("a recipient stanza other than %s", stanzaType)
			}
		}
		stanzas = len(ss)
		return nil, age.ErrIncorrectIdentity
	})); stanzas != 1 {
		return nil, fmt.Errorf("the age header holds %d coffer-v1 stanzas, want 1: %v", stanzas, err)
	}
	payload = ageFile[len(hdr):]
	if len(payload) < nonceSize+chacha20poly1305.Overhead {
		return nil, fmt.Errorf("the payload is %d bytes, shorter than a nonce and one sealed chunk", len(payload))
	}
	return payload, nil
}

type identityFunc func([]*age.Stanza) ([]byte, error)

func (f identityFunc) Unwrap(s []*age.Stanza) ([]byte, error) { return f(s) }
