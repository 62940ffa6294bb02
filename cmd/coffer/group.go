package main

import (
	"context"
	"fmt"
	"slices"
	"strings"
	"time"

	"github.com/spf13/cobra"

	"github.com/cofferhq/coffer"
	"github.com/cofferhq/coffer/clientlib"
	"github.com/cofferhq/coffer/cmd/coffer/internal/resolve"
)

func (a *app) groupCmd() *cobra.Command {
	cmd := &cobra.Command{
		Use:   "group",
		Short: "Create groups and manage who is in them",
		Long: `Groups share resources among their members. Membership is a signed,
hash-chained log that every member verifies; the server cannot add anyone.

GROUP is a group id or, when it is unique among your groups, its name.`,
		Args: unknownCommand,
		RunE: helpIfNoArgs,
	}
	cmd.AddCommand(a.groupCreateCmd(), a.groupLsCmd(), a.groupMembersCmd(), a.groupAddCmd(),
		a.groupRemoveCmd(), a.groupRoleCmd(), a.groupRotateCmd(), a.groupLeaveCmd(), a.groupLogCmd(), a.groupRenameCmd(), a.groupHealCmd(), a.groupUpgradeCmd())
	return cmd
}

// resolveGroup turns GROUP into an id: an id is used as is (no request);
// a name is looked up among the caller's groups, whose names are
// decrypted, and must be unique.
func (a *app) resolveGroup(ctx context.Context, c *clientlib.Client, arg string) (coffer.GroupID, error) {
	if g, err := coffer.ParseGroupID(arg); err == nil {
		return g, nil
	}
	all, err := c.Groups(ctx)
	if err != nil {
		return coffer.GroupID{}, err
	}
	// A group that fails verification has no name to match; it is
	// reported, and the name is looked up among the others.
	var groups []*clientlib.Group
	var broken int
	for _, g := range all {
		if g.Err != nil {
			broken++
			a.notice("warning: group %s failed verification and is left out: %v", g.ID, g.Err)
			continue
		}
		groups = append(groups, g)
	}
	items := make([]resolve.Item, len(groups))
	for i, g := range groups {
		items[i] = resolve.Item{ID: g.ID.String(), Name: g.Name}
	}
	i, err := resolve.ByName("group", arg, "coffer group ls", items)
	if err != nil {
		if broken > 0 {
			return coffer.GroupID{}, withHint(err, fmt.Sprintf("%d of your groups failed verification and could not be matched by name", broken))
		}
		return coffer.GroupID{}, err
	}
	return groups[i].ID, nil
}

// groupAction is action for commands whose first argument is GROUP: it
// opens the client and resolves the group first.
func (a *app) groupAction(f func(ctx context.Context, c *clientlib.Client, g coffer.GroupID, args []string) error) func(*cobra.Command, []string) error {
	return action(func(ctx context.Context, args []string) error {
		c, err := a.client()
		if err != nil {
			return err
		}
		g, err := a.resolveGroup(ctx, c, args[0])
		if err != nil {
			return err
		}
		a.groupText = args[0]
		return f(ctx, c, g, args[1:])
	})
}

