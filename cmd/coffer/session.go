package main

import (
	"context"

	"github.com/spf13/cobra"
)

func (a *app) logoutCmd() *cobra.Command {
	return &cobra.Command{
		Use:   "logout",
		Short: "End this profile's session on the server",
		Long: `logout revokes the profile's session on the server and forgets it locally,
so a copied session token is useless from now on. The identity stays in the
profile: the next command logs in again with the device key. To stop using
an identity altogether, delete its profile directory.`,
		Args: exactArgs(0),
		RunE: action(func(ctx context.Context, _ []string) error {
			c, err := a.client()
			if err != nil {
				return err
			}
			if err := c.Logout(ctx); err != nil {
				return err
			}
			if a.asJSON {
				return a.printJSON(struct {
					LoggedOut bool   `json:"logged_out"`
					Server    string `json:"server"`
				}{true, a.cfg.Server})
			}
			a.notice("logged out of %s; the identity stays in %s", a.cfg.Server, a.prof.Dir)
			return nil
		}),
	}
}
