package release

import (
	"errors"
	"path"
	"strings"
)

// The globs of a package spec's files and excluded_files, as bosh-cli
// matches them (with the doublestar library): a pattern is split at "/";
// "**" as a whole segment matches any number of segments, zero included;
// any other segment matches one path segment by path.Match (*, ?,
// [classes], \ escapes), where * matches names starting with a dot too;
// {a,b} alternatives expand first.

// maxBraceExpansions bounds what one glob expands to.
const maxBraceExpansions = 1024

// expandBraces expands {a,b} alternatives, nested ones included.
func expandBraces(p string) ([]string, error) {
	out := []string{p}
	for done := 0; done < len(out); {
		s := out[done]
		start, end := braceSpan(s)
		if start < 0 {
			if end == -2 {
				return nil, errors.New("a { without its }")
			}
			done++
			continue
		}
		var alts []string
		depth, from := 0, start+1
		for i := start + 1; i < end; i++ {
			switch s[i] {
			case '\\':
				i++
			case '{':
				depth++
			case '}':
				depth--
			case ',':
				if depth == 0 {
					alts = append(alts, s[from:i])
					from = i + 1
				}
			}
		}
		alts = append(alts, s[from:end])
		repl := make([]string, 0, len(alts))
		for _, a := range alts {
			repl = append(repl, s[:start]+a+s[end+1:])
		}
		out = append(out[:done], append(repl, out[done+1:]...)...)
		if len(out) > maxBraceExpansions {
			return nil, errors.New("the {a,b} alternatives expand to too many patterns")
		}
	}
	return out, nil
}

// braceSpan finds the first top-level {...} of s: its start and end, or
// -1, -1 when there is none and -1, -2 when a { is not closed.
func braceSpan(s string) (int, int) {
	start, depth := -1, 0
	for i := 0; i < len(s); i++ {
		switch s[i] {
		case '\\':
			i++
		case '[':
			// a class may hold braces literally
			if j := strings.IndexByte(s[i+1:], ']'); j >= 0 {
				i += j + 1
			}
		case '{':
			if depth == 0 {
				start = i
			}
			depth++
		case '}':
			if depth > 0 {
				depth--
				if depth == 0 {
					return start, i
				}
			}
		}
	}
	if depth > 0 {
		return -1, -2
	}
	return -1, -1
}

// checkGlob reports a malformed pattern.
func checkGlob(g string) error {
	pats, err := expandBraces(g)
	if err != nil {
		return err
	}
	for _, p := range pats {
		for _, seg := range strings.Split(p, "/") {
			if seg == "**" {
				continue
			}
			if _, err := path.Match(seg, ""); err != nil {
				return errors.New("not a glob: " + err.Error())
			}
		}
	}
	return nil
}

// globMatch reports whether the slash-separated relative path name
// matches glob g (braces expanded first).
func globMatch(g, name string) bool {
	pats, err := expandBraces(g)
	if err != nil {
		return false
	}
	segs := strings.Split(name, "/")
	for _, p := range pats {
		if matchSegments(strings.Split(path.Clean(p), "/"), segs) {
			return true
		}
	}
	return false
}

func matchSegments(pat, name []string) bool {
	for len(pat) > 0 {
		if pat[0] == "**" {
			for len(pat) > 1 && pat[1] == "**" {
				pat = pat[1:]
			}
			for k := 0; k <= len(name); k++ {
				if matchSegments(pat[1:], name[k:]) {
					return true
				}
			}
			return false
		}
		if len(name) == 0 {
			return false
		}
		if ok, err := path.Match(pat[0], name[0]); err != nil || !ok {
			return false
		}
		pat, name = pat[1:], name[1:]
	}
	return len(name) == 0
}
