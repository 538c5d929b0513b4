package opsfile

import (
	"fmt"
	"strconv"
	"strings"

	"github.com/kubefoundry/kubefoundry"
)

// Pointer is a parsed ops-file path, such as
// /instance_groups/name=worker/jobs/name=kubelet/properties?/max_pods.
// The zero Pointer, and the one parsed from "", point at the whole
// document.
//
// The syntax is go-patch's (bosh-cli's -o), segment by segment:
//
//	/key        a map key that must exist
//	/key?       a map key that may be missing; the ? carries over to every
//	            key and name=value to its right, and replace creates what is
//	            missing
//	/0, /-1     an array index; negative counts from the end
//	/-          after the last item (the last segment only): replace appends
//	/name=val   the one array item that is a map with name: val
//	/name=val?  that item, or (replace) a new {name: val} appended to the array
//	:prev :next on an index or name=val, the item before or after it
//	:before     on the last segment, replace inserts before the item
//	:after      and after it, instead of overwriting it
//
// Inside a segment ~0 stands for ~, ~1 for /, ~2 for ?, ~3 for = and ~7
// for :.
type Pointer struct {
	raw    string
	segs   []string // the segments as written, for messages
	tokens []token
}

type tokenKind int

const (
	keyToken    tokenKind = iota // /key, /key?
	indexToken                   // /0, /-1, /0:before
	appendToken                  // /- (last segment only)
	matchToken                   // /name=value, /name=value?
)

type modifier int

const (
	modPrev modifier = iota + 1
	modNext
	modBefore
	modAfter
)

type token struct {
	kind     tokenKind
	key      string // the map key, or the key a name=value matches on
	value    string // the value a name=value matches
	index    int
	optional bool
	mods     []modifier
}

// unescape decodes go-patch's escapes; unknown ~ sequences stay as written.
var unescape = strings.NewReplacer("~0", "~", "~1", "/", "~2", "?", "~3", "=", "~7", ":")

// ParsePointer parses an ops-file path. An error names the segment at
// fault and wraps kubefoundry.ErrInvalid.
func ParsePointer(s string) (Pointer, error) {
	if s == "" {
		return Pointer{}, nil
	}
	if !strings.HasPrefix(s, "/") {
		return Pointer{}, &problem{msg: fmt.Sprintf("path %q must start with \"/\"", s), kind: kubefoundry.ErrInvalid}
	}
	segs := strings.Split(s[1:], "/")
	p := Pointer{raw: s, segs: segs, tokens: make([]token, 0, len(segs))}
	optional := false
	for i, seg := range segs {
		fail := func(reason string) (Pointer, error) {
			return Pointer{}, &problem{
				msg:  fmt.Sprintf("path %q: segment %d %q: %s", s, i+1, seg, reason),
				kind: kubefoundry.ErrInvalid,
			}
		}
		isLast := i == len(segs)-1

		pieces := strings.Split(seg, ":")
		tok := pieces[0]
		var mods []modifier
		for _, m := range pieces[1:] {
			switch m {
			case "prev":
				mods = append(mods, modPrev)
			case "next":
				mods = append(mods, modNext)
			case "before":
				mods = append(mods, modBefore)
			case "after":
				mods = append(mods, modAfter)
			default:
				return fail(fmt.Sprintf("unknown modifier %q (want prev, next, before or after; write ~7 for a literal \":\")", m))
			}
		}

		if isLast && tok == "-" {
			if len(mods) > 0 {
				return fail("\"-\" (after the last item) takes no modifiers")
			}
			p.tokens = append(p.tokens, token{kind: appendToken})
			continue
		}

		if idx, err := strconv.Atoi(tok); err == nil {
			p.tokens = append(p.tokens, token{kind: indexToken, index: idx, mods: mods})
			continue
		}

		if strings.HasSuffix(tok, "?") {
			optional = true
			tok = strings.TrimSuffix(tok, "?")
		}

		if k, v, ok := strings.Cut(tok, "="); ok {
			p.tokens = append(p.tokens, token{
				kind:     matchToken,
				key:      unescape.Replace(k),
				value:    unescape.Replace(v),
				optional: optional,
				mods:     mods,
			})
			continue
		}

		if len(mods) > 0 {
			return fail("modifiers go only with an index or a name=value")
		}
		p.tokens = append(p.tokens, token{kind: keyToken, key: unescape.Replace(tok), optional: optional})
	}
	return p, nil
}

// String returns the path as it was written.
func (p Pointer) String() string { return p.raw }

// prefix is the path up to and including segment i, as written.
func (p Pointer) prefix(i int) string {
	return "/" + strings.Join(p.segs[:i+1], "/")
}
