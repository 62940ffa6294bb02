package coffer

import (
	"bytes"
	"math"
	"slices"

	"golang.org/x/crypto/cryptobyte"
)

// accountStateVersion versions the AccountState checkpoint encoding.
const accountStateVersion = 3

// MarshalBinary encodes s as a checkpoint that UnmarshalBinary restores, so
// a verifier can resume from it instead of from the genesis. The encoding
// is deterministic (devices, device ids and keys sorted):
//
//	version uint8 = 3
//	account [16], origin <uint8 length>, handle <uint8 length>
//	seq uint64, head [32], genesis [32]
//	user_key [1216], user_signing_key [1984], user_key_generation uint64, user_key_seq uint64
//	recovery_commitment [32], recovery_encryption_key [1216], recovery_wrap_seq uint64
//	device_count uint8, per device by id:
//	  id [16], name <uint8 length>, signing_key [1984], encryption_key [1216],
//	  added_seq uint64, added_time uint64, wrap_seq uint64
//	ever_device_count uint32, ids [16] in increasing order
//	ever_key_count uint32, keys <uint16 length> in increasing byte order
//
// A checkpoint is trusted data: whoever can change it can change what the
// verifier believes. Keep it where the verifier keeps its own state.
func (s *AccountState) MarshalBinary() ([]byte, error) {
	if s.Seq == 0 || !s.verified {
		return nil, Errorf(EINVALID, "only a verified account state after its genesis can be encoded")
	}
	b := cryptobyte.NewBuilder(make([]byte, 0, 4096+3300*len(s.Devices)+1300*len(s.everKeys)))
	b.AddUint8(accountStateVersion)
	b.AddBytes(s.Account[:])
	b.AddUint8LengthPrefixed(func(b *cryptobyte.Builder) { b.AddBytes([]byte(s.Origin)) })
	b.AddUint8LengthPrefixed(func(b *cryptobyte.Builder) { b.AddBytes([]byte(s.Handle)) })
	b.AddUint64(s.Seq)
	b.AddBytes(s.Head[:])
	b.AddBytes(s.Genesis[:])
	b.AddBytes(s.UserKey)
	b.AddBytes(s.UserSigningKey.Bytes())
	b.AddUint64(s.UserKeyGeneration)
	b.AddUint64(s.UserKeySeq)
	b.AddBytes(s.RecoveryCommitment[:])
	b.AddBytes(s.RecoveryEncryptionKey)
	b.AddUint64(s.RecoveryWrapSeq)
	devices := s.SortedDevices()
	b.AddUint8(uint8(len(devices)))
	for _, d := range devices {
		b.AddBytes(d.ID[:])
		b.AddUint8LengthPrefixed(func(b *cryptobyte.Builder) { b.AddBytes([]byte(d.Name)) })
		b.AddBytes(d.SigningKey.Bytes())
		b.AddBytes(d.EncryptionKey)
		b.AddUint64(d.AddedSeq)
		b.AddUint64(uint64(d.AddedTime))
		b.AddUint64(d.WrapSeq)
	}
	ids := make([]DeviceID, 0, len(s.everDevices))
	for id := range s.everDevices {
		ids = append(ids, id)
	}
	slices.SortFunc(ids, func(a, b DeviceID) int { return bytes.Compare(a[:], b[:]) })
	b.AddUint32(uint32(len(ids)))
	for _, id := range ids {
		b.AddBytes(id[:])
	}
	keys := make([]string, 0, len(s.everKeys))
	for k := range s.everKeys {
		keys = append(keys, k)
	}
	slices.Sort(keys)
	b.AddUint32(uint32(len(keys)))
	for _, k := range keys {
		b.AddUint16LengthPrefixed(func(b *cryptobyte.Builder) { b.AddBytes([]byte(k)) })
	}
	return b.Bytes()
}

