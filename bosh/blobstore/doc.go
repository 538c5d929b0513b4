// Package blobstore is kubefoundry's BOSH blobstore in the shape of
// BOSH's DAV blobstore: the server the director runs (the director's
// nginx, as bosh-davcli and the agent speak to it), a client for the
// director and for agents, an on-disk store, and BOSH's multi-digests.
// Agents download package and job blobs with URLs the director signed
// and check their digests; fetch_logs uploads a bundle the same way.
//
//	store, err := blobstore.NewLocal("/var/vcap/store/blobstore")
//	srv, err := blobstore.NewServer(store, blobstore.ServerConfig{Username: "director", Password: pw, Secret: secret})
//	// the director serves srv (an http.Handler) on its TLS listener
//
//	director, err := blobstore.New(blobstore.Config{URL: "https://10.0.0.6:25250", Username: "director", Password: pw, CACert: caPEM})
//	id, digest, err := director.Put(ctx, pkg)                   // digest: sha1 and sha256 of what was stored
//	get, err := srv.Signer().Sign("https://10.0.0.6:25250", id, "GET", time.Now(), 15*time.Minute)
//	put, err := srv.Signer().Sign("https://10.0.0.6:25250", blobstore.NewID(), "PUT", time.Now(), 15*time.Minute)
//
//	agent, err := blobstore.New(blobstore.Config{URL: "https://10.0.0.6:25250", CACert: caPEM})
//	err = agent.DownloadFile(ctx, get, digest, "/var/vcap/data/tmp/pkg.tgz") // verified, or not there
//	logsDigest, err := agent.PutSigned(ctx, put, bundle)           // fetch_logs
//
// # Wire format
//
//	PUT, GET, HEAD, DELETE /<prefix>/<id>         basic auth (the director)
//	PUT, GET, HEAD /signed/<prefix>/<id>?st=<signature>&ts=<unix time>&e=<seconds>   (agents)
//
// prefix is the first byte of SHA-1(id) in two hex digits, as
// bosh-davcli lays blobs out, and ids are 1 to 128 of [A-Za-z0-9._-],
// not starting with '.'. A blob is stored at <dir>/<prefix>/<id>. The
// signature is the unpadded URL-safe base64 of HMAC-SHA256(secret,
// METHOD + "<prefix>/<id>" + ts + e), byte for byte as bosh-davcli's
// signer makes it and the blobstore's nginx (secure_link_hmac_message
// "$request_method$object_id$arg_ts$arg_e") checks it; a URL is good
// while now <= ts + e. A GET signature also allows HEAD.
//
// A PUT answers 201 with the multi-digest of what was stored in the
// X-Blob-Digest header (nginx sends none; the Client checks it when
// present); GET and HEAD answer 200 (206 for a Range); DELETE 204, a
// missing blob included. A multi-digest is
// "<sha1 hex>;sha256:<hex>;sha512:<hex>", any subset in any order, bare
// hex being SHA-1, as BOSH writes it in release manifests and package
// specs.
//
// # Security
//
// Director requests are checked against the configured username and
// password in constant time. A signed request is checked before the
// store is touched; every refusal (no, wrong, expired, future or
// other-verb signature, another or an invalid path) is the same 403 with
// the same body, so a refusal never tells whether a blob exists. The
// check is stricter than nginx's: e must be at least 1 (nginx reads 0
// as forever), ts and e must be plain decimal, and ts may not be more
// than a minute ahead of the server's clock. A signed PUT only
// creates a blob, never replaces one. Ids are checked on both sides, so
// no path leaves the store, and uploads go to a temporary file ("."
// names, which no id can reach) that is renamed into place whole.
//
// Uploads larger than ServerConfig.MaxPutSize (10 GiB by default) are
// refused with 413. The Client sends a body of known length with
// "Expect: 100-continue", as the agent does, so an upload refused by its
// credentials, signature, size or (signed) an existing blob is refused
// before its body is sent.
//
// The password, the secret and signatures are never logged nor shown by
// String or %#v (Config, ServerConfig, Signer); the Client drops the
// query and user information from every URL in its errors, net/http's
// included. The Client never follows redirects and never sends the
// director's credentials with a signed URL. TLS verification is on
// unless Config.Insecure is set. The Server is an http.Handler:
// listener, TLS and connection timeouts (ReadHeaderTimeout) belong to
// the director's http.Server.
//
// # Errors
//
// A bad id, digest, configuration or signed URL is a
// *kubefoundry.FieldError or *kubefoundry.ValidationError naming each
// field (errors.Is kubefoundry.ErrInvalid); nothing is sent. An answer
// other than the one expected is a *StatusError (method, URL without
// query, code, start of the body) wrapping ErrNotFound (404),
// ErrUnauthorized (401), ErrForbidden (403), ErrAlreadyExists (409),
// ErrLimitExceeded (413), ErrInvalid (400) or ErrUnavailable (5xx).
// Bytes that do not match the digest expected are a *DigestMismatchError
// naming the algorithm and both sums (IsDigestMismatch); Download checks
// the strongest sum given as it streams, and DownloadFile then leaves no
// file, partial or temporary. A call that makes no progress for
// Config.CallTimeout (one minute by default: no answer, no byte of a
// body sent or received) fails with a *kubefoundry.TimeoutError (errors.Is
// ErrTimeout) naming the host and "METHOD /path"; connect and TLS
// handshake have their own bounds. A blob that keeps moving is never cut
// short; the ctx of the call bounds it as a whole, and a cancelled ctx
// is ctx's error, not a timeout.
//
// # Concurrency
//
// Client, Server, Local and Signer are safe for concurrent use. A Client
// keeps connections open between calls until Close. Local writes every
// blob to its own temporary file: two Puts of one id leave one of the
// two whole, and a reader sees a whole blob or none. Digest is an
// immutable value.
//
// # Files
//
//	id.go      NewID, ValidateID, Prefix, PrefixedID: ids and the DAV layout
//	digest.go  Digest (BOSH multi-digest): ParseDigest, DigestOf, Verify, DigestMismatchError
//	signer.go  Signer: Sign and Check of signed URLs, as bosh-davcli and nginx
//	local.go   Blobstore interface; Local: the on-disk store, atomic writes
//	server.go  Server (http.Handler), ServerConfig, Option, WithLogger: auth, signed requests, size limit
//	client.go  Client, Config: the director's Put/Get/Exists/Delete, agents' Download, DownloadFile,
//	           PutSigned; StatusError; the idle bound of a call
package blobstore
