package witness

import (
	"bytes"
	"encoding/binary"
	"encoding/gob"
	"errors"
	"fmt"
	"io"
	"os"
	"path/filepath"
	"syscall"
)

// The state on disk, in three files under the state directory:
//
//   - witness.state, a snapshot: the replay (identities, group states, the
//     heads map, the log frontier) after the first S leaves, with the
//     checkpoint of size S it was cosigned for;
//   - witness.leaves, a journal: a header naming its first leaf index, then
//     every leaf replayed since (uint32 length ‖ leaf);
//   - witness.checkpoint, the last cosigned checkpoint.
//
// A cosignature of a bigger tree appends the new leaves to the journal and
// syncs it, then replaces the checkpoint file (temporary file, sync,
// rename, directory sync); only then does the cosignature leave the
// process. A re-signature of the same tree replaces only the checkpoint
// file. So the cost of a cosignature grows with the new leaves, not with
// the state; when the journal passes snapshotEvery bytes a new snapshot is
// written and the journal restarts after it.
//
// On start (and to undo a refused replay) the witness loads the snapshot,
// replays the journal up to the checkpoint's size, checks the root and the
// heads map against the checkpoint, and cuts the journal after that leaf: a
// crash between the journal append and the checkpoint write leaves leaves
// that were never cosigned, which are dropped. Every file is replaced
// atomically or only appended to, so a crash at any point (kill -9
// included) leaves the state of the last answered cosignature or of one
// that was about to be answered, never less and never a mix.

const (
	snapshotFile   = "witness.state"
	journalFile    = "witness.leaves"
	checkpointFile = "witness.checkpoint"
	lockFile       = "witness.lock"
	stateVersion   = 2
	journalMagic   = "coffer/v1/witness-journal\n"
	journalHeader  = len(journalMagic) + 8
)

// snapshotEvery is the journal size that triggers a new snapshot. A
// variable for tests.
var snapshotEvery int64 = 64 << 20

type diskState struct {
	Version    int
	LogKey     string
	Checkpoint string // the checkpoint of the snapshot's size ("" at size 0)
	Replay     *snapshot
}

func corrupt(dir, what string) error {
	return fmt.Errorf("witness state in %s: %s; a witness that lost its state must be retired with a new key, never restarted empty", dir, what)
}

func loadSnapshot(dir string) (*diskState, error) {
	b, err := os.ReadFile(filepath.Join(dir, snapshotFile))
	if errors.Is(err, os.ErrNotExist) {
		return nil, nil
	}
	if err != nil {
		return nil, err
	}
	var s diskState
	if err := gob.NewDecoder(bytes.NewReader(b)).Decode(&s); err != nil || s.Version != stateVersion || s.Replay == nil {
		return nil, corrupt(dir, snapshotFile+" is unreadable")
	}
	return &s, nil
}

func saveSnapshot(dir string, s *diskState) error {
	var b bytes.Buffer
	if err := gob.NewEncoder(&b).Encode(s); err != nil {
		return err
	}
	return writeFileSync(filepath.Join(dir, snapshotFile), b.Bytes())
}

// readCheckpointFile returns the stored checkpoint note, or "" if none.
func readCheckpointFile(dir string) (string, error) {
	b, err := os.ReadFile(filepath.Join(dir, checkpointFile))
	if errors.Is(err, os.ErrNotExist) {
		return "", nil
	}
	return string(b), err
}

// journal is the append-only leaf journal.
type journal struct {
	dir   string
	f     *os.File // open for appending
	start int64    // index of its first leaf
	n     int64    // leaves in it
	size  int64    // bytes
}

// newJournal atomically replaces the journal with an empty one starting at
// leaf start.
func newJournal(dir string, start int64) error {
	h := make([]byte, 0, journalHeader)
	h = append(h, journalMagic...)
	h = binary.BigEndian.AppendUint64(h, uint64(start))
	return writeFileSync(filepath.Join(dir, journalFile), h)
}

