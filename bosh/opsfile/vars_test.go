package opsfile_test

import (
	"errors"
	"testing"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"

	"github.com/kubefoundry/kubefoundry/bosh/opsfile"
)

func TestMap(t *testing.T) {
	m := opsfile.Map{
		"plain":            "v",
		"cert.ca":          "CA",
		"cert.private_key": "KEY",
		"deep.a.b":         1,
		"deep.a.c":         2,
		"whole":            "exact",
		"whole.sub":        "ignored while whole exists",
		"nil":              nil,
	}
	tests := []struct {
		name  string
		want  any
		found bool
	}{
		{"plain", "v", true},
		{"cert", map[string]any{"ca": "CA", "private_key": "KEY"}, true},
		{"deep", map[string]any{"a": map[string]any{"b": 1, "c": 2}}, true},
		{"whole", "exact", true},
		{"nil", nil, true},
		{"missing", nil, false},
		{"cer", nil, false},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			v, found, err := m.Get(tt.name)
			require.NoError(t, err)
			assert.Equal(t, tt.found, found)
			assert.Equal(t, tt.want, v)
		})
	}

	// -v cert.ca=... works with ((cert.ca)), as bosh-cli's static vars do.
	doc := parseDoc(t, "ca: ((cert.ca))\nkey: ((cert.private_key))")
	require.NoError(t, opsfile.Interpolate(doc, m))
	assert.Equal(t, "ca: CA\nkey: KEY\n", render(t, doc))
}

func TestMulti(t *testing.T) {
	provided := opsfile.Map{"a": "provided"}
	generated := opsfile.Map{"a": "generated", "b": "generated"}
	boom := errors.New("store down")
	failing := varsFunc(func(name string) (any, bool, error) {
		if name == "c" {
			return nil, false, boom
		}
		return nil, false, nil
	})
	vars := opsfile.Multi{provided, nil, failing, generated}

	v, found, err := vars.Get("a")
	require.NoError(t, err)
	assert.True(t, found)
	assert.Equal(t, "provided", v, "the first source that has it wins")

	v, found, err = vars.Get("b")
	require.NoError(t, err)
	assert.True(t, found)
	assert.Equal(t, "generated", v, "a later source answers what earlier ones lack")

	_, _, err = vars.Get("c")
	assert.ErrorIs(t, err, boom, "a failure stops the search")

	_, found, err = vars.Get("d")
	require.NoError(t, err)
	assert.False(t, found)

	_, found, err = opsfile.Multi{}.Get("a")
	require.NoError(t, err)
	assert.False(t, found)
}