func (a *app) groupCreateCmd() *cobra.Command {
	var noHistory, suiteV1, tree bool
	var description string
	cmd := &cobra.Command{
		Use:   "create NAME",
		Short: "Create a group, with you as its owner; prints the group id",
		Long: `create makes a group with a fresh key, on this device, and you as its owner.
The name is encrypted: the server never sees it. The group id goes to
stdout, for scripts.

By default members added later can read everything shared before they
joined. With --no-history they read only what is shared from then on.`,
		Args: exactArgs(1),
		RunE: action(func(ctx context.Context, args []string) error {
			c, err := a.client()
			if err != nil {
				return err
			}
			g, err := c.CreateGroup(ctx, args[0], &clientlib.GroupOptions{NoHistory: noHistory, Description: description, SuiteV1: suiteV1, Tree: tree})
			if err != nil {
				return err
			}
			if a.asJSON {
				return a.printJSON(changeJSON{Group: g, Action: "create", Name: args[0], Epoch: 1})
			}
			fmt.Fprintln(a.stdout, g)
			a.notice("created group %q; add members with: coffer group add %s HANDLE", args[0], g)
			return nil
		}),
	}
	cmd.Flags().BoolVar(&noHistory, "no-history", false, "members added later cannot read what was shared before they joined")
	cmd.Flags().StringVar(&description, "description", "", "a description, encrypted like the name")
	cmd.Flags().BoolVar(&suiteV1, "suite-v1", false, "make a suite v1 group (Ed25519 signatures), which can hold members without a suite v2 account")
	cmd.Flags().BoolVar(&tree, "tree", false, "make a tree group (suite v2): removing a member costs O(log n) ciphertexts, not a key per member")
	return cmd
}

// groupJSON is a group as `coffer group ls --json` prints it.
type groupJSON struct {
	ID           coffer.GroupID `json:"id"`
	Name         string         `json:"name"`
	Description  string         `json:"description,omitempty"`
	Role         string         `json:"role"`
	Epoch        uint64         `json:"epoch"`
	Seq          uint64         `json:"seq"`
	ShareHistory bool           `json:"share_history"`
	// KeyConflicts lists members whose keys differ from the ones you
	// verified; writes and key changes are blocked while there are any.
	KeyConflicts []coffer.Handle `json:"key_conflicts,omitempty"`
	// Error is set for a group that failed verification; only ID is
	// meaningful beside it.
	Error string `json:"error,omitempty"`
}

func (a *app) groupLsCmd() *cobra.Command {
	cmd := &cobra.Command{
		Use:     "ls",
		Aliases: []string{"list"},
		Short:   "List your groups, with their decrypted names",
		Long: `ls lists the groups you are a member of. Each one's membership log is
verified and its name decrypted on this device. A group that fails
verification is listed with its error beside the others, and the command
then exits with status 3.`,
		Args: exactArgs(0),
		RunE: action(func(ctx context.Context, _ []string) error {
			c, err := a.client()
			if err != nil {
				return err
			}
			groups, err := c.Groups(ctx)
			if err != nil {
				return err
			}
			out := make([]groupJSON, 0, len(groups))
			var firstErr error
			for _, g := range groups {
				if g.Err != nil {
					out = append(out, groupJSON{ID: g.ID, Error: g.Err.Error()})
					if firstErr == nil {
						firstErr = g.Err
					}
					continue
				}
				gj := groupJSON{g.ID, g.Name, g.Description, g.Role.String(), g.Epoch, g.Seq, g.ShareHistory, nil, ""}
				for _, m := range g.KeyConflicts {
					gj.KeyConflicts = append(gj.KeyConflicts, m.Handle)
				}
				out = append(out, gj)
			}
			if a.asJSON {
				if err := a.printJSON(out); err != nil {
					return err
				}
				return brokenGroups(out, firstErr)
			}
			if len(out) == 0 {
				a.notice("no groups yet: create one with coffer group create NAME")
				return nil
			}
			tw := a.table()
			fmt.Fprintln(tw, "ID\tNAME\tROLE\tEPOCH\tHISTORY\tKEYS")
			for _, g := range out {
				if g.Error != "" {
					fmt.Fprintf(tw, "%s\t%s\t-\t-\t-\t-\n", g.ID, "(failed verification)")
					continue
				}
				fmt.Fprintf(tw, "%s\t%s\t%s\t%d\t%s\t%s\n", g.ID, g.Name, g.Role, g.Epoch, historyWord(g.ShareHistory), conflictWord(g.KeyConflicts))
			}
			if err := tw.Flush(); err != nil {
				return err
			}
			for _, g := range out {
				if len(g.KeyConflicts) > 0 {
					a.notice("%s: keys of %s differ from the ones you verified: writing is blocked; see coffer group members %s",
						g.Name, strings.TrimPrefix(conflictWord(g.KeyConflicts), "changed: "), g.ID)
				}
			}
			return brokenGroups(out, firstErr)
		}),
	}
	return cmd
}

