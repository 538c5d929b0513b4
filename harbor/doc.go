// Package harbor sets up what a platform team keeps in Harbor for each
// cluster and team: projects, members, robot accounts turned into image
// pull secrets, authentication, scanning and scan gates, replication,
// retention, garbage collection and audit, through goharbor/go-client.
//
//	c, err := harbor.New(ctx, harbor.Config{URL: "https://harbor.example.com",
//		Username: "admin", Password: pw})
//	...
//	defer c.Close(ctx)
//	p, err := c.EnsureProject(ctx, harbor.ProjectSpec{Name: "c1", ClusterID: "c1", AutoScan: true})
//	r, err := c.EnsureRobot(ctx, harbor.RobotSpec{Project: p.Name, Name: "pull", Pull: true, ClusterID: "c1"})
//	secret, err := c.PullSecret(r, "default", "harbor-pull") // a kubernetes.io/dockerconfigjson Secret
//
// The Ensure calls (EnsureProject, EnsureMember, EnsureRobot,
// EnsureRegistry, EnsureReplication, EnsureImmutableRule) create what is
// missing and change only what differs; run them again at will. When
// another caller creates the same thing first (Harbor answers 409), they
// ensure the one it made. A robot's secret is known only when it is
// created or refreshed (RefreshRobotSecret). EnsureProject works for a
// project administrator too, as long as the spec leaves the quota alone:
// Harbor shows quotas to system administrators only. API returns
// go-client's own client for anything else.
//
// # Connecting
//
// New checks the Config, reporting every problem at once, then that
// Harbor answers and accepts the credentials (an administrator, a user or
// a robot, robot$...). TLS verification is on unless Config.Insecure says
// otherwise; CACert trusts a private CA, Thumbprint one certificate. The
// TCP connect, the TLS handshake and each call are bounded separately,
// 10s, 10s and 1 minute by default.
//
// # Errors
//
// Every error status from Harbor is an *APIError wrapping the SDK's shared
// sentinel: ErrNotFound (404), ErrConflict (409), ErrInvalid (400, 422),
// ErrUnauthorized (401, or an anonymous registry token), ErrForbidden
// (403, also Harbor's answer to reading a missing project: GetProject and
// DeleteProject tell the two apart), ErrUnavailable (502, 503, 504, 429);
// errors.As finds go-client's own error in it. A Harbor that does not
// answer in time is a *kubefoundry.TimeoutError (ErrTimeout) naming the
// stage and the call ("GET /api/v2.0/projects/c1"). A wrong spec or Config
// is a *ValidationError listing every problem, each a *FieldError whose
// Field is a path such as "project.storageLimitBytes" or "rules[2].tags";
// nothing is sent. ErrAlreadyExists is a project or robot of another
// cluster; *ExpiredError an expired robot.
//
// # Ownership
//
// ProjectSpec.ClusterID and RobotSpec.ClusterID record the cluster a
// project or robot is for: a project label named OwnerLabel, and the end
// of the robot's description, as Harbor 2.4 keeps project metadata to its
// own keys. ListOwned lists a cluster's robots and projects, in the order
// to delete them; members and rules go with their project.
//
// # Long operations
//
// Replicate, RunGC and Scan start work in Harbor and wait for it to end.
// WithSink reports it as kubefoundry.Event (Op OpReplicate, OpGC, OpScan),
// the work's id in Handle before the wait; WithExecution(handle) makes a
// later call wait for that work instead of starting it again. A read
// Harbor cannot serve for a moment does not end the wait; ctx does.
//
// # Concurrency
//
// A Client is safe for concurrent use. The sink given WithSink is called
// from the goroutine of the call it was given to, one event at a time.
//
// # Testing
//
// harbor/simulator is an in-process Harbor that validates every request
// and answer against go-client's swagger.yaml; the package's tests run
// against it and, when KUBEFOUNDRY_HARBOR_URL names one, against a real
// Harbor 2.4. Scanning (the CI Harbor has no scanner), LDAP and HTTP
// group members (it has no LDAP or OIDC) and switching the auth mode are
// tested on the simulator only.
//
// # Files
//
//	client.go       Config, New, WithLogger, Close, Registry, API
//	errors.go       sentinels, APIError, ValidationError, FieldError
//	project.go      EnsureProject, GetProject, DeleteProject, quotas, CVE allowlists
//	ownership.go    OwnerLabel, ListOwned: what a cluster owns
//	member.go       EnsureMember, RemoveMember, Members: users and groups, roles
//	robot.go        EnsureRobot, RefreshRobotSecret, DeleteRobot, PullSecret
//	registry.go     RegistryAccess: what the registry's token service grants
//	config.go       ConfigureLDAP, ConfigureOIDC, AuthMode, PingLDAP
//	scan.go         Scanners, SetDefaultScanner, Scan, Vulnerabilities, MayRun
//	replication.go  EnsureRegistry, EnsureReplication, StartReplication, Replicate
//	governance.go   immutable tags, retention, RunGC and its schedule, AuditLogs
//	progress.go     WithSink, WithExecution, the Op and Phase of events
package harbor
