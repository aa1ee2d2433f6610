package proxy

import (
	"errors"
	"testing"
)

// TestUnavailableErrorsCarryTheirCause: a 503's error text, which the front logs, says what failed
// beneath the code and the sentence the app sees.
func TestUnavailableErrorsCarryTheirCause(t *testing.T) {
	err := unavailable("store_unavailable", errors.New("database is locked"))
	if got, want := err.Error(), "store_unavailable: "+err.Message+": database is locked"; got != want {
		t.Errorf("Error() = %q, want %q", got, want)
	}
	if got := (&Error{Code: "c", Message: "m"}).Error(); got != "c: m" {
		t.Errorf("Error() without a cause = %q, want %q", got, "c: m")
	}
}