// conflictWord is the KEYS column of group ls: whether every member's keys
// agree with the contacts you verified.
func conflictWord(conflicts []coffer.Handle) string {
	if len(conflicts) == 0 {
		return "ok"
	}
	s := make([]string, len(conflicts))
	for i, h := range conflicts {
		s[i] = string(h)
	}
	return "changed: " + strings.Join(s, ",")
}

// brokenGroups is the error `group ls` ends with when groups failed
// verification: the first one's security error (exit status 3), saying how
// many there were. The listing itself was printed in full.
func brokenGroups(out []groupJSON, first error) error {
	if first == nil {
		return nil
	}
	n := 0
	for _, g := range out {
		if g.Error != "" {
			n++
		}
	}
	return withHint(first, fmt.Sprintf("%d of %d groups failed verification; the others are listed", n, len(out)))
}

func historyWord(shared bool) string {
	if shared {
		return "shared"
	}
	return "not shared"
}

// memberJSON is a member as `coffer group members --json` prints it.
type memberJSON struct {
	Handle      coffer.Handle    `json:"handle"`
	AccountID   coffer.AccountID `json:"account_id"`
	Role        string           `json:"role"`
	Keys        string           `json:"keys"` // verified, unverified or changed
	JoinedEpoch uint64           `json:"joined_epoch"`
}

func (a *app) groupMembersCmd() *cobra.Command {
	cmd := &cobra.Command{
		Use:   "members GROUP",
		Short: "List a group's members, their roles and whether you verified their keys",
		Long: `members shows the members of GROUP from its verified membership log. KEYS
says whether you verified each member's keys yourself: members added by
someone else are vouched for by that admin's signature, not by you.`,
		Args:              exactArgs(1),
		ValidArgsFunction: a.completeArgs(argGroup),
		RunE: a.groupAction(func(ctx context.Context, c *clientlib.Client, g coffer.GroupID, _ []string) error {
			members, err := c.Members(ctx, g)
			if err != nil {
				return err
			}
			// Owners first, then by role and handle: how people scan a list.
			slices.SortFunc(members, func(x, y *clientlib.Member) int {
				if x.Role != y.Role {
					return int(y.Role) - int(x.Role)
				}
				return strings.Compare(string(x.Handle), string(y.Handle))
			})
			out := make([]memberJSON, 0, len(members))
			for _, m := range members {
				out = append(out, memberJSON{m.Handle, m.ID, m.Role.String(), m.Trust.String(), m.JoinedEpoch})
			}
			if a.asJSON {
				return a.printJSON(out)
			}
			tw := a.table()
			fmt.Fprintln(tw, "HANDLE\tROLE\tKEYS\tJOINED EPOCH\tACCOUNT")
			for _, m := range out {
				fmt.Fprintf(tw, "%s\t%s\t%s\t%d\t%s\n", m.Handle, m.Role, m.Keys, m.JoinedEpoch, m.AccountID)
			}
			return tw.Flush()
		}),
	}
	return cmd
}

// memberRole parses --role for add and role: an owner is never made by
// accident, so only the three lower roles are accepted.
func memberRole(s string) (coffer.Role, error) {
	r, err := coffer.ParseRole(s)
	if err != nil || r == coffer.RoleOwner {
		return coffer.RoleNone, usagef("invalid role %q: use reader, writer or admin", s)
	}
	return r, nil
}

