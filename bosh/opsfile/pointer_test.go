package opsfile

import (
	"testing"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"

	"github.com/kubefoundry/kubefoundry"
)

func TestParsePointer(t *testing.T) {
	key := func(k string, opt bool) token { return token{kind: keyToken, key: k, optional: opt} }
	idx := func(i int, mods ...modifier) token { return token{kind: indexToken, index: i, mods: mods} }
	match := func(k, v string, opt bool, mods ...modifier) token {
		return token{kind: matchToken, key: k, value: v, optional: opt, mods: mods}
	}
	app := token{kind: appendToken}

	tests := []struct {
		path string
		want []token
	}{
		{"", nil},
		{"/", []token{key("", false)}},
		{"//", []token{key("", false), key("", false)}},
		{"/key", []token{key("key", false)}},
		{"/key/key2", []token{key("key", false), key("key2", false)}},
		// ? carries over to every key and name=value on its right.
		{"/key?/key2/key3", []token{key("key", true), key("key2", true), key("key3", true)}},
		{"/key/key2?", []token{key("key", false), key("key2", true)}},
		{"/key?/name=val", []token{key("key", true), match("name", "val", true)}},
		{"/name=val?/key", []token{match("name", "val", true), key("key", true)}},
		{"/0", []token{idx(0)}},
		{"/1000001", []token{idx(1000001)}},
		{"/-2", []token{idx(-2)}},
		{"/-", []token{app}},
		{"/ary/-", []token{key("ary", false), app}},
		// "-" is an append only as the last segment; elsewhere it is a key.
		{"/-/key", []token{key("-", false), key("key", false)}},
		{"/0:before", []token{idx(0, modBefore)}},
		{"/0:after", []token{idx(0, modAfter)}},
		{"/-1:prev:before", []token{idx(-1, modPrev, modBefore)}},
		{"/1:next", []token{idx(1, modNext)}},
		{"/name=val", []token{match("name", "val", false)}},
		{"/name=val?", []token{match("name", "val", true)}},
		{"/=", []token{match("", "", false)}},
		{"/name=", []token{match("name", "", false)}},
		{"/name=val:after", []token{match("name", "val", false, modAfter)}},
		{"/name=a=b", []token{match("name", "a=b", false)}},
		// Escapes.
		{"/m~0n", []token{key("m~n", false)}},
		{"/a~01b", []token{key("a~1b", false)}},
		{"/a~1b", []token{key("a/b", false)}},
		{"/plip~2plop", []token{key("plip?plop", false)}},
		{"/plop~36713", []token{key("plop=6713", false)}},
		{"/m~7n", []token{key("m:n", false)}},
		{"/name~1in~2q=key~3val", []token{match("name/in?q", "key=val", false)}},
		{"/c%d", []token{key("c%d", false)}},
	}
	for _, tt := range tests {
		t.Run(tt.path, func(t *testing.T) {
			p, err := ParsePointer(tt.path)
			require.NoError(t, err)
			assert.Equal(t, tt.want, p.tokens)
			assert.Equal(t, tt.path, p.String())
		})
	}
}

func TestParsePointerErrors(t *testing.T) {
	tests := []struct {
		path string
		want string
	}{
		{"abc", `path "abc" must start with "/"`},
		{"/key:prev", `path "/key:prev": segment 1 "key:prev": modifiers go only with an index or a name=value`},
		{"/a/-:prev", `path "/a/-:prev": segment 2 "-:prev": "-" (after the last item) takes no modifiers`},
		{"/a/b/c:unknown", `path "/a/b/c:unknown": segment 3 "c:unknown": unknown modifier "unknown"`},
		{"/a:b", `segment 1 "a:b": unknown modifier "b" (want prev, next, before or after; write ~7 for a literal ":")`},
	}
	for _, tt := range tests {
		t.Run(tt.path, func(t *testing.T) {
			_, err := ParsePointer(tt.path)
			require.Error(t, err)
			assert.Contains(t, err.Error(), tt.want)
			assert.ErrorIs(t, err, kubefoundry.ErrInvalid)
		})
	}
}

func TestPointerPrefix(t *testing.T) {
	p, err := ParsePointer("/instance_groups/name=worker?/jobs/0")
	require.NoError(t, err)
	assert.Equal(t, "/instance_groups", p.prefix(0))
	assert.Equal(t, "/instance_groups/name=worker?", p.prefix(1))
	assert.Equal(t, "/instance_groups/name=worker?/jobs/0", p.prefix(3))
}
