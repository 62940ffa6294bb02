package main

import (
	"context"
	"fmt"
	"strings"

	"github.com/spf13/cobra"

	"github.com/cofferhq/coffer"
	"github.com/cofferhq/coffer/clientlib"
)

// Dynamic shell completion. cobra generates the scripts (coffer completion
// bash|zsh|fish); these functions fill in GROUP, RESOURCE and HANDLE. Group
// and resource names come from the server, verified and decrypted like any
// listing, so completing costs a round of requests; a failure completes
// nothing rather than printing an error into the user's command line.

// argKind says what one positional argument is, for completion.
type argKind int

const (
	argOther    argKind = iota // no suggestions (and no file names)
	argFile                    // the shell's own file completion
	argGroup                   // a group name of the caller's
	argResource                // a resource name in the group given before it
	argContact                 // a handle from the contact book
	argMember                  // a handle of a current member of the group
	argRole                    // reader, writer or admin
)

// completeArgs returns a completion function for commands whose
// positional arguments are kinds, in order.
func (a *app) completeArgs(kinds ...argKind) cobra.CompletionFunc {
	return func(cmd *cobra.Command, args []string, toComplete string) ([]cobra.Completion, cobra.ShellCompDirective) {
		if len(args) >= len(kinds) {
			return nil, cobra.ShellCompDirectiveNoFileComp
		}
		ctx := cmd.Context()
		if ctx == nil {
			ctx = context.Background()
		}
		kind := kinds[len(args)]
		switch kind {
		case argFile:
			return nil, cobra.ShellCompDirectiveDefault
		case argRole:
			return []cobra.Completion{"reader", "writer", "admin"}, cobra.ShellCompDirectiveNoFileComp
		case argOther:
			return nil, cobra.ShellCompDirectiveNoFileComp
		}
		// A passphrase prompt would write into the shell's line: completion
		// works only when the keys open without one.
		a.noPrompt = true
		c, err := a.client()
		if err != nil {
			return nil, cobra.ShellCompDirectiveNoFileComp
		}
		var out []cobra.Completion
		switch kind {
		case argGroup:
			out, err = completeGroups(ctx, c)
		case argContact:
			out, err = completeContacts(c)
		case argResource, argMember:
			var g coffer.GroupID
			if g, err = a.resolveGroup(ctx, c, args[0]); err == nil {
				if kind == argResource {
					out, err = completeResources(ctx, c, g)
				} else {
					out, err = completeMembers(ctx, c, g)
				}
			}
		}
		if err != nil {
			return nil, cobra.ShellCompDirectiveNoFileComp
		}
		return filterPrefix(out, toComplete), cobra.ShellCompDirectiveNoFileComp
	}
}

func completeGroups(ctx context.Context, c *clientlib.Client) ([]cobra.Completion, error) {
	groups, err := c.Groups(ctx)
	if err != nil {
		return nil, err
	}
	count := map[string]int{}
	for _, g := range groups {
		count[g.Name]++
	}
	var out []cobra.Completion
	for _, g := range groups {
		if g.Err != nil {
			continue // no name to offer, and not a group to act on
		}
		// An ambiguous name would be refused: offer the id instead.
		if g.Name != "" && count[g.Name] == 1 {
			out = append(out, cobra.CompletionWithDesc(g.Name, g.ID.String()))
		} else {
			out = append(out, cobra.CompletionWithDesc(g.ID.String(), g.Name))
		}
	}
	return out, nil
}

func completeResources(ctx context.Context, c *clientlib.Client, g coffer.GroupID) ([]cobra.Completion, error) {
	rs, err := c.List(ctx, g)
	if err != nil {
		return nil, err
	}
	count := map[string]int{}
	for _, r := range rs {
		count[r.Meta.Name]++
	}
	var out []cobra.Completion
	for _, r := range rs {
		if r.Locked {
			continue
		}
		desc := fmt.Sprintf("%d bytes, by %s", r.Meta.Size, r.AuthorHandle)
		if count[r.Meta.Name] == 1 {
			out = append(out, cobra.CompletionWithDesc(r.Meta.Name, desc))
		} else {
			out = append(out, cobra.CompletionWithDesc(r.ID.String(), r.Meta.Name+", "+desc))
		}
	}
	return out, nil
}

func completeContacts(c *clientlib.Client) ([]cobra.Completion, error) {
	cts, err := c.Contacts()
	if err != nil {
		return nil, err
	}
	var out []cobra.Completion
	for _, ct := range cts {
		out = append(out, cobra.CompletionWithDesc(string(ct.Handle), ct.State.String()))
	}
	return out, nil
}

func completeMembers(ctx context.Context, c *clientlib.Client, g coffer.GroupID) ([]cobra.Completion, error) {
	ms, err := c.Members(ctx, g)
	if err != nil {
		return nil, err
	}
	var out []cobra.Completion
	for _, m := range ms {
		out = append(out, cobra.CompletionWithDesc(string(m.Handle), m.Role.String()))
	}
	return out, nil
}

// filterPrefix keeps the completions that start with what was typed; cobra
// leaves that to the shell for some shells but not all.
func filterPrefix(cs []cobra.Completion, prefix string) []cobra.Completion {
	var out []cobra.Completion
	for _, c := range cs {
		if strings.HasPrefix(c, prefix) {
			out = append(out, c)
		}
	}
	return out
}
