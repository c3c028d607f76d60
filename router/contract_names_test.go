package router

import (
	"errors"
	"os"
	"path/filepath"
	"regexp"
	"sort"
	"strconv"
	"strings"
	"testing"
)

// The contract's spec lives beside the checkout, not in it (shared by
// every branch): ../../shared/spec/API.md from this package's directory.
var apiSpec = filepath.Join("..", "..", "shared", "spec", "API.md")

var (
	// "`404`, error `x`", "| 404 | error `x`", "404 `x`", "`409` `x`",
	// and "… `x` or `y`" / "(or `y`)" after it: the statuses the text
	// gives a name.
	statusThenName = regexp.MustCompile("`?\\b([1-5][0-9][0-9])`?(?:,| \\|)? (?:error )?`([a-z][a-z0-9_]*)`(?: \\(?or `([a-z][a-z0-9_]*)`)?")
	// "`503 overloaded`".
	statusAndName = regexp.MustCompile("`([1-5][0-9][0-9]) ([a-z][a-z0-9_]*)`")
	// "error `x`", "error `x` or `y`": a name whatever its status.
	namedError = regexp.MustCompile("error `([a-z][a-z0-9_]*)`(?: \\(?or `([a-z][a-z0-9_]*)`)?")
)

// documented adds to names what text says of error names: every name it
// calls an error, with the statuses it gives it. The contract's every
// match counts; in the project's own docs (rowsOnly), where a status may
// precede other backticked words, only the table's names do.
func documented(text string, names map[string]map[int]bool, rowsOnly bool) {
	text = strings.Join(strings.Fields(text), " ")
	add := func(name string, status int) {
		if name == "" {
			return
		}
		if names[name] == nil {
			names[name] = map[int]bool{}
		}
		if status != 0 {
			names[name][status] = true
		}
	}
	for _, m := range namedError.FindAllStringSubmatch(text, -1) {
		add(m[1], 0)
		add(m[2], 0)
	}
	for _, m := range statusThenName.FindAllStringSubmatch(text, -1) {
		status, _ := strconv.Atoi(m[1])
		if !rowsOnly || isRowName(m[2]) {
			add(m[2], status)
			add(m[3], status)
		}
	}
	for _, m := range statusAndName.FindAllStringSubmatch(text, -1) {
		status, _ := strconv.Atoi(m[1])
		if isRowName(m[2]) {
			add(m[2], status)
		}
	}
}

func isRowName(name string) bool {
	for _, row := range errorNames {
		if row.name == name {
			return true
		}
	}
	return false
}

// TestEveryContractName holds the error table and the docs to each other:
// every error name API.md gives (with each status it gives it) has its row
// in errorNames, and every row's name and status is written down, in
// API.md or in the project's own docs (README.md, docs/), where API.md
// says what it leaves unsaid belongs. A name added to one and not the
// other fails here.
func TestEveryContractName(t *testing.T) {
	spec, err := os.ReadFile(apiSpec)
	if errors.Is(err, os.ErrNotExist) {
		t.Skipf("the contract is expected at %s (the shared spec beside the checkout); not found", apiSpec)
	}
	if err != nil {
		t.Fatal(err)
	}
	text := string(spec)
	specNames := map[string]map[int]bool{}
	documented(text, specNames, false)
	if len(specNames) < 10 {
		t.Fatalf("read only %d error names from %s; has its wording changed?", len(specNames), apiSpec)
	}

	for name, statuses := range specNames {
		for status := range statuses {
			if !hasRow(name, status) {
				t.Errorf("API.md answers %d %s; errorNames has no such row", status, name)
			}
		}
		if !isRowName(name) {
			t.Errorf("API.md names error %s; errorNames has no row for it", name)
		}
	}

	// The project's own docs, for what API.md is silent on.
	allNames := map[string]map[int]bool{}
	documented(text, allNames, false)
	docs, _ := filepath.Glob(filepath.Join("..", "docs", "*.md"))
	for _, path := range append([]string{filepath.Join("..", "README.md")}, docs...) {
		b, err := os.ReadFile(path)
		if err != nil {
			t.Fatal(err)
		}
		documented(string(b), allNames, true)
	}
	var undocumented []string
	for _, row := range errorNames {
		if !allNames[row.name][row.status] {
			undocumented = append(undocumented, strconv.Itoa(row.status)+" "+row.name)
		}
	}
	sort.Strings(undocumented)
	for _, u := range undocumented {
		t.Errorf("errorNames answers %s; neither API.md nor README.md nor docs/ says so", u)
	}
}

func hasRow(name string, status int) bool {
	for _, row := range errorNames {
		if row.name == name && row.status == status {
			return true
		}
	}
	return false
}
