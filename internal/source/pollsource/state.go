package pollsource

import (
	"encoding/json"
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"time"
)

// state is what the poll source persists after every stored page, in
// DataDir/sources/<name>/cursor.json, written to a temporary file, fsynced, renamed
// over the old one and the directory fsynced, so that a crash leaves the old or the
// new state, never a torn one.
type state struct {
	// Cursor is the time of the newest record of the last finished run (zero: none
	// yet; cursor.initial applies).
	Cursor time.Time `json:"cursor"`
	// Pending is the run under way: the next page to fetch, and the newest record
	// time seen so far in it. After a crash the run resumes there.
	Pending *pending `json:"pending,omitempty"`
	// Seen are the ids (id_path) of records stored lately, with their times: the
	// records a later run fetches again through the overlap, or a resumed run
	// through its current page, are skipped.
	Seen map[string]time.Time `json:"seen,omitempty"`
}

type pending struct {
	Next string    `json:"next"`
	Max  time.Time `json:"max"`
}

const stateFile = "cursor.json"

func loadState(dir string) (*state, error) {
	b, err := os.ReadFile(filepath.Join(dir, stateFile))
	if errors.Is(err, os.ErrNotExist) {
		return &state{Seen: map[string]time.Time{}}, nil
	}
	if err != nil {
		return nil, err
	}
	var st state
	if err := json.Unmarshal(b, &st); err != nil {
		return nil, fmt.Errorf("%s: corrupt cursor file (delete it to start from cursor.initial): %v", filepath.Join(dir, stateFile), err)
	}
	if st.Seen == nil {
		st.Seen = map[string]time.Time{}
	}
	return &st, nil
}

func (st *state) save(dir string) error {
	b, err := json.Marshal(st)
	if err != nil {
		return err
	}
	tmp := filepath.Join(dir, stateFile+".tmp")
	f, err := os.OpenFile(tmp, os.O_CREATE|os.O_TRUNC|os.O_WRONLY, 0o600)
	if err != nil {
		return err
	}
	if _, err := f.Write(b); err != nil {
		f.Close()
		return err
	}
	if err := f.Sync(); err != nil {
		f.Close()
		return err
	}
	if err := f.Close(); err != nil {
		return err
	}
	if err := os.Rename(tmp, filepath.Join(dir, stateFile)); err != nil {
		return err
	}
	d, err := os.Open(dir)
	if err != nil {
		return err
	}
	defer d.Close()
	return d.Sync()
}
