package content

import (
	"errors"
	"io"
	"strconv"

	"filippo.io/age"

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
