// Package policies holds the starter Rego policy of smsproxy and embeds it for Go.
//
// The entry point is the rule data.smsproxy.decision, which produces the document described by
// proxy/policy.Decision. Each concern lives in its own small file with a *_test.rego beside it;
// the proxy runs those tests before it accepts a bundle.
package policies

import "embed"

// FS holds every .rego file of the starter policy, tests included, at the root of the file system.
//
//go:embed *.rego
var FS embed.FS
