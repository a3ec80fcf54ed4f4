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
  senders refresh [-service SLUG]
                        resolve now the SPF includes of the services domains enable (or of one),
                        print each one's ranges, lookups and error (exit 1 if any failed)
  query                 send one DNS query (-server ADDR NAME [TYPE]), like dig
  devdb run|stop        a throwaway PostgreSQL for tests (-dir D [-fresh] -- CMD...)

Run "rampart COMMAND -h" for a command's flags.
`

// errUsage is running rampart without a command: the usage is printed and
// the exit status is 2, as for any other misuse of the command line.
var errUsage = errors.New("no command")

func main() {
	err := run(os.Args[1:])
	var exit *app.ChildExitError
	switch {
	case err == nil, errors.Is(err, flag.ErrHelp): // -h asked for the usage: it is no failure
		return
	case errors.As(err, &exit): // devdb's command failed: pass its status on
		os.Exit(exit.Code)
	case errors.Is(err, errUsage):
		os.Exit(2)
	}
	fmt.Fprintln(os.Stderr, "rampart:", err)
	os.Exit(1)
}

// command is one subcommand: its synopsis, the flags it reads and what it
// does with them once parsed. Each has its own flag set, so that -h lists
// only its flags and an environment variable of another command is not read.
type command struct {
	synopsis string
	flags    func(f *app.FlagSet, cfg *app.Config)
	run      func(ctx context.Context, f *app.FlagSet, cfg *app.Config) error
}

// commands maps "serve", "admin create-owner", "devdb run", ... to the
// command.
var commands = map[string]command{
	"serve": {
		synopsis: "rampart serve [flags]",
		flags:    func(f *app.FlagSet, cfg *app.Config) { cfg.ServeFlags(f) },
		run: func(ctx context.Context, f *app.FlagSet, cfg *app.Config) error {
			if err := noArgs(f); err != nil {
				return err
			}
			return app.Serve(ctx, cfg, cfg.Logger(os.Stderr))
		},
	},
	"dev": {
		synopsis: "rampart dev [flags]",
		flags:    func(f *app.FlagSet, cfg *app.Config) { cfg.DevFlags(f) },
		run: func(ctx context.Context, f *app.FlagSet, cfg *app.Config) error {
			if err := noArgs(f); err != nil {
				return err
			}
			cfg.Dev = true
			return app.Dev(ctx, cfg, cfg.Logger(os.Stderr), os.Stdout)
		},
	},
	"migrate": {
		synopsis: "rampart migrate [flags] [up | down-to VERSION | version]",
		flags: func(f *app.FlagSet, cfg *app.Config) {
			cfg.DatabaseFlags(f)
			cfg.LogFlags(f)
		},
		run: func(ctx context.Context, f *app.FlagSet, cfg *app.Config) error {
			return app.Migrate(ctx, cfg, cfg.Logger(os.Stderr), os.Stdout, f.Args())
		},
	},
	"admin create-owner": {
		synopsis: "rampart admin create-owner -email E -name N -account A < password",
		flags: func(f *app.FlagSet, cfg *app.Config) {
			cfg.DatabaseFlags(f)
			f.String("email", "", "the owner's e-mail address")
			f.String("name", "", "the owner's name")
			f.String("account", "", "the new account's name")
		},
		run: func(ctx context.Context, f *app.FlagSet, cfg *app.Config) error {
			if err := noArgs(f); err != nil {
				return err
			}
			o := account.NewOwner{Email: value(f, "email"), Name: value(f, "name"), AccountName: value(f, "account")}
			fmt.Fprintln(os.Stderr, "password (read from standard input, one line):")
			line, err := bufio.NewReader(os.Stdin).ReadString('\n')
			if err != nil && line == "" {
				return fmt.Errorf("read password: %w", err)
			}
			return app.CreateOwner(ctx, cfg, o, strings.TrimRight(line, "\r\n"), os.Stdout)
		},
	},
	"admin grant-operator": {
		synopsis: "rampart admin grant-operator -email E",
		flags:    operatorFlags,
		run: func(ctx context.Context, f *app.FlagSet, cfg *app.Config) error {
			if err := noArgs(f); err != nil {
				return err
			}
			return app.SetOperator(ctx, cfg, value(f, "email"), true, os.Stdout)
		},
	},
	"admin revoke-operator": {
		synopsis: "rampart admin revoke-operator -email E",
		flags:    operatorFlags,
		run: func(ctx context.Context, f *app.FlagSet, cfg *app.Config) error {
			if err := noArgs(f); err != nil {
				return err
			}
			return app.SetOperator(ctx, cfg, value(f, "email"), false, os.Stdout)
		},
	},
	"admin verify-domain": {
		synopsis: "rampart admin verify-domain [-account ID] NAME",
		flags: func(f *app.FlagSet, cfg *app.Config) {
			cfg.DatabaseFlags(f)
			cfg.LogFlags(f)
			cfg.DomainFlags(f)
			f.String("account", "", "the id of the account whose claim to verify (needed when several accounts claim the name)")
		},
		run: func(ctx context.Context, f *app.FlagSet, cfg *app.Config) error {
			if f.NArg() != 1 {
				return errors.New("usage: rampart admin verify-domain [-account ID] NAME")
			}
			return app.VerifyDomain(ctx, cfg, cfg.Logger(os.Stderr), value(f, "account"), f.Arg(0), os.Stdout)
		},
	},
	"import": {
		synopsis: "rampart import [-account ID] [-quiet] [-wait [-wait-timeout D]] PATH [PATH ...]",
		flags: func(f *app.FlagSet, cfg *app.Config) {
			cfg.DatabaseFlags(f)
			cfg.LogFlags(f)
			f.String("account", "", "account id to scope the reports to (default: any hosted domain)")
			f.Bool("quiet", false, "no progress display")
			f.Bool("wait", false, "wait for the workers of rampart serve to decode what was queued, print each input's outcome, and exit 1 if any was not stored")
			f.Duration("wait-timeout", 10*time.Minute, "with -wait, how long to wait at most")
		},
		run: func(ctx context.Context, f *app.FlagSet, cfg *app.Config) error {
			if f.NArg() == 0 {
				return errors.New("usage: rampart import [-account ID] [-quiet] [-wait [-wait-timeout D]] PATH [PATH ...]")
			}
			o := app.ImportOptions{AccountID: value(f, "account"), Quiet: value(f, "quiet") == "true"}
			if value(f, "wait") == "true" {
				d, err := time.ParseDuration(value(f, "wait-timeout"))
				if err != nil || d <= 0 {
					return errors.New("-wait-timeout must be a positive duration")
				}
				o.Wait = d
			}
			return app.Import(ctx, cfg, o, f.Args(), os.Stdout, os.Stderr)
		},
	},
	"senders refresh": {
		synopsis: "rampart senders refresh [-service SLUG]",
		flags: func(f *app.FlagSet, cfg *app.Config) {
			cfg.DatabaseFlags(f)
			cfg.LogFlags(f)
			cfg.DomainFlags(f)
			f.String("service", "", "the slug of the one service to resolve (default: every service a domain enables)")
		},
		run: func(ctx context.Context, f *app.FlagSet, cfg *app.Config) error {
			if err := noArgs(f); err != nil {
				return err
			}
			return app.RefreshSenders(ctx, cfg, cfg.Logger(os.Stderr), value(f, "service"), os.Stdout)
		},
	},
	"query": {
		synopsis: "rampart query [-server ADDR] [-tcp] NAME [TYPE]",
		flags: func(f *app.FlagSet, _ *app.Config) {
			f.String("server", "127.0.0.1:5353", "DNS server address")
			f.Bool("tcp", false, "query over TCP")
		},
		run: func(_ context.Context, f *app.FlagSet, _ *app.Config) error {
			if f.NArg() < 1 || f.NArg() > 2 {
				return errors.New("usage: rampart query [-server ADDR] [-tcp] NAME [TYPE]")
			}
			qtype := "TXT"
			if f.NArg() == 2 {
				qtype = strings.ToUpper(f.Arg(1))
			}
			return app.Query(value(f, "server"), f.Arg(0), qtype, value(f, "tcp") == "true", os.Stdout)
		},
	},
	"devdb run": {
		synopsis: "rampart devdb run [-dir D] [-fresh] -- CMD [ARG ...]",
		flags: func(f *app.FlagSet, cfg *app.Config) {
			cfg.LogFlags(f)
			f.String("dir", ".data/testpg", "cluster data folder")
			f.Bool("fresh", false, "start from an empty folder")
			f.Bool("durable", false, "keep PostgreSQL's durable settings (fsync, full-page writes, synchronous commit), for benchmarks")
		},
		run: func(ctx context.Context, f *app.FlagSet, cfg *app.Config) error {
			return app.DevDB(ctx, cfg.Logger(os.Stderr), value(f, "dir"), value(f, "fresh") == "true", value(f, "durable") == "true", f.Args())
		},
	},
	"devdb stop": {
		synopsis: "rampart devdb stop [-dir D]",
		flags: func(f *app.FlagSet, _ *app.Config) {
			f.String("dir", ".data/testpg", "cluster data folder")
		},
		run: func(ctx context.Context, f *app.FlagSet, _ *app.Config) error {
			if err := noArgs(f); err != nil {
				return err
			}
			return app.StopDevDB(ctx, value(f, "dir"))
		},
	},
}

func operatorFlags(f *app.FlagSet, cfg *app.Config) {
	cfg.DatabaseFlags(f)
	f.String("email", "", "the user's e-mail address")
}

// value is a parsed flag's value as text.
func value(f *app.FlagSet, name string) string { return f.Lookup(name).Value.String() }

func noArgs(f *app.FlagSet) error {
	if f.NArg() > 0 {
		return fmt.Errorf("unexpected arguments %q", f.Args())
	}
	return nil
}

// groups are the commands with subcommands, and their usage.
var groups = map[string]string{
	"admin": "usage: rampart admin create-owner -email E -name N -account A < password\n" +
		"       rampart admin grant-operator -email E\n" +
		"       rampart admin revoke-operator -email E\n" +
		"       rampart admin verify-domain [-account ID] NAME\n",
	"senders": "usage: rampart senders refresh [-service SLUG]\n",
	"devdb": "usage: rampart devdb run [-dir D] [-fresh] -- CMD [ARG ...]\n" +
		"       rampart devdb stop [-dir D]\n",
}

func run(args []string) error {
	if len(args) == 0 {
		fmt.Fprint(os.Stderr, usage)
		return errUsage
	}
	name, args := args[0], args[1:]
	switch name {
	case "help", "-h", "-help", "--help":
		fmt.Print(usage)
		return nil
	}
	if groupUsage, ok := groups[name]; ok {
		if len(args) == 0 || strings.HasPrefix(args[0], "-") {
			if len(args) > 0 && isHelp(args[0]) {
				fmt.Fprint(os.Stderr, groupUsage)
				return flag.ErrHelp
			}
			return fmt.Errorf("%s command missing\n%s", name, groupUsage)
		}
		if _, ok := commands[name+" "+args[0]]; !ok {
			return fmt.Errorf("unknown %s command %q\n%s", name, args[0], groupUsage)
		}
		name, args = name+" "+args[0], args[1:]
	}
	cmd, ok := commands[name]
	if !ok {
		fmt.Fprint(os.Stderr, usage)
		return fmt.Errorf("unknown command %q", name)
	}
	var cfg app.Config
	f := app.NewFlagSet("rampart "+name, cmd.synopsis)
	cmd.flags(f, &cfg)
	if err := f.Parse(args, os.LookupEnv); err != nil {
		return err
	}
	ctx, stop := signal.NotifyContext(context.Background(), os.Interrupt, syscall.SIGTERM)
	defer stop()
	return cmd.run(ctx, f, &cfg)
}

func isHelp(arg string) bool { return arg == "-h" || arg == "-help" || arg == "--help" }
