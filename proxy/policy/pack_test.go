package policy

import (
	"context"
	"io/fs"
	"testing"

	"github.com/smsproxy/smsproxy/policies"
	"github.com/smsproxy/smsproxy/proxy/config"
	"github.com/smsproxy/smsproxy/regions"
)

// regionBundle is the embedded policy pack with the data of one embedded region.
func regionBundle(t testing.TB, region string) Bundle {
	t.Helper()
	r, err := config.LoadRegion(regions.FS, region)
	if err != nil {
		t.Fatalf("LoadRegion(%s): %v", region, err)
	}
	b, err := LoadBundle(policies.FS, map[string]any{"region": r.Data})
	if err != nil {
		t.Fatalf("LoadBundle: %v", err)
	}
	return b
}

func compileRegion(t testing.TB, region string) *Prepared {
	t.Helper()
	p, err := Compile(context.Background(), regionBundle(t, region))
	if err != nil {
		t.Fatalf("Compile(%s): %v", region, err)
	}
	return p
}

func TestPackCompiles(t *testing.T) {
	for _, r := range []string{"dev"} {
		compileRegion(t, r)
	}
}

// devData is the dev region's data as the proxy loads it, under data.region.
func devData() map[string]any {
	r, err := config.LoadRegion(regions.FS, "dev")
	if err != nil {
		panic("embedded dev region: " + err.Error())
	}
	return map[string]any{"region": r.Data}
}

func packFS() fs.FS { return policies.FS }
