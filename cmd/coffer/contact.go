package main

import (
	"context"
	"fmt"

	"github.com/spf13/cobra"

	"github.com/cofferhq/coffer"
	"github.com/cofferhq/coffer/cmd/coffer/internal/resolve"
)

func (a *app) contactCmd() *cobra.Command {
	cmd := &cobra.Command{
		Use:   "contact",
		Short: "Verify other people's keys and list your contacts",
		Long: `Before you add someone to a group, verify their keys: they read you the
safety number from their coffer whoami, and you type it in. A key is only
ever wrapped for verified contacts, so a server that substitutes keys
cannot read your groups.`,
		Args: unknownCommand,
		RunE: helpIfNoArgs,
	}
	cmd.AddCommand(a.contactVerifyCmd(), a.contactListCmd())
	return cmd
}

func (a *app) contactVerifyCmd() *cobra.Command {
	return &cobra.Command{
		Use:   "verify HANDLE SAFETY_NUMBER",
		Short: "Mark HANDLE's keys as verified after comparing safety numbers",
		Long: `verify fetches HANDLE's keys from the server and checks them against the
safety number HANDLE gave you out of band (in person, on a call): 60 digits,
with or without spaces or quotes. If they match, the keys become verified
and you can add HANDLE to groups. A mismatch means a typo or a server
substituting keys: check the number with HANDLE again.

A QR payload (coffer:v1:…) scanned from coffer whoami --qr is accepted too.`,
		Example:           `  coffer contact verify bob 12345 67890 12345 67890 12345 67890 12345 67890 12345 67890 12345 67890`,
		Args:              minArgs(2),
		ValidArgsFunction: a.completeArgs(argContact),
		RunE: action(func(ctx context.Context, args []string) error {
			handle := args[0]
			code, err := resolve.SafetyNumber(args[1:])
			if err != nil {
				return err
			}
			c, err := a.client()
			if err != nil {
				return err
			}
			ct, err := c.Verify(ctx, handle, code)
			if err != nil {
				return withHandle(handle, err)
			}
			if a.asJSON {
				return a.printJSON(contactJSON{ct.Handle, ct.AccountID, ct.State.String(), ct.SafetyNumber()})
			}
			fmt.Fprintf(a.stdout, "%s is verified (account %s)\n", ct.Handle, ct.AccountID)
			return nil
		}),
	}
}

// contactJSON is a contact as `coffer contact list --json` prints it.
type contactJSON struct {
	Handle       coffer.Handle    `json:"handle"`
	AccountID    coffer.AccountID `json:"account_id"`
	State        string           `json:"state"`
	SafetyNumber string           `json:"safety_number"`
}

func (a *app) contactListCmd() *cobra.Command {
	cmd := &cobra.Command{
		Use:     "list",
		Aliases: []string{"ls"},
		Short:   "List contacts as verified, unverified or changed",
		Long: `list shows every contact this profile has seen:

  verified    you compared safety numbers; keys may be wrapped for them
  unverified  seen on the server, never compared; adding them is refused
  changed     the server now shows keys that differ from the ones you
              verified; adding them is refused until you verify again

The safety number shown is the one of the keys last seen. It reads only the
local key store.`,
		Args: exactArgs(0),
		RunE: action(func(ctx context.Context, _ []string) error {
			c, err := a.client()
			if err != nil {
				return err
			}
			cts, err := c.Contacts()
			if err != nil {
				return err
			}
			out := make([]contactJSON, 0, len(cts))
			for _, ct := range cts {
				out = append(out, contactJSON{ct.Handle, ct.AccountID, ct.State.String(), ct.SafetyNumber()})
			}
			if a.asJSON {
				return a.printJSON(out)
			}
			if len(out) == 0 {
				a.notice("no contacts yet: verify one with coffer contact verify HANDLE SAFETY_NUMBER")
				return nil
			}
			tw := a.table()
			fmt.Fprintln(tw, "HANDLE\tSTATE\tACCOUNT\tSAFETY NUMBER")
			for _, ct := range out {
				fmt.Fprintf(tw, "%s\t%s\t%s\t%s\n", ct.Handle, ct.State, ct.AccountID, ct.SafetyNumber)
			}
			return tw.Flush()
		}),
	}
	return cmd
}
