package simulator

import (
	"crypto"
	"crypto/rand"
	"crypto/rsa"
	"crypto/sha256"
	"encoding/base64"
	"encoding/json"
	"net/http"
	"slices"
	"strings"
	"sync"
	"time"
)

var (
	tokenKeyOnce sync.Once
	tokenKey     *rsa.PrivateKey
)

// serveToken answers Harbor core's registry token service,
// GET /service/token?service=harbor-registry&scope=repository:p/r:pull,push:
// an RS256 JWT whose access claim holds what the caller may do. Wrong,
// disabled or expired credentials get an anonymous token, as from Harbor;
// a robot gets nothing outside its project.
func (s *Server) serveToken(w http.ResponseWriter, r *http.Request) {
	// Credentials Harbor does not accept get an anonymous token, not a
	// 401: no subject, and only what anyone may do.
	who, _ := s.authenticate(r)
	var access []map[string]any
	for _, scope := range r.URL.Query()["scope"] {
		parts := strings.Split(scope, ":")
		if len(parts) != 3 || parts[0] != "repository" {
			continue
		}
		repo, wanted := parts[1], strings.Split(parts[2], ",")
		proj, _, _ := strings.Cut(repo, "/")
		s.mu.Lock()
		p := s.st.projectByName(proj)
		var granted []string
		if p != nil {
			for _, a := range wanted {
				if s.mayRegistry(who, p, a) {
					granted = append(granted, a)
				}
			}
		}
		s.mu.Unlock()
		access = append(access, map[string]any{"type": "repository", "name": repo, "actions": nonNil(granted)})
	}
	tokenKeyOnce.Do(func() { tokenKey, _ = rsa.GenerateKey(rand.Reader, 2048) })
	now := s.clock()
	claims := map[string]any{"iss": "harbor-token-issuer", "aud": r.URL.Query().Get("service"),
		"iat": now.Unix(), "nbf": now.Unix(), "exp": now.Add(30 * time.Minute).Unix(), "access": nonNil(access)}
	if who != nil {
		claims["sub"] = who.name()
	}
	head, _ := json.Marshal(map[string]any{"alg": "RS256", "typ": "JWT"})
	body, _ := json.Marshal(claims)
	signing := base64.RawURLEncoding.EncodeToString(head) + "." + base64.RawURLEncoding.EncodeToString(body)
	sum := sha256.Sum256([]byte(signing))
	sig, _ := rsa.SignPKCS1v15(rand.Reader, tokenKey, crypto.SHA256, sum[:])
	tok := signing + "." + base64.RawURLEncoding.EncodeToString(sig)
	w.Header().Set("Content-Type", "application/json")
	_ = json.NewEncoder(w).Encode(map[string]any{"token": tok, "expires_in": 1800, "issued_at": now.UTC().Format(time.RFC3339)})
}

func nonNil[T any](v []T) []T {
	if v == nil {
		return []T{}
	}
	return v
}

// mayRegistry: pull for public projects and any member, push for
// developers and up; robots by their permissions; admins everything.
func (s *Server) mayRegistry(who *principal, p *project, action string) bool {
	if who != nil && who.robot != nil {
		return who.robot.can(p, "repository", action)
	}
	if who.admin() {
		return true
	}
	role := s.st.role(who, p)
	switch action {
	case "pull":
		return p.metadata["public"] == "true" || role != 0
	case "push":
		return slices.Contains([]int64{1, 2, 4}, role)
	}
	return false
}
