// Command cofferd is the Coffer server.
//
//	cofferd -dev                 zero-configuration development server
//	cofferd -database-url URL    production, with -jwt-key and TLS flags
//	cofferd migrate              apply database migrations and exit
//	cofferd genkey FILE...       create Ed25519 key files that do not exist yet
package main

import (
	"context"
	"errors"
	"flag"
	"fmt"
	"os"
	"os/signal"
	"syscall"

	"github.com/cofferhq/coffer/internal/cofferd"
)

func main() {
	ctx, stop := signal.NotifyContext(context.Background(), os.Interrupt, syscall.SIGTERM)
	defer stop()
	if err := run(ctx, os.Args[1:]); err != nil {
		if errors.Is(err, flag.ErrHelp) {
			os.Exit(0)
		}
		fmt.Fprintln(os.Stderr, "cofferd:", err)
		os.Exit(1)
	}
}

func run(ctx context.Context, args []string) error {
	m := cofferd.NewMain()
	if len(args) > 0 && args[0] == "genkey" {
		created, err := cofferd.GenerateKeyFiles(args[1:]...)
		for _, f := range created {
			fmt.Fprintln(os.Stderr, "cofferd: created", f)
		}
		return err
	}
	if len(args) > 0 && args[0] == "migrate" {
		if err := m.ParseFlags(args[1:]); err != nil {
			return err
		}
		defer m.Close()
		return m.Migrate(ctx)
	}
	if err := m.ParseFlags(args); err != nil {
		return err
	}
	if err := m.Run(ctx); err != nil {
		return err
	}
	<-ctx.Done()
	m.Logger().Info("shutting down")
	return m.Close()
}
