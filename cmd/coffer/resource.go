package main

import (
	"context"
	"fmt"
	"io"
	"mime"
	"os"
	"path/filepath"
	"strconv"
	"strings"
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
			r, meta, closeFile, err := a.openInput(args[0], name, contentType)
			if err != nil {
				return err
			}
			defer closeFile()
			progress, done := a.progressBar("encrypting " + meta.Name)
			res, err := a.putResumable(ctx, c, g, args[0], r, meta, progress)
			done()
			if err != nil {
				return err
			}
			return a.printWritten("put", res)
		}),
	}
	cmd.Flags().StringVar(&name, "name", "", "name to store (default: the file's base name)")
	cmd.Flags().StringVar(&contentType, "type", "", "content type (default: guessed from the name's extension)")
	return cmd
}

// openInput opens FILE for put and replace ("-" is standard input, which
// needs a name) and fills in the metadata the file gives: its size, base
// name and, from the name's extension, its content type.
func (a *app) openInput(file, name, contentType string) (io.Reader, clientlib.Meta, func(), error) {
	meta := clientlib.Meta{Name: name, ContentType: contentType}
	nothing := func() {}
	var r io.Reader
	if file == "-" {
		if name == "" {
			return nil, meta, nothing, usagef("reading standard input needs --name NAME")
		}
		r = a.stdin
	} else {
		f, err := os.Open(file)
		if err != nil {
			return nil, meta, nothing, err
		}
		fi, err := f.Stat()
		if err != nil {
			f.Close()
			return nil, meta, nothing, err
		}
		if fi.IsDir() {
			f.Close()
			return nil, meta, nothing, fmt.Errorf("%s is a directory: put one file at a time (or a tar of it, from stdin)", file)
		}
		if fi.Mode().IsRegular() {
			meta.Size = fi.Size()
		}
		if meta.Name == "" {
			meta.Name = filepath.Base(file)
		}
		r = f
		nothing = func() { f.Close() }
	}
	if meta.ContentType == "" {
		meta.ContentType = mime.TypeByExtension(filepath.Ext(meta.Name))
	}
	return r, meta, nothing, nil
}

// printWritten reports a resource put or replaced: its id on stdout for
// scripts (or the whole resource with --json).
func (a *app) printWritten(verb string, res *clientlib.Resource) error {
	if a.asJSON {
		return a.printJSON(resourceOf(res))
	}
	fmt.Fprintln(a.stdout, res.ID)
	a.notice("%s %s (%d bytes) at epoch %d, version %d", verb, res.Meta.Name, res.Meta.Size, res.Epoch, res.Version)
	return nil
}

func resourceOf(r *clientlib.Resource) resourceJSON {
	return resourceJSON{r.ID, r.Meta.Name, r.Meta.ContentType, r.Meta.Size, r.Version,
		r.Epoch, r.AuthorHandle, r.Author, r.Created.UTC(), r.Locked}
}

func (a *app) replaceCmd() *cobra.Command {
	var name, contentType string
	var ifVersion uint64
	cmd := &cobra.Command{
		Use:   "replace GROUP RESOURCE FILE",
		Short: "Upload a new version of a resource; prints its id",
		Long: `replace encrypts FILE under the group's current key and stores it as the next
version of RESOURCE (an id, or a name unique in the group), signed by you.
The id stays the same; readers get the new version. Its author (while a
writer) or an admin may replace a resource.

The name and type stay those of the current version unless --name or
--type is given. --if-version N replaces only if the resource is still at
version N (another writer's replace makes it fail instead of being
overwritten); by default the version just verified is the one replaced.

FILE "-" reads standard input.`,
		Example:           `  coffer replace "project x" report.pdf report-v2.pdf`,
		Args:              exactArgs(3),
		ValidArgsFunction: a.completeArgs(argGroup, argResource, argFile),
		RunE: a.groupAction(func(ctx context.Context, c *clientlib.Client, g coffer.GroupID, args []string) error {
			id, err := a.resolveResource(ctx, c, g, args[0])
			if err != nil {
				return err
			}
			cur, err := c.Head(ctx, g, id)
			if err != nil {
				return err
			}
			if ifVersion != 0 && ifVersion != cur.Version {
				return coffer.Errorf(coffer.EPRECONDITION, "%s is at version %d, not %d: someone replaced it; check it with coffer ls %s",
					id, cur.Version, ifVersion, a.groupText)
			}
			newName := name
			if newName == "" {
				newName = cur.Meta.Name
			}
			r, meta, closeFile, err := a.openInput(args[1], newName, contentType)
			if err != nil {
				return err
			}
			defer closeFile()
			if contentType == "" && name == "" {
				meta.ContentType = cur.Meta.ContentType
			}
			progress, done := a.progressBar("encrypting " + meta.Name)
			res, err := c.Replace(ctx, g, id, cur.Version, r, meta, &clientlib.PutOptions{Progress: progress})
			done()
			if err != nil {
				return err
			}
			return a.printWritten("replaced with", res)
		}),
	}
	cmd.Flags().StringVar(&name, "name", "", "new name (default: keep the current one)")
	cmd.Flags().StringVar(&contentType, "type", "", "content type (default: the current one, or guessed from --name)")
	cmd.Flags().Uint64Var(&ifVersion, "if-version", 0, "replace only if the resource is at this version")
	return cmd
}

