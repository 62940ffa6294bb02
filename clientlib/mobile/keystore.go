package mobile

import (
	"errors"

	"github.com/cofferhq/coffer/clientlib"
)

// KeyStore is the device storage the app provides: the iOS Keychain, or
// files encrypted under a key in the Android Keystore (docs/MOBILE.md). The
// client keeps its private keys, session, verified contacts and the highest
// verified state of each group in it, as named blobs. Names are short ASCII
// paths such as "identity" or "group/<id>/state".
//
// Get returns null (nil) when no blob has the name; a Java implementation
// may instead throw an Exception whose message starts with
// "coffer:not_found:". An empty blob counts as absent: the client never
// stores one (a Put of an empty value is turned into a Delete). Delete of an
// absent name succeeds. Any other error (exception) fails the operation
// with CodeKeyStore.
//
// The client calls the store from several threads at once, so the methods
// must be safe for concurrent use, and a Put must be durable and atomic: a
// crash leaves the old value or the new one.
type KeyStore interface {
	Put(name string, value []byte) error
	Get(name string) ([]byte, error)
	Delete(name string) error
}

// keyStore adapts a KeyStore to clientlib.KeyStore.
type keyStore struct{ app KeyStore }

func (s keyStore) Put(name string, value []byte) (err error) {
	defer guard(&err)
	if len(value) == 0 {
		return s.Delete(name)
	}
	if err := s.app.Put(name, value); err != nil {
		return &keyStoreError{err}
	}
	return nil
}

func (s keyStore) Get(name string) (v []byte, err error) {
	defer guard(&err)
	v, err = s.app.Get(name)
	if err != nil {
		if errors.Is(err, clientlib.ErrNotFound) || ErrorCode(err) == CodeNotFound {
			return nil, clientlib.ErrNotFound
		}
		return nil, &keyStoreError{err}
	}
	if len(v) == 0 {
		return nil, clientlib.ErrNotFound
	}
	// A copy: the slice may be backed by memory the bindings reuse.
	return append([]byte(nil), v...), nil
}

func (s keyStore) Delete(name string) (err error) {
	defer guard(&err)
	if err := s.app.Delete(name); err != nil && !errors.Is(err, clientlib.ErrNotFound) && ErrorCode(err) != CodeNotFound {
		return &keyStoreError{err}
	}
	return nil
}
