package harbor

import (
	"context"
	"fmt"
	"regexp"
	"slices"
	"strconv"
	"strings"

	"github.com/goharbor/go-client/pkg/sdk/v2.0/client/project"
	"github.com/goharbor/go-client/pkg/sdk/v2.0/client/quota"
	"github.com/goharbor/go-client/pkg/sdk/v2.0/models"
	"go.uber.org/zap"

	"github.com/kubefoundry/kubefoundry"
)

// Severities, lowest first, as Harbor names them in prevent_vul settings.
var severities = []string{"none", "low", "medium", "high", "critical"}

// ProjectSpec is what a cluster or team project should look like.
type ProjectSpec struct {
	// Name: lower-case letters, digits and . _ - between them, as Harbor
	// requires.
	Name   string `json:"name,omitempty"`
	Public bool   `json:"public,omitempty"`
	// StorageLimitBytes is the project quota; 0 or -1 is unlimited.
	// Harbor lets only system administrators read or set quotas: as a
	// project administrator, leave it 0, which then leaves the quota
	// alone.
	StorageLimitBytes int64 `json:"storageLimitBytes,omitempty"`
	// CVEAllowlist lists CVE ids the project accepts whatever their
	// severity; when empty the system allowlist applies.
	CVEAllowlist []string `json:"cveAllowlist,omitempty"`
	// AutoScan scans every image on push.
	AutoScan bool `json:"autoScan,omitempty"`
	// PreventVulnerable refuses pulls of images with a vulnerability of
	// this severity or worse: low, medium, high or critical; "" allows all.
	PreventVulnerable string `json:"preventVulnerable,omitempty"`
	// SignatureRequired refuses pulls of unsigned images (content trust).
	SignatureRequired bool `json:"signatureRequired,omitempty"`
	// ClusterID is the cluster the project belongs to (OwnerLabel says
	// how Harbor records it), by kubefoundry.ClusterID's rule. A project
	// without an owner is claimed; one of another cluster is refused
	// (ErrAlreadyExists) before anything changes. Empty leaves the
	// project's owner as it is.
	ClusterID string `json:"clusterID,omitempty"`
}

// Project is a Harbor project.
type Project struct {
	ID     int64
	Name   string
	Public bool
	// StorageLimitBytes is the project quota, -1 for unlimited; 0 means
	// unknown: Harbor shows quotas to system administrators only.
	StorageLimitBytes int64
	CVEAllowlist      []string
	// SystemCVEAllowlist: the system allowlist applies, not CVEAllowlist
	// (Harbor's reuse_sys_cve_allowlist).
	SystemCVEAllowlist bool
	AutoScan           bool
	PreventVulnerable  string
	SignatureRequired  bool
	RepoCount          int64
	// ClusterID is the cluster that owns the project; empty for none, or
	// when the client may not list the project's labels.
	ClusterID string
}

var projectNameRe = regexp.MustCompile(`^[a-z0-9]+(?:[._-][a-z0-9]+)*$`)

// Validate checks s and returns a *ValidationError listing every wrong
// field at once ("project.name", "project.storageLimitBytes"), or nil.
func (s ProjectSpec) Validate() error {
	verr := ValidationError{Object: "harbor.ProjectSpec"}
	if len(s.Name) > 255 || !projectNameRe.MatchString(s.Name) {
		verr.Add("project.name", s.Name, "must be 1-255 lower-case letters and digits, with . _ - between them")
	}
	if s.PreventVulnerable != "" && !slices.Contains(severities[1:], s.PreventVulnerable) {
		verr.Add("project.preventVulnerable", s.PreventVulnerable, "must be low, medium, high or critical, or empty")
	}
	if s.StorageLimitBytes < -1 {
		verr.Add("project.storageLimitBytes", strconv.FormatInt(s.StorageLimitBytes, 10), "must be -1, 0 or positive")
	}
	for i, id := range s.CVEAllowlist {
		if strings.TrimSpace(id) == "" {
			verr.Add(fmt.Sprintf("project.cveAllowlist[%d]", i), "", "must be a CVE id, not empty")
		}
	}
	if s.ClusterID != "" {
		verr.Merge("project", kubefoundry.ClusterID(s.ClusterID).Validate())
	}
	return verr.Err()
}

func boolString(b bool) *string { s := strconv.FormatBool(b); return &s }

