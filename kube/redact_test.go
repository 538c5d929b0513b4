package kube_test

import (
	"fmt"
	"testing"

	"github.com/stretchr/testify/assert"
)

// A token that is not in kubeadm's id.secret form is still a secret:
// printed in any way, BootstrapSpec shows none of it.
func TestBootstrapSpecRedactsMalformedToken(t *testing.T) {
	for _, token := range []string{"0123456789abcdefghij", "abcdef0123456789abcdef", "secret-without-dot"} {
		spec := bootstrapSpec
		spec.Token = token
		for _, verb := range []string{"%v", "%+v", "%#v", "%s", "%q", "%x"} {
			for _, v := range []any{spec, &spec} {
				p := fmt.Sprintf(verb, v)
				assert.NotContains(t, p, token, "%s of %T", verb, v)
				assert.NotContains(t, p, fmt.Sprintf("%x", token), "%s of %T", verb, v)
			}
		}
		assert.Contains(t, spec.String(), "token <redacted>")
	}
}
