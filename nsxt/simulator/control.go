package simulator

import (
	"maps"
	"net/http"
	"regexp"
	"slices"
	"sort"
	"strings"
	"time"
)

// Fault makes the simulator answer Status instead of serving a request: on
// the Nth request (counting from 1) whose method is Method ("" for any)
// and whose path matches Path (and, when set, whose query, unescaped,
// matches Query), and on the Times-1 matching requests after it (Times 0
// means 1).
//
// With Before set, the fault runs Before first (as another client writing
// between two of ours would) and then answers Status, or serves the
// request normally when Status is 0.
type Fault struct {
	Method string
	Path   *regexp.Regexp
	Query  *regexp.Regexp
	Nth    int
	Times  int
	Status int
	// Code is the error_code of the answer; NSX's usual one for Status
	// when zero.
	Code   int64
	Before func()

	seen int
}

// Inject adds a fault.
func (s *Server) Inject(f *Fault) {
	s.mu.Lock()
	defer s.mu.Unlock()
	s.faults = append(s.faults, f)
}

// Requests returns how many requests the server has answered, keyed by
// "METHOD /path" (no query), faults and refusals included.
func (s *Server) Requests() map[string]int {
	s.mu.Lock()
	defer s.mu.Unlock()
	out := make(map[string]int, len(s.counts))
	for k, v := range s.counts {
		out[k] = v
	}
	return out
}

// Writes counts the requests that could change state: PATCH, PUT, POST and
// DELETE, but for making and ending sessions.
func (s *Server) Writes() int {
	n := 0
	for k, v := range s.Requests() {
		if !strings.HasPrefix(k, "GET ") && !strings.HasPrefix(k, "POST /api/session/") {
			n += v
		}
	}
	return n
}

// Paths lists the paths of the objects that exist now and are not the
// seeded inventory or created by the system, sorted.
func (s *Server) Paths() []string {
	s.mu.Lock()
	defer s.mu.Unlock()
	var out []string
	for p, o := range s.st.objs {
		if !o.system && o.body["_create_user"] != "system" {
			out = append(out, p)
		}
	}
	sort.Strings(out)
	return out
}

// Allocated lists what the IP blocks and pools have handed out, by block or
// pool path: the subnets carved from a block and the addresses allocated
// from a pool (those of deleted objects awaiting the purge among them),
// sorted. A block or pool that has handed out nothing is not listed, so
// an empty map means everything went back.
func (s *Server) Allocated() map[string][]string {
	s.purgeDue()
	s.mu.Lock()
	defer s.mu.Unlock()
	out := map[string][]string{}
	for _, o := range s.st.heldAllocations() {
		switch o.kind.resourceType {
		case "IpAddressPoolBlockSubnet":
			if c := o.realized.attrs["cidr"]; c != "" {
				out[o.str("ip_block_path")] = append(out[o.str("ip_block_path")], c)
			}
		case "IpAddressAllocation":
			if ip := o.realized.attrs["allocation_ip"]; ip != "" {
				out[o.parent] = append(out[o.parent], ip)
			}
		}
	}
	for _, v := range out {
		sort.Strings(v)
	}
	return out
}

// Object returns a copy of the stored JSON of the object at path, or nil.
func (s *Server) Object(path string) map[string]any {
	s.mu.Lock()
	defer s.mu.Unlock()
	if o := s.st.objs[path]; o != nil {
		return deepCopy(o.body).(map[string]any)
	}
	return nil
}

// Patch merges fields into the object at path as another client's PATCH
// would, incrementing its _revision: a test's stand-in for a concurrent
// writer.
func (s *Server) Patch(path string, fields map[string]any) error {
	return s.transactAs(s.admin(), func(st *store) error {
		o := st.objs[path]
		if o == nil {
			return errorf(http.StatusNotFound, "%s does not exist", path)
		}
		parent := st.objs[o.parent]
		_, err := st.upsert(parent, o.kind, o.str("id"), fields, modePatch, false)
		return err
	})
}

// Put creates or replaces the object at path with body as another
// client's PUT would, under the same rules: a test's stand-in for a
// concurrent writer, such as a CNI adding a port to a segment.
func (s *Server) Put(path string, body map[string]any) error {
	_, err := s.write(s.admin(), path, deepCopy(body).(map[string]any), modePut)
	return err
}

// Purge purges at once everything marked for delete (Config.PurgeAfter),
// as NSX's purge cycle does, releasing what it allocated.
func (s *Server) Purge() {
	_ = s.transact(func(st *store) error { st.purge(0, true); return nil })
}

// Marked lists the paths of what is marked for delete and not purged
// yet, sorted.
func (s *Server) Marked() []string {
	s.purgeDue()
	s.mu.Lock()
	defer s.mu.Unlock()
	return slices.Sorted(maps.Keys(s.st.purging))
}

// Delete deletes the object at path as another client's DELETE would,
// under the same rules (refused while children or references hold it):
// a test's stand-in for a concurrent writer.
func (s *Server) Delete(path string) error {
	return s.transactAs(s.admin(), func(st *store) error { return st.remove(path) })
}

// deepCopy copies a decoded JSON value, so a caller can change it without
// changing a stored body.
func deepCopy(v any) any {
	switch x := v.(type) {
	case map[string]any:
		m := make(map[string]any, len(x))
		for k, e := range x {
			m[k] = deepCopy(e)
		}
		return m
	case []any:
		l := make([]any, len(x))
		for i, e := range x {
			l[i] = deepCopy(e)
		}
		return l
	}
	return v
}

// admin is the configured user, the actor of the test stand-ins (Patch,
// Put, Delete).
func (s *Server) admin() actor { return actor{name: s.cfg.Username} }

// FreezeSearch stops the search index where it is: until ThawSearch, the
// search API answers from the state as it is now, whatever is written
// after and however long it takes, as NSX's index does while it trails
// its writes. It shows every write made before it (Config.SearchLag does
// not hold it back). Calling it again moves the frozen index up to the
// state as it is then. Unlike SearchLag, it does not depend on the clock,
// so a test can rely on what the index shows.
func (s *Server) FreezeSearch() {
	s.mu.Lock()
	defer s.mu.Unlock()
	s.frozen = s.st
}

// ThawSearch makes the search index catch up with every write made so
// far and follow the writes again (after Config.SearchLag, when set).
func (s *Server) ThawSearch() {
	s.mu.Lock()
	defer s.mu.Unlock()
	s.frozen = nil
	s.history = []snapshot{{st: s.st}}
}

// Sessions is how many sessions are live.
func (s *Server) Sessions() int {
	s.mu.Lock()
	defer s.mu.Unlock()
	n := 0
	for _, us := range s.sessions {
		if time.Since(us.last) <= s.cfg.SessionTimeout {
			n++
		}
	}
	return n
}

// ExpireSessions ends every session, as their idle timeout or a restart
// of the manager does: their next request is refused with 403.
func (s *Server) ExpireSessions() {
	s.mu.Lock()
	defer s.mu.Unlock()
	clear(s.sessions)
}