func (s ProjectSpec) request() *models.ProjectReq {
	md := &models.ProjectMetadata{
		Public:             strconv.FormatBool(s.Public),
		AutoScan:           boolString(s.AutoScan),
		EnableContentTrust: boolString(s.SignatureRequired),
		PreventVul:         boolString(s.PreventVulnerable != ""),
	}
	if s.PreventVulnerable != "" {
		md.Severity = &s.PreventVulnerable
	}
	md.ReuseSysCVEAllowlist = boolString(len(s.CVEAllowlist) == 0)
	// The allowlist is always sent, empty to clear it.
	al := &models.CVEAllowlist{Items: []*models.CVEAllowlistItem{}}
	for _, id := range s.CVEAllowlist {
		al.Items = append(al.Items, &models.CVEAllowlistItem{CVEID: id})
	}
	return &models.ProjectReq{ProjectName: s.Name, Public: &s.Public, Metadata: md, CVEAllowlist: al}
}

func fromModel(p *models.Project, limit int64) *Project {
	out := &Project{ID: int64(p.ProjectID), Name: p.Name, RepoCount: p.RepoCount, StorageLimitBytes: limit}
	if md := p.Metadata; md != nil {
		out.Public = md.Public == "true"
		out.AutoScan = md.AutoScan != nil && *md.AutoScan == "true"
		out.SignatureRequired = md.EnableContentTrust != nil && *md.EnableContentTrust == "true"
		if md.PreventVul != nil && *md.PreventVul == "true" && md.Severity != nil {
			out.PreventVulnerable = *md.Severity
		}
		// Harbor reuses the system allowlist unless told otherwise.
		out.SystemCVEAllowlist = md.ReuseSysCVEAllowlist == nil || *md.ReuseSysCVEAllowlist != "false"
	} else {
		out.SystemCVEAllowlist = true
	}
	if p.CVEAllowlist != nil {
		for _, it := range p.CVEAllowlist.Items {
			if it != nil {
				out.CVEAllowlist = append(out.CVEAllowlist, it.CVEID)
			}
		}
	}
	return out
}

// GetProject reads a project by name. A project that does not exist is
// ErrNotFound (Harbor itself answers 403 to reading a missing project;
// HEAD tells the two apart). Its StorageLimitBytes is 0, unknown, unless
// the client is a system administrator: Harbor lists quotas to nobody
// else.
func (c *Client) GetProject(ctx context.Context, name string) (*Project, error) {
	res, err := c.api.Project.GetProject(ctx, project.NewGetProjectParams().WithProjectNameOrID(name).WithXIsResourceName(ptr(true)))
	if err != nil {
		e := apiError("get project "+name, err)
		if isKind(e, ErrForbidden) {
			if _, herr := c.api.Project.HeadProject(ctx, project.NewHeadProjectParams().WithProjectName(name)); herr != nil {
				if he := apiError("head project "+name, herr); isKind(he, ErrNotFound) {
					return nil, he
				}
			}
		}
		return nil, e
	}
	id := int64(res.Payload.ProjectID)
	limit, _, err := c.quota(ctx, id)
	switch {
	case isKind(err, ErrForbidden):
		limit = 0 // not a system administrator: unknown
	case err != nil:
		return nil, err
	}
	p := fromModel(res.Payload, limit)
	p.ClusterID, _, err = c.projectOwner(ctx, id)
	if err != nil && !isKind(err, ErrForbidden) {
		return nil, err
	}
	return p, nil
}

// quota returns a project's storage limit and its quota id.
func (c *Client) quota(ctx context.Context, projectID int64) (limit, id int64, err error) {
	res, err := c.api.Quota.ListQuotas(ctx, quota.NewListQuotasParams().WithReference(ptr("project")).
		WithReferenceID(ptr(strconv.FormatInt(projectID, 10))))
	if err != nil {
		return 0, 0, apiError(fmt.Sprintf("list quotas of project %d", projectID), err)
	}
	for _, q := range res.Payload {
		if q == nil {
			continue
		}
		if v, ok := q.Hard["storage"]; ok {
			return v, q.ID, nil
		}
	}
	return -1, 0, nil
}

