package store

import (
	"time"

	"github.com/smsproxy/smsproxy/proxy/audit"
)

// testKeyring is the keyring of the package's internal tests, shared so that a database reopened in
// a test (or by the crash test's child process, which generates its own) keeps its keys.
var testKeyring = func() *audit.Keyring {
	kr, err := audit.GenerateKeyring("test", time.Unix(1_800_000_000, 0))
	if err != nil {
		panic(err) // the test binary cannot run without it
	}
	return kr
}()
