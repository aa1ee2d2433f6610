package config

import (
	"fmt"
	"os"
	"strings"
)

// Secret refers to a secret held outside the config file: an environment variable or a file. Config
// text never holds a secret itself.
type Secret struct {
	// Env names an environment variable holding the secret.
	Env string `yaml:"env"`
	// File is a path to a file holding the secret; one trailing newline is dropped.
	File string `yaml:"file"`
}

// Resolve reads the secret. Exactly one of Env and File must be set and the value must not be empty.
func (s *Secret) Resolve() (string, error) {
	switch {
	case s.Env != "" && s.File != "":
		return "", fmt.Errorf("set env or file, not both")
	case s.Env != "":
		v, ok := os.LookupEnv(s.Env)
		if !ok || v == "" {
			return "", fmt.Errorf("environment variable %s is not set", s.Env)
		}
		return v, nil
	case s.File != "":
		b, err := os.ReadFile(s.File)
		if err != nil {
			return "", fmt.Errorf("cannot read secret file: %v", err)
		}
		v := strings.TrimSuffix(strings.TrimSuffix(string(b), "\n"), "\r")
		if v == "" {
			return "", fmt.Errorf("secret file %s is empty", s.File)
		}
		return v, nil
	default:
		return "", fmt.Errorf("a secret needs env or file")
	}
}
