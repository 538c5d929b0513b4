package simulator

import (
	"encoding/json"
	"fmt"
	"net"
	"net/http"
	"net/url"
	"strings"
	"time"
)

// writeOnly configuration keys are accepted but never read back.
var writeOnly = map[string]bool{"ldap_search_password": true, "oidc_client_secret": true, "uaa_client_secret": true}

func defaultConfig() map[string]any {
	return map[string]any{
		"auth_mode": "db_auth", "primary_auth_mode": false, "project_creation_restriction": "everyone",
		"self_registration": false, "read_only": false, "token_expiration": int64(30), "robot_token_duration": int64(30),
		"robot_name_prefix": "robot$", "notification_enable": true, "quota_per_project_enable": true,
		"storage_per_project": int64(-1), "ldap_scope": int64(2), "ldap_timeout": int64(5), "ldap_verify_cert": true,
		"ldap_uid": "uid", "ldap_group_search_scope": int64(2), "oidc_verify_cert": true, "oidc_auto_onboard": false,
	}
}

func init() {
	handlers["getConfigurations"] = getConfigurations
	handlers["updateConfigurations"] = updateConfigurations
	handlers["pingLdap"] = pingLdap
}

func getConfigurations(s *Server, c *call) (reply, error) {
	if err := needAdmin(c); err != nil {
		return reply{}, err
	}
	s.mu.Lock()
	defer s.mu.Unlock()
	out := map[string]any{}
	for k, v := range s.st.config {
		if writeOnly[k] {
			continue
		}
		out[k] = map[string]any{"value": v, "editable": true}
	}
	return reply{body: out}, nil
}

func updateConfigurations(s *Server, c *call) (reply, error) {
	if err := needAdmin(c); err != nil {
		return reply{}, err
	}
	var req map[string]json.RawMessage
	if err := c.body("configurations", &req); err != nil {
		return reply{}, err
	}
	s.mu.Lock()
	defer s.mu.Unlock()
	next := map[string]any{}
	for k, raw := range req {
		var v any
		if err := json.Unmarshal(raw, &v); err != nil {
			return reply{}, errf(http.StatusBadRequest, "configuration %s: %v", k, err)
		}
		if f, ok := v.(float64); ok {
			v = int64(f)
		}
		next[k] = v
	}
	if mode, ok := next["auth_mode"].(string); ok && mode != s.st.config["auth_mode"] {
		switch mode {
		case "db_auth", "ldap_auth", "oidc_auth", "uaa_auth", "http_auth":
		default:
			return reply{}, errf(http.StatusBadRequest, "invalid auth_mode %q", mode)
		}
		if len(s.st.users) > 1 {
			return reply{}, errf(http.StatusBadRequest, "auth_mode can not be modified as new users have been inserted into database")
		}
	}
	if v, ok := next["ldap_url"].(string); ok && v != "" {
		if u, err := url.Parse(v); err != nil || (u.Scheme != "ldap" && u.Scheme != "ldaps") {
			return reply{}, errf(http.StatusBadRequest, "invalid ldap_url %q", v)
		}
	}
	if v, ok := next["ldap_scope"].(int64); ok && (v < 0 || v > 2) {
		return reply{}, errf(http.StatusBadRequest, "invalid ldap_scope %d", v)
	}
	for k, v := range next {
		s.st.config[k] = v
	}
	return reply{}, nil
}

// pingLdap tries to reach the LDAP server over TCP (the simulator speaks
// no LDAP, so a server that answers is taken as reachable; the bind is not
// checked) and answers as Harbor does: 200 with success and a message.
func pingLdap(s *Server, c *call) (reply, error) {
	if err := needAdmin(c); err != nil {
		return reply{}, err
	}
	var req struct {
		URL     string `json:"ldap_url"`
		Timeout int64  `json:"ldap_connection_timeout"`
	}
	if err := c.body("ldapconf", &req); err != nil {
		return reply{}, err
	}
	u, err := url.Parse(req.URL)
	if err != nil || (u.Scheme != "ldap" && u.Scheme != "ldaps") || u.Host == "" {
		return reply{}, errf(http.StatusBadRequest, "invalid ldap_url %q", req.URL)
	}
	host := u.Host
	if !strings.Contains(host, ":") {
		host += map[string]string{"ldap": ":389", "ldaps": ":636"}[u.Scheme]
	}
	timeout := time.Duration(max(req.Timeout, 1)) * time.Second
	conn, err := net.DialTimeout("tcp", host, min(timeout, 5*time.Second))
	if err != nil {
		return reply{body: map[string]any{"success": false, "message": fmt.Sprintf("failed to connect to LDAP server %s: %v", req.URL, err)}}, nil
	}
	conn.Close()
	return reply{body: map[string]any{"success": true, "message": "LDAP server " + req.URL + " is reachable"}}, nil
}
