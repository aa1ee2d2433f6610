package policy

import (
	"context"
	"errors"
	"fmt"
	"io/fs"
	"log/slog"
	"os"
	"path/filepath"
	"strings"
	"time"

	"github.com/fsnotify/fsnotify"
)

// watchDebounce is how long the watched files must stay quiet before onChange runs; editors and
// deployment tools write a change as a burst of events.
const watchDebounce = 200 * time.Millisecond

// Watcher calls a function when policy or data files change.
type Watcher struct {
	fsw   *fsnotify.Watcher
	files map[string]map[string]bool // directory watched for single files → base names of interest
	dirs  map[string]bool            // directories watched whole (with their subdirectories)
	log   *slog.Logger
}

// NewWatcher watches the given files and directories (directories recursively, skipping hidden ones).
// A file is watched through its directory, so a file that an editor or Kubernetes replaces by rename
// is still seen. Run delivers the events and releases the watcher when it returns; call Close instead if Run is never called.
func NewWatcher(paths []string, logger *slog.Logger) (*Watcher, error) {
	if logger == nil {
		logger = slog.Default()
	}
	fsw, err := fsnotify.NewWatcher()
	if err != nil {
		return nil, fmt.Errorf("policy watch: %w", err)
	}
	w := &Watcher{fsw: fsw, files: map[string]map[string]bool{}, dirs: map[string]bool{}, log: logger}
	for _, p := range paths {
		if err := w.add(p); err != nil {
			fsw.Close()
			return nil, fmt.Errorf("policy watch %s: %w", p, err)
		}
	}
	return w, nil
}

func (w *Watcher) add(p string) error {
	p = filepath.Clean(p)
	st, err := os.Stat(p)
	if err != nil {
		return err
	}
	if !st.IsDir() {
		dir := filepath.Dir(p)
		if w.files[dir] == nil {
			w.files[dir] = map[string]bool{}
		}
		w.files[dir][filepath.Base(p)] = true
		return w.fsw.Add(dir)
	}
	return w.addTree(p)
}

func (w *Watcher) addTree(root string) error {
	return filepath.WalkDir(root, func(p string, d fs.DirEntry, err error) error {
		if err != nil {
			return err
		}
		if !d.IsDir() {
			return nil
		}
		if p != root && strings.HasPrefix(d.Name(), ".") {
			return fs.SkipDir
		}
		w.dirs[p] = true
		return w.fsw.Add(p)
	})
}

// relevant reports whether an event may change the policy.
func (w *Watcher) relevant(ev fsnotify.Event) bool {
	if ev.Op == fsnotify.Chmod {
		return false
	}
	dir, base := filepath.Dir(ev.Name), filepath.Base(ev.Name)
	if isEditorJunk(base) {
		return false
	}
	if w.dirs[dir] {
		return true
	}
	// A single watched file: its own events, or Kubernetes swapping the ..data symlink it points through.
	return w.files[dir][base] || strings.HasPrefix(base, "..")
}

func isEditorJunk(base string) bool {
	return strings.HasSuffix(base, "~") || strings.HasSuffix(base, ".swp") || strings.HasSuffix(base, ".swx") ||
		strings.HasPrefix(base, ".#") || base == "4913"
}

// Run delivers changes until ctx is done: onChange is called once the watched files have been quiet
// for about 200ms after a change, never concurrently with itself. Watch errors (such as an event queue
// overflow) are logged and also trigger onChange, so a missed event still ends in a reload.
func (w *Watcher) Run(ctx context.Context, onChange func()) error {
	defer w.fsw.Close()
	timer := time.NewTimer(time.Hour)
	timer.Stop()
	defer timer.Stop()
	for {
		select {
		case <-ctx.Done():
			return nil
		case ev, ok := <-w.fsw.Events:
			if !ok {
				return errors.New("policy watch: watcher closed")
			}
			if ev.Has(fsnotify.Create) && w.dirs[filepath.Dir(ev.Name)] {
				if st, err := os.Stat(ev.Name); err == nil && st.IsDir() && !strings.HasPrefix(filepath.Base(ev.Name), ".") {
					if err := w.addTree(ev.Name); err != nil {
						w.log.Warn("policy watch: cannot watch new directory", "error", err)
					}
				}
			}
			if w.relevant(ev) {
				timer.Reset(watchDebounce)
			}
		case err, ok := <-w.fsw.Errors:
			if !ok {
				return errors.New("policy watch: watcher closed")
			}
			w.log.Warn("policy watch error; reloading to be safe", "error", err)
			timer.Reset(watchDebounce)
		case <-timer.C:
			onChange()
		}
	}
}

// Close releases a watcher that will not be Run; Run closes it by itself.
func (w *Watcher) Close() error { return w.fsw.Close() }

// Watch watches paths and calls onChange after each settled change until ctx is done.
// It returns at once with an error if a path cannot be watched.
func Watch(ctx context.Context, paths []string, onChange func()) error {
	w, err := NewWatcher(paths, nil)
	if err != nil {
		return err
	}
	return w.Run(ctx, onChange)
}
