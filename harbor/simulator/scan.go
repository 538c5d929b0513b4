package simulator

import (
	"crypto/sha256"
	"encoding/hex"
	"fmt"
	"net/http"
	"net/url"
	"slices"
	"strings"
	"time"
)

type scanner struct {
	uuid, name, url string
	isDefault       bool
	disabled        bool
	created         time.Time
}

type artifact struct {
	id      int64
	digest  string
	tags    []string
	pushed  time.Time
	finds   map[string]int64 // what a scan will find, by severity
	fixable int64
	report  *report
}

type report struct {
	id       string
	status   string // Pending, then Running, then Success from the third read of its overview
	reads    int
	severity string
	counts   map[string]int64
	fixable  int64
	start    time.Time
	end      time.Time
}

// reportMIME is the scan overview key Harbor uses.
const reportMIME = "application/vnd.security.vulnerability.report; version=1.1"

var severityOrder = []string{"Critical", "High", "Medium", "Low", "Unknown", "Negligible"}

func init() {
	handlers["listScanners"] = listScanners
	handlers["setScannerAsDefault"] = setScannerAsDefault
	handlers["getArtifact"] = getArtifact
	handlers["scanArtifact"] = scanArtifact
}

func scannerJSON(s *scanner) map[string]any {
	return map[string]any{"uuid": s.uuid, "name": s.name, "url": s.url, "is_default": s.isDefault, "disabled": s.disabled,
		"auth": "", "skip_certVerify": false, "use_internal_addr": true, "create_time": ts(s.created), "update_time": ts(s.created),
		"adapter": s.name, "vendor": "Aqua Security", "version": "v0.50.0"}
}

func listScanners(s *Server, c *call) (reply, error) {
	if err := needAdmin(c); err != nil {
		return reply{}, err
	}
	s.mu.Lock()
	defer s.mu.Unlock()
	out := []map[string]any{}
	for _, sc := range s.st.scanners {
		out = append(out, scannerJSON(sc))
	}
	return reply{body: out, headers: map[string]string{"X-Total-Count": fmt.Sprint(len(out))}}, nil
}

func setScannerAsDefault(s *Server, c *call) (reply, error) {
	if err := needAdmin(c); err != nil {
		return reply{}, err
	}
	var req struct {
		IsDefault bool `json:"is_default"`
	}
	if err := c.body("payload", &req); err != nil {
		return reply{}, err
	}
	s.mu.Lock()
	defer s.mu.Unlock()
	id := c.str("registration_id")
	var found *scanner
	for _, sc := range s.st.scanners {
		if sc.uuid == id {
			found = sc
		}
	}
	if found == nil {
		return reply{}, errf(http.StatusNotFound, "scanner registration %s not found", id)
	}
	if req.IsDefault {
		for _, sc := range s.st.scanners {
			sc.isDefault = sc == found
		}
	}
	return reply{}, nil
}

// repoParam undoes the second URL encoding Harbor asks of repository names
// with slashes.
func repoParam(c *call) string {
	r := c.str("repository_name")
	if u, err := url.PathUnescape(r); err == nil {
		return u
	}
	return r
}

func (s *Server) findArtifact(c *call) (*project, *artifact, error) {
	p := s.st.projectByName(c.str("project_name"))
	if p == nil {
		return nil, nil, errf(http.StatusNotFound, "project %s not found", c.str("project_name"))
	}
	if err := s.canRead(c, p); err != nil {
		return nil, nil, err
	}
	repo, ref := repoParam(c), c.str("reference")
	for _, a := range s.st.artifacts[p.name+"/"+repo] {
		if a.digest == ref || slices.Contains(a.tags, ref) {
			return p, a, nil
		}
	}
	return p, nil, errf(http.StatusNotFound, "artifact %s/%s:%s not found", p.name, repo, ref)
}

// read advances a scan as a client's read of its overview sees it:
// pending until the first, running until the third.
func (r *report) read(now time.Time) {
	r.reads++
	switch {
	case r.status == "Success":
	case r.reads >= 3:
		r.status, r.end = "Success", now
	default:
		r.status = "Running"
	}
}

