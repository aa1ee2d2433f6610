package provider

import (
	"bytes"
	"crypto/sha256"
	"errors"
	"fmt"
	"io"
	"os"
	"path/filepath"
)

// pin copies the plugin binary at path into a new directory under dir (os.TempDir() when empty)
// that only this process's user can enter, hashing what it copies, and returns the copy's path
// when the hash is want. The copy is what runs, at every start: checking the file at path and then
// executing that path would run whatever replaced the file in between (a rename, a symlink
// repointed), as go-plugin's own checksum check does. The caller removes the directory (unpin).
func pin(path, dir string, want []byte) (string, error) {
	src, err := os.Open(path)
	if err != nil {
		return "", err
	}
	defer src.Close()
	if fi, err := src.Stat(); err != nil {
		return "", err
	} else if !fi.Mode().IsRegular() {
		return "", fmt.Errorf("%s is not a regular file", path)
	}
	if dir != "" {
		if err := os.MkdirAll(dir, 0o700); err != nil {
			return "", err
		}
	}
	priv, err := os.MkdirTemp(dir, "plugin-") // mode 0700
	if err != nil {
		return "", err
	}
	dst := filepath.Join(priv, filepath.Base(path))
	out, err := os.OpenFile(dst, os.O_WRONLY|os.O_CREATE|os.O_EXCL, 0o700)
	if err == nil {
		h := sha256.New()
		_, err = io.Copy(io.MultiWriter(out, h), src)
		if cerr := out.Close(); err == nil {
			err = cerr
		}
		if err == nil && !bytes.Equal(h.Sum(nil), want) {
			err = errChecksum
		}
	}
	if err != nil {
		_ = os.RemoveAll(priv)
		return "", err
	}
	return dst, nil
}

// unpin removes the directory pin made for a copy.
func unpin(copyPath string) {
	if copyPath != "" {
		_ = os.RemoveAll(filepath.Dir(copyPath))
	}
}

// errChecksum is a binary whose sha256 is not the configured one.
var errChecksum = errors.New("the binary's sha256 differs from the configured checksum")
