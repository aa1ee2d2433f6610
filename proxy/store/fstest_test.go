package store

import (
	"io/fs"
	"testing/fstest"
)

func fstestMap(files map[string]string) fs.FS {
	m := fstest.MapFS{}
	for name, body := range files {
		m["m/"+name] = &fstest.MapFile{Data: []byte(body)}
	}
	return m
}
