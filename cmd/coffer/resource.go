package main

import (
	"context"
	"errors"
	"fmt"
	"io"
	"mime"
	"os"
	"path/filepath"
	"time"

	"github.com/schollz/progressbar/v3"
	"github.com/spf13/cobra"

	"github.com/cofferhq/coffer"
	"github.com/cofferhq/coffer/clientlib"
	"github.com/cofferhq/coffer/cmd/coffer/internal/resolve"
)

// resolveResource turns RESOURCE into an id: an id as is, or a name that is
// unique among the group's resources (listing them verifies and decrypts
// their metadata, never their content).
func (a *app) resolveResource(ctx context.Context, c *clientlib.Client, g coffer.GroupID, arg string) (coffer.ResourceID, error) {
	if id, err := coffer.ParseResourceID(arg); err == nil {
		return id, nil
	}
	rs, err := c.List(ctx, g)
	if err != nil {
		return coffer.ResourceID{}, err
	}
	items := make([]resolve.Item, len(rs))
	for i, r := range rs {
		items[i] = resolve.Item{ID: r.ID.String(), Name: r.Meta.Name}
	}
	i, err := resolve.ByName("resource", arg, "coffer ls "+g.String(), items)
	if err != nil {
		return coffer.ResourceID{}, err
	}
	return rs[i].ID, nil
}

// progressBar returns a clientlib progress callback drawing a bar on
// stderr, and a function to call when the transfer ends. Without a
// terminal both do nothing. The bar is made on the first callback, which
// carries the total (-1 when unknown: a spinner).
func (a *app) progressBar(desc string) (func(done, total int64), func()) {
	if !a.progress {
		return nil, func() {}
	}
	var bar *progressbar.ProgressBar
	update := func(done, total int64) {
		if bar == nil {
			bar = progressbar.NewOptions64(total,
				progressbar.OptionSetDescription(desc),
				progressbar.OptionSetWriter(a.stderr),
				progressbar.OptionShowBytes(true),
				progressbar.OptionShowTotalBytes(true),
				progressbar.OptionSetWidth(20),
				progressbar.OptionThrottle(65*time.Millisecond),
				progressbar.OptionClearOnFinish(),
				progressbar.OptionSpinnerType(14),
			)
		}
		bar.Set64(done)
	}
	finish := func() {
		if bar != nil {
			bar.Finish()
			bar.Exit()
		}
	}
	return update, finish
}

func (a *app) putCmd() *cobra.Command {
	var name, contentType string
	cmd := &cobra.Command{
		Use:   "put GROUP FILE",
		Short: "Encrypt and upload a file to a group; prints the resource id",
		Long: `put encrypts FILE on this device under the group's current key and streams
it to the server, with its name, type and size encrypted too, and a
signature that proves you wrote it. The resource id goes to stdout.

FILE "-" reads standard input (then --name is required). You need the
writer role.`,
		Example: `  coffer put "project x" report.pdf
  tar cz src | coffer put "project x" - --name src.tar.gz`,
		Args:              exactArgs(2),
		ValidArgsFunction: a.completeArgs(argGroup, argFile),
		RunE: a.groupAction(func(ctx context.Context, c *clientlib.Client, g coffer.GroupID, args []string) error {
			file := args[0]
			meta := clientlib.Meta{Name: name, ContentType: contentType}
			var r io.Reader
			if file == "-" {
				if name == "" {
					return errors.New("reading standard input needs --name NAME")
				}
				r = a.stdin
			} else {
				f, err := os.Open(file)
				if err != nil {
					return err
				}
				defer f.Close()
				fi, err := f.Stat()
				if err != nil {
					return err
				}
				if fi.IsDir() {
					return fmt.Errorf("%s is a directory: put one file at a time (or a tar of it, from stdin)", file)
				}
				if fi.Mode().IsRegular() {
					meta.Size = fi.Size()
				}
				if meta.Name == "" {
					meta.Name = filepath.Base(file)
				}
				r = f
			}
			if meta.ContentType == "" {
				meta.ContentType = mime.TypeByExtension(filepath.Ext(meta.Name))
			}
			progress, done := a.progressBar("encrypting " + meta.Name)
			res, err := c.PutWithOptions(ctx, g, r, meta, &clientlib.PutOptions{Progress: progress})
			done()
			if err != nil {
				return err
			}
			fmt.Fprintln(a.stdout, res.ID)
			a.notice("put %s (%d bytes) at epoch %d", res.Meta.Name, res.Meta.Size, res.Epoch)
			return nil
		}),
	}
	cmd.Flags().StringVar(&name, "name", "", "name to store (default: the file's base name)")
	cmd.Flags().StringVar(&contentType, "type", "", "content type (default: guessed from the name's extension)")
	return cmd
}

