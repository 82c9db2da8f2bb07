package main

import (
	"fmt"
	"os"
	"path/filepath"
	"regexp"
	"slices"
	"strings"

	"github.com/urfave/cli/v2"

	"github.com/cloudkeeper-backup/cloudkeeper/cmd/cloudkeeper/internal/suggest"
)

// Usage mistakes (a mistyped command or flag, a stray argument) are usage
// errors (exit 2) of one line that says what was meant where it can tell.

// withUsageErrors makes every usage mistake of cmds and their subcommands
// exit with status 2: a bad flag (with a suggestion), an unknown
// subcommand, and an argument given to a command that takes none (which
// urfave/cli would ignore, running the command as if it were not there).
func withUsageErrors(cmds ...*cli.Command) []*cli.Command {
	for _, c := range cmds {
		c.OnUsageError = onUsageError
		switch {
		case c.Action == nil && len(c.Subcommands) > 0:
			c.Action = unknownCommand
		case c.Action != nil && c.ArgsUsage == "":
			c.Action = noArguments(c.Action)
		}
		if len(c.Subcommands) > 0 && c.Command("help") == nil {
			// urfave/cli's own, which "manifest help rebiuld" exits 1.
			c.Subcommands = append(c.Subcommands, helpCommand())
		}
		withUsageErrors(c.Subcommands...)
	}
	return cmds
}

// onUsageError is a flag that cannot be parsed: a usage error, with the
// flag that was meant if the bad one is a typo of it.
func onUsageError(c *cli.Context, err error, _ bool) error {
	msg := err.Error()
	if m := badValue.FindStringSubmatch(msg); m != nil && isDuration(c.Command, m[2]) {
		return usageError{fmt.Errorf("%s %s: %s", dashes(m[2]), m[1], wantDuration)}
	}
	if m := badEnvDuration.FindStringSubmatch(msg); m != nil {
		return usageError{fmt.Errorf("%s=%s (for %s): %s", m[2], m[1], dashes(m[3]), wantDuration)}
	}
	if name, ok := strings.CutPrefix(msg, "flag provided but not defined: -"); ok {
		if s := suggest.Closest(strings.TrimPrefix(name, "-"), flagNames(c.Command)); s != "" {
			msg += ": did you mean " + dashes(s) + "?"
		}
	}
	return usageError{fmt.Errorf("%s", msg)}
}

// badValue and badEnvDuration are the errors of the flag package for a
// value that does not parse, and of urfave/cli for a duration in the
// environment that does not.
var (
	badValue       = regexp.MustCompile(`^invalid value ("(?:[^"\\]|\\.)*") for flag -([\w-]+): parse error$`)
	badEnvDuration = regexp.MustCompile(`^could not parse ("(?:[^"\\]|\\.)*") as duration value from environment variable "(\w+)" for flag ([\w-]+):`)
)

const wantDuration = "want a duration such as 24h, 30m or 90s"

// isDuration reports whether cmd's flag name takes a duration.
func isDuration(cmd *cli.Command, name string) bool {
	if cmd == nil {
		return false
	}
	for _, f := range cmd.Flags {
		if _, ok := f.(*cli.DurationFlag); ok && slices.Contains(f.Names(), name) {
			return true
		}
	}
	return false
}

// unknownCommand is the Action of the app and of a command that only
// groups subcommands: with no argument, its help; with one, an error.
func unknownCommand(c *cli.Context) error {
	path := commandPath(c)
	switch {
	case !c.Args().Present() && path == "":
		return cli.ShowAppHelp(c)
	case !c.Args().Present():
		return cli.ShowSubcommandHelp(c)
	}
	return usageError{unknownCommandError(path, c.Command.Subcommands, c.Args().First())}
}

func unknownCommandError(path string, cmds []*cli.Command, name string) error {
	full := strings.TrimSpace(path + " " + name)
	if s := suggest.Closest(name, commandNames(cmds)); s != "" {
		return fmt.Errorf("unknown command %q: did you mean %s?", full, strings.TrimSpace(path+" "+s))
	}
	return fmt.Errorf("unknown command %q (see cloudkeeper %s--help)", full, strings.TrimSpace(path+" "))
}

