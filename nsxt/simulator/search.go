package simulator

import (
	"encoding/json"
	"net/http"
	"sort"
	"strconv"
	"strings"

	"github.com/vmware/vsphere-automation-sdk-go/runtime/bindings"
	"github.com/vmware/vsphere-automation-sdk-go/runtime/data/serializers/cleanjson"
)

// clause is one field:value term of a search query; values are OR-ed.
type clause struct {
	field  string
	values []string
}

// parseQuery parses the subset of NSX's Lucene search syntax that
// kubefoundry sends: clauses "field:value" joined by AND, a value may be
// "(a OR b)", quoted, end in * for a prefix match, and escape any of
// + - ! ( ) { } [ ] ^ " ~ * ? : \ / with a backslash.
func parseQuery(q string) ([]clause, error) {
	var out []clause
	toks, err := tokens(q)
	if err != nil {
		return nil, err
	}
	for i := 0; i < len(toks); i++ {
		t := toks[i]
		if t.raw == "AND" {
			continue
		}
		if t.raw == "OR" || t.raw == "NOT" {
			return nil, errorf(http.StatusBadRequest, "search: only AND between clauses is supported, found %s", t.raw)
		}
		f, v, ok := strings.Cut(t.raw, ":")
		if !ok || f == "" {
			return nil, errorf(http.StatusBadRequest, "search: clause %q is not field:value", t.text)
		}
		c := clause{field: f}
		if strings.HasPrefix(v, "(") && strings.HasSuffix(v, ")") {
			for _, alt := range strings.Split(v[1:len(v)-1], " OR ") {
				c.values = append(c.values, unescape(strings.TrimSpace(alt)))
			}
		} else {
			c.values = []string{unescape(v)}
		}
		out = append(out, c)
	}
	return out, nil
}

type token struct{ raw, text string }

// tokens splits q on spaces outside parentheses and quotes, keeping
// escapes in raw for the values.
func tokens(q string) ([]token, error) {
	var out []token
	var cur strings.Builder
	depth, quoted := 0, false
	flush := func() {
		if cur.Len() > 0 {
			out = append(out, token{raw: cur.String(), text: cur.String()})
			cur.Reset()
		}
	}
	for i := 0; i < len(q); i++ {
		c := q[i]
		switch {
		case c == '\\' && i+1 < len(q):
			cur.WriteByte(c)
			cur.WriteByte(q[i+1])
			i++
		case c == '"':
			quoted = !quoted
			cur.WriteByte(c)
		case c == '(' && !quoted:
			depth++
			cur.WriteByte(c)
		case c == ')' && !quoted:
			depth--
			cur.WriteByte(c)
		case c == ' ' && depth == 0 && !quoted:
			flush()
		default:
			cur.WriteByte(c)
		}
	}
	if depth != 0 || quoted {
		return nil, errorf(http.StatusBadRequest, "search: unbalanced parentheses or quotes in %q", q)
	}
	flush()
	return out, nil
}

// unescape removes quotes and backslash escapes; a trailing unescaped *
// stays as the prefix marker.
func unescape(v string) string {
	v = strings.TrimSpace(v)
	if len(v) >= 2 && v[0] == '"' && v[len(v)-1] == '"' {
		return v[1 : len(v)-1]
	}
	var b strings.Builder
	for i := 0; i < len(v); i++ {
		if v[i] == '\\' && i+1 < len(v) {
			i++
			if v[i] == '*' {
				b.WriteString("\x00*")
				continue
			}
		}
		b.WriteByte(v[i])
	}
	return b.String()
}

func match(want, got string) bool {
	if strings.HasSuffix(want, "*") && !strings.HasSuffix(want, "\x00*") {
		return strings.HasPrefix(got, strings.TrimSuffix(want, "*"))
	}
	return strings.ReplaceAll(want, "\x00*", "*") == got
}

func (c clause) matches(o *object) bool {
	var got []string
	switch c.field {
	case "tags.scope", "tags.tag":
		list, _ := o.body["tags"].([]any)
		key := strings.TrimPrefix(c.field, "tags.")
		for _, t := range list {
			m, _ := t.(map[string]any)
			if s, ok := m[key].(string); ok {
				got = append(got, s)
			}
		}
	default:
		switch v := o.body[c.field].(type) {
		case string:
			got = []string{v}
		case bool:
			got = []string{strconv.FormatBool(v)}
		case json.Number:
			got = []string{v.String()}
		}
	}
	for _, w := range c.values {
		for _, g := range got {
			if match(w, g) {
				return true
			}
		}
	}
	return false
}

// serveSearch answers GET /search/query: every object matching all
// clauses, sorted by path, in pages of page_size (1000 at most) with an
// opaque cursor.
func (s *Server) serveSearch(w http.ResponseWriter, r *http.Request) {
	q := r.URL.Query()
	clauses, err := parseQuery(q.Get("query"))
	if err != nil {
		writeError(w, err)
		return
	}
	pageSize := 1000
	if n, err := strconv.Atoi(q.Get("page_size")); err == nil && n > 0 && n < pageSize {
		pageSize = n
	}
	offset := 0
	if c := q.Get("cursor"); c != "" {
		if offset, err = strconv.Atoi(c); err != nil || offset < 0 {
			writeError(w, errorf(http.StatusBadRequest, "search: invalid cursor %q", c))
			return
		}
	}
	s.mu.Lock()
	var hits []*object
	idx := s.indexed()
	// What is deleted and awaits the purge shows, marked_for_delete.
	for _, o := range chainObjects(idx.objs, idx.purging) {
		ok := true
		for _, c := range clauses {
			if !c.matches(o) {
				ok = false
				break
			}
		}
		if ok && o.kind.resourceType != "Infra" {
			hits = append(hits, o)
		}
	}
	s.mu.Unlock()
	sort.Slice(hits, func(i, j int) bool { return hits[i].path < hits[j].path })
	total := len(hits)
	end := min(offset+pageSize, total)
	page := []json.RawMessage{}
	for _, o := range hits[min(offset, total):end] {
		js, err := encode(o, actorOf(r).name)
		if err != nil {
			writeError(w, errorf(http.StatusInternalServerError, "encoding %s: %v", o.path, err))
			return
		}
		page = append(page, js)
	}
	resp := map[string]any{"results": page, "result_count": total}
	if end < total {
		resp["cursor"] = strconv.Itoa(end)
	}
	writeJSON(w, http.StatusOK, resp)
}

// chainObjects lists the objects of every map.
func chainObjects(ms ...map[string]*object) []*object {
	var out []*object
	for _, m := range ms {
		for _, o := range m {
			out = append(out, o)
		}
	}
	return out
}

// writeModel writes a model value through its binding.
func writeModel(w http.ResponseWriter, v any, bt bindings.BindingType) {
	dv, errs := bindings.NewTypeConverter().ConvertToVapi(v, bt)
	if len(errs) > 0 {
		writeError(w, errorf(http.StatusInternalServerError, "%v", bindings.VAPIerrorsToError(errs)))
		return
	}
	js, err := cleanjson.NewDataValueToJsonEncoder().Encode(dv)
	if err != nil {
		writeError(w, errorf(http.StatusInternalServerError, "%v", err))
		return
	}
	w.Header().Set("Content-Type", "application/json")
	_, _ = w.Write([]byte(js))
}
