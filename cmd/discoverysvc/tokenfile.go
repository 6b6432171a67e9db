package main

import (
	"flag"
	"fmt"
	"io"
	"os"
	"strings"
)

// secretFlag is a secret taken, first found, from --NAME (which the
// process list shows to every user of the host, so it gets a warning),
// --NAME-file, or an environment variable.
type secretFlag struct {
	name, env string
	value     string
	file      string
}

// addSecretFlag registers --name and --name-file on fs.
func addSecretFlag(fs *flag.FlagSet, name, env, what string) *secretFlag {
	s := &secretFlag{name: name, env: env}
	fs.StringVar(&s.value, name, "", what+" (visible in the process list: prefer --"+name+"-file or $"+env+")")
	fs.StringVar(&s.file, name+"-file", "", "`file` holding "+what+" (default $"+env+")")
	return s
}

// resolve returns the secret; warn receives a warning when it came from
// the command line.
func (s *secretFlag) resolve(set map[string]bool, warn io.Writer) (string, error) {
	if set[s.name] && set[s.name+"-file"] {
		return "", flagError(s.name+"-file", "give --%s or --%s-file, not both", s.name, s.name)
	}
	switch {
	case set[s.name]:
		fmt.Fprintf(warn, "warning: --%s puts the secret in the process list, where every user of this host can read it; use --%s-file or $%s\n", s.name, s.name, s.env)
		return s.value, nil
	case set[s.name+"-file"]:
		b, err := os.ReadFile(s.file)
		if err != nil {
			return "", flagError(s.name+"-file", "%v", err)
		}
		v := strings.TrimSpace(string(b))
		if v == "" {
			return "", flagError(s.name+"-file", "%s is empty", s.file)
		}
		return v, nil
	}
	return os.Getenv(s.env), nil
}
