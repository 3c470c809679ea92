package sigma

import (
	"fmt"
	"io/fs"
	"os"
	"path/filepath"
	"sort"
	"strings"
)

// ExpandPatterns returns the rule files patterns name, sorted and without
// duplicates. A pattern is a file, a directory (every .yml and .yaml below it) or a
// glob where * and ? stay within one path element and ** spans any number of them.
// A pattern that names no file is an error, so a typo cannot silently load nothing.
func ExpandPatterns(patterns []string) ([]string, error) {
	seen := map[string]bool{}
	var out []string
	add := func(f string) {
		if !seen[f] {
			seen[f] = true
			out = append(out, f)
		}
	}
	for _, p := range patterns {
		n := len(out)
		if !strings.ContainsAny(p, "*?[") {
			fi, err := os.Stat(p)
			if err != nil {
				return nil, err
			}
			if !fi.IsDir() {
				add(p)
				continue
			}
			p = filepath.Join(p, "**", "*.y*ml")
		}
		root := globRoot(p)
		if _, err := os.Stat(root); err != nil {
			return nil, fmt.Errorf("%s matches no rule file (%v)", p, err)
		}
		pat := filepath.ToSlash(p)
		err := filepath.WalkDir(root, func(path string, d fs.DirEntry, err error) error {
			if err != nil {
				return err
			}
			if d.IsDir() {
				return nil
			}
			if matchDoublestar(pat, filepath.ToSlash(path)) && isYAMLName(path) {
				add(path)
			}
			return nil
		})
		if err != nil {
			return nil, err
		}
		if len(out) == n {
			return nil, fmt.Errorf("%s matches no rule file", p)
		}
	}
	sort.Strings(out)
	return out, nil
}

func isYAMLName(p string) bool {
	return strings.HasSuffix(p, ".yml") || strings.HasSuffix(p, ".yaml")
}

// globRoot returns the directory before the first element with a wildcard.
func globRoot(p string) string {
	parts := strings.Split(filepath.ToSlash(p), "/")
	for i, e := range parts {
		if strings.ContainsAny(e, "*?[") {
			root := strings.Join(parts[:i], "/")
			if root == "" {
				if strings.HasPrefix(p, "/") {
					return "/"
				}
				return "."
			}
			return filepath.FromSlash(root)
		}
	}
	return filepath.Dir(p)
}

// matchDoublestar matches a slash-separated path against a pattern where ** matches
// zero or more whole path elements.
func matchDoublestar(pattern, name string) bool {
	pattern = strings.TrimPrefix(pattern, "./")
	name = strings.TrimPrefix(name, "./")
	return matchParts(strings.Split(pattern, "/"), strings.Split(name, "/"))
}

func matchParts(pat, name []string) bool {
	for len(pat) > 0 {
		if pat[0] == "**" {
			for i := 0; i <= len(name); i++ {
				if matchParts(pat[1:], name[i:]) {
					return true
				}
			}
			return false
		}
		if len(name) == 0 {
			return false
		}
		if ok, _ := filepath.Match(pat[0], name[0]); !ok {
			return false
		}
		pat, name = pat[1:], name[1:]
	}
	return len(name) == 0
}