// helpCommand replaces urfave/cli's, whose "help sycn" and "manifest help
// rebiuld" exit 3 with "No help topic": of the app, or of the command
// whose subcommands it is among.
func helpCommand() *cli.Command {
	return &cli.Command{
		Name:      "help",
		Aliases:   []string{"h"},
		Usage:     "show the commands, or the help of one",
		ArgsUsage: "[command]",
		Action: func(c *cli.Context) error {
			parent := c.Lineage()[1] // the app's or the group's context
			path := commandPath(parent)
			cmds := c.App.Commands
			if path != "" {
				cmds = parent.Command.Subcommands
			}
			name := c.Args().First()
			switch {
			case name == "" && path == "":
				return cli.ShowAppHelp(c)
			case name == "":
				return cli.ShowSubcommandHelp(parent)
			case slices.ContainsFunc(cmds, func(cmd *cli.Command) bool { return cmd.HasName(name) }):
				return cli.ShowCommandHelp(parent, name)
			}
			return usageError{unknownCommandError(path, cmds, name)}
		},
	}
}

// noArguments wraps the Action of a command that takes no arguments: one
// given is refused, with the flag or subcommand it may have been meant for.
func noArguments(action cli.ActionFunc) cli.ActionFunc {
	return func(c *cli.Context) error {
		if !c.Args().Present() {
			return action(c)
		}
		arg := c.Args().First()
		msg := fmt.Sprintf("%s takes no arguments, got %q", commandPath(c), arg)
		if hint := argumentHint(c, arg); hint != "" {
			msg += ": did you mean " + hint + "?"
		}
		return usageError{fmt.Errorf("%s", msg)}
	}
}

// argumentHint is what a stray argument may have been meant as: a
// subcommand, a flag without its dashes, or the value of the command's
// folder flag. "" if none fits.
func argumentHint(c *cli.Context, arg string) string {
	if s := suggest.Closest(arg, commandNames(c.Command.Subcommands)); s != "" {
		return commandPath(c) + " " + s
	}
	if s := suggest.Closest(strings.TrimLeft(arg, "-"), flagNames(c.Command)); s != "" && len(s) > 1 {
		return dashes(s)
	}
	has := func(flag string) bool { return slices.Contains(flagNames(c.Command), flag) }
	switch {
	case has("to") && !filepath.IsAbs(arg): // restore: a path of the backup
		return "--path " + arg
	case !looksLikePath(arg):
		return ""
	case has("to"):
		return "--to " + arg
	case has(flagSource):
		return "--" + flagSource + " " + arg
	case has("dir"):
		return "--dir " + arg
	}
	return ""
}

// looksLikePath reports whether arg names a file or folder: it has a
// slash, starts with "." or "~", or is there.
func looksLikePath(arg string) bool {
	if strings.ContainsRune(arg, '/') || strings.HasPrefix(arg, ".") || strings.HasPrefix(arg, "~") {
		return true
	}
	_, err := os.Stat(arg)
	return err == nil
}

// commandPath is the words that name c's command after "cloudkeeper":
// "sync", "manifest rebuild"; "" for the app itself.
func commandPath(c *cli.Context) string {
	var names []string
	for _, ctx := range c.Lineage() {
		if ctx.Command != nil && ctx.Command.Name != "" && ctx.Command.Name != c.App.Name {
			names = append([]string{ctx.Command.Name}, names...)
		}
	}
	return strings.Join(names, " ")
}

func commandNames(cmds []*cli.Command) []string {
	var names []string
	for _, c := range cmds {
		if !c.Hidden && c.Name != "help" {
			names = append(names, c.Names()...)
		}
	}
	return names
}

func flagNames(cmd *cli.Command) []string {
	var names []string
	if cmd != nil {
		for _, f := range cmd.Flags {
			names = append(names, f.Names()...)
		}
	}
	return names
}

// dashes is a flag name as it is typed: "-n", "--dry-run".
func dashes(name string) string {
	if len(name) == 1 {
		return "-" + name
	}
	return "--" + name
}
