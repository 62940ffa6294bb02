package mobile

import (
	"github.com/cofferhq/coffer"
	"github.com/cofferhq/coffer/clientlib"
	"strings"
)

// Roles, from least to most rights.
const (
	RoleReader = "reader" // reads resources
	RoleWriter = "writer" // also writes resources
	RoleAdmin  = "admin"  // also changes membership, except of owners
	RoleOwner  = "owner"  // everything
)

// GroupOptions are fixed when a group is created. The zero value gives the
// defaults.
type GroupOptions struct {
	// Description is stored encrypted with the name.
	Description string
	// NoHistory stops members added later from reading what was shared
	// before they joined. By default they can.
	NoHistory bool
}

// Group is a group after verification of its membership log.
type Group struct {
	ID          string `json:"id"`
	Name        string `json:"name"`
	Description string `json:"description,omitempty"`
	// Epoch counts key rotations (starting at 1); Seq, membership commits.
	Epoch        int64  `json:"epoch"`
	Seq          int64  `json:"seq"`
	Role         string `json:"role"` // this account's role
	ShareHistory bool   `json:"share_history"`
	// KeyConflicts names, comma-separated, the members whose keys differ
	// from the keys this device verified. While it is not empty, writes
	// and membership changes in the group fail with CodeSecurity; reads
	// still work. Show it to the user: it means a substituted key.
	KeyConflicts string `json:"key_conflicts,omitempty"`
	// ErrorCode and ErrorMessage are set, in a list from Groups, for a
	// group that failed verification (ErrorCode is CodeSecurity); only ID
	// is meaningful beside them.
	ErrorCode    string `json:"error_code,omitempty"`
	ErrorMessage string `json:"error_message,omitempty"`
}

// GroupList is a list of groups.
type GroupList struct{ items []*Group }

// Len returns the number of groups.
func (l *GroupList) Len() int64 {
	defer guardQuiet()
	if l == nil {
		return 0
	}
	return int64(len(l.items))
}

// Get returns group i, 0 <= i < Len().
func (l *GroupList) Get(i int64) (g *Group, err error) {
	defer guard(&err)
	if l == nil || i < 0 || i >= int64(len(l.items)) {
		return nil, newError(CodeInvalid, "index %d out of range", i)
	}
	return l.items[i], nil
}

// JSON returns the list as a JSON array.
func (l *GroupList) JSON() (b []byte, err error) {
	defer guard(&err)
	return listJSON(l.items)
}

// Member is a member of a group, from the verified membership log.
type Member struct {
	AccountID string `json:"account_id"`
	Handle    string `json:"handle"`
	Role      string `json:"role"`
	// Trust is StateVerified when the member's keys in the log match keys
	// this device verified, StateChanged when they differ, StateUnverified
	// otherwise.
	Trust        string `json:"trust"`
	SafetyNumber string `json:"safety_number"`
	JoinedEpoch  int64  `json:"joined_epoch"`
}

// MemberList is a list of members, sorted.
type MemberList struct{ items []*Member }

// Len returns the number of members.
func (l *MemberList) Len() int64 {
	defer guardQuiet()
	if l == nil {
		return 0
	}
	return int64(len(l.items))
}

// Get returns member i, 0 <= i < Len().
func (l *MemberList) Get(i int64) (m *Member, err error) {
	defer guard(&err)
	if l == nil || i < 0 || i >= int64(len(l.items)) {
		return nil, newError(CodeInvalid, "index %d out of range", i)
	}
	return l.items[i], nil
}

// JSON returns the list as a JSON array.
func (l *MemberList) JSON() (b []byte, err error) {
	defer guard(&err)
	return listJSON(l.items)
}

func groupOf(g *clientlib.Group) *Group {
	if g.Err != nil {
		err := wrap(g.Err, nil)
		return &Group{ID: g.ID.String(), ErrorCode: ErrorCode(err), ErrorMessage: ErrorMessage(err)}
	}
	var conflicts []string
	for _, m := range g.KeyConflicts {
		conflicts = append(conflicts, string(m.Handle))
	}
	return &Group{
		ID: g.ID.String(), Name: g.Name, Description: g.Description,
		Epoch: int64(g.Epoch), Seq: int64(g.Seq), Role: g.Role.String(), ShareHistory: g.ShareHistory,
		KeyConflicts: strings.Join(conflicts, ","),
	}
}

func parseGroup(id string) (coffer.GroupID, error) {
	g, err := coffer.ParseGroupID(id)
	return g, wrap(err, nil)
}

func parseRole(role string) (coffer.Role, error) {
	r, err := coffer.ParseRole(role)
	return r, wrap(err, nil)
}

