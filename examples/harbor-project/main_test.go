package main

import (
	"bytes"
	"context"
	"encoding/json"
	"strings"
	"testing"

	"github.com/stretchr/testify/require"
	corev1 "k8s.io/api/core/v1"
	"sigs.k8s.io/yaml"
)

func TestRunOnTheSimulator(t *testing.T) {
	var out bytes.Buffer
	require.NoError(t, run(context.Background(), []string{"-cluster", "c7", "-namespace", "apps"}, &out))
	text := out.String()
	require.Contains(t, text, "robot robot$c7+cluster-pull may [pull] c7/*")
	var body []string
	for _, l := range strings.Split(text, "\n") {
		if !strings.HasPrefix(l, "#") {
			body = append(body, l)
		}
	}
	var sec corev1.Secret
	require.NoError(t, yaml.UnmarshalStrict([]byte(strings.Join(body, "\n")), &sec))
	require.Equal(t, corev1.SecretTypeDockerConfigJson, sec.Type)
	require.Equal(t, "apps", sec.Namespace)
	var cfg map[string]map[string]map[string]string
	require.NoError(t, json.Unmarshal(sec.Data[corev1.DockerConfigJsonKey], &cfg))
	require.Len(t, cfg["auths"], 1)
	for _, a := range cfg["auths"] {
		require.Equal(t, "robot$c7+cluster-pull", a["username"])
		require.NotEmpty(t, a["password"])
	}
}

func TestBadFlags(t *testing.T) {
	var out bytes.Buffer
	require.Error(t, run(context.Background(), []string{"-cluster", "Bad_Name"}, &out))
	require.Error(t, run(context.Background(), []string{"-url", "ftp://x"}, &out))
}
