package witness

import (
	"bytes"
	"encoding/gob"
	"errors"
	"fmt"
	"os"
	"path/filepath"
)

// The state file. It is replaced whole: written to a temporary file in the
// same directory, synced, renamed over the old one, and the directory
// synced, so that after a crash the file is either the old state or the new
// one, never a mix, and a rename that returned survives power loss.

const (
	stateFile    = "witness.state"
	stateVersion = 1
)

type diskState struct {
	Version    int
	LogKey     string
	Checkpoint string // the last cosigned checkpoint, as the log signed it
	Replay     *snapshot
}

func loadState(dir string) (*diskState, error) {
	b, err := os.ReadFile(filepath.Join(dir, stateFile))
	if errors.Is(err, os.ErrNotExist) {
		return nil, nil
	}
	if err != nil {
		return nil, err
	}
	var s diskState
	if err := gob.NewDecoder(bytes.NewReader(b)).Decode(&s); err != nil || s.Version != stateVersion || s.Replay == nil {
		return nil, fmt.Errorf("witness state %s is corrupt; a witness that lost its state must be retired with a new key, never restarted empty", filepath.Join(dir, stateFile))
	}
	return &s, nil
}

func saveState(dir string, s *diskState) error {
	var b bytes.Buffer
	if err := gob.NewEncoder(&b).Encode(s); err != nil {
		return err
	}
	return writeFileSync(filepath.Join(dir, stateFile), b.Bytes())
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
	d, err := os.Open(dir)
	if err != nil {
		return err
	}
	defer d.Close()
	return d.Sync()
}
