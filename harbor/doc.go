// Package harbor manages what a platform team sets up in Harbor for each
// cluster and team, through goharbor/go-client.
//
// What works today: New (URL, administrator, user or robot credentials, a
// CA bundle or the certificate's thumbprint, or no TLS verification only
// when Config.Insecure says so; the TCP connect, the TLS handshake and
// each call bounded separately, 10s, 10s and 1 minute by default, a
// Harbor that does not answer in time failing with a
// *kubefoundry.TimeoutError that names the stage, and the call as
// "GET /api/v2.0/..."; it checks the Config, every problem at once, then
// that Harbor answers and that the credentials are accepted); typed
// errors (*APIError, for any error status, wrapping the SDK's shared
// sentinels ErrNotFound, ErrConflict, ErrInvalid, ErrUnauthorized,
// ErrForbidden, and ErrUnavailable for 502, 503, 504 and 429, beside
// go-client's own error, which errors.As finds; a *ValidationError for a
// wrong spec or Config, listing every problem at once, each a FieldError
// whose Field is a JSON-style path from the argument at fault:
// "project.storageLimitBytes", "rules[2].tags", "threshold", or for the
// Config its JSON name; *ExpiredError for an expired robot);
// EnsureProject (public or private, storage quota, the project's own CVE allowlist or the
// system's, scan on push, refusal of images with a vulnerability of a
// severity or worse, signatures required; idempotent, changing only what
// differs; a project administrator can use it too, as long as it leaves
// the quota, which Harbor shows to system administrators only, alone),
// GetProject, DeleteProject; members (EnsureMember, RemoveMember, Members:
// users and LDAP or HTTP groups as project admin, maintainer, developer,
// guest or limited guest); project-scoped robot accounts (EnsureRobot with
// pull and/or push, lifetime, disabling, found whatever Harbor's
// robot_name_prefix; RefreshRobotSecret; DeleteRobot) and PullSecret,
// which turns a robot into a kubernetes.io/dockerconfigjson Secret;
// RegistryAccess, which asks Harbor's registry token service what the
// client's credentials may do to a repository (a robot gets nothing
// outside its project), the check a runtime makes before a pull;
// scanners (Scanners, SetDefaultScanner), Scan, Vulnerabilities (an
// image's scan summary) and MayRun, a scan gate that refuses an image
// never scanned, whose scan failed, or with a vulnerability at or above a
// severity threshold.
//
//	c, err := harbor.New(ctx, harbor.Config{URL: "https://harbor.example.com",
//		Username: "admin", Password: pw})
//	_, err = c.EnsureProject(ctx, harbor.ProjectSpec{Name: "c1", AutoScan: true, PreventVulnerable: "high"})
//	r, err := c.EnsureRobot(ctx, harbor.RobotSpec{Project: "c1", Name: "pull", Pull: true})
//	secret, err := c.PullSecret(r, "default", "harbor-pull")
//
// LDAP and OIDC authentication settings (ConfigureLDAP, ConfigureOIDC,
// which send only the settings given, so that an empty secret keeps the
// one Harbor holds; AuthMode, PingLDAP); replication: registry endpoints
// (EnsureRegistry), push or pull policies with name, tag and resource
// filters and a manual, scheduled or event trigger (EnsureReplication),
// StartReplication and WaitReplication following the execution;
// immutable-tag rules (EnsureImmutableRule, ImmutableRules,
// DeleteImmutableRule); retention (SetRetention with latest-pushed or
// pulled-within rules on a schedule, RunRetention, dry run or not);
// garbage collection (SetGCSchedule, RunGC, GCHistory); audit logs
// (AuditLogs by user, resource, operation and time window, at most 100 a
// call). EnsureProject, EnsureRobot, EnsureRegistry and EnsureReplication
// may race with another caller creating the same thing: when Harbor
// answers 409 they ensure the one that caller made. API gives go-client's
// own client for anything else.
//
// A Client is safe for concurrent use. The tests run one suite against
// harbor/simulator and, when KUBEFOUNDRY_HARBOR_URL is set, against a real
// Harbor.
package harbor
