package coffer

// Suite v2 resource headers (version byte ResourceSuiteHybrid) carry the
// fields of version 2, byte for byte after the version, and a hybrid
// signature, Ed25519 and ML-DSA-65 with the label as context (hybridsig.go),
// over SignedMessage(LabelResourceHeader, body). The label is the one
// version 2 uses: what keeps the two suites apart is the signed version
// byte, checked by each verifier before any signature. HeaderHash, Prev and
// the log leaf cover the whole body, version byte included, so the two
// encodings of one set of fields are two different headers.

// SignResourceHeaderHybrid encodes h as a version-3 header, whatever
// h.Suite says, and signs it with the author's hybrid key. The ML-DSA-65
// half is hedged, so two signatures of one header differ; nothing hashes
// the signature.
func SignResourceHeaderHybrid(h *ResourceHeader, key *HybridPrivateKey) SignedHeader {
	v3 := *h
	v3.Suite = ResourceSuiteHybrid
	body := v3.Marshal()
	return SignedHeader{Body: body, Signature: key.Sign(LabelResourceHeader, body)}
}

// VerifyHybrid checks a version-3 header's hybrid signature under
// authorKey, both halves, and returns the parsed header. A body of any other
// version fails whatever its signature, so a version-2 header never passes
// as hybrid. Errors are *Error with code EINVALID, as Verify's.
//
// As with Verify, the caller takes authorKey from the verified membership
// log as the hybrid signing key of the header's Author, and then checks the
// other conditions listed on ResourceHeader.
func (sh SignedHeader) VerifyHybrid(authorKey HybridPublicKey) (*ResourceHeader, error) {
	if err := sh.checkSuite(ResourceSuiteHybrid, "a hybrid"); err != nil {
		return nil, err
	}
	if err := authorKey.Verify(LabelResourceHeader, sh.Body, sh.Signature); err != nil {
		return nil, Errorf(EINVALID, "resource header signature does not verify under the author's hybrid key: %s", ErrorMessage(err))
	}
	return ParseResourceHeader(sh.Body)
}