// EnsureProject creates the project, or updates it to match spec: it is
// idempotent and changes only what differs. It touches the quota only when
// spec sets a limit or the current one is known (the client is a system
// administrator), so a project administrator can ensure everything else.
func (c *Client) EnsureProject(ctx context.Context, spec ProjectSpec) (*Project, error) {
	if err := spec.Validate(); err != nil {
		return nil, err
	}
	limit := spec.StorageLimitBytes
	if limit == 0 {
		limit = -1
	}
	cur, err := c.GetProject(ctx, spec.Name)
	switch {
	case isKind(err, ErrNotFound):
		req := spec.request()
		req.StorageLimit = &limit
		_, err := c.api.Project.CreateProject(ctx, project.NewCreateProjectParams().WithProject(req))
		if err != nil && !isKind(apiError("", err), ErrConflict) {
			return nil, apiError("create project "+spec.Name, err)
		}
		if err == nil {
			c.log.Info("harbor project created", zap.String("project", spec.Name))
		}
		// Harbor 2.4 ignores some settings on creation (the CVE
		// allowlist): read back and update what did not take.
		if cur, err = c.GetProject(ctx, spec.Name); err != nil {
			return nil, err
		}
	case err != nil:
		return nil, err
	}
	// What was read is the answer unless something is written.
	changed := false
	// The owner first: a project of another cluster is left as it is.
	switch {
	case spec.ClusterID == "":
	case cur.ClusterID == "":
		if err := c.claimProject(ctx, cur, spec.ClusterID); err != nil {
			return nil, err
		}
		changed = true
	default:
		if err := ownedElsewhere("project", spec.Name, cur.ClusterID, spec.ClusterID); err != nil {
			return nil, err
		}
	}
	want := *cur
	want.Public, want.AutoScan, want.SignatureRequired = spec.Public, spec.AutoScan, spec.SignatureRequired
	want.PreventVulnerable, want.CVEAllowlist = spec.PreventVulnerable, spec.CVEAllowlist
	want.SystemCVEAllowlist = len(spec.CVEAllowlist) == 0
	if !sameProject(*cur, want) {
		_, err := c.api.Project.UpdateProject(ctx, project.NewUpdateProjectParams().
			WithProjectNameOrID(spec.Name).WithXIsResourceName(ptr(true)).WithProject(spec.request()))
		if err != nil {
			return nil, apiError("update project "+spec.Name, err)
		}
		changed = true
	}
	// 0 is an unknown limit: left alone unless spec asks for one, and
	// then reading the quota says whether the client may.
	if cur.StorageLimitBytes != limit && (cur.StorageLimitBytes != 0 || spec.StorageLimitBytes != 0) {
		_, id, err := c.quota(ctx, cur.ID)
		if err != nil {
			return nil, err
		}
		_, err = c.api.Quota.UpdateQuota(ctx, quota.NewUpdateQuotaParams().WithID(id).
			WithHard(&models.QuotaUpdateReq{Hard: models.ResourceList{"storage": limit}}))
		if err != nil {
			return nil, apiError("update quota of project "+spec.Name, err)
		}
		changed = true
	}
	if !changed {
		return cur, nil
	}
	return c.GetProject(ctx, spec.Name)
}

func sameProject(a, b Project) bool {
	return a.Public == b.Public && a.AutoScan == b.AutoScan && a.SignatureRequired == b.SignatureRequired &&
		a.PreventVulnerable == b.PreventVulnerable && slices.Equal(a.CVEAllowlist, b.CVEAllowlist) &&
		a.SystemCVEAllowlist == b.SystemCVEAllowlist
}

// DeleteProject deletes a project. A project that is gone is not an
// error; one that still holds repositories is refused by Harbor (412).
func (c *Client) DeleteProject(ctx context.Context, name string) error {
	_, err := c.api.Project.DeleteProject(ctx, project.NewDeleteProjectParams().WithProjectNameOrID(name).WithXIsResourceName(ptr(true)))
	if err == nil {
		return nil
	}
	e := apiError("delete project "+name, err)
	if isKind(e, ErrForbidden) {
		// Harbor answers 403 for a project that is not there.
		if _, herr := c.api.Project.HeadProject(ctx, project.NewHeadProjectParams().WithProjectName(name)); isKind(apiError("", herr), ErrNotFound) {
			return nil
		}
	}
	if isKind(e, ErrNotFound) {
		return nil
	}
	return e
}

func ptr[T any](v T) *T { return &v }
