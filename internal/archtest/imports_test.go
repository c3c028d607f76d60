package archtest

import (
	"go/build"
	"maps"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"testing"
)

// leaves are the packages that own one concern each and import none of each
// other nor router: a provider, a store or the signature check can then be
// read, tested and replaced alone. A leaf's own sub-packages (cachetest,
// dispatchtest) belong to it and may import it.
var leaves = []string{"cache", "verify", "dispatch"}

// TestLeavesImportNoSiblingNorRouter fails when a package of a leaf's tree,
// its tests included, imports another leaf, router or the main package,
// directly or through any package of this module (say, a helper package
// that imports router).
func TestLeavesImportNoSiblingNorRouter(t *testing.T) {
	root, module := moduleRoot(t)
	pkgs := modulePackages(t, root, module)
	for _, leaf := range leaves {
		if _, ok := pkgs[module+"/"+leaf]; !ok {
			t.Fatalf("package %s/%s not found under %s: the test would check nothing", module, leaf, root)
		}
	}
	forbidden := func(leaf, path string) bool {
		if path == module || within(module+"/router", path) {
			return true
		}
		for _, other := range leaves {
			if other != leaf && within(module+"/"+other, path) {
				return true
			}
		}
		return false
	}
	for _, path := range slices.Sorted(maps.Keys(pkgs)) {
		p := pkgs[path]
		leaf := leafOf(module, path)
		if leaf == "" {
			continue
		}
		// Test files count: a leaf's tests that need router are a sign the
		// behaviour under test lives in the wrong package.
		direct := slices.Concat(p.Imports, p.TestImports, p.XTestImports)
		for _, chain := range reach(pkgs, path, direct, func(q string) bool { return forbidden(leaf, q) }) {
			t.Errorf("%s imports %s (%s); leaves import none of each other nor router",
				path, chain[len(chain)-1], strings.Join(chain, " → "))
		}
	}
}

func within(tree, path string) bool {
	return path == tree || strings.HasPrefix(path, tree+"/")
}

// leafOf names the leaf whose tree holds path, or "".
func leafOf(module, path string) string {
	for _, leaf := range leaves {
		if within(module+"/"+leaf, path) {
			return leaf
		}
	}
	return ""
}

// reach follows the imports from direct through every module package they
// import in turn (production imports only: another package's tests are not
// linked in) and returns, for each package that bad reports, one chain of
// imports from "from" to it. It does not look past such a package.
func reach(pkgs map[string]*build.Package, from string, direct []string, bad func(string) bool) [][]string {
	var chains [][]string
	seen := map[string]bool{from: true}
	var walk func(path string, chain []string)
	walk = func(path string, chain []string) {
		p, ok := pkgs[path]
		if !ok || seen[path] {
			return // outside the module (stdlib, a dependency), or done
		}
		seen[path] = true
		chain = append(slices.Clip(chain), path)
		if bad(path) {
			chains = append(chains, chain)
			return
		}
		for _, next := range p.Imports {
			walk(next, chain)
		}
	}
	for _, imp := range direct {
		walk(imp, []string{from})
	}
	return chains
}

// moduleRoot finds go.mod above the working directory and returns its
// directory and module path.
func moduleRoot(t *testing.T) (dir, module string) {
	t.Helper()
	dir, err := os.Getwd()
	if err != nil {
		t.Fatal(err)
	}
	for {
		b, err := os.ReadFile(filepath.Join(dir, "go.mod"))
		if err == nil {
			for _, line := range strings.Split(string(b), "\n") {
				if rest, ok := strings.CutPrefix(strings.TrimSpace(line), "module "); ok {
					return dir, strings.Trim(strings.TrimSpace(rest), `"`)
				}
			}
			t.Fatalf("%s/go.mod names no module", dir)
		}
		parent := filepath.Dir(dir)
		if parent == dir {
			t.Fatal("no go.mod above the working directory")
		}
		dir = parent
	}
}

// modulePackages reads the imports of every package under root (the
// go/build view: this platform's files, build tags honoured), keyed by
// import path. testdata, hidden directories and node_modules are not Go
// packages of the module.
func modulePackages(t *testing.T, root, module string) map[string]*build.Package {
	t.Helper()
	pkgs := map[string]*build.Package{}
	err := filepath.WalkDir(root, func(dir string, d os.DirEntry, err error) error {
		if err != nil || !d.IsDir() {
			return err
		}
		name := d.Name()
		if dir != root && (name == "testdata" || name == "node_modules" || strings.HasPrefix(name, ".") || strings.HasPrefix(name, "_")) {
			return filepath.SkipDir
		}
		if dir != root {
			if _, err := os.Stat(filepath.Join(dir, "go.mod")); err == nil {
				return filepath.SkipDir // a nested module is not this one
			}
		}
		p, err := build.ImportDir(dir, 0)
		if err != nil {
			if _, ok := err.(*build.NoGoError); ok {
				return nil
			}
			t.Fatalf("reading %s: %v", dir, err)
		}
		rel, err := filepath.Rel(root, dir)
		if err != nil {
			return err
		}
		path := module
		if rel != "." {
			path += "/" + filepath.ToSlash(rel)
		}
		pkgs[path] = p
		return nil
	})
	if err != nil {
		t.Fatal(err)
	}
	return pkgs
}