// UnmarshalBinary restores a checkpoint written by MarshalBinary. It checks
// the encoding and the state's invariants (sizes, order, hybrid keys with
// CheckSigningKey, seqs within the chain, every current key and id among
// those the account ever had), but not that each X-Wing key is valid: the
// verifier checked that when the key came in, and re-checking costs about a
// seal per key. On error, s is unchanged.
func (s *AccountState) UnmarshalBinary(data []byte) error {
	bad := func(what string) error { return Errorf(EINVALID, "malformed account state: %s", what) }
	var (
		in              = cryptobyte.String(data)
		ns              AccountState
		version         uint8
		origin, handle  cryptobyte.String
		userKey, recKey []byte
		userSigningKey  []byte
	)
	if !in.ReadUint8(&version) {
		return bad("empty")
	}
	if version != accountStateVersion {
		return Errorf(EINVALID, "unsupported account state version %d", version)
	}
	if !in.CopyBytes(ns.Account[:]) || !in.ReadUint8LengthPrefixed(&origin) || !in.ReadUint8LengthPrefixed(&handle) ||
		!in.ReadUint64(&ns.Seq) || !in.CopyBytes(ns.Head[:]) || !in.CopyBytes(ns.Genesis[:]) ||
		!in.ReadBytes(&userKey, EncryptionKeySize) || !in.ReadBytes(&userSigningKey, HybridPublicKeySize) || !in.ReadUint64(&ns.UserKeyGeneration) || !in.ReadUint64(&ns.UserKeySeq) ||
		!in.CopyBytes(ns.RecoveryCommitment[:]) || !in.ReadBytes(&recKey, EncryptionKeySize) || !in.ReadUint64(&ns.RecoveryWrapSeq) {
		return bad("truncated header")
	}
	if ns.Account.IsZero() || CheckOrigin(string(origin)) != nil || ns.Seq == 0 || ns.Seq >= math.MaxInt64 ||
		ns.UserKeyGeneration == 0 || ns.UserKeyGeneration > ns.Seq || ns.UserKeySeq == 0 || ns.UserKeySeq > ns.Seq ||
		ns.RecoveryWrapSeq < ns.UserKeySeq || ns.RecoveryWrapSeq > ns.Seq || ns.RecoveryCommitment == ([32]byte{}) {
		return bad("invalid header")
	}
	h, err := ParseHandle(string(handle))
	if err != nil {
		return bad("invalid handle")
	}
	ns.Origin, ns.Handle = string(origin), h
	if ns.UserSigningKey, err = ParseHybridPublicKey(userSigningKey); err != nil {
		return bad("invalid user signing key")
	}
	ns.UserKey, ns.RecoveryEncryptionKey = bytes.Clone(userKey), bytes.Clone(recKey)

	var n uint8
	if !in.ReadUint8(&n) || n == 0 || int(n) > MaxAccountDevices {
		return bad("device count")
	}
	ns.Devices = make(map[DeviceID]*AccountDevice, n)
	var prev DeviceID
	for i := range int(n) {
		var (
			d       AccountDevice
			id      []byte
			name    cryptobyte.String
			sk, ek  []byte
			addedAt uint64
		)
		if !in.ReadBytes(&id, 16) || !in.ReadUint8LengthPrefixed(&name) || !in.ReadBytes(&sk, HybridPublicKeySize) || !in.ReadBytes(&ek, EncryptionKeySize) ||
			!in.ReadUint64(&d.AddedSeq) || !in.ReadUint64(&addedAt) || !in.ReadUint64(&d.WrapSeq) {
			return bad("truncated device")
		}
		copy(d.ID[:], id)
		if d.ID.IsZero() || i > 0 && bytes.Compare(prev[:], d.ID[:]) >= 0 {
			return bad("devices out of order")
		}
		prev = d.ID
		if d.SigningKey, err = ParseHybridPublicKey(sk); err != nil {
			return bad("invalid device signing key")
		}
		if CheckDeviceName(string(name)) != nil {
			return bad("invalid device name")
		}
		d.EncryptionKey, d.AddedTime, d.Name = bytes.Clone(ek), int64(addedAt), string(name)
		if d.AddedSeq == 0 || d.AddedSeq > ns.Seq || d.WrapSeq < d.AddedSeq || d.WrapSeq < ns.UserKeySeq || d.WrapSeq > ns.Seq {
			return bad("invalid device seqs")
		}
		ns.Devices[d.ID] = &d
	}

	var count uint32
	if !in.ReadUint32(&count) || uint64(count) > uint64(len(in)/16) {
		return bad("truncated device history")
	}
	ns.everDevices = make(map[DeviceID]struct{}, count)
	for i := range int(count) {
		var id DeviceID
		in.CopyBytes(id[:])
		if id.IsZero() || i > 0 && bytes.Compare(prev[:], id[:]) >= 0 {
			return bad("device history out of order")
		}
		prev = id
		ns.everDevices[id] = struct{}{}
	}
	if !in.ReadUint32(&count) || uint64(count) > uint64(len(in)/(2+SigningKeySize)) {
		return bad("truncated key history")
	}
	ns.everKeys = make(map[string]struct{}, count)
	var prevKey []byte
	for i := range int(count) {
		var k cryptobyte.String
		if !in.ReadUint16LengthPrefixed(&k) || len(k) != EncryptionKeySize && len(k) != HybridPublicKeySize && len(k) != SigningKeySize {
			return bad("truncated key history")
		}
		if i > 0 && bytes.Compare(prevKey, k) >= 0 {
			return bad("key history out of order")
		}
		prevKey = k
		ns.everKeys[string(k)] = struct{}{}
	}
	if !in.Empty() {
		return bad("trailing bytes")
	}
	for id, d := range ns.Devices {
		_, okID := ns.everDevices[id]
		_, okSK := ns.everKeys[string(d.SigningKey.Bytes())]
		_, okEK := ns.everKeys[string(d.EncryptionKey)]
		if !okID || !okSK || !okEK {
			return bad("a current device missing from the history")
		}
	}
	_, okUK := ns.everKeys[string(ns.UserKey)]
	_, okUS := ns.everKeys[string(ns.UserSigningKey.Bytes())]
	_, okRK := ns.everKeys[string(ns.RecoveryEncryptionKey)]
	if !okUK || !okUS || !okRK {
		return bad("a current key missing from the history")
	}
	ns.verified = true
	*s = ns
	return nil
}