func (a *app) getCmd() *cobra.Command {
	var output, span string
	cmd := &cobra.Command{
		Use:   "get GROUP RESOURCE",
		Short: "Download, verify and decrypt a resource",
		Long: `get checks the resource's signed header against the group's verified
membership log, then streams and decrypts its content, verifying it as it
goes. RESOURCE is a resource id or a name unique in the group.

With -o FILE, the plaintext goes to a temporary file next to FILE, which is
renamed to FILE only once the whole stream verified: FILE never holds
unverified data. Without -o it goes to stdout as it verifies; if get then
fails, discard what it wrote.

With --range START-END, only plaintext bytes START to END (inclusive, from
0; "START-" means to the end) are fetched: the chunks that hold them, each
proven against the author's signed chunk tree before any of it is written.`,
		Example: `  coffer get "project x" report.pdf -o report.pdf
  coffer get "project x" 9f1c…-… > copy.bin
  coffer get "project x" film.mkv --range 943718400-944766975 > part.bin`,
		Args:              exactArgs(2),
		ValidArgsFunction: a.completeArgs(argGroup, argResource),
		RunE: a.groupAction(func(ctx context.Context, c *clientlib.Client, g coffer.GroupID, args []string) error {
			id, err := a.resolveResource(ctx, c, g, args[0])
			if err != nil {
				return err
			}
			progress, done := a.progressBar("decrypting")
			if output != "" && span == "" {
				res, err := a.getResumable(ctx, c, g, id, output, progress)
				done()
				if err != nil {
					return err
				}
				return a.printGot(res, output, res.Meta.Size)
			}
			var rr *clientlib.ResourceReader
			if span != "" {
				start, length, perr := parseRange(span)
				if perr != nil {
					done()
					return perr
				}
				rr, err = c.GetRangeWithOptions(ctx, g, id, start, length, &clientlib.RangeOptions{Progress: progress})
			} else {
				rr, err = c.GetWithOptions(ctx, g, id, &clientlib.GetOptions{Progress: progress})
			}
			if err != nil {
				done()
				return err
			}
			defer rr.Close()
			if output == "" {
				if a.asJSON {
					return usagef("get --json needs -o FILE: without it the content itself goes to stdout")
				}
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
			return a.printGot(rr.Resource(), output, rr.Len())
		}),
	}
	cmd.Flags().StringVarP(&output, "output", "o", "", "write to FILE, only once fully verified (default: stdout)")
	cmd.Flags().StringVar(&span, "range", "", "only plaintext bytes START-END (inclusive; START- to the end), each chunk verified")
	return cmd
}

// printGot reports a resource written to output.
func (a *app) printGot(res *clientlib.Resource, output string, n int64) error {
	if a.asJSON {
		return a.printJSON(struct {
			resourceJSON
			Output string `json:"output"`
		}{resourceOf(res), output})
	}
	a.notice("wrote %s (%d bytes, from %s, epoch %d)", output, n, res.AuthorHandle, res.Epoch)
	return nil
}

// parseRange parses START-END (inclusive) or START- into an offset and a
// length (-1: to the end).
func parseRange(s string) (start, length int64, err error) {
	a, b, ok := strings.Cut(s, "-")
	start, err1 := strconv.ParseInt(a, 10, 64)
	if !ok || err1 != nil || start < 0 {
		return 0, 0, usagef("--range wants START-END or START- with byte offsets from 0, not %q", s)
	}
	if b == "" {
		return start, -1, nil
	}
	end, err2 := strconv.ParseInt(b, 10, 64)
	if err2 != nil || end < start {
		return 0, 0, usagef("--range wants START-END with END at least START (both inclusive), not %q", s)
	}
	return start, end - start + 1, nil
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
				out = append(out, resourceOf(r))
			}
			if a.asJSON {
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
	return cmd
}

func (a *app) rmCmd() *cobra.Command {
	var yes bool
	cmd := &cobra.Command{
		Use:   "rm GROUP RESOURCE",
		Short: "Delete a resource",
		Long: `rm deletes RESOURCE (an id, or a name unique in the group) from GROUP. Its
author (while a writer) or an admin may. Members who downloaded it keep
their copies.

On a terminal it asks for confirmation first; --yes skips the question, and
is required when standard input is not a terminal.`,
		Args:              exactArgs(2),
		ValidArgsFunction: a.completeArgs(argGroup, argResource),
		RunE: a.groupAction(func(ctx context.Context, c *clientlib.Client, g coffer.GroupID, args []string) error {
			id, err := a.resolveResource(ctx, c, g, args[0])
			if err != nil {
				return err
			}
			what := id.String()
			if args[0] != what {
				what = fmt.Sprintf("%q (%s)", args[0], id)
			}
			if err := a.confirm(yes, fmt.Sprintf("Delete %s from group %s?", what, a.groupText)); err != nil {
				return err
			}
			if err := c.Delete(ctx, g, id); err != nil {
				return err
			}
			if a.asJSON {
				return a.printJSON(struct {
					Group   coffer.GroupID    `json:"group"`
					Deleted coffer.ResourceID `json:"deleted"`
				}{g, id})
			}
			a.notice("deleted %s", id)
			return nil
		}),
	}
	cmd.Flags().BoolVarP(&yes, "yes", "y", false, "do not ask for confirmation")
	return cmd
}
