// Package migrations holds the embedded goose SQL migrations of the Coffer
// schema. They are compiled into every binary so that `cofferd migrate`, dev
// mode and the tests apply exactly the schema the code was built against.
//
// Files are named NNNNN_description.sql; the number is the schema version.
// A released migration is never edited: a change is a new file.
package migrations

import (
	"embed"
	"fmt"
	"io/fs"

	"github.com/pressly/goose/v3"
)

// FS holds the migration files at its root.
//
//go:embed *.sql
var FS embed.FS

// Latest returns the highest schema version among the embedded migrations:
// the version a fully migrated database reports.
func Latest() (int64, error) {
	names, err := fs.Glob(FS, "*.sql")
	if err != nil {
		return 0, fmt.Errorf("migrations: %w", err)
	}
	var latest int64
	for _, name := range names {
		// goose's own parser, so that we agree with it on what a version is.
		v, err := goose.NumericComponent(name)
		if err != nil {
			return 0, fmt.Errorf("migrations: %s: %w", name, err)
		}
		latest = max(latest, v)
	}
	if latest == 0 {
		return 0, fmt.Errorf("migrations: no migration files embedded")
	}
	return latest, nil
}
