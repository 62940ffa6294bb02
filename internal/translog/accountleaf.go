package translog

import (
	"errors"

	"golang.org/x/crypto/cryptobyte"

	"github.com/cofferhq/coffer"
)

// Account-link leaves. Every link of a suite v2 account chain is logged as
// it is stored and served: the exact body and both signatures, so that a
// witness or an auditor replays each account with coffer.VerifyAccountChain
// from the log alone, and a client rebuilds the leaf of any link it
// fetched. The account's identity in groups (coffer.AccountState.Identity)
// is a function of the chain; the identity leaf that follows a genesis or
// a rotation (KindIdentity, with the self-signature) is what the heads
// map's account entry names, as for suite v1 accounts.
const KindAccountLink Kind = 5

// AccountLinkLeaf encodes the log entry of an account link:
//
//	"coffer/v1/log-leaf" 0x00
//	kind             uint8 = 5
//	account          [16]byte
//	seq              uint64
//	body             <uint32 length> the exact signed link body
//	signature        <uint16 length> the author's hybrid signature
//	device_signature <uint16 length> the added device's (add-device only; empty otherwise)
func AccountLinkLeaf(account coffer.AccountID, seq uint64, sl coffer.SignedLink) []byte {
	b := cryptobyte.NewBuilder(make([]byte, 0, len(leafPrefix)+1+16+8+4+len(sl.Body)+4+len(sl.Signature)+len(sl.DeviceSignature)))
	b.AddBytes(leafPrefix)
	b.AddUint8(uint8(KindAccountLink))
	b.AddBytes(account[:])
	b.AddUint64(seq)
	b.AddUint32LengthPrefixed(func(b *cryptobyte.Builder) { b.AddBytes(sl.Body) })
	b.AddUint16LengthPrefixed(func(b *cryptobyte.Builder) { b.AddBytes(sl.Signature) })
	b.AddUint16LengthPrefixed(func(b *cryptobyte.Builder) { b.AddBytes(sl.DeviceSignature) })
	return b.BytesOrPanic()
}

func (l *Leaf) parseAccountLink(s *cryptobyte.String) error {
	var (
		id, body []byte
		n        uint32
		sig, dev cryptobyte.String
	)
	if !s.ReadBytes(&id, 16) || !s.ReadUint64(&l.Seq) || !s.ReadUint32(&n) {
		return errors.New("translog: malformed account-link leaf")
	}
	if n > coffer.MaxLinkSize {
		return errors.New("translog: account-link leaf body over the link size limit")
	}
	if !s.ReadBytes(&body, int(n)) || !s.ReadUint16LengthPrefixed(&sig) || !s.ReadUint16LengthPrefixed(&dev) || !s.Empty() {
		return errors.New("translog: malformed account-link leaf")
	}
	copy(l.Account[:], id)
	l.Link = coffer.SignedLink{Body: append([]byte(nil), body...), Signature: append([]byte(nil), sig...)}
	if len(dev) > 0 {
		l.Link.DeviceSignature = append([]byte(nil), dev...)
	}
	return nil
}

// ParseAccountLink parses the link of an account-link leaf and checks that
// the leaf's account and seq are the link's own. The link's signatures and
// rules are checked by coffer.VerifyAccountChain against the account's
// earlier links.
func (l *Leaf) ParseAccountLink() (*coffer.AccountLink, error) {
	if l.Kind != KindAccountLink {
		return nil, errors.New("translog: not an account-link leaf")
	}
	al, err := coffer.ParseAccountLink(l.Link.Body)
	if err != nil {
		return nil, err
	}
	if al.Account != l.Account || al.Seq != l.Seq {
		return nil, errors.New("translog: the leaf's account or seq is not its link's")
	}
	return al, nil
}
