package kube_test

import (
	"bytes"
	"crypto"
	"crypto/ecdsa"
	"crypto/rsa"
	"encoding/base64"
	"encoding/hex"
	"encoding/json"
	"encoding/pem"
	"fmt"
	"log/slog"
	"math/big"
	"strings"
	"testing"
	"time"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"
	"go.uber.org/zap"
	"go.uber.org/zap/zapcore"
	"sigs.k8s.io/yaml"

	"github.com/kubefoundry/kubefoundry"
	"github.com/kubefoundry/kubefoundry/kube"
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
		j, err := json.Marshal(spec)
		require.NoError(t, err)
		assert.NotContains(t, string(j), token)
		assert.Contains(t, string(j), `"Token":"[redacted]"`)
	}
}

// outputs is every way v can leave the program as text: JSON (as a
// journal writes it), YAML, slog's JSON and text handlers, zap's JSON
// encoder through zap.Reflect and zap.Any, and fmt's verbs.
func outputs(t *testing.T, v any) map[string]string {
	t.Helper()
	out := map[string]string{}
	j, err := json.Marshal(v)
	require.NoError(t, err, "json.Marshal %T", v)
	out["json"] = string(j)
	y, err := yaml.Marshal(v)
	require.NoError(t, err)
	out["yaml"] = string(y)

	var buf bytes.Buffer
	slog.New(slog.NewJSONHandler(&buf, nil)).Info("spec", "v", v, slog.Any("any", v))
	out["slog json"] = buf.String()
	buf.Reset()
	slog.New(slog.NewTextHandler(&buf, nil)).Info("spec", "v", v, slog.Any("any", v))
	out["slog text"] = buf.String()

	buf.Reset()
	log := zap.New(zapcore.NewCore(zapcore.NewJSONEncoder(zap.NewProductionEncoderConfig()), zapcore.AddSync(&buf), zap.DebugLevel))
	log.Info("spec", zap.Reflect("reflect", v), zap.Any("any", v))
	require.NoError(t, log.Sync())
	out["zap"] = buf.String()

	for _, verb := range []string{"%v", "%+v", "%#v", "%s", "%q", "%x", "%X", "%d"} {
		out[verb] = fmt.Sprintf(verb, v)
	}
	return out
}

// forms are the spellings of a secret an output could carry.
func forms(secret []byte) []string {
	return []string{string(secret), base64.StdEncoding.EncodeToString(secret), base64.RawURLEncoding.EncodeToString(secret),
		hex.EncodeToString(secret), strings.ToUpper(hex.EncodeToString(secret)), strings.Trim(fmt.Sprint(secret), "[]")}
}

// keyForms are the spellings of a private key: its PEM, its DER in
// base64, and its secret scalars in decimal, hex and bytes.
func keyForms(t *testing.T, key crypto.Signer) []string {
	t.Helper()
	var out []string
	switch k := key.(type) {
	case *ecdsa.PrivateKey:
		d, err := k.Bytes()
		require.NoError(t, err)
		out = append(out, forms(d)...)
		out = append(out, new(big.Int).SetBytes(d).String())
	case *rsa.PrivateKey:
		out = append(out, k.D.String(), k.D.Text(16), k.Primes[0].String(), k.Primes[1].String(), k.Primes[0].Text(16))
	default:
		t.Fatalf("no forms for %T", key)
	}
	p, err := kube.KeyPEM(key)
	require.NoError(t, err)
	block, _ := pem.Decode(p)
	require.NotNil(t, block)
	return append(out, base64.StdEncoding.EncodeToString(block.Bytes), string(p))
}

// TestNoSecretInAnyOutput: BootstrapSpec (its token, its encryption
// keys), EncryptionKey, CA, KeyPair and PKI (their private keys) show no
// secret in any output, alone or inside other values.
func TestNoSecretInAnyOutput(t *testing.T) {
	k1, k2 := newKey(t, "k1"), newKey(t, "k2")
	spec := bootstrapSpec
	spec.Encryption = &kube.EncryptionAtRest{Keys: []kube.EncryptionKey{k2, k1}}
	leaf, err := pki.ClusterCA.IssueClient("redact", nil, time.Hour)
	require.NoError(t, err)
	rot, err := pki.StartCARotation(time.Hour)
	require.NoError(t, err)

	type journal struct {
		Spec kube.BootstrapSpec
		CA   *kube.CA
		Keys []kube.EncryptionKey
	}
	values := map[string]any{
		"BootstrapSpec": spec, "*BootstrapSpec": &spec, "EncryptionKey": k1, "*EncryptionKey": &k1,
		"[]EncryptionKey": []kube.EncryptionKey{k2, k1}, "EncryptionAtRest": *spec.Encryption,
		"*CA": pki.ClusterCA, "CA": *pki.ClusterCA, "KeyPair": *leaf, "*KeyPair": leaf,
		"PKI": *pki, "*PKI": pki, "*CARotation": rot,
		"a struct holding them": journal{Spec: spec, CA: pki.EtcdCA, Keys: []kube.EncryptionKey{k1}},
		"a map holding them":    map[string]any{"spec": &spec, "ca": pki.FrontProxyCA},
	}
	secrets := map[string][]string{"the token's secret": {"0123456789abcdef"}}
	for _, k := range []kube.EncryptionKey{k1, k2} {
		secrets["key "+k.Name] = forms(k.Secret)
	}
	for name, key := range map[string]crypto.Signer{"cluster CA key": pki.ClusterCA.Key, "etcd CA key": pki.EtcdCA.Key,
		"front-proxy CA key": pki.FrontProxyCA.Key, "leaf key": leaf.Key, "new CA key": rot.New.Key, "service-account key": pki.ServiceKey} {
		secrets[name] = keyForms(t, key)
	}

	for name, v := range values {
		t.Run(name, func(t *testing.T) {
			for how, out := range outputs(t, v) {
				for what, forms := range secrets {
					for _, form := range forms {
						if strings.Contains(out, form) {
							t.Errorf("%s of %s shows %s (%q)", how, name, what, form)
							break
						}
					}
				}
			}
		})
	}

	t.Run("what is shown", func(t *testing.T) {
		out := outputs(t, spec)
		assert.Contains(t, out["json"], `"Token":"abcdef.[redacted]"`)
		assert.Contains(t, out["json"], `{"Name":"k2","Secret":"[redacted]"}`)
		assert.Contains(t, out["json"], `"ClusterName":"c1"`)
		ca := outputs(t, pki.ClusterCA)
		assert.Contains(t, ca["json"], `"key":"[redacted]"`)
		assert.Contains(t, ca["json"], `"commonName":"test-ca"`)
		assert.Contains(t, ca["json"], "BEGIN CERTIFICATE", "the certificate is public")
		assert.Contains(t, ca["%v"], "CA{test-ca, expires ")
		assert.Contains(t, outputs(t, *pki)["json"], `"serviceKey":"[redacted]"`)
	})
}

