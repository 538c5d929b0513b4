package harbor_test

import (
	"bytes"
	"crypto/sha256"
	"encoding/hex"
	"encoding/json"
	"fmt"
	"io"
	"net/http"
	"net/url"
	"strings"
	"testing"

	"github.com/stretchr/testify/require"
)

// push makes an image exist: on the simulator through AddArtifact, on a
// real Harbor by pushing a one-layer image through core's /v2 registry
// API with a token from its token service, as docker push does.
func (b backend) push(t *testing.T, project, repo, tag string) {
	t.Helper()
	if b.sim != nil {
		_, err := b.sim.AddArtifact(project, repo, tag)
		require.NoError(t, err)
		return
	}
	name := project + "/" + repo
	q := url.Values{"service": {"harbor-registry"}, "scope": {"repository:" + name + ":pull,push"}}
	req, _ := http.NewRequest(http.MethodGet, b.url+"/service/token?"+q.Encode(), nil)
	req.SetBasicAuth(b.user, b.pw)
	var tok struct{ Token string }
	resp, err := http.DefaultClient.Do(req)
	require.NoError(t, err)
	require.NoError(t, json.NewDecoder(resp.Body).Decode(&tok))
	resp.Body.Close()

	do := func(method, u, ctype string, body []byte, want int) *http.Response {
		t.Helper()
		if !strings.HasPrefix(u, "http") {
			u = b.url + u
		}
		req, err := http.NewRequest(method, u, bytes.NewReader(body))
		require.NoError(t, err)
		req.Header.Set("Authorization", "Bearer "+tok.Token)
		if ctype != "" {
			req.Header.Set("Content-Type", ctype)
		}
		resp, err := http.DefaultClient.Do(req)
		require.NoError(t, err)
		if resp.StatusCode != want {
			msg, _ := io.ReadAll(resp.Body)
			t.Fatalf("%s %s: %d, want %d: %s", method, u, resp.StatusCode, want, msg)
		}
		return resp
	}
	blob := func(data []byte) string {
		sum := sha256.Sum256(data)
		digest := "sha256:" + hex.EncodeToString(sum[:])
		resp := do(http.MethodPost, "/v2/"+name+"/blobs/uploads/", "", nil, http.StatusAccepted)
		loc := resp.Header.Get("Location")
		resp.Body.Close()
		sep := "?"
		if strings.Contains(loc, "?") {
			sep = "&"
		}
		do(http.MethodPut, loc+sep+"digest="+url.QueryEscape(digest), "application/octet-stream", data, http.StatusCreated).Body.Close()
		return digest
	}
	layer := []byte("kubefoundry test layer " + name + ":" + tag)
	config := []byte(fmt.Sprintf(`{"architecture":"amd64","os":"linux","rootfs":{"type":"layers","diff_ids":["sha256:%x"]},"config":{}}`, sha256.Sum256(layer)))
	cd, ld := blob(config), blob(layer)
	manifest := fmt.Sprintf(`{"schemaVersion":2,"mediaType":"application/vnd.docker.distribution.manifest.v2+json",`+
		`"config":{"mediaType":"application/vnd.docker.container.image.v1+json","size":%d,"digest":"%s"},`+
		`"layers":[{"mediaType":"application/vnd.docker.image.rootfs.diff.tar","size":%d,"digest":"%s"}]}`,
		len(config), cd, len(layer), ld)
	do(http.MethodPut, "/v2/"+name+"/manifests/"+tag, "application/vnd.docker.distribution.manifest.v2+json", []byte(manifest), http.StatusCreated).Body.Close()
}