// readJournal reads the journal, returning its first index, its leaves and
// the byte offset after each. A torn record at the end (a crash during an
// append) ends it.
func readJournal(dir string) (start int64, leaves [][]byte, ends []int64, err error) {
	b, err := os.ReadFile(filepath.Join(dir, journalFile))
	if err != nil {
		return 0, nil, nil, err
	}
	if len(b) < journalHeader || string(b[:len(journalMagic)]) != journalMagic {
		return 0, nil, nil, corrupt(dir, journalFile+" has no header")
	}
	start = int64(binary.BigEndian.Uint64(b[len(journalMagic):]))
	off := journalHeader
	for off+4 <= len(b) {
		n := int(binary.BigEndian.Uint32(b[off:]))
		if off+4+n > len(b) {
			break
		}
		leaves = append(leaves, b[off+4:off+4+n])
		off += 4 + n
		ends = append(ends, int64(off))
	}
	return start, leaves, ends, nil
}

// openJournal cuts the journal to size bytes (keep leaves) and opens it
// for appending.
func openJournal(dir string, start, keep, size int64) (*journal, error) {
	f, err := os.OpenFile(filepath.Join(dir, journalFile), os.O_WRONLY, 0o600)
	if err != nil {
		return nil, err
	}
	if err := f.Truncate(size); err != nil {
		f.Close()
		return nil, err
	}
	if err := f.Sync(); err != nil {
		f.Close()
		return nil, err
	}
	if _, err := f.Seek(size, io.SeekStart); err != nil {
		f.Close()
		return nil, err
	}
	return &journal{dir: dir, f: f, start: start, n: keep, size: size}, nil
}

// append writes leaves and syncs them.
func (j *journal) append(leaves [][]byte) error {
	var b bytes.Buffer
	for _, l := range leaves {
		var n [4]byte
		binary.BigEndian.PutUint32(n[:], uint32(len(l)))
		b.Write(n[:])
		b.Write(l)
	}
	if _, err := j.f.Write(b.Bytes()); err != nil {
		return err
	}
	if err := j.f.Sync(); err != nil {
		return err
	}
	j.n += int64(len(leaves))
	j.size += int64(b.Len())
	return nil
}

func (j *journal) close() error {
	if j == nil || j.f == nil {
		return nil
	}
	err := j.f.Close()
	j.f = nil
	return err
}

// writeFileSync atomically replaces name with data and makes it durable.
func writeFileSync(name string, data []byte) error {
	dir := filepath.Dir(name)
	tmp, err := os.CreateTemp(dir, ".tmp-*")
	if err != nil {
		return err
	}
	defer os.Remove(tmp.Name())
	if _, err := tmp.Write(data); err != nil {
		tmp.Close()
		return err
	}
	if err := tmp.Sync(); err != nil {
		tmp.Close()
		return err
	}
	if err := tmp.Close(); err != nil {
		return err
	}
	if err := os.Rename(tmp.Name(), name); err != nil {
		return err
	}
	return syncDir(dir)
}

func syncDir(dir string) error {
	d, err := os.Open(dir)
	if err != nil {
		return err
	}
	defer d.Close()
	return d.Sync()
}

// lockStateDir takes an exclusive flock on the state directory: two
// witnesses on one state could each cosign a different tree of one size.
// The kernel drops it when the process dies.
func lockStateDir(dir string) (*os.File, error) {
	f, err := os.OpenFile(filepath.Join(dir, lockFile), os.O_RDWR|os.O_CREATE, 0o600)
	if err != nil {
		return nil, err
	}
	if err := syscall.Flock(int(f.Fd()), syscall.LOCK_EX|syscall.LOCK_NB); err != nil {
		f.Close()
		if errors.Is(err, syscall.EWOULDBLOCK) {
			return nil, fmt.Errorf("witness state %s is in use by another witness process", dir)
		}
		return nil, err
	}
	return f, nil
}
