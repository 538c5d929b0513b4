// Package simulator is a Harbor v2.0 API server for tests and demos, on
// loopback over HTTP like an httptest server.
//
// The API it serves is go-client's: every request is routed, bound and
// validated against go-client's own swagger.yaml, which is Harbor
// 2.13.1's (embedded; go generate copies it from the module and a test
// keeps it equal), with go-openapi's middleware and validators, and every
// response is validated against the operation's response schema before it
// is sent: an answer the spec does not allow becomes a 500 naming the
// violation. Errors the spec leaves out but Harbor sends (getProject's
// 404) must still carry Harbor's {"errors": [...]} body. One amendment to
// the loaded spec makes it read as Harbor's go-swagger server does: an
// object schema without properties takes any JSON value there (replication
// filter values, rule params and GC parameters are strings, numbers and
// booleans). The behaviour follows the real Harbor 2.4 that CI also runs
// package harbor's tests against, where the two are known to differ from
// the spec (a missing project is 403 to GET and 404 to HEAD; a robot
// asking for the current user gets 412).
//
// It behaves as Harbor does for what package harbor uses: ping and
// system info; projects (name rules, 409 on a duplicate, 404, metadata
// and CVE allowlists, quotas that only system administrators may list or
// change and only they may set at creation, 412 when deleting a project
// with repositories, the public library project); members (users, LDAP
// and HTTP groups, roles; the entityname filter is a substring match and
// lists are paged, 10 by default) and the user groups they name; labels, global and per project (one
// of a name per project, 409 for a second; listing a project's needs its
// id); project robot accounts (<project>+<name>
// under the robot_name_prefix in force, robot$ by default, so changing the
// prefix renames them; permissions limited to their project; lifetime in
// days, disabling, secret refresh with Harbor's rules); users;
// repositories; artifacts, scanners (Trivy registered as the default) and
// scans, which system and project administrators, maintainers, developers
// and robots with the scan permission may start (a pull-only robot may
// not), whose findings a test sets with SetVulnerabilities (a scan is
// Pending, Running from the first read of the artifact's scan overview
// and ends, Success, on the third; a second scan while one runs is 409);
// LDAP and OIDC
// configuration (the auth mode locked once users exist) and an LDAP
// reachability ping; replication registries, policies and executions (201
// with the execution in Location; a push policy has a task per local
// repository its filters match; an execution finishes on the second read
// of it by id, and listing executions changes nothing); immutable-tag
// rules and retention policies (at most 15 rules each, known templates,
// the project's retention_id; a run answers 201 with the execution in
// Location); the GC schedule, manual runs (201 with the run in Location;
// a run is Running until the second read of it by id, then Success;
// listing the history changes nothing) and history; audit logs of
// project and robot operations (not of garbage collection, which Harbor
// 2.4 does not log) with Harbor's q= filters; and core's registry token
// service /service/token, which grants pull and push by role or robot
// permission in an RS256 JWT. Wrong, disabled or expired credentials make
// a request anonymous, as in Harbor: open APIs answer, the rest say 401,
// and the token service issues an anonymous token (no subject). An
// operation it does not implement answers 501.
//
// AddRepository and AddArtifact stand in for a push; Advance moves its
// clock, forward so robots expire, or back so that what is created next
// is dated in the past. Inject adds a Fault: the requests of a method and
// path it matches (the Nth and Times-1 after it) are answered a status
// with Harbor's error body, 503 or 429 say, and/or held back for a delay.
// Start starts a simulator for a test, closed when the test ends, and
// returns the harbor.Config of a client logged in as admin. A Server is
// safe for concurrent use.
//
// # Files
//
//	server.go        Server, New, routing, request and answer validation, paging
//	state.go         what a Server holds, who is calling, roles
//	collection.go    the generic collection each kind of object is kept in
//	system.go        ping, system info
//	users.go         users, the current user
//	projects.go      projects, their metadata and quotas
//	members.go       project members: users and groups
//	robots.go        project robot accounts
//	labels.go        global and project labels
//	repositories.go  repositories, AddRepository
//	scan.go          scanners, artifacts, scans, AddArtifact, SetVulnerabilities
//	replication.go   registry endpoints, replication policies and executions
//	governance.go    immutable-tag rules, retention, GC, audit logs
//	config.go        configuration (auth modes, LDAP, OIDC), LDAP ping
//	token.go         the registry token service
//	fault.go         Fault, Inject, Start
package simulator
