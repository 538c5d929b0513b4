package simulator

import (
	"fmt"
	"net/http"
	"strings"
	"time"
)

type user struct {
	id       int64
	name     string
	password string
	admin    bool
	created  time.Time
}

func init() {
	handlers["createUser"] = createUser
	handlers["getCurrentUserInfo"] = getCurrentUserInfo
}

func createUser(s *Server, c *call) (reply, error) {
	if err := needAdmin(c); err != nil {
		return reply{}, err
	}
	var req struct {
		Username string `json:"username"`
		Password string `json:"password"`
		Email    string `json:"email"`
		Realname string `json:"realname"`
	}
	if err := c.body("userReq", &req); err != nil {
		return reply{}, err
	}
	if req.Username == "" || strings.ContainsAny(req.Username, ",~#$%") || len(req.Username) > 255 {
		return reply{}, errf(http.StatusBadRequest, "invalid username %q", req.Username)
	}
	if !robotSecretOK(req.Password) {
		return reply{}, errf(http.StatusBadRequest, "the password must be 8-128 characters with an upper-case letter, a lower-case letter and a digit")
	}
	s.mu.Lock()
	defer s.mu.Unlock()
	if s.st.users[req.Username] != nil {
		return reply{}, errf(http.StatusConflict, "username %s already exists", req.Username)
	}
	u := &user{id: s.st.next(), name: req.Username, password: req.Password, created: s.clock()}
	s.st.users[u.name] = u
	return reply{status: http.StatusCreated, headers: map[string]string{"Location": fmt.Sprintf("/api/v2.0/users/%d", u.id)}}, nil
}

func getCurrentUserInfo(s *Server, c *call) (reply, error) {
	if err := needAuth(c); err != nil {
		return reply{}, err
	}
	if c.who.user == nil {
		// As Harbor: the current user is only known to a local security
		// context.
		return reply{}, errf(http.StatusPreconditionFailed, "get current user not available for security context: robot")
	}
	u := c.who.user
	return reply{body: map[string]any{"user_id": u.id, "username": u.name, "sysadmin_flag": u.admin,
		"creation_time": ts(u.created), "update_time": ts(u.created)}}, nil
}
