package spool

import (
	"bufio"
	"os"
	"os/exec"
	"path/filepath"
	"slices"
	"strings"
	"sync"
	"testing"
	"time"
)

// TestMain lets the test binary play a lakesink process: with
// SPOOL_TEST_CLAIM set it claims a folder there, writes a file in it,
// prints the folder and waits to be killed.
func TestMain(m *testing.M) {
	if root := os.Getenv("SPOOL_TEST_CLAIM"); root != "" {
		f, _, err := Claim(root)
		if err != nil {
			os.Stdout.WriteString("error " + err.Error() + "\n")
			os.Exit(1)
		}
		if err := os.WriteFile(filepath.Join(f.Dir(), "open.parquet"), []byte("rows"), 0o644); err != nil {
			os.Exit(1)
		}
		os.Stdout.WriteString(f.Dir() + "\n")
		time.Sleep(time.Hour)
	}
	os.Exit(m.Run())
}

// otherProcess starts a process that claims a folder below root and
// returns it with the folder.
func otherProcess(t *testing.T, root string) (*exec.Cmd, string) {
	t.Helper()
	cmd := exec.Command(os.Args[0], "-test.run=^$")
	cmd.Env = append(os.Environ(), "SPOOL_TEST_CLAIM="+root)
	out, err := cmd.StdoutPipe()
	if err != nil {
		t.Fatal(err)
	}
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { _ = cmd.Process.Kill(); _ = cmd.Wait() })
	line, err := bufio.NewReader(out).ReadString('\n')
	if err != nil || !strings.HasPrefix(line, root) {
		t.Fatalf("the other process: %q %v", line, err)
	}
	return cmd, strings.TrimSpace(line)
}

func exists(t *testing.T, path string) bool {
	t.Helper()
	_, err := os.Stat(path)
	return err == nil
}

// TestClaimSharesWithLiveProcesses: a live process's folder and files are
// never removed; once it is killed (kill -9: no cleanup of its own), the
// next claim removes them. Plain files in the root stay.
func TestClaimSharesWithLiveProcesses(t *testing.T) {
	root := filepath.Join(t.TempDir(), "group")
	cmd, other := otherProcess(t, root)
	probe := filepath.Join(root, ".probe-x")
	if err := os.WriteFile(probe, nil, 0o644); err != nil {
		t.Fatal(err)
	}

	f, removed, err := Claim(root)
	if err != nil {
		t.Fatal(err)
	}
	defer f.Release()
	if len(removed) != 0 || !exists(t, filepath.Join(other, "open.parquet")) {
		t.Fatalf("a live process's folder was removed: %v", removed)
	}
	if f.Dir() == other || filepath.Dir(f.Dir()) != root {
		t.Fatalf("claimed %s next to %s", f.Dir(), other)
	}

	if err := cmd.Process.Kill(); err != nil {
		t.Fatal(err)
	}
	_ = cmd.Wait()
	g, removed, err := Claim(root)
	if err != nil {
		t.Fatal(err)
	}
	defer g.Release()
	if !slices.Equal(removed, []string{other}) || exists(t, other) {
		t.Fatalf("removed %v, want the killed process's %s", removed, other)
	}
	if !exists(t, f.Dir()) || !exists(t, probe) {
		t.Fatalf("the sweep removed a live folder (%s) or a plain file", f.Dir())
	}
}

// TestClaimConcurrent: processes starting together each get a folder
// that exists and stays theirs, though each sweeps the others'.
func TestClaimConcurrent(t *testing.T) {
	root := t.TempDir()
	const n = 16
	var wg sync.WaitGroup
	folders := make([]*Folder, n)
	errs := make([]error, n)
	for i := range n {
		wg.Go(func() { folders[i], _, errs[i] = Claim(root) })
	}
	wg.Wait()
	seen := map[string]bool{}
	for i, f := range folders {
		if errs[i] != nil {
			t.Fatalf("claim %d: %v", i, errs[i])
		}
		if seen[f.Dir()] || !exists(t, f.Dir()) {
			t.Fatalf("claim %d: %s taken twice or gone", i, f.Dir())
		}
		seen[f.Dir()] = true
	}
	for _, f := range folders {
		if err := f.Release(); err != nil {
			t.Fatal(err)
		}
	}
	if left, _ := os.ReadDir(root); len(left) != 0 {
		t.Fatalf("left after release: %v", left)
	}
}

// TestClaimErrors: an unusable root is an error naming it.
func TestClaimErrors(t *testing.T) {
	file := filepath.Join(t.TempDir(), "file")
	if err := os.WriteFile(file, nil, 0o644); err != nil {
		t.Fatal(err)
	}
	if _, _, err := Claim(filepath.Join(file, "group")); err == nil || !strings.Contains(err.Error(), file) {
		t.Fatalf("claim below a file: %v", err)
	}
	var f *Folder
	if err := f.Release(); err != nil {
		t.Fatal(err)
	}
}
