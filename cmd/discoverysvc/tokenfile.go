package main

import (
	"flag"
	"fmt"
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

// resolve returns the secret, and whether it came from the command line,
// which the caller warns about.
func (s *secretFlag) resolve(set map[string]bool) (value string, onCommandLine bool, err error) {
	if set[s.name] && set[s.name+"-file"] {
		return "", false, flagError(s.name+"-file", "give --%s or --%s-file, not both", s.name, s.name)
	}
	switch {
	case set[s.name]:
		return s.value, true, nil
	case set[s.name+"-file"]:
		b, err := os.ReadFile(s.file)
		if err != nil {
			return "", false, flagError(s.name+"-file", "%v", err)
		}
		v := strings.TrimSpace(string(b))
		if v == "" {
			return "", false, flagError(s.name+"-file", "%s is empty", s.file)
		}
		return v, false, nil
	}
	return os.Getenv(s.env), false, nil
}

// warning is what is said of a secret given on the command line.
func (s *secretFlag) warning() string {
	return fmt.Sprintf("--%s puts the secret in the process list, where every user of this host can read it; use --%s-file or $%s", s.name, s.name, s.env)
}