func (a *app) groupAddCmd() *cobra.Command {
	var roleName string
	cmd := &cobra.Command{
		Use:   "add GROUP HANDLE",
		Short: "Add a verified contact to a group",
		Long: `add wraps the group's current key for HANDLE and appends a signed commit
adding them with --role:

  reader  reads resources
  writer  also puts, replaces and removes resources (default)
  admin   also adds and removes members (except owners)

HANDLE's keys must be verified first (coffer contact verify); otherwise add
refuses, because the key the server shows could be the server's own.`,
		Args:              exactArgs(2),
		ValidArgsFunction: a.completeArgs(argGroup, argContact),
		// A bad --role is a usage error, found before any request.
		PreRunE: func(*cobra.Command, []string) error {
			_, err := memberRole(roleName)
			return err
		},
		RunE: a.groupAction(func(ctx context.Context, c *clientlib.Client, g coffer.GroupID, args []string) error {
			role, err := memberRole(roleName)
			if err != nil {
				return err
			}
			handle := args[0]
			if err := c.AddMember(ctx, g, handle, role); err != nil {
				return withHandle(handle, err)
			}
			if a.asJSON {
				return a.printJSON(changeJSON{Group: g, Action: "add", Member: handle, Role: role.String()})
			}
			a.notice("added %s as %s", handle, role)
			return nil
		}),
	}
	cmd.Flags().StringVar(&roleName, "role", "writer", "reader, writer or admin")
	cmd.RegisterFlagCompletionFunc("role", cobra.FixedCompletions([]string{"reader", "writer", "admin"}, cobra.ShellCompDirectiveNoFileComp))
	return cmd
}

func (a *app) groupRemoveCmd() *cobra.Command {
	var yes bool
	cmd := &cobra.Command{
		Use:     "remove GROUP HANDLE",
		Aliases: []string{"rm"},
		Short:   "Remove a member and rotate the group key",
		Long: `remove takes HANDLE out of GROUP and, in the same signed commit, rotates to
a fresh group key wrapped only for the remaining members. HANDLE keeps
whatever they already downloaded, but cannot read anything shared after.

On a terminal it asks for confirmation first; --yes skips the question, and
is required when standard input is not a terminal.`,
		Args:              exactArgs(2),
		ValidArgsFunction: a.completeArgs(argGroup, argMember),
		RunE: a.groupAction(func(ctx context.Context, c *clientlib.Client, g coffer.GroupID, args []string) error {
			handle := args[0]
			if err := a.confirm(yes, fmt.Sprintf("Remove %s from group %s and rotate its key?", handle, a.groupText)); err != nil {
				return err
			}
			if err := c.RemoveMember(ctx, g, handle); err != nil {
				return withHandle(handle, err)
			}
			if a.asJSON {
				return a.printJSON(changeJSON{Group: g, Action: "remove", Member: handle})
			}
			a.notice("removed %s and rotated the group key; %s cannot read anything shared from now on", handle, handle)
			return nil
		}),
	}
	cmd.Flags().BoolVarP(&yes, "yes", "y", false, "do not ask for confirmation")
	return cmd
}

func (a *app) groupRoleCmd() *cobra.Command {
	return &cobra.Command{
		Use:               "role GROUP HANDLE ROLE",
		Short:             "Change a member's role (a demotion rotates the group key)",
		Args:              exactArgs(3),
		ValidArgsFunction: a.completeArgs(argGroup, argMember, argRole),
		PreRunE: func(_ *cobra.Command, args []string) error {
			_, err := memberRole(args[2])
			return err
		},
		RunE: a.groupAction(func(ctx context.Context, c *clientlib.Client, g coffer.GroupID, args []string) error {
			role, err := memberRole(args[1])
			if err != nil {
				return err
			}
			if err := c.ChangeRole(ctx, g, args[0], role); err != nil {
				return withHandle(args[0], err)
			}
			if a.asJSON {
				return a.printJSON(changeJSON{Group: g, Action: "set-role", Member: args[0], Role: role.String()})
			}
			a.notice("%s is now %s", args[0], role)
			return nil
		}),
	}
}

