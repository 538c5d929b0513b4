package harbor

import (
	"context"
	"encoding/base64"
	"encoding/json"
	"fmt"
	"io"
	"net/http"
	"net/url"
	"strings"
)

// RegistryAccess asks Harbor's registry token service (/service/token)
// what the client's credentials may do to a repository ("project/repo"),
// as a container runtime does before a pull: it returns the actions
// granted (pull, push, and whatever else Harbor adds). A robot gets
// nothing outside its project; wrong, disabled or expired credentials,
// which Harbor answers with an anonymous token, are ErrUnauthorized. Use it to
// check a pull secret's robot before handing it to a cluster.
func (c *Client) RegistryAccess(ctx context.Context, repository string) ([]string, error) {
	u, err := url.Parse(c.cfg.URL)
	if err != nil {
		return nil, err
	}
	u.Path = strings.TrimSuffix(u.Path, "/") + "/service/token"
	u.RawQuery = url.Values{"service": {"harbor-registry"}, "scope": {"repository:" + repository + ":pull,push"}}.Encode()
	req, err := http.NewRequestWithContext(ctx, http.MethodGet, u.String(), nil)
	if err != nil {
		return nil, err
	}
	req.SetBasicAuth(c.cfg.Username, c.cfg.Password)
	resp, err := (&http.Client{Transport: c.call}).Do(req)
	if err != nil {
		return nil, fmt.Errorf("harbor: registry token for %s: %w", repository, err)
	}
	defer resp.Body.Close()
	body, err := io.ReadAll(io.LimitReader(resp.Body, 1<<20))
	if err != nil {
		return nil, fmt.Errorf("harbor: registry token for %s: %w", repository, err)
	}
	if resp.StatusCode != http.StatusOK {
		return nil, &APIError{Op: "registry token for " + repository, Status: resp.StatusCode,
			Kind: statusKind(resp.StatusCode), Message: strings.TrimSpace(string(body))}
	}
	var tok struct {
		Token       string `json:"token"`
		AccessToken string `json:"access_token"`
	}
	if err := json.Unmarshal(body, &tok); err != nil {
		return nil, fmt.Errorf("harbor: registry token for %s: %w", repository, err)
	}
	jwt := tok.Token
	if jwt == "" {
		jwt = tok.AccessToken
	}
	parts := strings.Split(jwt, ".")
	if len(parts) != 3 {
		return nil, fmt.Errorf("harbor: registry token for %s is not a JWT", repository)
	}
	payload, err := base64.RawURLEncoding.DecodeString(parts[1])
	if err != nil {
		return nil, fmt.Errorf("harbor: registry token for %s: %w", repository, err)
	}
	var claims struct {
		Subject string `json:"sub"`
		Access  []struct {
			Type    string   `json:"type"`
			Name    string   `json:"name"`
			Actions []string `json:"actions"`
		} `json:"access"`
	}
	if err := json.Unmarshal(payload, &claims); err != nil {
		return nil, fmt.Errorf("harbor: registry token for %s: %w", repository, err)
	}
	if claims.Subject == "" {
		// Harbor answers credentials it does not accept with an anonymous
		// token (no subject) rather than a 401.
		return nil, &APIError{Op: "registry token for " + repository, Status: http.StatusUnauthorized, Kind: ErrUnauthorized,
			Message: "Harbor issued an anonymous token: it does not accept the credentials of " + c.cfg.Username}
	}
	actions := []string{}
	for _, a := range claims.Access {
		if a.Type == "repository" && a.Name == repository {
			actions = append(actions, a.Actions...)
		}
	}
	return actions, nil
}
