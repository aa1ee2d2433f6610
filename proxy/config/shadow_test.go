package config

import (
	"strings"
	"testing"
)

func TestShadowPoliciesDir(t *testing.T) {
	tests := []struct {
		yaml    string
		wantErr string
	}{
		{"shadow_policies_dir: /etc/smsproxy/candidate\n", ""},
		{"policies_dir: /etc/smsproxy/policies\nshadow_policies_dir: /etc/smsproxy/policies\n", "shadow_policies_dir: must differ from policies_dir"},
	}
	for _, tc := range tests {
		c, err := Parse([]byte(tc.yaml))
		switch {
		case tc.wantErr == "" && err != nil:
			t.Errorf("%q: %v", tc.yaml, err)
		case tc.wantErr == "" && c.ShadowPoliciesDir != "/etc/smsproxy/candidate":
			t.Errorf("%q: ShadowPoliciesDir = %q", tc.yaml, c.ShadowPoliciesDir)
		case tc.wantErr != "" && (err == nil || !strings.Contains(err.Error(), tc.wantErr)):
			t.Errorf("%q: error %v, want %q", tc.yaml, err, tc.wantErr)
		}
	}
}