func (a *app) groupLeaveCmd() *cobra.Command {
	return &cobra.Command{
		Use:   "leave GROUP",
		Short: "Leave a group (any member may)",
		Long: `leave takes you out of GROUP with a signed commit that does not rotate the
group key: a leaver never chooses the next key. You keep whatever you
already downloaded and the current key, so until an owner or admin rotates,
no member encrypts anything new in GROUP; their app rotates on its next
sync. The group's only owner cannot leave: make another member owner
first (coffer group role GROUP HANDLE owner).`,
		Args:              exactArgs(1),
		ValidArgsFunction: a.completeArgs(argGroup),
		RunE: a.groupAction(func(ctx context.Context, c *clientlib.Client, g coffer.GroupID, _ []string) error {
			if err := c.Leave(ctx, g); err != nil {
				return err
			}
			a.notice("left the group; the next owner or admin to sync rotates its key")
			return nil
		}),
	}
}

func (a *app) groupRotateCmd() *cobra.Command {
	return &cobra.Command{
		Use:   "rotate GROUP",
		Short: "Start a new epoch with a fresh group key",
		Long: `rotate replaces the group key with a fresh one, wrapped for every current
member. Resources shared afterwards use the new key. Use it if you suspect
a member's device was compromised and has since been re-keyed, or on a
schedule.`,
		Args:              exactArgs(1),
		ValidArgsFunction: a.completeArgs(argGroup),
		RunE: a.groupAction(func(ctx context.Context, c *clientlib.Client, g coffer.GroupID, _ []string) error {
			if err := c.Rotate(ctx, g); err != nil {
				return err
			}
			e, err := c.CurrentEpoch(ctx, g)
			if err != nil {
				return err
			}
			if a.asJSON {
				return a.printJSON(changeJSON{Group: g, Action: "rotate", Epoch: e})
			}
			a.notice("rotated the group key; now at epoch %d", e)
			return nil
		}),
	}
}

func (a *app) groupLogCmd() *cobra.Command {
	cmd := &cobra.Command{
		Use:   "log GROUP",
		Short: "Show the group's verified membership history",
		Long: `log shows every membership change of GROUP, oldest first: who did what,
when (by the author's clock, which nothing relies on) and the epoch after
the change. The whole chain is fetched and verified on this device: every
entry is signed by an owner or admin who was allowed to make it.`,
		Args:              exactArgs(1),
		ValidArgsFunction: a.completeArgs(argGroup),
		RunE: a.groupAction(func(ctx context.Context, c *clientlib.Client, g coffer.GroupID, _ []string) error {
			commits, err := c.History(ctx, g)
			if err != nil {
				return err
			}
			entries := historyEntries(commits)
			if a.asJSON {
				return a.printJSON(entries)
			}
			tw := a.table()
			fmt.Fprintln(tw, "SEQ\tEPOCH\tTIME\tAUTHOR\tCHANGE")
			for _, e := range entries {
				fmt.Fprintf(tw, "%d\t%d\t%s\t%s\t%s\n", e.Seq, e.Epoch, e.Time.Local().Format("2006-01-02 15:04:05"), e.Author, e.Summary)
			}
			return tw.Flush()
		}),
	}
	return cmd
}

// historyEntry is one commit as `coffer group log` shows it.
type historyEntry struct {
	Seq      uint64           `json:"seq"`
	Epoch    uint64           `json:"epoch"`
	Time     time.Time        `json:"time"` // the author's clock
	Author   string           `json:"author"`
	AuthorID coffer.AccountID `json:"author_id"`
	Ops      []historyOp      `json:"ops"`
	Summary  string           `json:"summary"`
}

type historyOp struct {
	Op       string            `json:"op"` // add, remove, set-role, leave, update-key, rotate
	Member   string            `json:"member,omitempty"`
	MemberID *coffer.AccountID `json:"member_id,omitempty"`
	Role     string            `json:"role,omitempty"`
}

