package provider

import (
	"log/slog"
	"os"

	"github.com/hashicorp/go-hclog"
	"github.com/hashicorp/go-plugin"
	"google.golang.org/grpc"
)

// Serve runs p as a plugin; a plugin binary's main calls it and nothing else. It returns when the
// host closes the plugin. If p implements Configurer, the host's configuration reaches it through
// Configure after every start. Serve points slog's default logger at stderr in the JSON form the host
// understands, so records keep their level in the host's log; plugins must still never log a phone
// number, a body, a code or a key.
//
// The handle function Serve passes to p.Receive returns once the host has answered the event: nil
// when the host acknowledged it, an error when it did not or the stream ended first (deliver it
// again later). handle is safe for concurrent use, and a provider that calls it from several
// goroutines keeps that many events in flight, which is how receipts keep up with sends.
//
// Run by hand, without the host's handshake, Serve prints an explanation and exits the process with
// status 1.
func Serve(p Provider) {
	stderr := os.Stderr // go-plugin replaces os.Stderr with a pipe once serving.
	slog.SetDefault(slog.New(pluginLogHandler(stderr, slog.LevelInfo)))
	plugin.Serve(&plugin.ServeConfig{
		HandshakeConfig: Handshake,
		Plugins:         pluginSet(p),
		GRPCServer: func(opts []grpc.ServerOption) *grpc.Server {
			opts = append(opts, grpc.MaxRecvMsgSize(maxMessageBytes), grpc.MaxSendMsgSize(maxMessageBytes))
			return grpc.NewServer(opts...)
		},
		Logger: hclog.New(&hclog.LoggerOptions{
			Name:       "plugin",
			Level:      hclog.Info,
			Output:     stderr,
			JSONFormat: true,
		}),
	})
}
