package provider

import (
	"context"
	"fmt"

	"github.com/hashicorp/go-plugin"
	"google.golang.org/grpc"

	providerpb "github.com/smsproxy/smsproxy/plugins/provider/proto"
)

// ProtocolVersion is the version of the plugin protocol. It changes only with an incompatible change
// of proto/provider.proto; host and plugin must agree on it, and go-plugin refuses a plugin of
// another version at the handshake. Version 2 batches the Receive stream: several events per frame
// and several acks per frame.
const ProtocolVersion = 2

// PluginName is the name a provider is served under in the go-plugin plugin set.
const PluginName = "provider"

// maxMessageBytes bounds one gRPC message in either direction; a Send batch of a few thousand
// messages stays well below it.
const maxMessageBytes = 64 << 20

// Handshake is the go-plugin handshake shared by the host and every provider plugin. The magic
// cookie is not a secret: it only stops a user from running a plugin binary by hand.
var Handshake = plugin.HandshakeConfig{
	ProtocolVersion:  ProtocolVersion,
	MagicCookieKey:   "SMSPROXY_PLUGIN",
	MagicCookieValue: "4c1f8d2e-smsproxy-provider-9b7a3e60",
}

// GRPCPlugin is the go-plugin glue for a Provider over gRPC. On the plugin side Impl is the provider
// to serve; on the host side Impl is nil and GRPCClient returns a Provider.
type GRPCPlugin struct {
	plugin.NetRPCUnsupportedPlugin
	// Impl is the provider served by a plugin process.
	Impl Provider
}

var _ plugin.GRPCPlugin = (*GRPCPlugin)(nil)

// GRPCServer registers the provider's gRPC service.
func (p *GRPCPlugin) GRPCServer(_ *plugin.GRPCBroker, s *grpc.Server) error {
	if p.Impl == nil {
		return fmt.Errorf("provider: GRPCPlugin.Impl is nil")
	}
	providerpb.RegisterProviderServer(s, &grpcServer{impl: p.Impl})
	return nil
}

// GRPCClient returns a Provider that calls the plugin over conn. ctx ends when the plugin process
// exits.
func (p *GRPCPlugin) GRPCClient(ctx context.Context, _ *plugin.GRPCBroker, conn *grpc.ClientConn) (any, error) {
	return newGRPCClient(ctx, conn), nil
}

// pluginSet is the plugin set of host and plugin.
func pluginSet(impl Provider) plugin.PluginSet {
	return plugin.PluginSet{PluginName: &GRPCPlugin{Impl: impl}}
}
