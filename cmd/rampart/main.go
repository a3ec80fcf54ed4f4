// Command rampart runs Rampart: the GraphQL API, report intake and River
// workers (serve), the all-in-one development stack (dev), migrations and
// operator commands. See README.md.
package main

import (
	"bufio"
	"context"
	"errors"
	"flag"
	"fmt"
	"os"
	"os/signal"
	"strings"
	"syscall"
	"time"

	"github.com/rampartmail/rampart/internal/account"
	"github.com/rampartmail/rampart/internal/app"
)

const usage = `usage: rampart COMMAND [flags]

commands:
  serve                 run the API and the workers (DATABASE_URL)
  dev                   run everything locally with a private PostgreSQL and a demo account
  migrate [up|down-to N|version]
                        apply or roll back database migrations
  admin create-owner    create an account and its owner (-email, -name, -account; password on stdin)
  admin grant-operator  make a user an instance operator, who may open the job dashboard (-email)
  admin revoke-operator take the instance operator role from a user (-email)
  admin verify-domain [-account ID] NAME
                        verify an account's claim on a domain without its DNS proof (the operator's override)
  import [-account ID] [-wait] PATH...
                        queue report files, folders and mbox files for ingestion;
                        with -wait, print what became of each (exit 1 if any was not stored)
  query                 send one DNS query (-server ADDR NAME [TYPE]), like dig
  devdb run|stop        a throwaway PostgreSQL for tests (-dir D [-fresh] -- CMD...)

Run "rampart COMMAND -h" for a command's flags.
`

func main() {
	if err := run(os.Args[1:]); err != nil {
		var exit *app.ChildExitError
		if errors.As(err, &exit) { // devdb's command failed: pass its status on
			os.Exit(exit.Code)
		}
		if !errors.Is(err, flag.ErrHelp) {
			fmt.Fprintln(os.Stderr, "rampart:", err)
		}
		os.Exit(1)
	}
}

