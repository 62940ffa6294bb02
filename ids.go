package coffer

import (
	"crypto/rand"
	"database/sql/driver"
	"encoding/hex"
	"fmt"
	"regexp"
)

// uuid is the shared representation of every identifier: 16 random bytes,
// printed as a lowercase RFC 9562 UUID (version 4) so that operators can read
// them in psql. Identifiers are names, not capabilities: the server checks
// membership on every access, and knowing an id grants nothing.
type uuid [16]byte

func newUUID() uuid {
	var u uuid
	rand.Read(u[:]) // crypto/rand.Read never fails and never returns short.
	u[6] = u[6]&0x0f | 0x40
	u[8] = u[8]&0x3f | 0x80
	return u
}

func (u uuid) String() string {
	var b [36]byte
	hex.Encode(b[0:8], u[0:4])
	b[8] = '-'
	hex.Encode(b[9:13], u[4:6])
	b[13] = '-'
	hex.Encode(b[14:18], u[6:8])
	b[18] = '-'
	hex.Encode(b[19:23], u[8:10])
	b[23] = '-'
	hex.Encode(b[24:], u[10:])
	return string(b[:])
}

func parseUUID(kind, s string) (uuid, error) {
	var u uuid
	if len(s) != 36 || s[8] != '-' || s[13] != '-' || s[18] != '-' || s[23] != '-' {
		return u, Errorf(EINVALID, "malformed %s id %q", kind, truncate(s, 40))
	}
	h := s[0:8] + s[9:13] + s[14:18] + s[19:23] + s[24:]
	for i := 0; i < len(h); i++ {
		if c := h[i]; !('0' <= c && c <= '9' || 'a' <= c && c <= 'f') {
			return u, Errorf(EINVALID, "malformed %s id %q: use lowercase hex", kind, truncate(s, 40))
		}
	}
	if _, err := hex.Decode(u[:], []byte(h)); err != nil {
		return u, Errorf(EINVALID, "malformed %s id %q", kind, truncate(s, 40))
	}
	return u, nil
}

func (u *uuid) scan(kind string, src any) error {
	switch v := src.(type) {
	case string:
		p, err := parseUUID(kind, v)
		*u = p
		return err
	case []byte:
		if len(v) == 16 {
			copy(u[:], v)
			return nil
		}
		p, err := parseUUID(kind, string(v))
		*u = p
		return err
	case [16]byte:
		*u = v
		return nil
	}
	return fmt.Errorf("coffer: cannot scan %T into %s id", src, kind)
}

func truncate(s string, n int) string {
	if len(s) > n {
		return s[:n] + "…"
	}
	return s
}

// AccountID names an account. The server assigns it at registration.
type AccountID uuid

// GroupID names a group. The creating client chooses it at random, because
// the genesis commit must bind it before the server has seen the group.
type GroupID uuid

// ResourceID names a resource. The creating client chooses it at random, so
// the encryption of its content can bind it.
type ResourceID uuid

func NewAccountID() AccountID   { return AccountID(newUUID()) }
func NewGroupID() GroupID       { return GroupID(newUUID()) }
func NewResourceID() ResourceID { return ResourceID(newUUID()) }

func ParseAccountID(s string) (AccountID, error) {
	u, err := parseUUID("account", s)
	return AccountID(u), err
}
func ParseGroupID(s string) (GroupID, error) {
	u, err := parseUUID("group", s)
	return GroupID(u), err
}
func ParseResourceID(s string) (ResourceID, error) {
	u, err := parseUUID("resource", s)
	return ResourceID(u), err
}

func (id AccountID) String() string  { return uuid(id).String() }
func (id GroupID) String() string    { return uuid(id).String() }
func (id ResourceID) String() string { return uuid(id).String() }

func (id AccountID) IsZero() bool  { return id == AccountID{} }
func (id GroupID) IsZero() bool    { return id == GroupID{} }
func (id ResourceID) IsZero() bool { return id == ResourceID{} }

func (id AccountID) MarshalText() ([]byte, error)  { return []byte(id.String()), nil }
func (id GroupID) MarshalText() ([]byte, error)    { return []byte(id.String()), nil }
func (id ResourceID) MarshalText() ([]byte, error) { return []byte(id.String()), nil }

func (id *AccountID) UnmarshalText(b []byte) (err error) {
	*id, err = ParseAccountID(string(b))
	return err
}
func (id *GroupID) UnmarshalText(b []byte) (err error) {
	*id, err = ParseGroupID(string(b))
	return err
}
func (id *ResourceID) UnmarshalText(b []byte) (err error) {
	*id, err = ParseResourceID(string(b))
	return err
}

// Value and Scan let the ids travel through database/sql and pgx as uuid.
func (id AccountID) Value() (driver.Value, error)  { return id.String(), nil }
func (id GroupID) Value() (driver.Value, error)    { return id.String(), nil }
func (id ResourceID) Value() (driver.Value, error) { return id.String(), nil }

func (id *AccountID) Scan(src any) error  { return (*uuid)(id).scan("account", src) }
func (id *GroupID) Scan(src any) error    { return (*uuid)(id).scan("group", src) }
func (id *ResourceID) Scan(src any) error { return (*uuid)(id).scan("resource", src) }

// Handle is an account's unique, human-chosen name.
type Handle string

var handleRE = regexp.MustCompile(`^[a-z0-9._-]{3,32}$`)

// ParseHandle checks that s is 3 to 32 characters of [a-z0-9._-].
func ParseHandle(s string) (Handle, error) {
	if !handleRE.MatchString(s) {
		return "", Errorf(EINVALID, "handle %q must be 3 to 32 characters of a-z, 0-9, '.', '_' or '-'", truncate(s, 40))
	}
	return Handle(s), nil
}

func (h Handle) String() string { return string(h) }

// Role is a member's role in a group. Higher roles include the rights of
// lower ones.
type Role uint8

const (
	RoleNone   Role = 0
	RoleReader Role = 1 // reads resources
	RoleWriter Role = 2 // also writes resources
	RoleAdmin  Role = 3 // also changes membership, except of owners
	RoleOwner  Role = 4 // everything, including other owners
)

var roleNames = [...]string{"none", "reader", "writer", "admin", "owner"}

func (r Role) String() string {
	if int(r) < len(roleNames) {
		return roleNames[r]
	}
	return fmt.Sprintf("role(%d)", uint8(r))
}

// Valid reports whether r is one of the four member roles.
func (r Role) Valid() bool { return r >= RoleReader && r <= RoleOwner }

// ParseRole parses a role name.
func ParseRole(s string) (Role, error) {
	for i, n := range roleNames[1:] {
		if s == n {
			return Role(i + 1), nil
		}
	}
	return RoleNone, Errorf(EINVALID, "unknown role %q: use reader, writer, admin or owner", truncate(s, 20))
}

func (r Role) MarshalText() ([]byte, error) { return []byte(r.String()), nil }
func (r *Role) UnmarshalText(b []byte) (err error) {
	*r, err = ParseRole(string(b))
	return err
}
