package harbor

import (
	"context"
	"fmt"
	"maps"
	"net/url"
	"slices"
	"strings"

	"github.com/goharbor/go-client/pkg/sdk/v2.0/client/artifact"
	"github.com/goharbor/go-client/pkg/sdk/v2.0/client/scan"
	"github.com/goharbor/go-client/pkg/sdk/v2.0/client/scanner"
	"github.com/goharbor/go-client/pkg/sdk/v2.0/models"

	"github.com/kubefoundry/kubefoundry"
)

// Scanner is a registered vulnerability scanner.
type Scanner struct {
	ID       string
	Name     string
	URL      string
	Default  bool
	Disabled bool
}

// Scanners lists the registered scanners.
func (c *Client) Scanners(ctx context.Context) ([]Scanner, error) {
	res, err := c.api.Scanner.ListScanners(ctx, scanner.NewListScannersParams())
	if err != nil {
		return nil, apiError("list scanners", err)
	}
	var out []Scanner
	for _, s := range res.Payload {
		if s != nil {
			out = append(out, Scanner{ID: s.UUID, Name: s.Name, URL: string(s.URL), Default: s.IsDefault != nil && *s.IsDefault,
				Disabled: s.Disabled != nil && *s.Disabled})
		}
	}
	return out, nil
}

// SetDefaultScanner makes the scanner of that name the default.
func (c *Client) SetDefaultScanner(ctx context.Context, name string) error {
	all, err := c.Scanners(ctx)
	if err != nil {
		return err
	}
	var names []string
	for _, s := range all {
		if s.Name == name {
			if s.Default {
				return nil
			}
			_, err := c.api.Scanner.SetScannerAsDefault(ctx, scanner.NewSetScannerAsDefaultParams().
				WithRegistrationID(s.ID).WithPayload(&models.IsDefault{IsDefault: true}))
			return apiError("set default scanner "+name, err)
		}
		names = append(names, s.Name)
	}
	return &APIError{Op: "set default scanner " + name, Status: 404, Kind: ErrNotFound,
		Message: fmt.Sprintf("no scanner %q; registered: %s", name, strings.Join(names, ", "))}
}

// Image names an artifact: Project, Repository (without the project, it
// may hold slashes) and Reference, a tag or a digest.
type Image struct {
	Project    string
	Repository string
	Reference  string
}

func (i Image) String() string {
	sep := ":"
	if strings.HasPrefix(i.Reference, "sha256:") {
		sep = "@"
	}
	return i.Project + "/" + i.Repository + sep + i.Reference
}

// repo encodes a repository name as Harbor asks: a name with slashes is
// URL-encoded twice (go-client does the second).
func (i Image) repo() string { return url.PathEscape(i.Repository) }

// Scan asks the default scanner to scan an image and waits for its
// report. With WithSink it reports the report's id (PhaseStarted) before
// it waits; with WithExecution it waits for that report, of a scan an
// earlier call started, instead of starting another (a report since
// replaced by a newer scan's: for that one). A scan of the image already
// running, which Harbor refuses to start twice, is waited for too. It
// returns the summary, and an error when the scan ended other than
// Success or when ctx ended first (the scan goes on in Harbor).
func (c *Client) Scan(ctx context.Context, img Image, opts ...RunOption) (*ScanSummary, error) {
	r := newRun(OpScan, img.String(), opts)
	sum, err := c.scan(ctx, r, img)
	return sum, r.finish(err)
}

func (c *Client) scan(ctx context.Context, r *run, img Image) (*ScanSummary, error) {
	var note string
	if r.resume == "" {
		_, err := c.api.Scan.ScanArtifact(ctx, scan.NewScanArtifactParams().WithProjectName(img.Project).
			WithRepositoryName(img.repo()).WithReference(img.Reference))
		if e := apiError("scan "+img.String(), err); e != nil {
			if !isKind(e, ErrConflict) {
				return nil, e
			}
			note = "a scan was running already"
		}
	}
	sum, id, err := c.overview(ctx, img)
	switch {
	case err != nil:
		return nil, err
	case id == "":
		return sum, &APIError{Op: "scan " + img.String(), Status: 404, Kind: ErrNotFound, Message: "no scan report"}
	case r.resume != "" && id != r.resume:
		note = "report " + r.resume + " was replaced by a newer scan's"
	case r.resume != "":
		note = "resumed"
	}
	r.handle = id
	r.emit(kubefoundry.Event{Phase: PhaseStarted, Message: note})
	first := true // sum is read already
	err = c.follow(ctx, r, func(ctx context.Context) (state, error) {
		if !first {
			if sum, _, err = c.overview(ctx, img); err != nil {
				return state{}, err
			}
		}
		first = false
		st := state{status: sum.Status}
		switch sum.Status {
		case "Success":
			st.ended = true
		case "Error", "Stopped":
			st.ended = true
			st.failure = fmt.Errorf("harbor: scan of %s ended %s", img, sum.Status)
		}
		return st, nil
	})
	return sum, err
}