// TestBootstrapSecrets: the one way the secrets leave a spec, and come
// back to a spec read from its JSON: the journal of a spec, read back and
// given its secrets, renders the same user data as the spec itself.
func TestBootstrapSecrets(t *testing.T) {
	k1, k2 := newKey(t, "k1"), newKey(t, "k2")
	spec := bootstrapSpec
	spec.Encryption = &kube.EncryptionAtRest{Keys: []kube.EncryptionKey{k2, k1}, Resources: []string{"secrets"}}

	sec := spec.Secrets()
	stored, err := json.Marshal(sec)
	require.NoError(t, err)
	for _, want := range []string{"abcdef.0123456789abcdef", base64.StdEncoding.EncodeToString(k1.Secret), base64.StdEncoding.EncodeToString(k2.Secret)} {
		assert.Contains(t, string(stored), want, "the secrets' JSON carries them, for the store")
	}
	// Printed or logged, the secrets are names only.
	for how, out := range map[string]string{"%v": fmt.Sprintf("%v", sec), "%#v": fmt.Sprintf("%#v", sec), "%x": fmt.Sprintf("%x", sec),
		"slog json": func() string {
			var buf bytes.Buffer
			slog.New(slog.NewJSONHandler(&buf, nil)).Info("m", "secrets", sec)
			return buf.String()
		}()} {
		assert.NotContains(t, out, "0123456789abcdef", how)
		assert.NotContains(t, out, base64.StdEncoding.EncodeToString(k1.Secret), how)
		assert.Contains(t, out, "abcdef.", how)
	}

	journal, err := json.Marshal(spec)
	require.NoError(t, err)
	var back kube.BootstrapSpec
	require.NoError(t, json.Unmarshal(journal, &back))
	assert.Nil(t, back.Encryption.Keys[0].Secret, "read back without its secrets")
	_, err = pki.InitControlPlaneUserData(back)
	assert.Error(t, err, "a spec without its secrets renders nothing")

	var fromStore kube.BootstrapSecrets
	require.NoError(t, json.Unmarshal(stored, &fromStore))
	whole, err := back.WithSecrets(fromStore)
	require.NoError(t, err)
	assert.Equal(t, spec, whole)
	assert.Nil(t, back.Encryption.Keys[0].Secret, "WithSecrets changes no Encryption in place")
	want, err := pki.InitControlPlaneUserData(spec)
	require.NoError(t, err)
	got, err := pki.InitControlPlaneUserData(whole)
	require.NoError(t, err)
	assert.Equal(t, string(want), string(got))

	t.Run("missing or foreign secrets are refused, without quoting one", func(t *testing.T) {
		_, err := back.WithSecrets(kube.BootstrapSecrets{Token: "zzzzzz.0000000000000000", EncryptionKeys: map[string][]byte{"k2": k2.Secret}})
		var ve *kubefoundry.ValidationError
		require.ErrorAs(t, err, &ve)
		var fields []string
		for _, p := range ve.Problems {
			fields = append(fields, p.Field)
		}
		assert.Equal(t, []string{"token", "encryption.keys[1].secret"}, fields)
		assert.NotContains(t, err.Error(), "0000000000000000")
		_, err = back.WithSecrets(kube.BootstrapSecrets{EncryptionKeys: sec.EncryptionKeys})
		assert.ErrorContains(t, err, "token: redacted")
	})

	t.Run("a key's secret in base64 is read as encoding/json writes it", func(t *testing.T) {
		var k kube.EncryptionKey
		require.NoError(t, json.Unmarshal([]byte(`{"name":"k1","secret":"`+base64.StdEncoding.EncodeToString(k1.Secret)+`"}`), &k))
		assert.Equal(t, k1.Secret, k.Secret)
		err := json.Unmarshal([]byte(`{"Name":"k1","Secret":"not base64!"}`), &k)
		assert.ErrorContains(t, err, `encryption key "k1": secret: not base64`)
	})
}
