// Package regions embeds the per-region data shipped with smsproxy: the countries a region serves, its
// providers and routes, its limits and its message templates. Compliance teams edit these files, never Go.
package regions

import "embed"

// FS holds every region directory, e.g. "dev/region.yaml" and "dev/templates.yaml".
//
//go:embed */*.yaml
var FS embed.FS