// historyEntries describes verified commits for people. Account ids become
// handles through the chain's own add ops: the handle an account was added
// with is signed into the log, so no lookup (and no trust in the server's
// directory) is needed, and it still works for members who left.
func historyEntries(commits []*coffer.Commit) []historyEntry {
	names := accountHandles{}
	for _, c := range commits {
		for _, op := range c.Ops {
			if op.Kind == coffer.OpAdd {
				names[op.Member] = op.Handle
			}
		}
	}
	out := make([]historyEntry, 0, len(commits))
	for _, c := range commits {
		e := historyEntry{Seq: c.Seq, Epoch: c.Epoch, Time: time.UnixMilli(c.Time).UTC(),
			Author: names.name(c.Author), AuthorID: c.Author}
		var parts []string
		if c.Seq == 1 {
			part := "created the group"
			if !c.ShareHistory {
				part += " (history not shared)"
			}
			parts = append(parts, part)
		}
		for _, op := range c.Ops {
			hop := historyOp{Op: op.Kind.String()}
			if op.Kind != coffer.OpRotate {
				id := op.Member
				hop.Member, hop.MemberID = names.name(id), &id
			}
			switch op.Kind {
			case coffer.OpAdd:
				hop.Role = op.Role.String()
				if c.Seq == 1 && op.Member == c.Author {
					parts = append(parts, "joined as "+op.Role.String())
				} else {
					parts = append(parts, fmt.Sprintf("added %s as %s", hop.Member, op.Role))
				}
			case coffer.OpRemove:
				parts = append(parts, "removed "+hop.Member)
			case coffer.OpSetRole:
				hop.Role = op.Role.String()
				parts = append(parts, fmt.Sprintf("made %s %s", hop.Member, op.Role))
			case coffer.OpLeave:
				parts = append(parts, "left the group (a key rotation is now due)")
			case coffer.OpUpdateKey:
				// The verifier allows it only for the author's own entry:
				// the account rotated its user key (a revoked device, say)
				// and moved its entry to the new keys.
				if op.Member == c.Author {
					parts = append(parts, "updated their keys (self-update)")
				} else {
					parts = append(parts, "updated the keys of "+hop.Member)
				}
			case coffer.OpRotate:
				parts = append(parts, "rotated the key")
			default:
				parts = append(parts, op.Kind.String())
			}
			e.Ops = append(e.Ops, hop)
		}
		e.Summary = strings.Join(parts, ", ")
		out = append(out, e)
	}
	return out
}

// changeJSON is what --json prints for a membership change.
type changeJSON struct {
	Group  coffer.GroupID `json:"group"`
	Action string         `json:"action"` // create, add, remove, set-role, rotate, rename
	Name   string         `json:"name,omitempty"`
	Member string         `json:"member,omitempty"`
	Role   string         `json:"role,omitempty"`
	Epoch  uint64         `json:"epoch,omitempty"`
}

func (a *app) groupRenameCmd() *cobra.Command {
	var description string
	var cmd *cobra.Command
	cmd = &cobra.Command{
		Use:   "rename GROUP NEW_NAME",
		Short: "Rename a group (owners and admins; rotates the group key)",
		Long: `rename gives GROUP a new name, encrypted like the old one. The new name is
sealed under a fresh group key in the same signed commit that rotates to
it, so members removed earlier, who may still hold old keys, never read it.
--description replaces the description as well; without it the current one
is kept.`,
		Args:              exactArgs(2),
		ValidArgsFunction: a.completeArgs(argGroup, argOther),
		RunE: a.groupAction(func(ctx context.Context, c *clientlib.Client, g coffer.GroupID, args []string) error {
			var desc *string
			if cmd.Flags().Changed("description") {
				desc = &description
			}
			if err := c.RenameGroup(ctx, g, args[0], desc); err != nil {
				return err
			}
			e, err := c.CurrentEpoch(ctx, g)
			if err != nil {
				return err
			}
			if a.asJSON {
				return a.printJSON(changeJSON{Group: g, Action: "rename", Name: args[0], Epoch: e})
			}
			a.notice("renamed the group to %q (now at epoch %d)", args[0], e)
			return nil
		}),
	}
	cmd.Flags().StringVar(&description, "description", "", "a new description (default: keep the current one)")
	return cmd
}
