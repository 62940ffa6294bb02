package main

import (
	"bufio"
	"errors"
	"fmt"
	"io"
	"os"
	"strings"

	"golang.org/x/term"
)

// stdinIsTerminal reports whether r is an interactive terminal. Tests
// replace it to play a person at a keyboard.
var stdinIsTerminal = func(r io.Reader) bool {
	f, ok := r.(*os.File)
	return ok && term.IsTerminal(int(f.Fd()))
}

// errDeclined is the answer "no" to a confirmation: the command did
// nothing, which is an error for scripts (exit 1) but not a usage one.
var errDeclined = errors.New("cancelled: nothing was changed")

// confirm asks question on a terminal before a destructive command. yes
// (--yes) skips it. Without a terminal there is nobody to ask, and going
// ahead silently would make a pipe or a cron job destructive by accident:
// the command is refused as a usage error (exit 2) that names --yes.
func (a *app) confirm(yes bool, question string) error {
	if yes {
		return nil
	}
	if !stdinIsTerminal(a.stdin) {
		return usagef("%s needs confirmation: add --yes (standard input is not a terminal, so coffer cannot ask)",
			strings.TrimSuffix(question, "?"))
	}
	fmt.Fprintf(a.stderr, "%s [y/N] ", question)
	line, err := bufio.NewReader(a.stdin).ReadString('\n')
	if err != nil && line == "" {
		return errDeclined
	}
	switch strings.ToLower(strings.TrimSpace(line)) {
	case "y", "yes":
		return nil
	}
	return errDeclined
}