func (a *app) getCmd() *cobra.Command {
	var output string
	cmd := &cobra.Command{
		Use:   "get GROUP RESOURCE",
		Short: "Download, verify and decrypt a resource",
		Long: `get checks the resource's signed header against the group's verified
membership log, then streams and decrypts its content, verifying it as it
goes. RESOURCE is a resource id or a name unique in the group.

With -o FILE, the plaintext goes to a temporary file next to FILE, which is
renamed to FILE only once the whole stream verified: FILE never holds
unverified data. Without -o it goes to stdout as it verifies; if get then
fails, discard what it wrote.`,
		Example: `  coffer get "project x" report.pdf -o report.pdf
  coffer get "project x" 9f1c…-… > copy.bin`,
		Args:              exactArgs(2),
		ValidArgsFunction: a.completeArgs(argGroup, argResource),
		RunE: a.groupAction(func(ctx context.Context, c *clientlib.Client, g coffer.GroupID, args []string) error {
			id, err := a.resolveResource(ctx, c, g, args[0])
			if err != nil {
				return err
			}
			progress, done := a.progressBar("decrypting")
			rr, err := c.GetWithOptions(ctx, g, id, &clientlib.GetOptions{Progress: progress})
			if err != nil {
				done()
				return err
			}
			defer rr.Close()
			if output == "" {
				_, err = io.Copy(a.stdout, rr)
				done()
				if err != nil {
					return withHint(err, "what was written to stdout so far is incomplete: discard it")
				}
				return nil
			}
			err = writeVerified(output, rr)
			done()
			if err != nil {
				return err
			}
			res := rr.Resource()
			a.notice("wrote %s (%d bytes, from %s, epoch %d)", output, res.Meta.Size, res.AuthorHandle, res.Epoch)
			return nil
		}),
	}
	cmd.Flags().StringVarP(&output, "output", "o", "", "write to FILE, only once fully verified (default: stdout)")
	return cmd
}

// writeVerified copies r to a temporary file in dest's directory and
// renames it to dest only after r returned io.EOF, which a
// clientlib.ResourceReader does only once the whole content verified. On
// any error the temporary file is removed and dest is untouched. The file
// is 0600: it is decrypted group content, and who else may read it is the
// user's call (chmod), not ours.
func writeVerified(dest string, r io.Reader) (err error) {
	f, err := os.CreateTemp(filepath.Dir(dest), "."+filepath.Base(dest)+".coffer-*")
	if err != nil {
		return err
	}
	defer func() {
		if err != nil {
			f.Close()
			os.Remove(f.Name())
		}
	}()
	if _, err = io.Copy(f, r); err != nil {
		return err
	}
	if err = f.Sync(); err != nil {
		return err
	}
	if err = f.Close(); err != nil {
		return err
	}
	return os.Rename(f.Name(), dest)
}

// resourceJSON is a resource as `coffer ls --json` prints it.
type resourceJSON struct {
	ID          coffer.ResourceID `json:"id"`
	Name        string            `json:"name"`
	ContentType string            `json:"content_type,omitempty"`
	Size        int64             `json:"size"`
	Version     uint64            `json:"version"`
	Epoch       uint64            `json:"epoch"`
	Author      coffer.Handle     `json:"author"`
	AuthorID    coffer.AccountID  `json:"author_id"`
	Created     time.Time         `json:"created"`
	Locked      bool              `json:"locked,omitempty"`
}

func (a *app) lsCmd() *cobra.Command {
	var asJSON bool
	cmd := &cobra.Command{
		Use:   "ls GROUP",
		Short: "List a group's resources (verified metadata, no content)",
		Long: `ls lists GROUP's resources, newest first. Each one's signed header is checked
against the verified membership log and its metadata decrypted on this
device; no content is downloaded.

A resource marked locked is from before you joined a group that does not
share its history: you cannot read it.`,
		Args:              exactArgs(1),
		ValidArgsFunction: a.completeArgs(argGroup),
		RunE: a.groupAction(func(ctx context.Context, c *clientlib.Client, g coffer.GroupID, _ []string) error {
			rs, err := c.List(ctx, g)
			if err != nil {
				return err
			}
			out := make([]resourceJSON, 0, len(rs))
			for _, r := range rs {
				out = append(out, resourceJSON{r.ID, r.Meta.Name, r.Meta.ContentType, r.Meta.Size, r.Version,
					r.Epoch, r.AuthorHandle, r.Author, r.Created.UTC(), r.Locked})
			}
			if asJSON {
				return a.printJSON(out)
			}
			if len(out) == 0 {
				a.notice("no resources yet: add one with coffer put GROUP FILE")
				return nil
			}
			tw := a.table()
			fmt.Fprintln(tw, "ID\tNAME\tSIZE\tAUTHOR\tEPOCH\tCREATED")
			for _, r := range out {
				name, size := r.Name, fmt.Sprint(r.Size)
				if r.Locked {
					name, size = "(locked: from before you joined)", "-"
				}
				fmt.Fprintf(tw, "%s\t%s\t%s\t%s\t%d\t%s\n", r.ID, name, size, r.Author, r.Epoch,
					r.Created.Local().Format("2006-01-02 15:04"))
			}
			return tw.Flush()
		}),
	}
	cmd.Flags().BoolVar(&asJSON, "json", false, "print JSON")
	return cmd
}

func (a *app) rmCmd() *cobra.Command {
	return &cobra.Command{
		Use:   "rm GROUP RESOURCE",
		Short: "Delete a resource",
		Long: `rm deletes RESOURCE (an id, or a name unique in the group) from GROUP. Its
author (while a writer) or an admin may. Members who downloaded it keep
their copies.`,
		Args:              exactArgs(2),
		ValidArgsFunction: a.completeArgs(argGroup, argResource),
		RunE: a.groupAction(func(ctx context.Context, c *clientlib.Client, g coffer.GroupID, args []string) error {
			id, err := a.resolveResource(ctx, c, g, args[0])
			if err != nil {
				return err
			}
			if err := c.Delete(ctx, g, id); err != nil {
				return err
			}
			a.notice("deleted %s", id)
			return nil
		}),
	}
}
