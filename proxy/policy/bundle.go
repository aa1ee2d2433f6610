package policy

import (
	"crypto/sha256"
	"encoding/hex"
	"encoding/json"
	"io/fs"
	"path"
	"slices"
	"strings"
)

// Bundle is a policy revision: Rego modules and the data they read.
type Bundle struct {
	// Revision identifies the modules and data; equal bundles have equal revisions.
	Revision string
	// Modules maps a slash-separated path to Rego source, tests (*_test.rego) included.
	Modules map[string]string
	// Data is the base document the policy reads as data, e.g. {"region": <region file>}.
	Data map[string]any
}

// LoadBundle reads every .rego file under fsys and pairs it with data.
// It fails with CodeBundle when there is no policy file or data cannot be encoded as JSON.
func LoadBundle(fsys fs.FS, data map[string]any) (Bundle, error) {
	modules := map[string]string{}
	err := fs.WalkDir(fsys, ".", func(p string, d fs.DirEntry, err error) error {
		if err != nil {
			return err
		}
		if d.IsDir() {
			if p != "." && strings.HasPrefix(d.Name(), ".") {
				return fs.SkipDir // .git and editor or Kubernetes bookkeeping
			}
			return nil
		}
		if path.Ext(p) != ".rego" {
			return nil
		}
		src, err := fs.ReadFile(fsys, p)
		if err != nil {
			return err
		}
		modules[p] = string(src)
		return nil
	})
	if err != nil {
		return Bundle{}, newError(CodeBundle, "cannot read policy files", err)
	}
	if len(modules) == 0 {
		return Bundle{}, newError(CodeBundle, "no .rego files found", nil)
	}
	return NewBundle(modules, data)
}

// NewBundle makes a bundle of the given modules and data and computes its revision.
func NewBundle(modules map[string]string, data map[string]any) (Bundle, error) {
	if data == nil {
		data = map[string]any{}
	}
	rev, err := revision(modules, data)
	if err != nil {
		return Bundle{}, err
	}
	return Bundle{Revision: rev, Modules: modules, Data: data}, nil
}

// revision is the first 12 hex digits of a SHA-256 over the sorted modules and the data's JSON
// (encoding/json writes map keys in sorted order, so equal data hashes equally).
func revision(modules map[string]string, data map[string]any) (string, error) {
	h := sha256.New()
	paths := make([]string, 0, len(modules))
	for p := range modules {
		paths = append(paths, p)
	}
	slices.Sort(paths)
	for _, p := range paths {
		h.Write([]byte("module\x00" + p + "\x00"))
		h.Write([]byte(modules[p]))
		h.Write([]byte{0})
	}
	h.Write([]byte("data\x00"))
	if err := json.NewEncoder(h).Encode(data); err != nil {
		return "", newError(CodeBundle, "data cannot be encoded as JSON", err)
	}
	return hex.EncodeToString(h.Sum(nil))[:12], nil
}

// isTest reports whether a module path names a Rego test file.
func isTest(p string) bool {
	return strings.HasSuffix(p, "_test.rego")
}
