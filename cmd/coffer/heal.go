package main

import (
	"context"
	"fmt"

	"github.com/spf13/cobra"

	"github.com/cofferhq/coffer"
)

func (a *app) groupHealCmd() *cobra.Command {
	return &cobra.Command{
		Use:   "heal GROUP_ID",
		Short: "Append again the commits this device made that a server restore lost",
		Long: `After the server was restored from an older backup, members refuse the
shorter membership history as a rollback (exit 3, naming the group). heal
sends the commits this device made after the restore point, signed as they
were and with the keys they carried, back to the server, which checks them
like any new commit. When the lost commits had several authors, each
author's device heals in turn: heal says whose turn it is.

GROUP_ID must be the group's id (the rollback error names it): names cannot
be resolved while the group's history is refused.`,
		Args: exactArgs(1),
		RunE: action(func(ctx context.Context, args []string) error {
			g, err := coffer.ParseGroupID(args[0])
			if err != nil {
				return usagef("heal takes the group's id, not its name: %v", err)
			}
			c, err := a.client()
			if err != nil {
				return err
			}
			res, err := c.HealGroup(ctx, g)
			if err != nil {
				return err
			}
			if a.asJSON {
				return a.printJSON(struct {
					Group      coffer.GroupID `json:"group"`
					Pushed     int            `json:"pushed"`
					ServerHead uint64         `json:"server_head"`
					Verified   uint64         `json:"verified"`
					Waiting    uint64         `json:"waiting,omitempty"`
					Complete   bool           `json:"complete"`
				}{g, res.Pushed, res.ServerHead, res.Verified, res.Waiting, res.Complete()})
			}
			switch {
			case res.Complete():
				fmt.Fprintf(a.stdout, "group %s is whole again at seq %d (%d commit(s) appended from this device)\n", g, res.ServerHead, res.Pushed)
			default:
				fmt.Fprintf(a.stdout, "appended %d commit(s); the server is at seq %d of %d. Commit %d was made on another device: "+
					"its author must run coffer group heal %s, then run it here again\n", res.Pushed, res.ServerHead, res.Verified, res.Waiting, g)
			}
			return nil
		}),
	}
}