// CreateGroup creates a group owned by this account and returns its id.
// name (1 to 256 bytes) is encrypted; the server never sees it. opts may
// be nil.
func (c *Client) CreateGroup(name string, opts *GroupOptions) (id string, err error) {
	defer guard(&err)
	cl, err := c.lib()
	if err != nil {
		return "", err
	}
	var o clientlib.GroupOptions
	if opts != nil {
		o.Description, o.NoHistory = opts.Description, opts.NoHistory
	}
	g, err := cl.CreateGroup(bg(), name, &o)
	if err != nil {
		return "", wrap(err, nil)
	}
	return g.String(), nil
}

// Groups lists this account's groups, each verified, with its decrypted
// name. A group that fails verification is in the list with ErrorCode
// set, beside the others.
func (c *Client) Groups() (l *GroupList, err error) {
	defer guard(&err)
	cl, err := c.lib()
	if err != nil {
		return nil, err
	}
	gs, err := cl.Groups(bg())
	if err != nil {
		return nil, wrap(err, nil)
	}
	l = &GroupList{}
	for _, g := range gs {
		l.items = append(l.items, groupOf(g))
	}
	return l, nil
}

// Group syncs and verifies one group (CodeNotFound if this account is not
// a member) and returns it with its decrypted name.
func (c *Client) Group(groupID string) (g *Group, err error) {
	defer guard(&err)
	cl, err := c.lib()
	if err != nil {
		return nil, err
	}
	gid, err := parseGroup(groupID)
	if err != nil {
		return nil, err
	}
	gr, err := cl.Group(bg(), gid)
	if err != nil {
		return nil, wrap(err, nil)
	}
	return groupOf(gr), nil
}

// Members syncs the group's membership log, verifies it, and returns its
// members with this device's trust in their keys.
func (c *Client) Members(groupID string) (l *MemberList, err error) {
	defer guard(&err)
	cl, err := c.lib()
	if err != nil {
		return nil, err
	}
	gid, err := parseGroup(groupID)
	if err != nil {
		return nil, err
	}
	ms, err := cl.Members(bg(), gid)
	if err != nil {
		return nil, wrap(err, nil)
	}
	l = &MemberList{}
	for _, m := range ms {
		l.items = append(l.items, &Member{
			AccountID: m.ID.String(), Handle: string(m.Handle), Role: m.Role.String(), Trust: m.Trust.String(),
			SafetyNumber: coffer.FingerprintOf(coffer.PublicIdentity{
				Handle: m.Handle, SigningKey: m.SigningKey, EncryptionKey: m.EncryptionKey,
			}).SafetyNumber(),
			JoinedEpoch: int64(m.JoinedEpoch),
		})
	}
	return l, nil
}

// AddMember adds the account handle with role (RoleReader, RoleWriter,
// RoleAdmin or RoleOwner). Its keys must have been verified with Verify
// (CodeUnverified otherwise), unless the client trusts on first use; the
// group key is then wrapped for it.
func (c *Client) AddMember(groupID, handle, role string) (err error) {
	defer guard(&err)
	cl, err := c.lib()
	if err != nil {
		return err
	}
	gid, err := parseGroup(groupID)
	if err != nil {
		return err
	}
	r, err := parseRole(role)
	if err != nil {
		return err
	}
	return wrap(cl.AddMember(bg(), gid, handle, r), nil)
}

// RemoveMember removes handle and rotates the group key, so the removed
// member cannot read anything shared afterwards.
func (c *Client) RemoveMember(groupID, handle string) (err error) {
	defer guard(&err)
	cl, err := c.lib()
	if err != nil {
		return err
	}
	gid, err := parseGroup(groupID)
	if err != nil {
		return err
	}
	return wrap(cl.RemoveMember(bg(), gid, handle), nil)
}

// Leave takes this account out of the group, without rotating its key;
// an owner's or admin's next sync rotates. The only owner cannot leave.
func (c *Client) Leave(groupID string) (err error) {
	defer guard(&err)
	cl, err := c.lib()
	if err != nil {
		return err
	}
	gid, err := parseGroup(groupID)
	if err != nil {
		return err
	}
	return wrap(cl.Leave(bg(), gid), nil)
}

// ChangeRole sets handle's role; a demotion rotates the group key.
func (c *Client) ChangeRole(groupID, handle, role string) (err error) {
	defer guard(&err)
	cl, err := c.lib()
	if err != nil {
		return err
	}
	gid, err := parseGroup(groupID)
	if err != nil {
		return err
	}
	r, err := parseRole(role)
	if err != nil {
		return err
	}
	return wrap(cl.ChangeRole(bg(), gid, handle, r), nil)
}

// Rotate starts a new epoch with a fresh group key for every member.
func (c *Client) Rotate(groupID string) (err error) {
	defer guard(&err)
	cl, err := c.lib()
	if err != nil {
		return err
	}
	gid, err := parseGroup(groupID)
	if err != nil {
		return err
	}
	return wrap(cl.Rotate(bg(), gid), nil)
}
