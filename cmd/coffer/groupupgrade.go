package main

import (
	"context"

	"github.com/spf13/cobra"

	"github.com/cofferhq/coffer"
	"github.com/cofferhq/coffer/clientlib"
)

func (a *app) groupUpgradeCmd() *cobra.Command {
	return &cobra.Command{
		Use:   "upgrade GROUP",
		Short: "Convert a suite v2 group to a ratchet tree group",
		Long: `upgrade converts GROUP, a suite v2 group whose keys are wrapped to each
member, to a tree group, with one commit: from then on removing a member
costs a few kilobytes whatever the group's size, instead of a wrap per
member. Only an owner can upgrade; members keep reading everything they
could read before. Upgrading a tree group does nothing.`,
		Args:              exactArgs(1),
		ValidArgsFunction: a.completeArgs(argGroup),
		RunE: a.groupAction(func(ctx context.Context, c *clientlib.Client, g coffer.GroupID, _ []string) error {
			if err := c.UpgradeToTree(ctx, g); err != nil {
				return err
			}
			e, err := c.CurrentEpoch(ctx, g)
			if err != nil {
				return err
			}
			if a.asJSON {
				return a.printJSON(changeJSON{Group: g, Action: "upgrade", Epoch: e})
			}
			a.notice("the group is a tree group; now at epoch %d", e)
			return nil
		}),
	}
}