// ScanSummary is an image's vulnerability summary.
type ScanSummary struct {
	Scanned  bool   // false: never scanned
	Status   string // Success, Running, Error, ...
	Severity string // the worst found: Critical, High, Medium, Low, Unknown, Negligible or None
	Total    int64
	Fixable  int64
	Counts   map[string]int64 // by severity
}

// Vulnerabilities reads an image's scan overview.
func (c *Client) Vulnerabilities(ctx context.Context, img Image) (*ScanSummary, error) {
	sum, _, err := c.overview(ctx, img)
	return sum, err
}

// overview reads an image's scan summary and the id of its report.
func (c *Client) overview(ctx context.Context, img Image) (*ScanSummary, string, error) {
	res, err := c.api.Artifact.GetArtifact(ctx, artifact.NewGetArtifactParams().WithProjectName(img.Project).
		WithRepositoryName(img.repo()).WithReference(img.Reference).WithWithScanOverview(ptr(true)))
	if err != nil {
		return nil, "", apiError("get "+img.String(), err)
	}
	out := &ScanSummary{}
	key, ok := reportKey(res.Payload.ScanOverview)
	if !ok {
		return out, "", nil
	}
	r := res.Payload.ScanOverview[key]
	out.Scanned, out.Status, out.Severity = true, r.ScanStatus, r.Severity
	if r.Summary != nil {
		out.Total, out.Fixable, out.Counts = r.Summary.Total, r.Summary.Fixable, r.Summary.Summary
	}
	return out, r.ReportID, nil
}

// reportKey picks the report of a scan overview, keyed by MIME type, the
// same way every time: the vulnerability report
// (application/vnd.security.vulnerability.report; version=1.1) when there
// is one, else the first key in order.
func reportKey(overview models.ScanOverview) (string, bool) {
	keys := slices.Sorted(maps.Keys(overview))
	for _, k := range keys {
		if strings.Contains(k, "vulnerability.report") {
			return k, true
		}
	}
	if len(keys) == 0 {
		return "", false
	}
	return keys[0], true
}

// Decision says whether an image may run.
type Decision struct {
	Allowed bool
	Reason  string
	Summary *ScanSummary
}

// gateSeverities, worst first, as scan reports name them.
var gateSeverities = []string{"Critical", "High", "Medium", "Low"}

// MayRun is a scan gate: an image may run when it has been scanned
// successfully and nothing of threshold severity or worse was found
// (threshold: low, medium, high or critical). Never scanned or a failed
// scan is a refusal that says so.
func (c *Client) MayRun(ctx context.Context, img Image, threshold string) (Decision, error) {
	t := strings.ToUpper(threshold[:min(1, len(threshold))]) + strings.ToLower(threshold[min(1, len(threshold)):])
	idx := slices.Index(gateSeverities, t)
	if idx < 0 {
		return Decision{}, &ValidationError{Object: "scan gate", Problems: []FieldError{
			{Field: "threshold", Value: threshold, Reason: "must be low, medium, high or critical"}}}
	}
	sum, err := c.Vulnerabilities(ctx, img)
	if err != nil {
		return Decision{}, err
	}
	switch {
	case !sum.Scanned:
		return Decision{Reason: img.String() + " has not been scanned", Summary: sum}, nil
	case sum.Status != "Success":
		return Decision{Reason: fmt.Sprintf("%s: scan %s", img.String(), sum.Status), Summary: sum}, nil
	}
	for _, sev := range gateSeverities[:idx+1] {
		if n := sum.Counts[sev]; n > 0 {
			return Decision{Reason: fmt.Sprintf("%s has %d %s vulnerabilities (threshold %s)", img.String(), n, sev, t), Summary: sum}, nil
		}
	}
	return Decision{Allowed: true, Reason: fmt.Sprintf("%s: nothing %s or worse", img.String(), t), Summary: sum}, nil
}
