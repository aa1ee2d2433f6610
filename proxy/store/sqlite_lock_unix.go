//go:build unix

package store

import (
	"errors"
	"fmt"
	"os"
	"syscall"
)

// lockFile takes the exclusive lock of a SQLite store: the file path + "-lock", held until Close.
// The store keeps its audit chain's head and its writer's state in memory, so a second process
// writing the same file (smsproxy audit erase while the proxy serves) would fork the chain and
// make every later write of the first fail. SQLite's own locks cannot say this: each process's
// transactions are valid on their own.
func lockFile(path string) (*os.File, error) {
	f, err := os.OpenFile(path+"-lock", os.O_RDWR|os.O_CREATE, 0o600)
	if err != nil {
		return nil, fmt.Errorf("store: lock %s: %w", path, err)
	}
	if err := syscall.Flock(int(f.Fd()), syscall.LOCK_EX|syscall.LOCK_NB); err != nil {
		_ = f.Close()
		if errors.Is(err, syscall.EWOULDBLOCK) {
			return nil, &Error{Code: CodeInUse, Message: "the store " + path + " is open in another process " +
				"(a running proxy?): stop it first, or use its HTTP API (erasure: POST /v1/erasures)"}
		}
		return nil, fmt.Errorf("store: lock %s: %w", path, err)
	}
	return f, nil
}
