// Package harbor manages what a platform team sets up in Harbor for each
// cluster and team, through goharbor/go-client.
//
// What works today: New (URL, admin or robot credentials, a CA bundle, or
// no TLS verification only when Config.Insecure says so; it checks that
// Harbor answers and that the credentials are accepted); typed errors
// (*APIError wrapping ErrNotFound, ErrConflict, ErrInvalid,
// ErrUnauthorized, ErrForbidden); EnsureProject (public or private,
// storage quota, CVE allowlist, scan on push, refusal of images with a
// vulnerability of a severity or worse, signatures required; idempotent,
// changing only what differs), GetProject, DeleteProject; members
// (EnsureMember, RemoveMember, Members: users and LDAP or HTTP groups as
// project admin, maintainer, developer, guest or limited guest);
// project-scoped robot accounts (EnsureRobot with pull and/or push,
// lifetime, disabling; RefreshRobotSecret; DeleteRobot) and PullSecret,
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
// AuthMode, PingLDAP); replication: registry endpoints (EnsureRegistry),
// push or pull policies with name, tag and resource filters and a manual,
// scheduled or event trigger (EnsureReplication), StartReplication and
// WaitReplication following the execution; immutable-tag rules
// (EnsureImmutableRule, ImmutableRules, DeleteImmutableRule); retention
// (SetRetention with latest-pushed or pulled-within rules on a schedule,
// RunRetention, dry run or not); garbage collection (SetGCSchedule, RunGC,
// GCHistory); audit logs (AuditLogs by user, resource, operation and time
// window). API gives go-client's own client for anything else.
//
// A Client is safe for concurrent use. The tests run one suite against
// harbor/simulator and, when KUBEFOUNDRY_HARBOR_URL is set, against a real
// Harbor.
package harbor