func run(args []string) error {
	if len(args) == 0 {
		fmt.Fprint(os.Stderr, usage)
		return flag.ErrHelp
	}
	ctx, stop := signal.NotifyContext(context.Background(), os.Interrupt, syscall.SIGTERM)
	defer stop()
	cmd, args := args[0], args[1:]
	fs := flag.NewFlagSet("rampart "+cmd, flag.ContinueOnError)
	var cfg app.Config
	cfg.Flags(fs)
	switch cmd {
	case "serve":
		if err := fs.Parse(args); err != nil {
			return err
		}
		return app.Serve(ctx, &cfg, cfg.Logger(os.Stderr))
	case "dev":
		if err := fs.Parse(args); err != nil {
			return err
		}
		cfg.Dev = true
		return app.Dev(ctx, &cfg, cfg.Logger(os.Stderr), os.Stdout)
	case "migrate":
		if err := fs.Parse(args); err != nil {
			return err
		}
		return app.Migrate(ctx, &cfg, cfg.Logger(os.Stderr), os.Stdout, fs.Args())
	case "admin":
		const adminUsage = "usage: rampart admin create-owner -email E -name N -account A < password\n" +
			"       rampart admin grant-operator -email E\n" +
			"       rampart admin revoke-operator -email E\n" +
			"       rampart admin verify-domain [-account ID] NAME"
		if len(args) == 0 {
			return errors.New(adminUsage)
		}
		switch args[0] {
		case "create-owner":
		case "grant-operator", "revoke-operator":
			fs, cfg = flag.NewFlagSet("rampart admin "+args[0], flag.ContinueOnError), app.Config{}
			cfg.Flags(fs)
			email := fs.String("email", "", "the user's e-mail address")
			if err := fs.Parse(args[1:]); err != nil {
				return err
			}
			if fs.NArg() > 0 {
				return fmt.Errorf("unexpected arguments %q\n%s", fs.Args(), adminUsage)
			}
			return app.SetOperator(ctx, &cfg, *email, args[0] == "grant-operator", os.Stdout)
		case "verify-domain":
			fs, cfg = flag.NewFlagSet("rampart admin "+args[0], flag.ContinueOnError), app.Config{}
			cfg.Flags(fs)
			acct := fs.String("account", "", "the id of the account whose claim to verify (needed when several accounts claim the name)")
			if err := fs.Parse(args[1:]); err != nil {
				return err
			}
			if fs.NArg() != 1 {
				return errors.New("usage: rampart admin verify-domain [-account ID] NAME")
			}
			return app.VerifyDomain(ctx, &cfg, cfg.Logger(os.Stderr), *acct, fs.Arg(0), os.Stdout)
		default:
			return fmt.Errorf("unknown admin command %q\n%s", args[0], adminUsage)
		}
		var o account.NewOwner
		fs.StringVar(&o.Email, "email", "", "the owner's e-mail address")
		fs.StringVar(&o.Name, "name", "", "the owner's name")
		fs.StringVar(&o.AccountName, "account", "", "the new account's name")
		if err := fs.Parse(args[1:]); err != nil {
			return err
		}
		fmt.Fprintln(os.Stderr, "password (read from standard input, one line):")
		line, err := bufio.NewReader(os.Stdin).ReadString('\n')
		if err != nil && line == "" {
			return fmt.Errorf("read password: %w", err)
		}
		return app.CreateOwner(ctx, &cfg, o, strings.TrimRight(line, "\r\n"), os.Stdout)
	case "import":
		acct := fs.String("account", "", "account id to scope the reports to (default: any hosted domain)")
		quiet := fs.Bool("quiet", false, "no progress display")
		wait := fs.Bool("wait", false, "wait for the workers of rampart serve to decode what was queued, print each input's outcome, and exit 1 if any was not stored")
		waitTimeout := fs.Duration("wait-timeout", 10*time.Minute, "with -wait, how long to wait at most")
		if err := fs.Parse(args); err != nil {
			return err
		}
		if fs.NArg() == 0 {
			return errors.New("usage: rampart import [-account ID] [-quiet] [-wait [-wait-timeout D]] PATH [PATH ...]")
		}
		o := app.ImportOptions{AccountID: *acct, Quiet: *quiet}
		if *wait {
			if *waitTimeout <= 0 {
				return errors.New("-wait-timeout must be positive")
			}
			o.Wait = *waitTimeout
		}
		return app.Import(ctx, &cfg, o, fs.Args(), os.Stdout, os.Stderr)
	case "query":
		server := fs.String("server", "127.0.0.1:5353", "DNS server address")
		tcp := fs.Bool("tcp", false, "query over TCP")
		if err := fs.Parse(args); err != nil {
			return err
		}
		if fs.NArg() < 1 || fs.NArg() > 2 {
			return fmt.Errorf("usage: rampart query [-server ADDR] [-tcp] NAME [TYPE]")
		}
		qtype := "TXT"
		if fs.NArg() == 2 {
			qtype = strings.ToUpper(fs.Arg(1))
		}
		return app.Query(*server, fs.Arg(0), qtype, *tcp, os.Stdout)
	case "devdb":
		if len(args) == 0 {
			return fmt.Errorf("usage: rampart devdb run|stop -dir D [-fresh] [-- CMD...]")
		}
		sub := args[0]
		dir := fs.String("dir", ".data/testpg", "cluster data folder")
		fresh := fs.Bool("fresh", false, "start from an empty folder")
		if err := fs.Parse(args[1:]); err != nil {
			return err
		}
		log := cfg.Logger(os.Stderr)
		switch sub {
		case "run":
			return app.DevDB(ctx, log, *dir, *fresh, fs.Args())
		case "stop":
			return app.StopDevDB(ctx, *dir)
		}
		return fmt.Errorf("unknown devdb command %q", sub)
	case "help", "-h", "--help":
		fmt.Print(usage)
		return nil
	}
	fmt.Fprint(os.Stderr, usage)
	return fmt.Errorf("unknown command %q", cmd)
}
