// Package simulator is a Harbor v2.0 API server for tests and demos, on
// loopback over HTTP like an httptest server.
//
// Every request is routed, bound and validated against go-client's own
// swagger.yaml (embedded; go generate copies it from the module and a test
// keeps it equal) with go-openapi's middleware and validators, and every
// response is validated against the operation's response schema before it
// is sent: an answer the spec does not allow becomes a 500 naming the
// violation. Errors the spec leaves out but Harbor sends (getProject's
// 404) must still carry Harbor's {"errors": [...]} body. One amendment to
// the loaded spec makes it read as Harbor's go-swagger server does: an
// object schema without properties takes any JSON value there (replication
// filter values, rule params and GC parameters are strings, numbers and
// booleans).
//
// It behaves as Harbor does for what package harbor uses: ping and
// system info; projects (name rules, 409 on a duplicate, 404, metadata
// and CVE allowlists, quotas, 412 when deleting a project with
// repositories, the public library project); members (users, LDAP and
// HTTP groups, roles); project robot accounts (robot$project+name,
// permissions limited to their project, lifetime in days, disabling,
// secret refresh with Harbor's rules); users; repositories; artifacts,
// scanners (Trivy registered as the default) and scans whose findings a
// test sets with SetVulnerabilities; LDAP and OIDC configuration (the
// auth mode locked once users exist) and an LDAP reachability ping;
// replication registries, policies and executions (a push policy has a
// task per local repository its filters match, finishing on the second
// read);
// immutable-tag rules and retention policies (at most 15 rules each, known
// templates, the project's retention_id); the GC schedule, manual runs and
// history; audit logs of project, robot and GC operations with Harbor's
// q= filters; and core's
// registry token service /service/token, which grants pull and push by
// role or robot permission in an RS256 JWT. Wrong, disabled or expired
// credentials make a request anonymous, as in Harbor: open APIs answer,
// the rest say 401. An operation it does not implement answers 501.
//
// AddRepository and AddArtifact stand in for a push; Advance moves its clock so robots
// expire. A Server is safe for concurrent use.
package simulator