func artifactJSON(p *project, repo string, a *artifact, overview bool) map[string]any {
	tags := []any{}
	for i, t := range a.tags {
		tags = append(tags, map[string]any{"id": a.id*100 + int64(i), "artifact_id": a.id, "name": t,
			"push_time": ts(a.pushed), "pull_time": ts(a.pushed), "immutable": false})
	}
	out := map[string]any{"id": a.id, "type": "IMAGE", "media_type": "application/vnd.oci.image.config.v1+json",
		"manifest_media_type": "application/vnd.oci.image.manifest.v1+json", "project_id": p.id,
		"repository_name": p.name + "/" + repo, "digest": a.digest, "size": 2 << 20, "push_time": ts(a.pushed),
		"pull_time": ts(a.pushed), "tags": tags}
	if overview && a.report != nil {
		r := a.report
		ov := map[string]any{"report_id": r.id, "scan_status": r.status, "start_time": ts(r.start), "complete_percent": 0,
			"scanner": map[string]any{"name": "Trivy", "vendor": "Aqua Security", "version": "v0.50.0"}}
		if r.status == "Success" {
			sum := map[string]any{}
			var total int64
			for k, v := range r.counts {
				sum[k] = v
				total += v
			}
			ov["severity"], ov["duration"], ov["end_time"], ov["complete_percent"] = r.severity, int64(r.end.Sub(r.start).Seconds()), ts(r.end), 100
			ov["summary"] = map[string]any{"total": total, "fixable": r.fixable, "summary": sum}
		}
		out["scan_overview"] = map[string]any{reportMIME: ov}
	}
	return out
}

func getArtifact(s *Server, c *call) (reply, error) {
	s.mu.Lock()
	defer s.mu.Unlock()
	p, a, err := s.findArtifact(c)
	if err != nil {
		return reply{}, err
	}
	overview := c.bool("with_scan_overview")
	if overview && a.report != nil {
		a.report.read(s.clock())
	}
	return reply{body: artifactJSON(p, repoParam(c), a, overview)}, nil
}

func scanArtifact(s *Server, c *call) (reply, error) {
	if err := needAuth(c); err != nil {
		return reply{}, err
	}
	s.mu.Lock()
	defer s.mu.Unlock()
	p, a, err := s.findArtifact(c)
	if err != nil {
		return reply{}, err
	}
	// Harbor asks for create on the scan resource: system admins,
	// project admins, maintainers and developers have it, a robot only
	// when its permissions say so (a pull-only robot does not).
	if r := c.who.robot; r != nil {
		if !r.can(p, "scan", "create") {
			return reply{}, errf(http.StatusForbidden, "%s may not scan in project %s", c.who.name(), p.name)
		}
	} else if !c.who.admin() && !slices.Contains([]int64{1, 2, 4}, s.st.role(c.who, p)) {
		return reply{}, errf(http.StatusForbidden, "%s may not scan in project %s", c.who.name(), p.name)
	}
	var def *scanner
	for _, sc := range s.st.scanners {
		if sc.isDefault && !sc.disabled {
			def = sc
		}
	}
	if def == nil {
		return reply{}, errf(http.StatusPreconditionFailed, "no available scanner is set as the default")
	}
	if a.report != nil && a.report.status != "Success" {
		return reply{}, errf(http.StatusConflict, "a previous scan process is %s", a.report.status)
	}
	now := s.clock()
	r := &report{id: newSecret(), status: "Pending", severity: "None", counts: map[string]int64{}, fixable: a.fixable, start: now}
	for _, sev := range severityOrder {
		if n := a.finds[sev]; n > 0 {
			r.counts[sev] = n
			if r.severity == "None" {
				r.severity = sev
			}
		}
	}
	a.report = r
	return reply{status: http.StatusAccepted}, nil
}

// AddArtifact makes an image exist, as a push of project/repository:tag
// would, and returns its digest.
func (s *Server) AddArtifact(project, repository, tag string) (string, error) {
	s.mu.Lock()
	defer s.mu.Unlock()
	p := s.st.projectByName(project)
	if p == nil {
		return "", fmt.Errorf("simulator: no project %s", project)
	}
	if !slices.Contains(p.repos, repository) {
		p.repos = append(p.repos, repository)
	}
	sum := sha256.Sum256([]byte(project + "/" + repository + ":" + tag))
	a := &artifact{id: s.st.next(), digest: "sha256:" + hex.EncodeToString(sum[:]), tags: []string{tag}, pushed: s.clock()}
	key := project + "/" + repository
	s.st.artifacts[key] = append(s.st.artifacts[key], a)
	return a.digest, nil
}

// SetVulnerabilities says what the next scan of an artifact (by tag or
// digest) finds: counts by severity (Critical, High, Medium, Low,
// Unknown, Negligible) and how many of them are fixable.
func (s *Server) SetVulnerabilities(project, repository, reference string, counts map[string]int64, fixable int64) error {
	s.mu.Lock()
	defer s.mu.Unlock()
	for _, a := range s.st.artifacts[project+"/"+repository] {
		if a.digest == reference || slices.Contains(a.tags, reference) {
			for k := range counts {
				if !slices.Contains(severityOrder, k) {
					return fmt.Errorf("simulator: severity %q is not one of %s", k, strings.Join(severityOrder, ", "))
				}
			}
			a.finds, a.fixable = counts, fixable
			return nil
		}
	}
	return fmt.Errorf("simulator: no artifact %s/%s:%s", project, repository, reference)
}
