package main

import (
	"fmt"

	"github.com/urfave/cli/v2"
)

// Shell completion scripts: the shell asks the binary itself
// (--generate-bash-completion, which urfave/cli answers).
const bashCompletion = `# cloudkeeper bash completion: source <(cloudkeeper completion bash)
_cloudkeeper_complete() {
  local cur opts
  COMPREPLY=()
  cur="${COMP_WORDS[COMP_CWORD]}"
  if [[ "$cur" == "-"* ]]; then
    opts=$("${COMP_WORDS[@]:0:$COMP_CWORD}" "$cur" --generate-bash-completion 2>/dev/null)
  else
    opts=$("${COMP_WORDS[@]:0:$COMP_CWORD}" --generate-bash-completion 2>/dev/null)
  fi
  COMPREPLY=($(compgen -W "${opts}" -- "${cur}"))
  return 0
}
complete -o bashdefault -o default -F _cloudkeeper_complete cloudkeeper
`

const zshCompletion = `#compdef cloudkeeper
# cloudkeeper zsh completion: source <(cloudkeeper completion zsh)
_cloudkeeper() {
  local -a opts
  local cur=${words[-1]}
  if [[ "$cur" == "-"* ]]; then
    opts=("${(@f)$(${words[@]:0:#words[@]-1} ${cur} --generate-bash-completion 2>/dev/null)}")
  else
    opts=("${(@f)$(${words[@]:0:#words[@]-1} --generate-bash-completion 2>/dev/null)}")
  fi
  [[ "${opts[1]}" != "" ]] && _describe 'values' opts || _files
}
compdef _cloudkeeper cloudkeeper
`

func completionCommand() *cli.Command {
	return &cli.Command{
		Name:      "completion",
		Usage:     "print a shell completion script (bash or zsh)",
		ArgsUsage: "bash|zsh",
		Description: "Add to ~/.bashrc:  source <(cloudkeeper completion bash)\n" +
			"or to ~/.zshrc:     source <(cloudkeeper completion zsh)",
		Action: func(c *cli.Context) error {
			if c.Args().Len() > 1 {
				return usageError{fmt.Errorf("completion takes one argument, bash or zsh; got %q", c.Args().Slice())}
			}
			switch c.Args().First() {
			case "bash":
				fmt.Fprint(c.App.Writer, bashCompletion)
			case "zsh":
				fmt.Fprint(c.App.Writer, zshCompletion)
			default:
				return usageError{fmt.Errorf("completion: say bash or zsh")}
			}
			return nil
		},
	}
}
